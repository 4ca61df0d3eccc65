package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/config"
)

// loadConfig checks that -c was given, builds the logger and loads the file.
func loadConfig(g *globals, file string) (*config.Config, *slog.Logger, error) {
	if err := requireConfig(file); err != nil {
		return nil, nil, err
	}
	logger, err := g.logger()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, err
	}
	return cfg, logger, nil
}

// findLink returns the link called name, or a usage error listing the links.
func findLink(cfg *config.Config, name string) (*config.Link, error) {
	names := make([]string, 0, len(cfg.Links))
	for _, l := range cfg.Links {
		if l.Name == name {
			return l, nil
		}
		names = append(names, l.Name)
	}
	if name == "" {
		return nil, usageError{fmt.Errorf("--link is required (links in %s: %s)", cfg.File, strings.Join(names, ", "))}
	}
	return nil, usageError{fmt.Errorf("no link %q in %s (links: %s)", name, cfg.File, strings.Join(names, ", "))}
}

// loadLink is loadConfig that also finds the link named in the file.
func loadLink(g *globals, file, name string) (*config.Config, *config.Link, *slog.Logger, error) {
	cfg, logger, err := loadConfig(g, file)
	if err != nil {
		return nil, nil, nil, err
	}
	lc, err := findLink(cfg, name)
	return cfg, lc, logger, err
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// timeoutContext bounds a one-shot command.
func timeoutContext(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), d)
}
