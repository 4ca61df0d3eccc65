package fleet

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// silentIntervals is how many report intervals without a report make a
// site silent (stale).
const silentIntervals = 3

// Bounds of what a View keeps besides the latest report of each agent.
const (
	maxSiteHistory  = 50
	maxFleetHistory = 500
)

// Site states, worst first: a site's state is the worst state of its links,
// "stopped" when its agents shut down, "idle" when it runs no links.
var siteStates = []string{"failed", "disconnected", "failed-over", "starting", "catching-up", "live", "stopped", "idle"}

// stateRank orders states, worst first; unknown states rank with starting.
func stateRank(s string) int {
	if i := slices.Index(siteStates, s); i >= 0 {
		return i
	}
	return slices.Index(siteStates, "starting")
}

// View is the fleet as its topics tell it: the latest report of every
// agent of every site, the newest configuration revision of every target
// and the recent history. A Reader feeds it; the fleet service renders it.
// All methods may be called from any goroutine.
type View struct {
	mu  sync.Mutex
	now func() time.Time
	// seq counts changes; each site remembers the seq of its last change,
	// so that a client polling with ?since= gets only what changed.
	seq   int64
	sites map[string]*siteEntry
	// revisions holds the newest revision envelope by config topic key.
	revisions map[string]revisionEntry
	history   []HistoryEvent
	// loaded is closed once the Reader caught up with the topics' ends as
	// they were when it started.
	loaded     chan struct{}
	loadedOnce sync.Once
	// reportBytes counts the report bytes read, for the wire-size figures.
	reportBytes, reports int64
	// summary is the summary as of summarySeq: polls between changes
	// share it.
	summary    Summary
	summarySeq int64
}

type siteEntry struct {
	agents  map[string]*agentEntry
	history []HistoryEvent
	seq     int64
	// stale is the staleness last seen by sweep.
	stale bool
}

type agentEntry struct {
	report Report
	// seen is when the fleet cluster appended the report (its timestamp).
	seen time.Time
	size int
}

type revisionEntry struct {
	env  Envelope
	rev  Revision
	hash string
	at   time.Time
}

// NewView returns an empty view; now is the clock (time.Now when nil).
func NewView(now func() time.Time) *View {
	if now == nil {
		now = time.Now
	}
	return &View{now: now, sites: map[string]*siteEntry{}, revisions: map[string]revisionEntry{}, loaded: make(chan struct{})}
}

// MarkLoaded records that the view holds everything the topics held when
// its reader started.
func (v *View) MarkLoaded() { v.loadedOnce.Do(func() { close(v.loaded) }) }

// Loaded is closed once the view is loaded.
func (v *View) Loaded() <-chan struct{} { return v.loaded }

func (v *View) site(name string) *siteEntry {
	s := v.sites[name]
	if s == nil {
		s = &siteEntry{agents: map[string]*agentEntry{}}
		v.sites[name] = s
	}
	return s
}

func (v *View) touch(s *siteEntry) {
	v.seq++
	s.seq = v.seq
}

// AddReport applies a record of the reports topic: key "<site>/<instance>",
// value a Report (nil: a tombstone, the agent is gone), appended at ts.
// Reports it cannot decode, or of a newer format, are ignored and
// reported false.
func (v *View) AddReport(key string, value []byte, ts time.Time) bool {
	site := siteOfKey(key)
	instance := strings.TrimPrefix(key, site+"/")
	v.mu.Lock()
	defer v.mu.Unlock()
	if value == nil {
		s := v.sites[site]
		if s == nil {
			return true
		}
		delete(s.agents, instance)
		if len(s.agents) == 0 && len(s.history) == 0 {
			delete(v.sites, site)
			v.seq++
			return true
		}
		v.touch(s)
		return true
	}
	var r Report
	if err := json.Unmarshal(value, &r); err != nil || r.Format > ReportFormat || r.Site == "" {
		return false
	}
	v.reportBytes += int64(len(key) + len(value))
	v.reports++
	s := v.site(r.Site)
	if prev := s.agents[instance]; prev != nil && prev.seen.After(ts) {
		return true
	}
	s.agents[instance] = &agentEntry{report: r, seen: ts, size: len(value)}
	v.touch(s)
	return true
}

// AddRevision applies a record of the config topic.
func (v *View) AddRevision(key string, value []byte, ts time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if value == nil {
		delete(v.revisions, key)
		v.touchAll()
		return true
	}
	env, err := UnmarshalEnvelope(value)
	if err != nil {
		return false
	}
	rev, err := env.Peek()
	if err != nil {
		return false
	}
	v.revisions[key] = revisionEntry{env: env, rev: rev, hash: env.Hash(), at: ts}
	v.touchAll()
	return true
}

