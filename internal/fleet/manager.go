package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/signing"
)

// Manager applies a managed site's configuration revisions. It follows the
// config topic; of the revisions that select the site (its own key and
// the selectors its labels match) it takes the newest, and
//
//   - verifies its signature against fleet.trusted_keys,
//   - checks that it is for this site and newer than the one running,
//   - validates it as edgelink check would, with the site's own site,
//     labels, fleet block and http, and ${VAR} resolved here,
//   - applies it through the agent (links that did not change keep
//     running),
//   - and watches the links it added or changed: if one is not live
//     within fleet.revert_after, it returns to the last good revision.
//
// A revision that fails a step is refused, with the reason, and the site
// keeps running what it ran. Every outcome goes to the history topic, and
// the site's state (the last good revision itself, what was refused) to
// the state topic, from which a restarted agent takes it back.
//
// The manager's goroutine (run) owns everything but mu's fields.
type Manager struct {
	u       *Uplink
	trusted *signing.Keyring
	cl      *kgo.Client

	// local and localText are the agent's own configuration (its file);
	// reloads replace them.
	local     *config.Config
	localText []byte
	// envs holds the config topic: the newest envelope by key.
	envs map[string]revisionEntry
	// restored is the site's state as read back from the state topic.
	restored *stateRecord
	caughtUp bool
	// configEnd is the offset after the last config record read, by
	// partition.
	configEnd map[int32]int64
	// lastConfig is when the last config record arrived.
	lastConfig time.Time
	// dirty is set when envs changed since the last evaluation.
	dirty bool
	// applied is the revision running (nil: the local file); good the
	// last revision whose changed links all became live (nil: the local
	// file); pending, when set, is applied and being watched.
	applied, good *appliedRevision
	pending       *pendingRevision
	// refusedHash is the hash of the revision refused last; a refused
	// revision is not tried again.
	refusedHash string
	// unsaved is set when the state topic lags the manager's state.
	unsaved bool
	reloads chan reloadRequest

	mu sync.Mutex
	st ConfigState
}

// idleFetchWait is how long the fleet cluster may hold a managed site's
// fetch of the config topic when there is nothing new.
const idleFetchWait = 10 * time.Second

type appliedRevision struct {
	entry revisionEntry
	rev   Revision
	cfg   *config.Config
	at    time.Time
}

type pendingRevision struct {
	appliedRevision
	watch    []string
	deadline time.Time
}

type reloadRequest struct {
	local *config.Config
	text  []byte
}

// stateRecord is a value of the state topic: a managed site's
// configuration state.
type stateRecord struct {
	Site string    `json:"site"`
	Time time.Time `json:"time"`
	// Applied is the last good revision, signed; null: the local file.
	Applied         *Envelope `json:"applied"`
	AppliedRevision int64     `json:"applied_revision"`
	RefusedRevision int64     `json:"refused_revision"`
	RefusedReason   string    `json:"refused_reason"`
	RefusedHash     string    `json:"refused_hash"`
	Reverted        bool      `json:"reverted"`
}

func newManager(u *Uplink) (*Manager, error) {
	trusted, err := signing.LoadKeyring(u.fleet.TrustedKeys)
	if err != nil {
		return nil, fmt.Errorf("fleet.trusted_keys: %w", err)
	}
	return &Manager{
		u: u, trusted: trusted, local: u.opts.Local, localText: u.opts.LocalText,
		envs: map[string]revisionEntry{}, configEnd: map[int32]int64{}, reloads: make(chan reloadRequest, 1),
		st: ConfigState{Managed: true},
	}, nil
}

func (m *Manager) state() ConfigState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

func (m *Manager) setState(f func(*ConfigState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.st)
}

// reload hands a new local configuration to the manager's goroutine; the
// newest request wins.
func (m *Manager) reload(ctx context.Context, local *config.Config, text []byte) {
	req := reloadRequest{local: local, text: text}
	for {
		select {
		case m.reloads <- req:
			return
		case <-ctx.Done():
			return
		default:
		}
		select {
		case <-m.reloads: // replaced by the newer request
		default:
		}
	}
}

// run follows the config and state topics until ctx ends.
func (m *Manager) run(ctx context.Context) {
	topics := []string{m.u.topics.Config, m.u.topics.State}
	// A revision answers a waiting fetch at once: the long wait only
	// spares a slow link the requests of an idle channel.
	opts := append(slices.Clone(m.u.copts), kgo.FetchMaxWait(idleFetchWait))
	err := follow(ctx, opts, topics, m.add, func() {
		m.caughtUp = true
		m.restore(ctx)
		m.dirty = true
	}, func(atEnd bool) { m.tick(ctx, atEnd) })
	if err != nil && ctx.Err() == nil {
		m.u.logger.Error("fleet configuration channel stopped", "err", err)
	}
}

