// Package demo runs edgelink's self-contained demonstration: two in-process
// Kafka-protocol clusters, "edge" and "cloud" (franz-go's kfake, persisted
// under a data directory so that a restarted demo resumes), a simulated
// plant writing sensor readings and alerts at the edge, one link edge→cloud
// run by two agents sharing it over a simulated WAN that the status page
// can cut and restore, and the status page itself.
//
// Nothing is simulated about the replication: the link is the one
// `edgelink run` uses, run by the same agent.Agent, with exactly-once
// delivery, its checkpoints in the cloud cluster, and its connections to
// the cloud dialed through a faultnet.Network, the stand-in for the WAN.
//
// Two agents run the link, as two `edgelink run` processes started with
// the same configuration would: they share its slots through a consumer
// group on the edge cluster. The status page shows agent A, which is never
// killed, and its view of the sharing. Its "Kill agent" button kills the
// other, agent B, as if its process died (agent.Agent.Kill: no last
// commit, no goodbye to the group): once B's session times out (6 s in
// the demo's configuration), A takes B's slots over, settles the
// transactions B left open and catches up on their backlog. "Start agent"
// starts a fresh agent B, which rejoins the group and gets its share back.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
)

// LinkName is the demo link's name; RollupLinkName the link that rolls
// the temperatures up into 10-second windows at the edge.
const (
	LinkName       = "telemetry-up"
	RollupLinkName = "telemetry-rollup"
)

// Site is the demo's site name; mirror topics are "<site>.<topic>".
const Site = "plant-demo"

// marker is the file that marks a directory as a demo data directory, so
// that Reset never removes anything else.
const marker = ".edgelink-demo"

// Options configure a demo.
type Options struct {
	// DataDir holds both clusters' data (DataDir/edge, DataDir/cloud); a
	// demo started again on the same directory resumes where it stopped.
	DataDir string
	// Listen is the status page's address; config.DefaultHTTPListen when
	// empty.
	Listen string
	// Rate is how many records per second the simulated plant writes; 0
	// writes none (the link still replicates what the edge holds).
	Rate int
	// Version is shown on the status page.
	Version string
	// Logger receives the demo's logs; nil discards them.
	Logger *slog.Logger
	// SampleInterval is how often the status model samples the link;
	// default 1s.
	SampleInterval time.Duration
}

// Demo is a running demonstration. Create it with New, run it with Run.
type Demo struct {
	opts    Options
	logger  *slog.Logger
	resumed bool

	edge, cloud *kfake.Cluster
	wan         *faultnet.Network
	cfg         *config.Config
	cfgText     []byte
	agent       *agent.Agent // agent A, which the status page shows
	partner     *partner     // agent B, which the status page kills and starts
	model       *status.Model
	srv         *observe.Server
	uplink      *fleet.Uplink
	fleetView   *fleet.View
	fleetSrv    *observe.FleetServer
	sims        *simulated
	ctl         *control
	producer    *kgo.Client
	work        *workload

	ran       bool // Run was called: the server releases its address itself
	closeOnce sync.Once
}