// touchAll marks every site changed (a revision may select any of them).
func (v *View) touchAll() {
	v.seq++
	for _, s := range v.sites {
		s.seq = v.seq
	}
}

// AddHistory applies a record of the history topic.
func (v *View) AddHistory(value []byte, ts time.Time) bool {
	var e HistoryEvent
	if err := json.Unmarshal(value, &e); err != nil || e.Kind == "" {
		return false
	}
	if e.Time.IsZero() {
		e.Time = ts
	}
	e.Envelope = nil // the document is not kept in memory
	v.mu.Lock()
	defer v.mu.Unlock()
	v.history = appendBounded(v.history, e, maxFleetHistory)
	if e.Site != "" {
		s := v.site(e.Site)
		s.history = appendBounded(s.history, e, maxSiteHistory)
		v.touch(s)
	}
	return true
}

func appendBounded[T any](s []T, x T, n int) []T {
	s = append(s, x)
	if len(s) > n {
		s = slices.Delete(s, 0, len(s)-n)
	}
	return s
}

// Sweep marks the sites whose staleness changed since the last sweep as
// changed, so that pollers see a site fall silent. The fleet service calls
// it every second.
func (v *View) Sweep() {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	for _, s := range v.sites {
		_, _, stale := s.fresh(now)
		if stale != s.stale {
			s.stale = stale
			v.touch(s)
		}
	}
}

// fresh returns the agents of the site that count (those heard from
// within three of their intervals; when none is, the most recent one),
// the site's last report time, and whether the site is silent.
func (s *siteEntry) fresh(now time.Time) (agents []*agentEntry, lastSeen time.Time, stale bool) {
	var newest *agentEntry
	for _, a := range s.agents {
		if newest == nil || a.seen.After(newest.seen) {
			newest = a
		}
		if !a.silent(now) {
			agents = append(agents, a)
		}
	}
	if newest == nil {
		return nil, time.Time{}, true
	}
	if len(agents) == 0 {
		agents = []*agentEntry{newest}
	}
	slices.SortFunc(agents, func(a, b *agentEntry) int { return strings.Compare(a.report.Instance, b.report.Instance) })
	return agents, newest.seen, newest.silent(now)
}

// silent reports whether the agent missed three reports.
func (a *agentEntry) silent(now time.Time) bool {
	iv := time.Duration(a.report.IntervalSeconds * float64(time.Second))
	if iv <= 0 {
		iv = 10 * time.Second
	}
	return now.Sub(a.seen) > silentIntervals*iv
}

// desired returns the newest revision that selects the site.
func (v *View) desired(site string, labels map[string]string) (revisionEntry, bool) {
	var best revisionEntry
	found := false
	for _, r := range v.revisions {
		if !r.rev.Target.Matches(site, labels) {
			continue
		}
		if !found || newer(r.rev, r.hash, best.rev, best.hash) {
			best, found = r, true
		}
	}
	return best, found
}

// Sites returns every site, sorted by name.
func (v *View) Sites() []Site {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	out := make([]Site, 0, len(v.sites))
	for _, name := range slices.Sorted(maps.Keys(v.sites)) {
		if st, ok := v.siteLocked(name, now); ok {
			out = append(out, st)
		}
	}
	return out
}

// Fleet returns the fleet: a summary and the sites changed after seq
// (every site for 0), sorted by name.
func (v *View) Fleet(since int64) Fleet {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	f := Fleet{Time: now.UTC(), Seq: v.seq, Since: since, Sites: []Site{}, Loaded: v.isLoaded()}
	// Nothing in the summary changes but through a change (a site falling
	// silent is one, see Sweep).
	if v.summarySeq != v.seq || v.seq == 0 {
		v.summary, v.summarySeq = v.summaryLocked(now), v.seq
	}
	f.Summary = v.summary
	for _, name := range slices.Sorted(maps.Keys(v.sites)) {
		if v.sites[name].seq <= since {
			continue
		}
		if st, ok := v.siteLocked(name, now); ok {
			f.Sites = append(f.Sites, st)
		}
	}
	return f
}

func (v *View) isLoaded() bool {
	select {
	case <-v.loaded:
		return true
	default:
		return false
	}
}