func (m *Manager) add(r *kgo.Record) {
	switch r.Topic {
	case m.u.topics.Config:
		m.configEnd[r.Partition] = max(m.configEnd[r.Partition], r.Offset+1)
		m.lastConfig = time.Now()
		key := string(r.Key)
		if r.Value == nil {
			delete(m.envs, key)
			m.dirty = true
			return
		}
		env, err := UnmarshalEnvelope(r.Value)
		if err != nil {
			m.u.logger.Warn("fleet revision not understood", "key", key, "offset", r.Offset, "err", err)
			return
		}
		rev, err := env.Peek()
		if err != nil {
			m.u.logger.Warn("fleet revision not understood", "key", key, "offset", r.Offset, "err", err)
			return
		}
		m.envs[key] = revisionEntry{env: env, rev: rev, hash: env.Hash(), at: r.Timestamp}
		m.dirty = true
	case m.u.topics.State:
		if string(r.Key) != m.u.site || r.Value == nil || m.caughtUp {
			return
		}
		var st stateRecord
		if err := json.Unmarshal(r.Value, &st); err == nil {
			m.restored = &st
		}
	}
}

// restore takes back what the site ran before the agent restarted: its
// last good revision (verified and validated again) and what it refused.
func (m *Manager) restore(ctx context.Context) {
	st := m.restored
	if st == nil {
		return
	}
	m.refusedHash = st.RefusedHash
	m.setState(func(cs *ConfigState) {
		cs.RefusedRevision, cs.RefusedReason, cs.Reverted = st.RefusedRevision, st.RefusedReason, st.Reverted
	})
	if st.Applied == nil {
		return
	}
	e := revisionEntry{env: *st.Applied, hash: st.Applied.Hash()}
	rev, cfg, reason := m.check(e)
	if reason != "" {
		m.u.logger.Warn("the site's last good revision no longer passes: running the local file", "revision", st.AppliedRevision, "reason", reason)
		return
	}
	e.rev = rev
	if _, err := m.u.opts.Agent.Apply(ctx, cfg); err != nil {
		return
	}
	m.applied = &appliedRevision{entry: e, rev: rev, cfg: cfg, at: time.Now()}
	m.good = m.applied
	m.publishApplied()
	m.setState(func(cs *ConfigState) { cs.GoodRevision = rev.Number })
	m.u.logger.Info("fleet revision restored", "revision", rev.Number)
}

// tick runs after every poll of the topics; atEnd says whether the
// manager has read everything the topics hold, so that a site that comes
// back online applies only the newest revision.
func (m *Manager) tick(ctx context.Context, atEnd bool) {
	select {
	case req := <-m.reloads:
		m.applyReload(ctx, req)
	default:
	}
	// A partition whose last records were compacted away never looks read
	// to the end: after a quiet while, what arrived is all there is.
	settled := time.Since(m.lastConfig) > caughtUpQuiet || (atEnd && m.readAll(ctx))
	if m.caughtUp && m.dirty && settled {
		m.dirty = false
		m.evaluate(ctx)
	}
	m.watch(ctx)
	if m.unsaved {
		m.saveState(ctx)
	}
}

// readAll asks the fleet cluster whether the manager has read the whole
// config topic: a fetch answered while the site was cut off can arrive
// after newer revisions were published, and the site must apply only the
// newest.
func (m *Manager) readAll(ctx context.Context) bool {
	actx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	ends, err := kadm.NewClient(m.cl).ListEndOffsets(actx, m.u.topics.Config)
	if err != nil || ends.Error() != nil {
		return false
	}
	all := true
	ends.Each(func(o kadm.ListedOffset) { all = all && o.Offset <= m.configEnd[o.Partition] })
	return all
}

// applyReload re-applies the running revision on top of a new local
// configuration, or the local configuration itself when no revision runs.
func (m *Manager) applyReload(ctx context.Context, req reloadRequest) {
	m.local, m.localText = req.local, req.text
	cfg := req.local
	if cur := m.current(); cur != nil {
		var err error
		cfg, err = config.ParseRevision(revisionName(cur.rev), []byte(cur.rev.Document), m.local.File, m.localText, os.LookupEnv)
		if err != nil {
			m.u.logger.Error("reloaded local configuration does not fit the running revision: nothing changed", "revision", cur.rev.Number, "err", err)
			return
		}
		cur.cfg = cfg
	}
	ch, err := m.u.opts.Agent.Apply(ctx, cfg)
	if err != nil {
		m.u.logger.Warn("configuration reload interrupted", "err", err)
		return
	}
	m.u.logger.Info("config reloaded", "added", ch.Added, "removed", ch.Removed, "restarted", ch.Restarted, "kept", ch.Kept)
}

