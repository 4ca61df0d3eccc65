package observe

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
)

// StatusResponse is the body of GET /api/v1/status. Field names are a
// stable contract (documented in README.md): fields may be added, never
// renamed or removed within v1.
type StatusResponse struct {
	// Version is the agent's version.
	Version string `json:"version"`
	// Site is the configured site; empty when none.
	Site string `json:"site"`
	// Time is when the snapshot was taken; StartedAt when the server started.
	Time      time.Time `json:"time"`
	StartedAt time.Time `json:"started_at"`
	// Ready is what /readyz answers; Reason says why not.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Controls is true when the cut and restore actions exist (the demo).
	Controls bool `json:"controls"`
	// Links holds every link in configuration order.
	Links []LinkStatus `json:"links"`
}

// LinkStatus is one link in StatusResponse.
type LinkStatus struct {
	Name string `json:"name"`
	// From and To are the source and destination cluster names.
	From string `json:"from"`
	To   string `json:"to"`
	// State is one of starting, catching-up, live, disconnected, failed,
	// stopped; StateSince is when the link entered it.
	State        string    `json:"state"`
	StateSince   time.Time `json:"state_since"`
	StateSeconds float64   `json:"state_seconds"`
	// ConnectedOnce is true once the link has connected to both clusters
	// (since the agent started); the state says whether it is connected now.
	ConnectedOnce bool   `json:"connected_once"`
	LastError     string `json:"last_error"`
	// Records and Bytes count records and payload bytes committed at the
	// destination since the agent started; WireBytes counts what was sent
	// to the destination brokers (framing and compression included).
	Records      int64 `json:"records"`
	Bytes        int64 `json:"bytes"`
	WireBytes    int64 `json:"wire_bytes"`
	Transactions int64 `json:"transactions"`
	// RecordsPerSecond and BytesPerSecond are the rates over the last
	// few seconds.
	RecordsPerSecond float64 `json:"records_per_second"`
	BytesPerSecond   float64 `json:"bytes_per_second"`
	// LostRecords were deleted by source retention before they were
	// replicated; SkippedRecords were refused by the destination and
	// recorded (on_error: skip-and-record); SkippedLoops came from the
	// destination in the first place.
	LostRecords    int64 `json:"lost_records"`
	SkippedRecords int64 `json:"skipped_records"`
	SkippedLoops   int64 `json:"skipped_loops"`
	Partitions     int   `json:"partitions"`
	// Backlog is what is left to replicate.
	Backlog Backlog `json:"backlog"`
	// Topics holds each replicated source topic, sorted by name.
	Topics []TopicProgress `json:"topics"`
	// Events holds the most recent events, newest first (at most 50).
	Events []Event `json:"events"`
	// LinkCut is present only with controls: whether the link's network
	// is cut.
	LinkCut *bool `json:"link_cut,omitempty"`
}

// Backlog is a link's replication lag.
type Backlog struct {
	// Records is the number of source offsets not yet replicated.
	Records int64 `json:"records"`
	// Bytes estimates their payload.
	Bytes int64 `json:"bytes"`
	// AgeSeconds approximates the age of the oldest unreplicated record.
	AgeSeconds float64 `json:"age_seconds"`
	// DrainETASeconds estimates the time to replicate the backlog at the
	// recent rate; 0 when unknown or without a backlog.
	DrainETASeconds float64 `json:"drain_eta_seconds"`
	// MeasuredAt is when the link last measured the backlog; null before
	// the first measurement.
	MeasuredAt *time.Time `json:"measured_at"`
	// Estimated is true while the link cannot measure its backlog (an
	// outage): Records is then the last measurement plus what the source
	// gained since.
	Estimated bool `json:"estimated"`
}

// TopicProgress is one replicated source topic.
type TopicProgress struct {
	Source         string `json:"source"`
	Destination    string `json:"destination"`
	Partitions     int    `json:"partitions"`
	Priority       int    `json:"priority"`
	Records        int64  `json:"records"`
	Bytes          int64  `json:"bytes"`
	BacklogRecords int64  `json:"backlog_records"`
}

// Event is something notable that happened to a link.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is one of state, topic, lost, skipped, error.
	Kind    string `json:"kind"`
	Message string `json:"message"`
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