// Site returns one site with its agents' full reports and its history.
func (v *View) Site(name string) (SiteDetail, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	st, ok := v.siteLocked(name, now)
	if !ok {
		return SiteDetail{}, false
	}
	s := v.sites[name]
	d := SiteDetail{Site: st, Reports: []Report{}, History: []HistoryEvent{}, Events: []ReportEvent{}}
	for _, inst := range slices.Sorted(maps.Keys(s.agents)) {
		d.Reports = append(d.Reports, s.agents[inst].report)
	}
	agents, _, _ := s.fresh(now)
	for _, a := range agents {
		d.Events = append(d.Events, a.report.Events...)
	}
	slices.SortStableFunc(d.Events, func(a, b ReportEvent) int { return b.Time.Compare(a.Time) })
	if len(d.Events) > maxReportEvents*2 {
		d.Events = d.Events[:maxReportEvents*2]
	}
	// The site's own outcomes and the revisions published for it.
	hist := slices.Clone(s.history)
	for _, e := range v.history {
		if e.Kind == HistoryPublished && e.Target != nil && e.Target.Matches(name, st.Labels) {
			hist = append(hist, e)
		}
	}
	slices.SortStableFunc(hist, func(a, b HistoryEvent) int { return b.Time.Compare(a.Time) })
	if len(hist) > maxSiteHistory {
		hist = hist[:maxSiteHistory]
	}
	d.History = append(d.History, hist...)
	return d, true
}

// History returns the most recent events of the whole fleet, newest first.
func (v *View) History() []HistoryEvent {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := slices.Clone(v.history)
	slices.Reverse(out)
	if out == nil {
		out = []HistoryEvent{}
	}
	return out
}

// WireStats returns how many reports the view read and their average size
// in bytes (key and value).
func (v *View) WireStats() (reports int64, avgBytes float64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.reports == 0 {
		return 0, 0
	}
	return v.reports, float64(v.reportBytes) / float64(v.reports)
}

// siteLocked builds the API view of a site from its agents' reports.
func (v *View) siteLocked(name string, now time.Time) (Site, bool) {
	s := v.sites[name]
	if s == nil {
		return Site{}, false
	}
	agents, lastSeen, stale := s.fresh(now)
	st := Site{Site: name, Labels: map[string]string{}, Stale: stale, Links: []SiteLink{}, Agents: []AgentSummary{}, Seq: s.seq}
	if len(agents) == 0 {
		// Only history is known (an agent's reports were compacted away).
		st.State = "idle"
		return st, true
	}
	st.LastSeen = lastSeen.UTC()
	st.SilentSeconds = roundSeconds(now.Sub(lastSeen))
	newest := agents[0]
	for _, a := range agents {
		if a.seen.After(newest.seen) {
			newest = a
		}
	}
	r := newest.report
	if r.Labels != nil {
		st.Labels = r.Labels
	}
	st.Version, st.Config, st.LastError = r.Version, r.Config, r.LastError
	// The agent's clock when it took the report against the fleet
	// cluster's when it appended it: the skew, less the report's way to
	// the cluster (a report is taken just before it is sent).
	skew := roundSeconds(r.Time.Sub(newest.seen))
	st.ClockSkewSeconds = &skew
	stopping := true
	links := map[string]*SiteLink{}
	var order []string
	for _, a := range agents {
		ar := a.report
		st.Agents = append(st.Agents, AgentSummary{
			Instance: ar.Instance, Host: ar.Host, PID: ar.PID, Version: ar.Version,
			LastSeen: a.seen.UTC(), StartedAt: ar.StartedAt.UTC(), Stopping: ar.Stopping, Ready: ar.Ready,
		})
		stopping = stopping && ar.Stopping
		for _, c := range ar.Certificates {
			if c.Error == "" && (st.CertificateExpiry == nil || c.NotAfter.Before(*st.CertificateExpiry)) {
				t := c.NotAfter
				st.CertificateExpiry = &t
			}
		}
		for _, lr := range ar.Links {
			sl := links[lr.Name]
			if sl == nil {
				sl = &SiteLink{Name: lr.Name, From: lr.From, To: lr.To, State: lr.State, StateSince: lr.StateSince, SlotCount: lr.SlotCount}
				links[lr.Name] = sl
				order = append(order, lr.Name)
			} else if stateRank(lr.State) < stateRank(sl.State) {
				sl.State, sl.StateSince = lr.State, lr.StateSince
			}
			sl.merge(lr)
		}
	}
	worst := "idle"
	for _, name := range order {
		sl := links[name]
		st.Links = append(st.Links, *sl)
		if stateRank(sl.State) < stateRank(worst) {
			worst = sl.State
		}
		st.LagRecords += sl.LagRecords
		st.LagSeconds = max(st.LagSeconds, sl.LagSeconds)
		st.LostRecords += sl.LostRecords
		st.SkippedRecords += sl.SkippedRecords
		if sl.DataLossInSeconds != nil && (st.DataLossInSeconds == nil || *sl.DataLossInSeconds < *st.DataLossInSeconds) {
			d := *sl.DataLossInSeconds
			st.DataLossInSeconds = &d
		}
	}
	st.State = worst
	if stopping {
		st.State = "stopped"
	}
	if d, ok := v.desired(name, st.Labels); ok {
		st.Config.DesiredRevision = max(st.Config.DesiredRevision, d.rev.Number)
	}
	return st, true
}

