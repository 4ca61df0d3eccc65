package status

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
)

// Options configure a Model.
type Options struct {
	// Links are the links to show and the configuration they run with;
	// nil shows none.
	Links LinkSource
	// Version is the agent's version, reported in every snapshot.
	Version string
	// Logger receives the model's logs; nil discards them.
	Logger *slog.Logger
	// SampleInterval is how often link throughput is sampled and each
	// link's source end offsets are listed; default 1s.
	SampleInterval time.Duration
}

// Model is the status of the links of one agent. Create it with New; Run
// keeps its samples and follows the links' sources. Snapshot and Ready may
// be called from any goroutine, before, during and after Run.
type Model struct {
	opts     Options
	logger   *slog.Logger
	started  time.Time
	stopping atomic.Bool

	mu sync.Mutex
	// samples hold what the model remembers about each current link.
	samples map[*link.Link]*sampler
	// watches follow each current link's source end offsets (see
	// sourceWatch); Run's followLinks starts and stops them.
	watches map[*link.Link]*sourceWatch
}

// New returns a model of opts.Links. The agent's start time, reported as
// StartedAt, is now.
func New(opts Options) *Model {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = time.Second
	}
	return &Model{
		opts:    opts,
		logger:  opts.Logger.With("component", "status"),
		started: time.Now(),
		samples: make(map[*link.Link]*sampler),
		watches: make(map[*link.Link]*sourceWatch),
	}
}

// Run samples the links' throughput and follows each link's source (see
// sourceWatch), for the links that exist at the time, until ctx ends. Then
// the model is stopping (see Ready); Run returns once every goroutine it
// started returned.
func (m *Model) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { m.sampleLoop(ctx) })
	wg.Go(func() { m.followLinks(ctx) })
	<-ctx.Done()
	m.Stopping()
	wg.Wait()
}

// Stopping marks the agent as shutting down: it is not ready from now on.
func (m *Model) Stopping() { m.stopping.Store(true) }

// Version returns the agent's version, as Options gave it.
func (m *Model) Version() string { return m.opts.Version }

// Current returns the configuration and the links that exist now; both
// nil without a LinkSource.
func (m *Model) Current() (*config.Config, []*link.Link) {
	if m.opts.Links == nil {
		return nil, nil
	}
	return m.opts.Links.Current()
}

// maxEvents is how many events a link shows in the status.
const maxEvents = 50

// rateWindow is the time over which throughput is averaged.
const rateWindow = 5 * time.Second

// sample is a link's counters at one time.
type sample struct {
	at             time.Time
	records, bytes int64
}

// sampler holds what the model remembers about one link between snapshots.
type sampler struct {
	samples   []sample
	connected bool
}

