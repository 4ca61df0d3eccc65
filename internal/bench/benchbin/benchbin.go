// Package benchbin provides the edgelink binary a bench runs as processes.
package benchbin

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Prepare copies the binary given into dir, so that a rebuild of it during
// the bench changes nothing, or builds one there when none is given
// (without version control stamps: a bench needs no git). It returns the
// binary's path.
func Prepare(ctx context.Context, given, dir string) (string, error) {
	bin := filepath.Join(dir, "edgelink")
	if given == "" {
		cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin, "github.com/edgelink/edgelink/cmd/edgelink")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build edgelink: %w\n%s", err, out)
		}
		return bin, nil
	}
	src, err := os.Open(given)
	if err != nil {
		return "", fmt.Errorf("-edgelink: %w", err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", fmt.Errorf("copy %s: %w", given, err)
	}
	return bin, dst.Close()
}

// Version is the first line of what the binary says of itself.
func Version(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "edgelink (version unknown)"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}
