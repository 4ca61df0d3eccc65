package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/status"
)

// Agent is what the uplink of a managed site applies revisions through:
// agent.Agent.
type Agent interface {
	Apply(ctx context.Context, cfg *config.Config) (agent.Changes, error)
	Current() (*config.Config, []*link.Link)
	Self() link.Agent
}

// UplinkOptions configure an Uplink.
type UplinkOptions struct {
	// Local is the agent's own configuration, as loaded from its file;
	// LocalText is the file's text (a revision takes the site, its labels,
	// the fleet block and http from it).
	Local     *config.Config
	LocalText []byte
	// Agent runs the links; Status is its status model.
	Agent  Agent
	Status *status.Model
	// Dial opens the connections to the fleet cluster (the demo routes
	// them through its simulated WAN); zero uses the network.
	Dial   kafka.Dial
	Logger *slog.Logger
}

// Uplink is a site's connection to the fleet: it publishes the agent's
// reports and, with fleet.managed, follows and applies the site's
// configuration revisions. Create it with NewUplink, run it with Run.
type Uplink struct {
	opts     UplinkOptions
	fleet    *config.Fleet
	topics   Topics
	site     string
	self     link.Agent
	copts    []kgo.Opt
	logger   *slog.Logger
	manager  *Manager
	reporter *reporter
}

// NewUplink returns the uplink of an agent whose local configuration has a
// fleet block.
func NewUplink(opts UplinkOptions) (*Uplink, error) {
	if opts.Local == nil || opts.Local.Fleet == nil {
		return nil, fmt.Errorf("fleet uplink: the configuration has no fleet block")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := opts.Local.Fleet
	c := opts.Local.Clusters[f.Cluster]
	copts, err := kafka.ClientOptions(c, opts.Logger, opts.Dial)
	if err != nil {
		return nil, fmt.Errorf("fleet uplink: %w", err)
	}
	u := &Uplink{
		opts: opts, fleet: f, topics: TopicsFor(f), site: opts.Local.Site, self: opts.Agent.Self(),
		copts: copts, logger: opts.Logger.With("component", "fleet"),
	}
	if f.Managed {
		if u.manager, err = newManager(u); err != nil {
			return nil, err
		}
	}
	u.reporter = &reporter{u: u}
	return u, nil
}

// Reload takes a new local configuration (SIGHUP). For a managed site the
// manager re-applies the current revision on top of it; otherwise the
// caller applies it to the agent itself. It reports whether the uplink
// took care of it.
func (u *Uplink) Reload(ctx context.Context, local *config.Config, text []byte) bool {
	if u.manager == nil {
		return false
	}
	u.manager.reload(ctx, local, text)
	return true
}

// Run publishes reports every fleet.interval and, for a managed site,
// applies revisions, until ctx ends; then it publishes a last report that
// says the agent stopped (within a few seconds). It returns once
// everything it started returned.
func (u *Uplink) Run(ctx context.Context) error {
	// Reports are last-writer-wins: a report that waited through an
	// outage is dropped rather than delivered after the link returns (see
	// reporter.publish), which needs a producer without idempotence (its
	// sequence numbers would not survive the purge).
	cl, err := kgo.NewClient(append(slices.Clone(u.copts),
		kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.NoCompression()),
		kgo.RecordDeliveryTimeout(publishTimeout),
		kgo.ProduceRequestTimeout(publishTimeout),
		kgo.RetryTimeout(publishTimeout),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(maxBufferedReports),
	)...)
	if err != nil {
		return fmt.Errorf("fleet uplink: create client: %w", err)
	}
	defer cl.Close()
	u.reporter.cl = cl
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { u.ensureTopics(ctx, cl) })
	if u.manager != nil {
		// The manager's records (state, history) are written once each,
		// idempotently.
		mcl, err := kgo.NewClient(append(slices.Clone(u.copts),
			kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.NoCompression()),
			kgo.RecordDeliveryTimeout(publishTimeout),
		)...)
		if err != nil {
			return fmt.Errorf("fleet uplink: create client: %w", err)
		}
		defer mcl.Close()
		u.manager.cl = mcl
		wg.Go(func() { u.manager.run(ctx) })
	}
	u.reporter.run(ctx)
	return nil
}

// ensureTopics creates the fleet's topics when they are missing, retrying
// until it succeeds (a site without the right to create them reports an
// error and relies on the fleet service to create them).
func (u *Uplink) ensureTopics(ctx context.Context, cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, publishTimeout)
		err := EnsureTopics(actx, adm, u.topics)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == 2 {
			u.logger.Warn("fleet topics not ready: retrying", "err", kafka.Explain(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt+1)*time.Second, 30*time.Second)):
		}
	}
}

