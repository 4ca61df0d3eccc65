// Package release packages edgelink's release from the static binaries that
// scripts/release builds: a .deb per architecture (nfpm) and a multi-arch OCI
// image (go-containerregistry), each the same bytes for the same commit. It
// is a Go module of its own so that the packagers, Helm and the Kubernetes
// API types its tests use stay out of edgelink's go.mod.
//
// The names here are the release's contract with scripts/release, the
// Makefile and the tests in dist/ and chart/.
package release

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Arch is one architecture of the release.
type Arch struct {
	Name     string      // in file names: amd64, arm64, armv7
	GOARCH   string      // what Go builds for
	GOARM    string      // for arm only
	Debian   string      // the .deb's Architecture
	Platform v1.Platform // the image's platform in the index
}

// Arches are the architectures of a release, in the order of its files.
var Arches = []Arch{
	{Name: "amd64", GOARCH: "amd64", Debian: "amd64", Platform: v1.Platform{OS: "linux", Architecture: "amd64"}},
	{Name: "arm64", GOARCH: "arm64", Debian: "arm64", Platform: v1.Platform{OS: "linux", Architecture: "arm64"}},
	{Name: "armv7", GOARCH: "arm", GOARM: "7", Debian: "armhf", Platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
}

// ArchNamed returns the architecture called name (amd64, arm64, armv7).
func ArchNamed(name string) (Arch, error) {
	for _, a := range Arches {
		if a.Name == name {
			return a, nil
		}
	}
	return Arch{}, fmt.Errorf("unknown architecture %q: want amd64, arm64 or armv7", name)
}

// Meta is what a release is stamped with. Epoch is the commit's time: every
// timestamp in the release is it, never the time of the build.
type Meta struct {
	Version string
	Commit  string
	Epoch   time.Time
}

// BinaryName is the file name of the static binary for a in dist/.
func BinaryName(version string, a Arch) string {
	return "edgelink_" + version + "_linux_" + a.Name
}

// DebName is the file name of the .deb for a in dist/.
func DebName(version string, a Arch) string {
	return BinaryName(version, a) + ".deb"
}

// ImageName is the file name of the OCI image layout, as a tar, in dist/.
func ImageName(version string) string {
	return "edgelink_" + version + "_oci.tar"
}

// SumsName is the checksum file in dist/, in the format of sha256sum.
const SumsName = "SHA256SUMS"

// The image's user: not root, and no user of the host.
const (
	ImageUID = 65532
	ImageGID = 65532
)

var (
	describedRe = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]{7,40})$`)
	debianRe    = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// DebVersion turns a release version (git describe --tags --always --dirty,
// or the v0.0.0-DATE-COMMIT fallback of scripts/release) into a Debian
// upstream version that sorts the same way:
//
//	v1.2.3                 1.2.3
//	v1.2.3-rc.1            1.2.3~rc.1       (before 1.2.3)
//	v1.2.3-4-gabcdef0      1.2.3+4.gabcdef0 (after 1.2.3)
//	v1.2.3-dirty           1.2.3+dirty
//	v0.0.0-20261129093719-fa076d7a1b2c
//	                       0.0.0~20261129093719.fa076d7a1b2c
func DebVersion(version string) (string, error) {
	v := strings.TrimPrefix(version, "v")
	var extra []string
	if s, ok := strings.CutSuffix(v, "-dirty"); ok {
		v = s
		extra = append(extra, "dirty")
	}
	if m := describedRe.FindStringSubmatch(v); m != nil {
		v = m[1]
		extra = append([]string{m[2], "g" + m[3]}, extra...)
	}
	if base, pre, ok := strings.Cut(v, "-"); ok {
		v = base + "~" + strings.ReplaceAll(pre, "-", ".")
	}
	if len(extra) > 0 {
		v += "+" + strings.Join(extra, ".")
	}
	if !debianRe.MatchString(v) {
		return "", fmt.Errorf("version %q: no Debian version can be made of it (%q); tag the commit vX.Y.Z", version, v)
	}
	return v, nil
}