// current is the revision running: pending, or applied.
func (m *Manager) current() *appliedRevision {
	if m.pending != nil {
		return &m.pending.appliedRevision
	}
	return m.applied
}

// newest returns the newest revision in the config topic that selects the
// site.
func (m *Manager) newest() (revisionEntry, bool) {
	var best revisionEntry
	found := false
	for _, e := range m.envs {
		if !e.rev.Target.Matches(m.u.site, m.local.SiteLabels) {
			continue
		}
		if !found || newer(e.rev, e.hash, best.rev, best.hash) {
			best, found = e, true
		}
	}
	return best, found
}

// evaluate takes the newest revision for the site, if it is one the
// manager has not run or refused yet.
func (m *Manager) evaluate(ctx context.Context) {
	e, ok := m.newest()
	if !ok {
		return
	}
	m.setState(func(cs *ConfigState) { cs.DesiredRevision = e.rev.Number })
	if cur := m.current(); (cur != nil && cur.entry.hash == e.hash) || e.hash == m.refusedHash {
		return
	}
	rev, cfg, reason := m.check(e)
	if reason != "" {
		m.refuse(e, reason, false)
		return
	}
	if cur := m.current(); cur != nil && !newer(rev, e.hash, cur.rev, cur.entry.hash) {
		m.refuse(e, fmt.Sprintf("older than the current one (revision %d)", cur.rev.Number), false)
		return
	}
	e.rev = rev
	ch, err := m.u.opts.Agent.Apply(ctx, cfg)
	if err != nil {
		m.u.logger.Warn("fleet revision not applied: interrupted", "revision", rev.Number, "err", err)
		m.dirty = true
		return
	}
	now := time.Now()
	m.pending = &pendingRevision{
		appliedRevision: appliedRevision{entry: e, rev: rev, cfg: cfg, at: now},
		watch:           append(append([]string(nil), ch.Added...), ch.Restarted...),
		deadline:        now.Add(m.u.fleet.RevertAfter),
	}
	m.u.logger.Info("fleet revision applied", "revision", rev.Number, "by", rev.IssuedBy.String(),
		"added", ch.Added, "removed", ch.Removed, "restarted", ch.Restarted, "kept", ch.Kept)
	m.setState(func(cs *ConfigState) {
		cs.AppliedRevision = rev.Number
		at := now.UTC()
		cs.AppliedAt, cs.AppliedBy = &at, rev.IssuedBy.String()
	})
	m.history(ctx, HistoryEvent{
		Kind: HistoryApplied, Revision: rev.Number, Hash: e.hash,
		Reason: changeSummary(ch.Added, ch.Removed, ch.Restarted),
	})
	m.watch(ctx)
}