// New prepares a demo: it binds the status page's address, starts both
// clusters from the data directory and creates the edge topics. Nothing
// is written or replicated until Run. Call Close if Run is never called.
func New(ctx context.Context, opts Options) (*Demo, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Listen == "" {
		opts.Listen = config.DefaultHTTPListen
	}
	if opts.DataDir == "" {
		return nil, errors.New("demo: no data directory")
	}
	if opts.Rate < 0 {
		return nil, fmt.Errorf("demo: rate %d: want 0 or more records per second", opts.Rate)
	}
	d := &Demo{opts: opts, logger: opts.Logger.With("component", "demo")}
	if err := d.start(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// start does New's work; on error, the caller closes what it started.
func (d *Demo) start(ctx context.Context) (err error) {
	opts := d.opts
	if err := Prepare(opts.DataDir); err != nil {
		return err
	}
	_, statErr := os.Stat(filepath.Join(opts.DataDir, "cloud", "meta.json"))
	d.resumed = statErr == nil

	kl := kfakeLogger{opts.Logger.With("component", "kfake")}
	if d.edge, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.ClusterID("demo-edge"),
		kfake.DataDir(filepath.Join(opts.DataDir, "edge")), kfake.WithLogger(kl)); err != nil {
		return fmt.Errorf("start the edge cluster in %s: %w", opts.DataDir, err)
	}
	if d.cloud, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.ClusterID("demo-cloud"),
		kfake.DataDir(filepath.Join(opts.DataDir, "cloud")), kfake.WithLogger(kl)); err != nil {
		return fmt.Errorf("start the cloud cluster in %s: %w", opts.DataDir, err)
	}
	if d.cfg, d.cfgText, err = demoConfig(d.edge.ListenAddrs(), d.cloud.ListenAddrs(), opts.Listen); err != nil {
		return err
	}
	d.wan = faultnet.New(opts.Logger.With("network", "wan"))
	d.ctl = &control{link: LinkName, wan: d.wan}
	wan := d.wan.Dialer()
	// Both agents are built alike, as two processes started with the same
	// configuration.
	agentOpts := agent.Options{LinkOptions: func(*config.Link) link.Options {
		return link.Options{
			DestinationDialer: wan,
			// Reconnect quickly once the WAN is restored.
			MinBackoff: 200 * time.Millisecond, MaxBackoff: 2 * time.Second,
			// A cut in the middle of a transaction is noticed when its
			// acknowledgements are overdue, which the transaction timeout
			// bounds; the demo's transactions take milliseconds.
			TransactionTimeout: 5 * time.Second,
		}
	}}
	d.agent = agent.New(d.cfg, agentOpts, opts.Logger.With("agent", "A"))
	d.partner = newPartner(LinkName, func() *agent.Agent {
		return agent.New(d.cfg, agentOpts, opts.Logger.With("agent", "B"))
	}, d.logger)
	d.model = status.New(status.Options{
		Links: d.agent, Version: opts.Version, Logger: opts.Logger, SampleInterval: opts.SampleInterval,
	})
	if err := d.startFleet(ctx); err != nil {
		return err
	}
	if d.srv, err = observe.Listen(ctx, observe.Options{
		HTTP: d.cfg.HTTP, Status: d.model, Control: d.ctl, AgentControl: d.partner, Logger: opts.Logger,
		Fleet: func() any { return d.uplink.State() }, FleetURL: d.fleetSrv.URL(),
	}); err != nil {
		return err
	}
	if d.producer, err = kgo.NewClient(kgo.SeedBrokers(d.edge.ListenAddrs()...),
		kgo.ClientID("edgelink-demo-plant"), kgo.ProducerLinger(5*time.Millisecond)); err != nil {
		return fmt.Errorf("create the plant's producer: %w", err)
	}
	if err := createTopics(ctx, d.producer); err != nil {
		return err
	}
	d.work = newWorkload(d.producer, opts.Rate, d.logger)
	return nil
}

// startFleet prepares the demo's fleet: agent A's uplink (through the
// simulated WAN), the simulated sites and the fleet service, on a port of
// its own next to the status page.
func (d *Demo) startFleet(ctx context.Context) error {
	var err error
	d.uplink, err = fleet.NewUplink(fleet.UplinkOptions{
		Local: d.cfg, LocalText: d.cfgText, Agent: d.agent, Status: d.model,
		Dial: kafka.Dial{Raw: d.wan.Dialer(), Timeout: 2 * time.Second}, Logger: d.opts.Logger.With("agent", "A"),
	})
	if err != nil {
		return err
	}
	if d.sims, err = newSimulated(d.cloud.ListenAddrs(), d.opts.Version, d.logger); err != nil {
		return err
	}
	d.fleetView = fleet.NewView(nil)
	// The fleet page listens on the port after the status page's (9645
	// by default), or on any free one.
	listen := d.cfg.HTTP
	host, port, err := net.SplitHostPort(listen.Listen)
	if err != nil {
		return fmt.Errorf("fleet page address: %w", err)
	}
	if p, err := strconv.Atoi(port); err == nil && p > 0 && p < 65535 {
		listen.Listen = net.JoinHostPort(host, strconv.Itoa(p+1))
		if d.fleetSrv, err = observe.ListenFleet(ctx, observe.FleetOptions{HTTP: listen, View: d.fleetView, Logger: d.opts.Logger}); err == nil {
			return nil
		}
	}
	listen.Listen = net.JoinHostPort(host, "0")
	d.fleetSrv, err = observe.ListenFleet(ctx, observe.FleetOptions{HTTP: listen, View: d.fleetView, Logger: d.opts.Logger})
	return err
}