// merge adds one agent's view of a link to the site's.
func (sl *SiteLink) merge(lr LinkReport) {
	sl.LagRecords += lr.LagRecords
	sl.LagSeconds = max(sl.LagSeconds, lr.LagSeconds)
	sl.DrainSeconds = max(sl.DrainSeconds, lr.DrainSeconds)
	sl.LagEstimated = sl.LagEstimated || lr.LagEstimated
	if lr.DataLossInSeconds != nil && (sl.DataLossInSeconds == nil || *lr.DataLossInSeconds < *sl.DataLossInSeconds) {
		d := *lr.DataLossInSeconds
		sl.DataLossInSeconds = &d
	}
	sl.Records += lr.Records
	sl.LostRecords += lr.LostRecords
	sl.SkippedRecords += lr.SkippedRecords
	sl.RecordsPerSecond += lr.RecordsPerSecond
	sl.BytesPerSecond += lr.BytesPerSecond
	sl.BudgetBytesPerSecond = max(sl.BudgetBytesPerSecond, lr.BudgetBytesPerSecond)
	sl.Partitions += lr.Partitions
	if lr.Agents > 0 || len(lr.Slots) > 0 {
		sl.Agents++
	}
	if sl.LastError == "" {
		sl.LastError = lr.LastError
	}
}

// summaryLocked counts the fleet.
func (v *View) summaryLocked(now time.Time) Summary {
	sum := Summary{ByState: map[string]int{}, Versions: map[string]int{}, ClosestToLoss: []LossEntry{}}
	for _, s := range siteStates {
		sum.ByState[s] = 0
	}
	for name := range v.sites {
		st, ok := v.siteLocked(name, now)
		if !ok {
			continue
		}
		sum.Sites++
		sum.ByState[st.State]++
		if st.Stale {
			sum.Stale++
		}
		if st.Config.RefusedRevision > 0 && st.Config.RefusedRevision >= st.Config.DesiredRevision {
			sum.Refused++
		}
		if st.Config.Managed && st.Config.AppliedRevision < st.Config.DesiredRevision && st.Config.RefusedRevision < st.Config.DesiredRevision {
			sum.Pending++
		}
		for _, a := range st.Agents {
			sum.Agents++
			sum.Versions[a.Version]++
		}
		sum.Links += len(st.Links)
		sum.LagRecords += st.LagRecords
		sum.LostRecords += st.LostRecords
		if st.DataLossInSeconds != nil {
			sum.ClosestToLoss = append(sum.ClosestToLoss, LossEntry{Site: name, DataLossInSeconds: *st.DataLossInSeconds})
		}
	}
	slices.SortFunc(sum.ClosestToLoss, func(a, b LossEntry) int {
		if a.DataLossInSeconds != b.DataLossInSeconds {
			if a.DataLossInSeconds < b.DataLossInSeconds {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Site, b.Site)
	})
	if len(sum.ClosestToLoss) > maxClosest {
		sum.ClosestToLoss = sum.ClosestToLoss[:maxClosest]
	}
	return sum
}

// maxClosest is how many sites the summary lists as closest to data loss.
const maxClosest = 10

func roundSeconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

// SortWorstFirst sorts sites by what needs attention first: silent sites,
// then by state (worst first), then by time until data loss (soonest
// first), then by name.
func SortWorstFirst(sites []Site) {
	slices.SortStableFunc(sites, func(a, b Site) int {
		if a.Stale != b.Stale {
			if a.Stale {
				return -1
			}
			return 1
		}
		if ra, rb := stateRank(a.State), stateRank(b.State); ra != rb {
			return ra - rb
		}
		la, lb := lossOrder(a.DataLossInSeconds), lossOrder(b.DataLossInSeconds)
		if la != lb {
			if la < lb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Site, b.Site)
	})
}

// lossOrder sorts no data loss in sight last.
func lossOrder(p *float64) float64 {
	if p == nil {
		return 1e18
	}
	return *p
}

// Superseded returns the report keys of agents that have not reported for
// age while another agent of their site has since: agents that were
// replaced (a restart is a new instance) and whose last report would
// otherwise stay in the compacted topic for good.
func (v *View) Superseded(age time.Duration) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	var out []string
	for name, s := range v.sites {
		var newest time.Time
		for _, a := range s.agents {
			if a.seen.After(newest) {
				newest = a.seen
			}
		}
		for inst, a := range s.agents {
			if now.Sub(a.seen) > age && newest.After(a.seen) {
				out = append(out, reportKey(name, inst))
			}
		}
	}
	slices.Sort(out)
	return out
}

// SweepEvery calls Sweep every d until ctx ends: whoever serves the view
// runs it, so that sites falling silent show as changed.
func (v *View) SweepEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.Sweep()
		}
	}
}
