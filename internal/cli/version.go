package cli

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Stamped at build time by make release:
//
//	-ldflags "-X github.com/edgelink/edgelink/internal/cli.version=v1.2.3
//	          -X github.com/edgelink/edgelink/internal/cli.commit=<git rev-parse HEAD>
//	          -X github.com/edgelink/edgelink/internal/cli.date=<commit time, RFC 3339 UTC>"
//
// The date is the commit's, not the build's, so that building a commit
// twice gives the same bytes.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of edgelink, its commit and build date, and what it was built with",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			bi, _ := debug.ReadBuildInfo()
			writeVersion(g.stdout, bi)
			return nil
		},
	}
}

// writeVersion prints what edgelink version prints; bi may be nil.
func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	fmt.Fprintf(w, "edgelink %s\n", Version())
	rev, built := commit, date
	if bi != nil {
		// A plain go build inside a git checkout records these itself.
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value
			case s.Key == "vcs.time" && built == "":
				built = s.Value
			}
		}
		fmt.Fprintf(w, "go        %s\n", bi.GoVersion)
	}
	if rev != "" {
		fmt.Fprintf(w, "commit    %s\n", rev)
	}
	if built != "" {
		fmt.Fprintf(w, "built     %s\n", built)
	}
	if bi != nil {
		for _, d := range bi.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				fmt.Fprintf(w, "franz-go  %s\n", d.Version)
			}
		}
	}
}

// Version returns edgelink's version string.
func Version() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