// demoConfig is the demo's configuration, parsed and validated like any
// configuration file.
func demoConfig(edge, cloud []string, listen string) (*config.Config, []byte, error) {
	quote := func(addrs []string) string {
		q := make([]string, len(addrs))
		for i, a := range addrs {
			q[i] = fmt.Sprintf("%q", a)
		}
		return strings.Join(q, ", ")
	}
	y := fmt.Sprintf(`site: %s
clusters:
  edge: {bootstrap: [%s]}
  cloud: {bootstrap: [%s]}
links:
  - name: %s
    from: edge
    to: cloud
    topics: {include: ['sensors\..*', 'alerts']}
    rename: "{site}.{topic}"
    priorities: [{match: alerts, priority: 10}]
    discovery_interval: 2s
    tuning: {dial_timeout: 2s}   # the simulated WAN is on loopback: notice a cut sooner
    slots: 6
    # A killed agent's slots move to the other within about 10 s.
    membership: {session_timeout: 6s, heartbeat_interval: 500ms, rebalance_timeout: 5s}
  # The temperatures again, rolled up at the edge before the WAN: per
  # machine, one record every 10 s of readings (min, max, mean, count)
  # instead of twenty. The status page shows the payload it saves.
  - name: %s
    from: edge
    to: cloud
    topics: {include: ['sensors\.temp']}
    rename: "{site}.{topic}.10s"
    discovery_interval: 2s
    tuning: {dial_timeout: 2s}
    slots: 2
    membership: {session_timeout: 6s, heartbeat_interval: 500ms, rebalance_timeout: 5s}
    transforms:
      - aggregate: {window: 10s, grace: 1s, key: json.machine, values: {celsius: json.celsius}, functions: [min, max, mean, count]}
http:
  listen: %q
# The site reports to the fleet in the cloud cluster; the demo's fleet
# page shows it among simulated sites.
site_labels: {region: eu-central, tier: plant}
fleet: {cluster: cloud, interval: 2s}
`, Site, quote(edge), quote(cloud), LinkName, RollupLinkName, listen)
	cfg, err := config.Parse("demo.yaml", []byte(y))
	if err != nil {
		return nil, nil, fmt.Errorf("demo configuration: %w", err)
	}
	return cfg, []byte(y), nil
}

// Prepare creates a demo data directory, or checks that an existing one is
// a demo's; New calls it too.
func Prepare(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read the data directory: %w", err)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("data directory %s is not empty and holds no demo data: choose another one with --data-dir", dir)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create the data directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, marker), []byte("edgelink demo data: edge and cloud clusters\n"), 0o600); err != nil {
		return fmt.Errorf("mark the data directory: %w", err)
	}
	return nil
}

// Reset removes a demo data directory, so that the next demo starts
// afresh. It refuses a directory that is not a demo's.
func Reset(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
		return fmt.Errorf("not removing %s: it holds no demo data (no %s file)", dir, marker)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove demo data: %w", err)
	}
	return nil
}

// createTopics creates the edge topics unless they exist.
func createTopics(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	for topic, partitions := range map[string]int32{TopicTemperature: 3, TopicVibration: 3, TopicAlerts: 1} {
		resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create edge topic %s: %w", topic, err)
		}
	}
	return nil
}

// Run writes the plant's readings, replicates them with both agents and
// serves the status page until ctx ends or the link fails; then it stops
// everything and closes the clusters, which saves their data. The
// simulated WAN is restored first, so that the agents can finish their
// open transactions.
func (d *Demo) Run(ctx context.Context) error {
	d.ran = true
	defer d.Close()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.work.run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		d.ctl.restore()
		return nil
	})
	g.Go(func() error { return d.agent.Run(gctx) })
	g.Go(func() error { return d.partner.run(gctx) })
	g.Go(func() error {
		d.model.Run(gctx)
		return nil
	})
	g.Go(func() error { return d.srv.Run(gctx) })
	g.Go(func() error { return d.uplink.Run(gctx) })
	g.Go(func() error { return d.sims.run(gctx) })
	g.Go(func() error {
		return fleet.NewReader(kgoSeeds(d.cloud.ListenAddrs()), fleet.TopicsOf(""), d.fleetView, d.opts.Logger).Run(gctx)
	})
	g.Go(func() error {
		d.fleetView.SweepEvery(gctx, time.Second)
		return nil
	})
	g.Go(func() error { return d.fleetSrv.Run(gctx) })
	d.logger.Info("demo running", "url", d.srv.URL(), "fleet", d.fleetSrv.URL(), "data_dir", d.opts.DataDir, "resumed", d.resumed, "rate", d.opts.Rate)
	return g.Wait()
}

