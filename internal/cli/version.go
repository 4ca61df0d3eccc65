package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X ...cli.version=v1.2.3".
var version = "dev"

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of edgelink and of what it was built with",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(g.stdout, "edgelink %s\n", Version())
			if bi, ok := debug.ReadBuildInfo(); ok {
				fmt.Fprintf(g.stdout, "go        %s\n", bi.GoVersion)
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						fmt.Fprintf(g.stdout, "commit    %s\n", s.Value)
					}
				}
				for _, d := range bi.Deps {
					if d.Path == "github.com/twmb/franz-go" {
						fmt.Fprintf(g.stdout, "franz-go  %s\n", d.Version)
					}
				}
			}
			return nil
		},
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