// State returns the uplink's state for the agent's own status: the last
// publication and the configuration channel.
func (u *Uplink) State() UplinkState {
	st := u.reporter.state()
	st.Cluster, st.Topic, st.Managed = u.fleet.Cluster, u.topics.Reports, u.fleet.Managed
	st.Config = u.configState()
	return st
}

func (u *Uplink) configState() ConfigState {
	if u.manager == nil {
		return ConfigState{}
	}
	return u.manager.state()
}

// UplinkState is the agent's view of its fleet connection (the "fleet"
// object of the agent's status API).
type UplinkState struct {
	Cluster string `json:"cluster"`
	Topic   string `json:"topic"`
	Managed bool   `json:"managed"`
	// LastPublished is when the last report reached the fleet cluster;
	// Published and Failed count attempts; LastError is the last failure
	// (empty once a report went through again).
	LastPublished *time.Time  `json:"last_published"`
	Published     int64       `json:"published"`
	Failed        int64       `json:"failed"`
	LastError     string      `json:"last_error"`
	ReportBytes   int         `json:"report_bytes"`
	Config        ConfigState `json:"config"`
}

// publishTimeout bounds one attempt to publish a report.
const publishTimeout = 5 * time.Second

// maxBufferedReports bounds the reports waiting for the fleet cluster
// (one is, normally: each failed attempt drops what waits).
const maxBufferedReports = 4

// reporter publishes the agent's reports.
type reporter struct {
	u  *Uplink
	cl *kgo.Client

	mu sync.Mutex
	st UplinkState
}

func (r *reporter) state() UplinkState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// run publishes a report every interval; after a failed attempt it tries
// again every second, with a fresh report, so that the fleet hears from
// the site as soon as its connection returns.
func (r *reporter) run(ctx context.Context) {
	interval := r.u.fleet.Interval
	for {
		err := r.publish(ctx, false)
		wait := interval
		if err != nil {
			wait = min(time.Second, interval)
		}
		select {
		case <-ctx.Done():
			// The last report says the agent stopped.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			_ = r.publish(fctx, true)
			cancel()
			return
		case <-time.After(wait):
		}
	}
}

// Report returns the report the agent would publish now.
func (u *Uplink) Report(stopping bool) Report {
	cfg, _ := u.opts.Agent.Current()
	if cfg == nil {
		cfg = u.opts.Local
	}
	ls := u.reporter.state()
	return Build(ReportInput{
		Snapshot: u.opts.Status.Snapshot(), Config: cfg,
		Instance: u.self.Instance, Host: u.self.Host, PID: u.self.PID,
		Interval: u.fleet.Interval, ConfigState: u.configState(), Certificates: Certificates(cfg),
		FleetError: ls.LastError, Stopping: stopping,
	})
}

func (r *reporter) publish(ctx context.Context, stopping bool) error {
	rep := r.u.Report(stopping)
	value, err := rep.Marshal()
	if err != nil {
		return err
	}
	rec := &kgo.Record{Topic: r.u.topics.Reports, Key: []byte(reportKey(r.u.site, r.u.self.Instance)), Value: value}
	// A report not acknowledged in time counts as failed and is dropped,
	// with whatever else waits: the next attempt, a second later, sends a
	// fresh one, so that the fleet never takes an outage's stale report
	// for the site's latest.
	done := make(chan error, 1)
	r.cl.TryProduce(context.WithoutCancel(ctx), rec, func(_ *kgo.Record, err error) { done <- err })
	t := time.NewTimer(publishTimeout)
	select {
	case err = <-done:
	case <-t.C:
		err = fmt.Errorf("no acknowledgement within %s", publishTimeout)
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	t.Stop()
	if err != nil {
		r.cl.PurgeTopicsFromProducing(r.u.topics.Reports)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.ReportBytes = len(value)
	if err != nil {
		r.st.Failed++
		first := r.st.LastError == ""
		r.st.LastError = "publish report: " + kafka.Explain(err).Error()
		if first {
			r.u.logger.Warn("fleet report not published: reporting locally until the fleet cluster answers", "err", r.st.LastError)
		}
		return err
	}
	if r.st.LastError != "" {
		r.u.logger.Info("fleet report published again", "after_failures", r.st.Failed)
	}
	now := time.Now().UTC()
	r.st.LastPublished, r.st.LastError = &now, ""
	r.st.Published++
	return nil
}