// Close stops the clusters, saving their data, and the simulated WAN.
// Run calls it; it is safe to call more than once.
func (d *Demo) Close() {
	d.closeOnce.Do(func() {
		if d.srv != nil && !d.ran {
			if err := d.srv.Close(); err != nil {
				d.logger.Warn("close the status page's listener", "err", err)
			}
		}
		if d.fleetSrv != nil && !d.ran {
			if err := d.fleetSrv.Close(); err != nil {
				d.logger.Warn("close the fleet page's listener", "err", err)
			}
		}
		if d.sims != nil && !d.ran {
			d.sims.cl.Close()
		}
		if d.producer != nil {
			d.producer.Close()
		}
		if d.wan != nil {
			if err := d.wan.Close(); err != nil {
				d.logger.Warn("close the simulated WAN", "err", err)
			}
		}
		if d.edge != nil {
			d.edge.Close()
		}
		if d.cloud != nil {
			d.cloud.Close()
		}
	})
}

// URL is the status page's address.
func (d *Demo) URL() string { return d.srv.URL() }

// FleetURL is the fleet page's address.
func (d *Demo) FleetURL() string { return d.fleetSrv.URL() }

// Fleet is the fleet as the demo's fleet service sees it.
func (d *Demo) Fleet() fleet.Fleet { return d.fleetView.Fleet(0) }

// Resumed reports whether the data directory held an earlier demo's data.
func (d *Demo) Resumed() bool { return d.resumed }

// Status is the status the page shows: agent A's model's snapshot, with
// the cut and restore controls.
func (d *Demo) Status() status.Snapshot { return d.srv.Snapshot() }

// Written is how many records the plant has written to the edge cluster
// (acknowledged) since Run started.
func (d *Demo) Written() int64 { return d.work.written.Load() }

// Cut cuts the simulated WAN, as the status page's "cut link" does.
func (d *Demo) Cut() { d.ctl.cut() }

// Restore restores the simulated WAN.
func (d *Demo) Restore() { d.ctl.restore() }

// IsCut reports whether the simulated WAN is cut.
func (d *Demo) IsCut() bool { return d.ctl.IsCut(LinkName) }

// KillAgent kills agent B, as the status page's "Kill agent" does, and
// returns once it stopped.
func (d *Demo) KillAgent() error { return d.partner.kill() }

// StartAgent starts a fresh agent B in place of a killed one, as "Start
// agent" does.
func (d *Demo) StartAgent() error { return d.partner.start() }

// AgentKilled reports whether agent B is killed.
func (d *Demo) AgentKilled() bool { return d.partner.isKilled() }

// EdgeAddrs is the edge cluster's listen addresses.
func (d *Demo) EdgeAddrs() []string { return d.edge.ListenAddrs() }

// CloudAddrs is the cloud cluster's listen addresses.
func (d *Demo) CloudAddrs() []string { return d.cloud.ListenAddrs() }

// Topics returns the edge topics and their mirror topics in the cloud.
func Topics() [][2]string {
	var out [][2]string
	for _, t := range []string{TopicAlerts, TopicTemperature, TopicVibration} {
		out = append(out, [2]string{t, Site + "." + t})
	}
	return out
}

// control cuts and restores the simulated WAN under the demo link; it is
// the status page's observe.Control.
type control struct {
	link string
	wan  *faultnet.Network

	mu    sync.Mutex
	isCut bool
}

// cut takes the WAN down, like a VPN tunnel that drops: open connections
// are reset and new ones refused, so the link's requests to the cloud fail
// and it retries with backoff until the WAN is restored.
func (c *control) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wan.Refuse(true)
	c.wan.Reset()
	c.isCut = true
}

func (c *control) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wan.Refuse(false)
	c.isCut = false
}

// Cut implements observe.Control.
func (c *control) Cut(name string) error {
	if name != c.link {
		return fmt.Errorf("link %q: %w", name, observe.ErrUnknownLink)
	}
	c.cut()
	return nil
}

// Restore implements observe.Control.
func (c *control) Restore(name string) error {
	if name != c.link {
		return fmt.Errorf("link %q: %w", name, observe.ErrUnknownLink)
	}
	c.restore()
	return nil
}

// IsCut implements observe.Control.
func (c *control) IsCut(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return name == c.link && c.isCut
}

// kfakeLogger passes the clusters' warnings and errors to slog.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		k.l.Error(fmt.Sprintf(format, args...))
	case kfake.LogLevelWarn:
		k.l.Warn(fmt.Sprintf(format, args...))
	default:
	}
}

// kgoSeeds are the options of a client of the brokers at addrs.
func kgoSeeds(addrs []string) []kgo.Opt { return []kgo.Opt{kgo.SeedBrokers(addrs...)} }