// rate returns records and bytes per second over the samples.
func (sp *sampler) rate() (records, bytes float64) {
	if len(sp.samples) < 2 {
		return 0, 0
	}
	first, last := sp.samples[0], sp.samples[len(sp.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return float64(last.records-first.records) / dt, float64(last.bytes-first.bytes) / dt
}

// sampleLoop records each link's counters every SampleInterval.
func (m *Model) sampleLoop(ctx context.Context) {
	t := time.NewTicker(m.opts.SampleInterval)
	defer t.Stop()
	for {
		m.sampleAll(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Model) sampleAll(now time.Time) {
	_, links := m.Current()
	for _, l := range links {
		st := l.Status()
		m.mu.Lock()
		sp := m.samplerLocked(l)
		sp.observe(st)
		sp.samples = append(sp.samples, sample{at: now, records: st.Records, bytes: st.Bytes})
		i := 0
		for i < len(sp.samples)-2 && now.Sub(sp.samples[i].at) > rateWindow {
			i++
		}
		sp.samples = slices.Delete(sp.samples, 0, i)
		m.mu.Unlock()
	}
	// Forget the links that are gone.
	m.mu.Lock()
	defer m.mu.Unlock()
	for l := range m.samples {
		if !slices.Contains(links, l) {
			delete(m.samples, l)
		}
	}
}

// samplerLocked returns what the model remembers about l; the caller
// holds m.mu. A link a reload restarted is a new *link.Link, with its own
// counters and a sampler of its own.
func (m *Model) samplerLocked(l *link.Link) *sampler {
	sp := m.samples[l]
	if sp == nil {
		sp = &sampler{}
		m.samples[l] = sp
	}
	return sp
}

// observe notes that a link has connected once it is seen catching up or
// live (or has been before, according to its events).
func (sp *sampler) observe(st link.Status) {
	if sp.connected {
		return
	}
	if st.State == link.StateCatchingUp || st.State == link.StateLive || st.Records > 0 || st.Transactions > 0 {
		sp.connected = true
	}
}

// connectedOnce reports whether a link has ever connected, as far as the
// model has seen (its samples, its current status, its recent events).
func (m *Model) connectedOnce(l *link.Link, st link.Status) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	sp := m.samplerLocked(l)
	sp.observe(st)
	if !sp.connected {
		for _, e := range l.Events() {
			if e.Kind == link.EventState && (containsState(e.Message, link.StateCatchingUp) || containsState(e.Message, link.StateLive)) {
				sp.connected = true
				break
			}
		}
	}
	return sp.connected
}

// containsState reports whether a state-change event message ("a → b: …")
// names state s as the new state.
func containsState(msg string, s link.State) bool {
	_, after, ok := strings.Cut(msg, " → ")
	if !ok {
		return false
	}
	next, _, _ := strings.Cut(after, ":")
	return next == string(s)
}

// Ready reports whether the agent is ready, and why not: it is ready when
// it is not shutting down, no link has failed, and every link has
// connected to its clusters at least once (a link that is disconnected
// after that keeps the agent ready: it is retrying, and its backlog is
// measured). An agent without links is ready. The links are those that
// exist now: a link a reload added or restarted counts from its start.
func (m *Model) Ready() (bool, string) {
	if m.stopping.Load() {
		return false, "stopping"
	}
	_, links := m.Current()
	for _, l := range links {
		st := l.Status()
		switch {
		case st.State == link.StateFailed:
			return false, "link " + l.Name() + " failed: " + st.LastError
		case !m.connectedOnce(l, st):
			return false, "link " + l.Name() + " has not connected yet (" + string(st.State) + ")"
		}
	}
	return true, ""
}

// Snapshot returns the status of the agent and of every current link now.
func (m *Model) Snapshot() Snapshot {
	now := time.Now()
	cfg, links := m.Current()
	snap := Snapshot{
		Version:   m.opts.Version,
		Time:      now.UTC(),
		StartedAt: m.started.UTC(),
		Links:     make([]LinkStatus, 0, len(links)),
	}
	if cfg != nil {
		snap.Site = cfg.Site
	}
	snap.Ready, snap.Reason = m.Ready()
	for _, l := range links {
		snap.Links = append(snap.Links, m.linkStatus(cfg, l, now))
	}
	return snap
}

func (m *Model) linkStatus(cfg *config.Config, l *link.Link, now time.Time) LinkStatus {
	st, estimated := m.view(l, now)
	ls := LinkStatus{
		Name:            st.Name,
		State:           string(st.State),
		StateSince:      st.StateSince.UTC(),
		StateSeconds:    roundSeconds(now.Sub(st.StateSince)),
		ConnectedOnce:   m.connectedOnce(l, st),
		LastError:       st.LastError,
		Records:         st.Records,
		Bytes:           st.Bytes,
		RecordsIn:       st.RecordsIn,
		BytesIn:         st.BytesIn,
		WireBytes:       st.WireBytes,
		Transactions:    st.Transactions,
		LostRecords:     st.LostRecords,
		SkippedRecords:  st.SkippedRecords,
		SkippedLoops:    st.SkippedLoops,
		FilteredRecords: st.FilteredRecords,
		LateRecords:     st.LateRecords,
		Partitions:      st.Partitions,
		Backlog: Backlog{
			Records:         st.BacklogRecords,
			Bytes:           st.BacklogBytes,
			AgeSeconds:      roundSeconds(st.BacklogAge),
			DrainETASeconds: roundSeconds(st.DrainETA),
			Estimated:       estimated,
		},
		Topics: make([]TopicProgress, 0, len(st.Topics)),
		Events: []Event{},
	}
	if lc := cfg.Link(st.Name); lc != nil {
		ls.From, ls.To = lc.From, lc.To
	}
	if d := st.Diode; d != nil {
		ls.Diode = diodeStatus(d)
	}
	if g := st.Groups; g != nil {
		ls.Groups = &Groups{
			Selected: g.Groups, Synced: g.Synced, Committed: g.Committed, Active: g.Active, Pending: g.Pending,
			TookSeconds: g.Took.Seconds(), LastError: g.LastError,
		}
		if !g.LastSync.IsZero() {
			at := g.LastSync.UTC()
			ls.Groups.LastSync = &at
		}
	}
	if b := st.Bundles; b != nil {
		ls.Bundles = &Bundles{}
		if e := b.LastExport; e != nil {
			ls.Bundles.LastExport = &BundleExport{Sequence: e.Sequence, ID: e.ID, At: e.At, Records: e.Records, Bytes: e.Bytes, Dir: e.Dir, Complete: e.Complete}
		}
		if a := b.Acked; a != nil {
			ls.Bundles.LastReceipt = &BundleReceipt{Sequence: a.Sequence, ID: a.ID, Imported: a.Imported, Acked: a.Acked, Records: a.Records}
		}
	}
	if !st.BacklogAt.IsZero() {
		at := st.BacklogAt.UTC()
		ls.Backlog.MeasuredAt = &at
	}
	if st.DataLossKnown {
		ls.Backlog.DataLossInSeconds = secondsPtr(st.DataLossIn)
	}
	m.mu.Lock()
	ls.RecordsPerSecond, ls.BytesPerSecond = m.samplerLocked(l).rate()
	m.mu.Unlock()
	for _, t := range st.Topics {
		tp := TopicProgress{
			Source: t.Source, Destination: t.Destination, Partitions: t.Partitions, Priority: t.Priority,
			Records: t.Records, Bytes: t.Bytes, RecordsIn: t.RecordsIn, BytesIn: t.BytesIn, BacklogRecords: t.BacklogRecords,
			BacklogAgeSeconds: roundSeconds(t.BacklogAge),
		}
		if t.Retention > 0 {
			tp.RetentionSeconds = secondsPtr(t.Retention)
		}
		ls.Topics = append(ls.Topics, tp)
	}
	ls.Sharing = sharingOf(l, st)
	events := l.Events()
	for i := len(events) - 1; i >= 0 && len(ls.Events) < maxEvents; i-- {
		e := events[i]
		ls.Events = append(ls.Events, Event{Time: e.Time.UTC(), Kind: string(e.Kind), Message: e.Message})
	}
	return ls
}

// roundSeconds returns d in seconds, to the millisecond.
func roundSeconds(d time.Duration) float64 {
	return d.Round(time.Millisecond).Seconds()
}

// secondsPtr returns d in seconds, to the millisecond, for a field that is
// null when unknown.
func secondsPtr(d time.Duration) *float64 {
	s := roundSeconds(d)
	return &s
}

// sharingOf returns how the agents share l, nil for a link whose agent
// has not seen its group yet.
func sharingOf(l *link.Link, st link.Status) *Sharing {
	sh := st.Sharing
	if sh.Self.Instance == "" {
		return nil
	}
	out := &Sharing{
		Group: l.Identity().GroupID(), Generation: sh.Generation, Since: sh.Since.UTC(),
		SlotCount: st.SlotCount, Held: slices.Clone(st.Slots), Agents: []AgentShare{}, Slots: make([]SlotOwner, st.SlotCount),
	}
	if out.Held == nil {
		out.Held = []int{}
	}
	for i := range out.Slots {
		out.Slots[i] = SlotOwner{Slot: i, Partitions: []string{}}
		if i < len(sh.Owners) {
			out.Slots[i].Owner = sh.Owners[i].Instance
		}
	}
	perSlot := make([]int, st.SlotCount)
	for _, t := range slices.Sorted(maps.Keys(st.SourcePartitions)) {
		for p := range st.SourcePartitions[t] {
			i := link.SlotOf(t, p, st.SlotCount)
			out.Slots[i].Partitions = append(out.Slots[i].Partitions, fmt.Sprintf("%s[%d]", t, p))
			perSlot[i]++
		}
	}
	for _, ag := range sh.Agents {
		a := AgentShare{Instance: ag.Instance, Host: ag.Host, PID: ag.PID, Self: ag.Instance == sh.Self.Instance, Slots: []int{}}
		for _, so := range out.Slots {
			if so.Owner == ag.Instance {
				a.Slots = append(a.Slots, so.Slot)
				a.Partitions += perSlot[so.Slot]
			}
		}
		out.Agents = append(out.Agents, a)
	}
	return out
}

// diodeStatus renders one end of a diode link.
func diodeStatus(d *link.DiodeStatus) *Diode {
	out := &Diode{Role: d.Role, Session: d.Session, Silent: d.Silent, GapsLost: d.GapsLost, RepairWindowSeconds: roundSeconds(d.RepairWindow), Gaps: []DiodeGap{}}
	if s := d.Sender; s != nil {
		out.Datagrams, out.Bytes, out.Repeats, out.RepeatsSkipped, out.Parity = s.Datagrams+s.Repeats, s.Bytes, s.Repeats, s.RepeatsSkipped, s.Parity
	}
	if r := d.Receiver; r != nil {
		out.Datagrams, out.Bytes, out.Forged, out.Recovered, out.Duplicates, out.Unrecoverable = r.Datagrams, r.Bytes, r.Forged, r.Recovered, r.Duplicates, r.Unrecoverable
	}
	if !d.LastHeartbeat.IsZero() {
		at := d.LastHeartbeat.UTC()
		out.LastHeartbeat = &at
	}
	for _, g := range d.Gaps {
		out.Gaps = append(out.Gaps, DiodeGap{Topic: g.Topic, Partition: g.Partition, From: g.From, To: g.To - 1, Since: g.Since.UTC()})
	}
	return out
}
