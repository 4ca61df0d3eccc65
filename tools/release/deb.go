package release

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
)

// DebSpec is the package's description for nfpm, relative to the root of
// the repository.
const DebSpec = "deploy/deb/nfpm.yaml"

// BuildDeb writes the .deb for a into dist from the binary next to it there
// and the files deploy/deb/nfpm.yaml names (relative to root). Every time in
// it is m.Epoch, so the same inputs give the same bytes.
func BuildDeb(root, dist string, m Meta, a Arch) (string, error) {
	debVersion, err := DebVersion(m.Version)
	if err != nil {
		return "", err
	}
	binary, err := filepath.Abs(filepath.Join(dist, BinaryName(m.Version, a)))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(binary); err != nil {
		return "", fmt.Errorf("package %s: %w (build it first: make release)", a.Name, err)
	}
	vars := map[string]string{"ARCH": a.Debian, "VERSION": debVersion, "BINARY": binary}
	cfg, err := nfpm.ParseFileWithEnvMapping(filepath.Join(root, DebSpec), func(k string) string { return vars[k] })
	if err != nil {
		return "", fmt.Errorf("read %s: %w", DebSpec, err)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return "", fmt.Errorf("read %s: %w", DebSpec, err)
	}
	info = nfpm.WithDefaults(info)
	info.MTime = m.Epoch
	// Paths in the spec are relative to the repository, not to where this runs.
	for _, c := range info.Contents {
		if c.Source != "" && !filepath.IsAbs(c.Source) {
			c.Source = filepath.Join(root, c.Source)
		}
	}
	for _, s := range []*string{&info.Scripts.PreInstall, &info.Scripts.PostInstall, &info.Scripts.PreRemove, &info.Scripts.PostRemove} {
		if *s != "" && !filepath.IsAbs(*s) {
			*s = filepath.Join(root, *s)
		}
	}
	if err := nfpm.Validate(info); err != nil {
		return "", fmt.Errorf("check %s: %w", DebSpec, err)
	}
	var buf bytes.Buffer
	if err := deb.Default.Package(info, &buf); err != nil {
		return "", fmt.Errorf("package %s: %w", a.Name, err)
	}
	out := filepath.Join(dist, DebName(m.Version, a))
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return out, nil
}
