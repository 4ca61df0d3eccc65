package cli

import (
	"io"

	"github.com/edgelink/edgelink/internal/config"
)

// printConfig writes cfg, with its defaults filled in and its secrets
// redacted, as YAML that loads again (with "[redacted]" for each secret).
// The schema in package config renders it, so every key is printed.
func printConfig(w io.Writer, cfg *config.Config) error {
	out, err := cfg.Redacted().YAML()
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}
