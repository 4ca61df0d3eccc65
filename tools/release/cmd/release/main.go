// Command release packages the static binaries that scripts/release built
// into dist/: a .deb per architecture and the multi-arch OCI image.
//
//	release deb   -dist DIR -version V -commit C -epoch SECONDS [-arch amd64,arm64,armv7] [-root DIR]
//	release image -dist DIR -version V -commit C -epoch SECONDS [-arch amd64,arm64,armv7]
//
// -epoch is the commit's time (SOURCE_DATE_EPOCH): every timestamp inside
// the packages is it, so the same commit gives the same bytes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/edgelink/edgelink/tools/release"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "deb" && args[0] != "image") {
		return errors.New("usage: release deb|image -dist DIR -version V -commit C -epoch SECONDS [-arch LIST] [-root DIR]")
	}
	fl := flag.NewFlagSet("release "+args[0], flag.ContinueOnError)
	var (
		dist    = fl.String("dist", "dist", "where the binaries are and the packages go")
		root    = fl.String("root", ".", "the repository (deploy/deb/nfpm.yaml and the files it names)")
		version = fl.String("version", "", "the release's version, required")
		commit  = fl.String("commit", "", "the commit it is built from, required")
		epoch   = fl.Int64("epoch", -1, "the commit's time in seconds since 1970 (SOURCE_DATE_EPOCH), required")
		arches  = fl.String("arch", "amd64,arm64,armv7", "architectures, comma-separated")
	)
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if *version == "" || *commit == "" || *epoch < 0 {
		return errors.New("-version, -commit and -epoch are required")
	}
	m := release.Meta{Version: *version, Commit: *commit, Epoch: time.Unix(*epoch, 0).UTC()}
	var as []release.Arch
	for name := range strings.SplitSeq(*arches, ",") {
		a, err := release.ArchNamed(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		as = append(as, a)
	}
	switch args[0] {
	case "deb":
		for _, a := range as {
			out, err := release.BuildDeb(*root, *dist, m, a)
			if err != nil {
				return err
			}
			fmt.Println(out)
		}
	case "image":
		out, err := release.BuildImage(*dist, m, as)
		if err != nil {
			return err
		}
		fmt.Println(out)
	}
	return nil
}