// check verifies, targets and validates a revision; reason says why it
// cannot run here.
func (m *Manager) check(e revisionEntry) (Revision, *config.Config, string) {
	rev, err := e.env.Open(m.trusted)
	switch {
	case errors.Is(err, signing.ErrUntrustedKey):
		return Revision{}, nil, "untrusted key: " + err.Error()
	case errors.Is(err, signing.ErrBadSignature):
		return Revision{}, nil, "bad signature: " + err.Error()
	case err != nil:
		return Revision{}, nil, err.Error()
	}
	if !rev.Target.Matches(m.u.site, m.local.SiteLabels) {
		return Revision{}, nil, "signed for " + rev.Target.String() + ", not this site"
	}
	cfg, err := config.ParseRevision(revisionName(rev), []byte(rev.Document), m.local.File, m.localText, os.LookupEnv)
	if err != nil {
		return Revision{}, nil, "invalid configuration: " + strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return rev, cfg, ""
}

func revisionName(rev Revision) string { return fmt.Sprintf("revision %d", rev.Number) }

// refuse records that the site does not run e's revision, and why.
func (m *Manager) refuse(e revisionEntry, reason string, reverted bool) {
	m.refusedHash = e.hash
	m.u.logger.Error("fleet revision refused: the site keeps its configuration", "revision", e.rev.Number, "reason", reason, "reverted", reverted)
	m.setState(func(cs *ConfigState) {
		cs.RefusedRevision, cs.RefusedReason, cs.Reverted = e.rev.Number, reason, reverted
	})
	kind := HistoryRefused
	if reverted {
		kind = HistoryReverted
	}
	m.history(context.Background(), HistoryEvent{Kind: kind, Revision: e.rev.Number, Hash: e.hash, Reason: reason})
	m.unsaved = true
}

// watch confirms the pending revision once every link it added or changed
// is live, or reverts it once fleet.revert_after passed.
func (m *Manager) watch(ctx context.Context) {
	p := m.pending
	if p == nil {
		return
	}
	_, links := m.u.opts.Agent.Current()
	var notLive []string
	for _, name := range p.watch {
		st := linkStatus(links, name)
		if st.State != link.StateLive {
			desc := name + " is " + string(st.State)
			if st.LastError != "" {
				desc += " (" + st.LastError + ")"
			}
			notLive = append(notLive, desc)
		}
	}
	if len(notLive) == 0 {
		m.pending = nil
		m.applied, m.good = &p.appliedRevision, &p.appliedRevision
		m.setState(func(cs *ConfigState) {
			cs.GoodRevision = p.rev.Number
			if cs.RefusedRevision > 0 && cs.RefusedRevision < p.rev.Number {
				cs.Reverted = false
			}
		})
		m.u.logger.Info("fleet revision confirmed: its links are live", "revision", p.rev.Number)
		m.unsaved = true
		return
	}
	if time.Now().Before(p.deadline) {
		return
	}
	m.pending = nil
	cfg := m.local
	back := int64(0)
	if m.good != nil {
		cfg, back = m.good.cfg, m.good.rev.Number
	}
	if _, err := m.u.opts.Agent.Apply(ctx, cfg); err != nil {
		m.u.logger.Warn("fleet revert interrupted", "err", err)
	}
	m.applied = m.good
	m.setState(func(cs *ConfigState) {
		cs.AppliedRevision = back
		cs.AppliedAt, cs.AppliedBy = nil, ""
		if m.good != nil {
			at := m.good.at.UTC()
			cs.AppliedAt, cs.AppliedBy = &at, m.good.rev.IssuedBy.String()
		}
	})
	m.refuse(p.entry, fmt.Sprintf("reverted to revision %d: %s not live within %s", back, strings.Join(notLive, ", "), m.u.fleet.RevertAfter), true)
}

// linkStatus returns the status of the named link among links.
func linkStatus(links []*link.Link, name string) link.Status {
	for _, l := range links {
		if l.Name() == name {
			return l.Status()
		}
	}
	return link.Status{Name: name, State: link.StateStopped}
}

// publishApplied reports the applied revision in the state.
func (m *Manager) publishApplied() {
	a := m.applied
	m.setState(func(cs *ConfigState) {
		cs.AppliedRevision, cs.AppliedAt, cs.AppliedBy = 0, nil, ""
		if a != nil {
			at := a.at.UTC()
			cs.AppliedRevision, cs.AppliedAt, cs.AppliedBy = a.rev.Number, &at, a.rev.IssuedBy.String()
		}
	})
}

// saveState writes the site's state to the state topic.
func (m *Manager) saveState(ctx context.Context) {
	cs := m.state()
	rec := stateRecord{
		Site: m.u.site, Time: time.Now().UTC(), RefusedRevision: cs.RefusedRevision,
		RefusedReason: cs.RefusedReason, RefusedHash: m.refusedHash, Reverted: cs.Reverted,
	}
	if m.good != nil {
		env := m.good.entry.env
		rec.Applied, rec.AppliedRevision = &env, m.good.rev.Number
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	err = m.cl.ProduceSync(pctx, &kgo.Record{Topic: m.u.topics.State, Key: []byte(m.u.site), Value: value}).FirstErr()
	m.unsaved = err != nil
}

// history appends an outcome at this site to the history topic (best
// effort: the state topic and the reports carry the same facts).
func (m *Manager) history(ctx context.Context, e HistoryEvent) {
	e.Time, e.Site, e.By = time.Now().UTC(), m.u.site, m.u.self.Instance+"@"+m.u.self.Host
	value, err := json.Marshal(e)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := m.cl.ProduceSync(pctx, &kgo.Record{Topic: m.u.topics.History, Key: []byte(m.u.site), Value: value}).FirstErr(); err != nil {
		m.u.logger.Warn("fleet history not written", "kind", e.Kind, "revision", e.Revision, "err", err)
	}
}

// changeSummary describes what a revision changed.
func changeSummary(added, removed, restarted []string) string {
	var parts []string
	for _, p := range []struct {
		what  string
		links []string
	}{{"added", added}, {"removed", removed}, {"restarted", restarted}} {
		if len(p.links) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.links, ", "))
		}
	}
	if len(parts) == 0 {
		return "no link changed"
	}
	return strings.Join(parts, "; ")
}
