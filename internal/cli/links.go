package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/config"
)

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

// timeoutContext bounds a one-shot command.
func timeoutContext(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), d)
}
