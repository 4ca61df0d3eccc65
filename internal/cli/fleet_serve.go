package cli

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/observe"
)

func newFleetServeCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "serve -c FILE",
		Short: "Serve the fleet page and API from the fleet's topics",
		Long: "Read the fleet's topics in fleet.cluster and serve, on http.listen, the fleet\n" +
			"page, GET /api/v1/fleet, /api/v1/fleet/sites/{site} and /metrics. The service\n" +
			"keeps no state of its own: several can run side by side, and a restart reads\n" +
			"everything back from the topics. It creates the topics if they are missing.",
		Example: "  edgelink fleet serve -c cloud.yaml",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, opts, err := loadFleetConfig(g, file)
			if err != nil {
				return err
			}
			logger, err := g.logger()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			topics := fleet.TopicsFor(cfg.Fleet)
			view := fleet.NewView(nil)
			srv, err := observe.ListenFleet(ctx, observe.FleetOptions{HTTP: cfg.HTTP, View: view, Logger: logger})
			if err != nil {
				return err
			}
			ctx, stop := signalContext(ctx)
			defer stop()
			logger.Info("fleet service running", "cluster", cfg.Fleet.Cluster, "page", srv.URL())
			var wg sync.WaitGroup
			defer wg.Wait()
			errc := make(chan error, 3)
			wg.Go(func() { errc <- srv.Run(ctx) })
			wg.Go(func() {
				if err := fleet.CreateTopics(ctx, opts, topics); err != nil && ctx.Err() == nil {
					logger.Warn("fleet topics not created", "err", kafka.Explain(err))
				}
				errc <- fleet.NewReader(opts, topics, view, logger).Run(ctx)
			})
			wg.Go(func() { view.SweepEvery(ctx, time.Second) })
			wg.Go(func() { errc <- fleet.Tidy(ctx, opts, topics, view, logger) })
			var errs []error
			for range 3 {
				if err := <-errc; err != nil {
					errs = append(errs, err)
					stop()
				}
			}
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("fleet service: %w", err)
			}
			return nil
		},
	}
	addConfigFlag(cmd, &file)
	return cmd
}

// signalContext is ctx, ended by SIGINT or SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}
