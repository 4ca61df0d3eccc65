package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
)

func newRunCmd(g *globals) *cobra.Command {
	var (
		file    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run every link of a configuration",
		Long: "Run every link of a configuration.\n\n" +
			"This version validates the configuration, connects to every cluster and\n" +
			"reports what each link would replicate; it does not copy records yet.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireConfig(file); err != nil {
				return err
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			cfg, err := config.Load(file)
			if err != nil {
				return err
			}
			return survey(cmd.Context(), g, logger, cfg, timeout)
		},
	}
	addConfigFlag(cmd, &file)
	cmd.Flags().DurationVar(&timeout, "connect-timeout", 15*time.Second, "how long to try each cluster")
	return cmd
}

// survey connects to every cluster and reports, per link, the source topics
// it selects and whether their destination topics exist.
func survey(ctx context.Context, g *globals, logger *slog.Logger, cfg *config.Config, timeout time.Duration) error {
	infos := make(map[string]*kafka.ClusterInfo)
	var failed []error
	for _, name := range cfg.ClusterOrder {
		c := cfg.Clusters[name]
		info, err := probeCluster(ctx, logger, c, timeout)
		if err != nil {
			fmt.Fprintf(g.stdout, "cluster %s (%s): UNREACHABLE: %v\n", name, strings.Join(c.Bootstrap, ","), err)
			failed = append(failed, fmt.Errorf("cluster %s: %w", name, err))
			continue
		}
		infos[name] = info
		fmt.Fprintf(g.stdout, "cluster %s (%s): id %s, %s, controller %d, %s\n", name, strings.Join(c.Bootstrap, ","),
			info.ClusterID, plural(len(info.Brokers), "broker"), info.Controller, plural(len(info.Topics), "topic"))
	}
	for _, l := range cfg.Links {
		src, dst := infos[l.From], infos[l.To]
		if src == nil {
			fmt.Fprintf(g.stdout, "link %s: source cluster %s unreachable\n", l.Name, l.From)
			continue
		}
		var selected []string
		for _, t := range src.TopicNames() {
			if l.Topics.Match(t) {
				selected = append(selected, t)
			}
		}
		fmt.Fprintf(g.stdout, "link %s: %s -> %s selects %s\n", l.Name, l.From, l.To, plural(len(selected), "topic"))
		for _, t := range selected {
			dt := l.DestinationTopic(cfg.Site, t)
			state := "destination unknown (cluster unreachable)"
			if dst != nil {
				if n, ok := dst.Topics[dt]; ok {
					state = fmt.Sprintf("exists at destination with %d partitions", n)
				} else {
					state = "missing at destination"
				}
			}
			fmt.Fprintf(g.stdout, "  %s (%d partitions) -> %s: %s\n", t, src.Topics[t], dt, state)
		}
	}
	fmt.Fprintln(g.stdout, "note: this version surveys only; no records were replicated")
	return errors.Join(failed...)
}

func probeCluster(ctx context.Context, logger *slog.Logger, c *config.Cluster, timeout time.Duration) (*kafka.ClusterInfo, error) {
	cl, err := kafka.NewClient(c, logger)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := kafka.Probe(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("connect within %s: %w", timeout, err)
	}
	return info, nil
}