// sampler holds what the server remembers about one link between requests.
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
func (s *Server) sampleLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.SampleInterval)
	defer t.Stop()
	for {
		s.sampleAll(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) sampleAll(now time.Time) {
	_, links := s.current()
	for _, l := range links {
		st := l.Status()
		s.mu.Lock()
		sp := s.samplerLocked(l)
		sp.observe(st)
		sp.samples = append(sp.samples, sample{at: now, records: st.Records, bytes: st.Bytes})
		i := 0
		for i < len(sp.samples)-2 && now.Sub(sp.samples[i].at) > rateWindow {
			i++
		}
		sp.samples = slices.Delete(sp.samples, 0, i)
		s.mu.Unlock()
	}
	// Forget the links that are gone.
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.samples {
		if !slices.Contains(links, l) {
			delete(s.samples, l)
		}
	}
}

// samplerLocked returns what the server remembers about l; the caller
// holds s.mu. A link a reload restarted is a new *link.Link, with its own
// counters and a sampler of its own.
func (s *Server) samplerLocked(l *link.Link) *sampler {
	sp := s.samples[l]
	if sp == nil {
		sp = &sampler{}
		s.samples[l] = sp
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
// server has seen (its samples, its current status, its recent events).
func (s *Server) connectedOnce(l *link.Link, st link.Status) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.samplerLocked(l)
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
func (s *Server) Ready() (bool, string) {
	if s.stopping.Load() {
		return false, "stopping"
	}
	_, links := s.current()
	for _, l := range links {
		st := l.Status()
		switch {
		case st.State == link.StateFailed:
			return false, "link " + l.Name() + " failed: " + st.LastError
		case !s.connectedOnce(l, st):
			return false, "link " + l.Name() + " has not connected yet (" + string(st.State) + ")"
		}
	}
	return true, ""
}

// Snapshot builds the status response.
func (s *Server) Snapshot() StatusResponse {
	now := time.Now()
	cfg, links := s.current()
	resp := StatusResponse{
		Version:   s.opts.Version,
		Time:      now.UTC(),
		StartedAt: s.started.UTC(),
		Controls:  s.opts.Control != nil,
		Links:     make([]LinkStatus, 0, len(links)),
	}
	if cfg != nil {
		resp.Site = cfg.Site
	}
	resp.Ready, resp.Reason = s.Ready()
	for _, l := range links {
		resp.Links = append(resp.Links, s.linkStatus(cfg, l, now))
	}
	return resp
}

func (s *Server) linkStatus(cfg *config.Config, l *link.Link, now time.Time) LinkStatus {
	v := s.view(l, now)
	st := v.Status
	ls := LinkStatus{
		Name:           st.Name,
		State:          string(st.State),
		StateSince:     st.StateSince.UTC(),
		StateSeconds:   roundSeconds(now.Sub(st.StateSince)),
		ConnectedOnce:  s.connectedOnce(l, st),
		LastError:      st.LastError,
		Records:        st.Records,
		Bytes:          st.Bytes,
		WireBytes:      st.WireBytes,
		Transactions:   st.Transactions,
		LostRecords:    st.LostRecords,
		SkippedRecords: st.SkippedRecords,
		SkippedLoops:   st.SkippedLoops,
		Partitions:     st.Partitions,
		Backlog: Backlog{
			Records:         st.BacklogRecords,
			Bytes:           st.BacklogBytes,
			AgeSeconds:      roundSeconds(st.BacklogAge),
			DrainETASeconds: roundSeconds(st.DrainETA),
			Estimated:       v.Estimated,
		},
		Topics: make([]TopicProgress, 0, len(st.Topics)),
		Events: []Event{},
	}
	if lc := linkConfig(cfg, st.Name); lc != nil {
		ls.From, ls.To = lc.From, lc.To
	}
	if !st.BacklogAt.IsZero() {
		at := st.BacklogAt.UTC()
		ls.Backlog.MeasuredAt = &at
	}
	s.mu.Lock()
	ls.RecordsPerSecond, ls.BytesPerSecond = s.samplerLocked(l).rate()
	s.mu.Unlock()
	for _, t := range st.Topics {
		ls.Topics = append(ls.Topics, TopicProgress{
			Source: t.Source, Destination: t.Destination, Partitions: t.Partitions, Priority: t.Priority,
			Records: t.Records, Bytes: t.Bytes, BacklogRecords: t.BacklogRecords,
		})
	}
	events := l.Events()
	for i := len(events) - 1; i >= 0 && len(ls.Events) < maxEvents; i-- {
		e := events[i]
		ls.Events = append(ls.Events, Event{Time: e.Time.UTC(), Kind: string(e.Kind), Message: e.Message})
	}
	if c := s.opts.Control; c != nil {
		cut := c.IsCut(st.Name)
		ls.LinkCut = &cut
	}
	return ls
}

// roundSeconds returns d in seconds, to the millisecond.
func roundSeconds(d time.Duration) float64 {
	return d.Round(time.Millisecond).Seconds()
}
