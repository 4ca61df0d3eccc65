package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
)

func newRunCmd(g *globals) *cobra.Command {
	var (
		file    string
		timeout time.Duration
		dryRun  bool
	)
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run every link of a configuration",
		Long: "Run every link of a configuration until stopped.\n\n" +
			"SIGTERM or Ctrl-C finishes (or aborts) the open transactions and exits 0;\n" +
			"a second signal exits at once. SIGHUP reloads the file: links added start,\n" +
			"links removed stop, links whose configuration (or clusters, or site) changed\n" +
			"restart, the others keep running; an invalid file is refused and logged.\n" +
			"With --dry-run, connect to every cluster, report what each link would\n" +
			"replicate, and exit without copying anything.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := loadConfig(g, file)
			if err != nil {
				return err
			}
			if dryRun {
				return survey(cmd.Context(), g, logger, cfg, timeout)
			}
			return runLinks(cmd.Context(), logger, cfg)
		},
	}
	addConfigFlag(cmd, &file)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what each link would replicate, copy nothing, and exit")
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
	fmt.Fprintln(g.stdout, "dry run: no records were replicated")
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

// runLinks runs every link of cfg, through an agent.Agent, until the first
// SIGINT or SIGTERM, which drains: each link finishes or aborts its open
// transaction. A second signal exits at once with status 1. SIGHUP reloads
// cfg.File (see reload).
func runLinks(ctx context.Context, logger *slog.Logger, cfg *config.Config) error {
	managed := cfg.Fleet != nil && cfg.Fleet.Managed
	if len(cfg.Links) == 0 && !managed {
		return usageError{fmt.Errorf("%s defines no links: nothing to run", cfg.File)}
	}
	if cfg.Fleet != nil && cfg.Site == "" {
		return usageError{fmt.Errorf("%s has a fleet block but no site: the fleet knows each agent by its site (set site, e.g. site: plant-berlin)", cfg.File)}
	}
	a := agent.New(cfg, agent.Options{}, logger)
	model := status.New(status.Options{Links: a, Version: Version(), Logger: logger})
	var uplink *fleet.Uplink
	if cfg.Fleet != nil {
		text, err := os.ReadFile(cfg.File)
		if err != nil {
			return fmt.Errorf("read config %s: %w", cfg.File, err)
		}
		if uplink, err = fleet.NewUplink(fleet.UplinkOptions{Local: cfg, LocalText: text, Agent: a, Status: model, Logger: logger}); err != nil {
			return err
		}
	}
	// The HTTP server binds first, so that a taken address fails the start.
	srv, err := observe.Listen(ctx, observe.Options{HTTP: cfg.HTTP, Status: model, Fleet: uplinkState(uplink), Logger: logger})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var wg sync.WaitGroup
	defer wg.Wait()
	stopped := make(chan struct{})
	defer close(stopped)
	wg.Go(func() {
		select {
		case sig := <-sigs:
			logger.Info("stopping: finishing open transactions (signal again to exit at once)", "signal", sig.String())
			model.Stopping()
			cancel()
		case <-stopped:
			return
		}
		select {
		case <-sigs:
			logger.Warn("second signal: exiting at once")
			os.Exit(ExitFailure)
		case <-stopped:
		}
	})
	// Reloads run one at a time, until the agent stops.
	reloadCtx, stopReloads := context.WithCancel(ctx)
	defer stopReloads()
	wg.Go(func() {
		for {
			select {
			case <-hup:
				reload(reloadCtx, logger, a, uplink, cfg.File, cfg.HTTP)
			case <-reloadCtx.Done():
				return
			}
		}
	})

	// The status model and the server outlive the links' drain, so that
	// /readyz reports it, and stop once every link has returned.
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	modelDone := make(chan struct{})
	wg.Go(func() { defer close(modelDone); model.Run(srvCtx) })
	srvDone := make(chan error, 1)
	wg.Go(func() { srvDone <- srv.Run(srvCtx) })
	// The uplink reports until the links drained, and then that the agent
	// stopped.
	if uplink != nil {
		wg.Go(func() { _ = uplink.Run(srvCtx) })
	}
	logger.Info("edgelink running", "links", len(cfg.Links), "config", cfg.File, "status_page", srv.URL())

	// A link that cannot continue stops alone; the others keep running.
	// The agent returns once stopped, or once every link stopped for good.
	var errs []error
	if err := a.Run(ctx); err != nil {
		errs = append(errs, err)
	}
	model.Stopping()
	stopReloads()
	stopSrv()
	if err := <-srvDone; err != nil {
		errs = append(errs, err)
	}
	<-modelDone
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger.Info("edgelink stopped")
	return nil
}

// reload re-reads the configuration file as `edgelink check` does and
// applies it to the running agent. An invalid file changes nothing: the
// links keep running as they are, and the error, the text check prints, is
// logged. The HTTP server keeps the settings it started with (served).
func reload(ctx context.Context, logger *slog.Logger, a *agent.Agent, uplink *fleet.Uplink, file string, served config.HTTP) {
	logger.Info("reloading the configuration (SIGHUP)", "config", file)
	text, err := os.ReadFile(file)
	if err != nil {
		logger.Error("configuration not reloaded: the links keep running unchanged", "config", file, "err", err)
		return
	}
	cfg, err := config.Parse(file, text)
	if err != nil {
		logger.Error("configuration not reloaded: the links keep running unchanged", "config", file, "err", err)
		return
	}
	if uplink != nil && uplink.Reload(ctx, cfg, text) {
		// A managed site: the fleet's revision runs on top of the file.
		logger.Info("local configuration handed to the fleet manager", "config", file)
		return
	}
	if !reflect.DeepEqual(cfg.HTTP, served) {
		logger.Warn("http settings changed: they apply when edgelink restarts; the server keeps its current ones", "config", file)
	}
	if len(cfg.Links) == 0 {
		logger.Warn("the configuration defines no links: every link stops", "config", file)
	}
	ch, err := a.Apply(ctx, cfg)
	if err != nil {
		logger.Warn("configuration reload interrupted", "config", file, "err", err,
			"added", ch.Added, "removed", ch.Removed, "restarted", ch.Restarted, "kept", ch.Kept)
		return
	}
	logger.Info("config reloaded", "config", file,
		"added", ch.Added, "removed", ch.Removed, "restarted", ch.Restarted, "kept", ch.Kept)
}

// uplinkState returns what the agent's status API shows of its fleet
// connection; nil without one.
func uplinkState(u *fleet.Uplink) func() any {
	if u == nil {
		return nil
	}
	return func() any { return u.State() }
}
