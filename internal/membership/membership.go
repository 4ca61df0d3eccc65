// Package membership shares the N slots (0..N-1) of a link among the edgelink
// agents that run it, using nothing but Kafka's classic group protocol
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) on one cluster, the way Kafka
// Connect workers share connectors with protocol type "connect".
//
// # Protocol
//
// Every agent is a member of a group of protocol type "edgelink" offering
// one protocol, "slots-<N>", so the broker refuses a member configured with
// another N while others are in the group (INCONSISTENT_GROUP_PROTOCOL);
// such a member retries until they are gone. A member's metadata is a small
// versioned JSON: who it is, the slots it owns and the generation of the
// assignment that gave them. The leader computes the assignment (see assign:
// balanced, sticky, cooperative as in KIP-429) and sends every member the
// whole owner table, so every member knows the View.
//
// Moves are two-phase. A slot that must move from X to Y is assigned to
// nobody in one generation; X revokes it and, because it revoked something,
// rejoins at once, which starts the next generation, in which Y gets it.
// Slots that do not move are never revoked by a rebalance. Slots of members
// that are gone (left, or expired after SessionTimeout) are handed out at once.
//
// # Guarantees
//
// A slot is owned by at most one member at a time in normal operation: from
// Handler.Assigned at one member until Handler.Revoked returns at it, no other
// member is told it owns the slot. A member that loses touch with the
// coordinator gives its slots up (Revoked with lost=true) once the
// coordinator has not answered for SessionTimeout less one
// HeartbeatInterval, shortly before the coordinator may expire it and hand
// the slots out; a Revoked that returns within that interval keeps the
// guarantee even across a network partition. It is violated when a member
// cannot notice in time: a process paused (GC, SIGSTOP, an overloaded host)
// for longer than its session, a lost Revoked slower than that margin, a
// cooperative Revoked slower than RebalanceTimeout, an operator removing the
// member from the group. Two members may then briefly work on one slot, so
// callers must fence at the destination: that is what edgelink's per-slot
// transactional ids do, a new owner's InitProducerID fencing the old one.
package membership

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Member identifies an agent process.
type Member struct {
	Instance string `json:"instance"` // random id per process
	Host     string `json:"host,omitempty"`
	PID      int    `json:"pid,omitempty"`
}

// Config configures a member of a group.
type Config struct {
	Group string // group id
	Slots int    // N >= 1
	// Self is this process; an empty Instance is replaced by a random one.
	Self Member
	// SessionTimeout is how long the coordinator keeps a member that does
	// not heartbeat, default 10s. The broker accepts only values between
	// group.min.session.timeout.ms and group.max.session.timeout.ms
	// (6s .. 30m by default).
	SessionTimeout time.Duration
	// RebalanceTimeout is how long a rebalance waits for the members to
	// rejoin, default 10s. Handler.Revoked must return within it. It must
	// be more than 3*HeartbeatInterval.
	RebalanceTimeout time.Duration
	// HeartbeatInterval is how often the member heartbeats, default 1s; it
	// must be less than SessionTimeout/3.
	HeartbeatInterval time.Duration
	// Logger receives state changes (component "membership"); nil discards.
	Logger *slog.Logger

	// CrashCause, when Run's context ends with it as its cause, makes the
	// end a crash (an in-process agent "killed" by the demo): Run returns
	// at once, without Revoked and without LeaveGroup, and the others take
	// the slots over once the session times out.
	CrashCause error

	// crashOnCancel makes the end of Run's context a crash, for tests: Run
	// returns at once, without Revoked and without LeaveGroup.
	crashOnCancel bool
}

// View is the group as of one generation.
type View struct {
	Generation int32
	Leader     string   // member instance of the leader
	Members    []Member // sorted by Instance
	Owners     []Member // len == Slots; Owners[i] is who owns slot i; zero Member = nobody (moving)
}

// SlotsOf returns the slots that instance owns in v.
func (v View) SlotsOf(instance string) []int {
	var out []int
	for s, o := range v.Owners {
		if o.Instance == instance {
			out = append(out, s)
		}
	}
	return out
}

// Events passed to Handler.Changed.
const (
	// EventGeneration: this member is in a new generation; v is its view.
	EventGeneration = "generation"
	// EventRebalance: the coordinator started a rebalance; this member
	// rejoins and keeps its slots meanwhile.
	EventRebalance = "rebalance"
	// EventLost: the membership was lost (expired, fenced); every slot
	// was revoked with lost=true and the member is rejoining.
	EventLost = "lost"
	// EventRefused: the group refused this member because its members use
	// another protocol (another number of slots); it retries until they
	// are gone. The log says what they use.
	EventRefused = "refused"
	// EventLeft: the member left the group at the end of Run.
	EventLeft = "left"
)

// Handler is told about slot changes. Calls come from Run's goroutine, one at a time.
type Handler interface {
	// Assigned: this member now owns these slots (in addition to what it held).
	Assigned(slots []int, v View)
	// Revoked: this member no longer owns these slots. It must return only once
	// the work of those slots has stopped (nothing more is committed for them).
	// lost is true when membership was lost (session expired, fenced, unknown
	// member) rather than handed over cooperatively.
	// Heartbeats go on meanwhile, but a cooperative Revoked must return
	// within RebalanceTimeout or the coordinator may drop the member.
	Revoked(slots []int, v View, lost bool)
	// Changed: the view changed (other members came or went, a generation
	// ended) — for status and events. event is one of the Event constants.
	Changed(v View, event string)
}

const (
	// requestSlack is how much longer than RebalanceTimeout a JoinGroup or
	// SyncGroup may take (Kafka's consumer allows 5s too).
	requestSlack = 5 * time.Second
	// leaveTimeout bounds the LeaveGroup at the end of Run.
	leaveTimeout = 5 * time.Second
	// describeTimeout bounds the DescribeGroups that explains a refusal.
	describeTimeout = 5 * time.Second
	minBackoff      = 250 * time.Millisecond
	maxBackoff      = 5 * time.Second
)

func (c Config) withDefaults() (Config, error) {
	if c.Group == "" {
		return c, errors.New("group is empty")
	}
	if c.Slots < 1 {
		return c, fmt.Errorf("slots is %d: want at least 1", c.Slots)
	}
	if c.Self.Instance == "" {
		c.Self.Instance = rand.Text()
	}
	c.SessionTimeout = cmp.Or(c.SessionTimeout, 10*time.Second)
	c.RebalanceTimeout = cmp.Or(c.RebalanceTimeout, 10*time.Second)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, time.Second)
	if c.SessionTimeout < 0 || c.RebalanceTimeout < 0 || c.HeartbeatInterval < 0 {
		return c, errors.New("timeouts must not be negative")
	}
	if 3*c.HeartbeatInterval >= c.SessionTimeout {
		return c, fmt.Errorf("heartbeat interval %s: want less than a third of the session timeout %s", c.HeartbeatInterval, c.SessionTimeout)
	}
	if 3*c.HeartbeatInterval >= c.RebalanceTimeout {
		return c, fmt.Errorf("heartbeat interval %s: want less than a third of the rebalance timeout %s", c.HeartbeatInterval, c.RebalanceTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Run joins the group on the cluster reached by cl and stays in it until ctx
// ends; then it revokes everything it owns (lost=false), leaves the group
// (LeaveGroup, so others take over at once) and returns nil. It returns an
// error only for what retrying cannot fix (e.g. group authorization failed),
// after revoking everything it owned with lost=true.
//
// cl is an ordinary client, not a consumer-group client, and may be shared.
// kgo finds the group coordinator (FindCoordinator) and retries
// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE and COORDINATOR_LOAD_IN_PROGRESS
// itself; Run bounds every request so that it notices an expired session.
//
// Handler calls block Run: heartbeats go on during them, but a rebalance
// waits for this member until they return, at most RebalanceTimeout.
func Run(ctx context.Context, cl *kgo.Client, cfg Config, h Handler) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("membership of group %q: %w", cfg.Group, err)
	}
	m := &member{
		cl: cl, cfg: cfg, h: h,
		log:      cfg.Logger.With("component", "membership", "group", cfg.Group, "instance", cfg.Self.Instance),
		ownedGen: -1,
		view:     View{Generation: -1, Owners: make([]Member, cfg.Slots)},
	}
	err = m.loop(ctx)
	switch {
	case err != nil:
		m.lose(err)
		return err
	case cfg.crashOnCancel, cfg.CrashCause != nil && errors.Is(context.Cause(ctx), cfg.CrashCause):
		return nil
	}
	m.leave(ctx)
	return nil
}

// member is the state of one Run. Only Run's goroutine changes it; the
// heartbeat goroutine reads only cl, cfg and log, which never change, and
// gets the rest as arguments.
type member struct {
	cl  *kgo.Client
	cfg Config
	h   Handler
	log *slog.Logger

	memberID string
	joined   bool  // synced into a generation, not lost since
	owned    []int // sorted
	ownedGen int32 // generation of the assignment that gave owned
	view     View
	// lastOK is when the last request was sent that the coordinator
	// answered as to a member of the group: the session lasts at least
	// until lastOK + min(SessionTimeout, RebalanceTimeout).
	lastOK   time.Time
	refused  bool // the group refuses our protocol (logged once)
	troubled bool // joining fails (logged once)
}

// loop runs generation after generation until ctx ends or an error is fatal.
func (m *member) loop(ctx context.Context) error {
	var bo backoff
	for ctx.Err() == nil {
		err := m.generation(ctx, &bo)
		if ctx.Err() != nil {
			return nil
		}
		switch classify(err) {
		case actRejoin:
			if errors.Is(err, kerr.RebalanceInProgress) {
				m.log.Debug("rebalance in progress; rejoining", "generation", m.view.Generation)
				m.h.Changed(m.view, EventRebalance)
			}
			continue
		case actLose:
			m.lose(err)
		case actRefused:
			m.refuse(ctx, err)
		case actFatal:
			return explain(fmt.Errorf("membership of group %q: %w", m.cfg.Group, err), m.cfg)
		case actRetry:
			if m.troubled {
				m.log.Debug("still retrying", "err", err)
			} else {
				m.log.Warn("cannot take part in the group; retrying", "err", err)
			}
			m.troubled = true
		}
		if len(m.owned) > 0 && !time.Now().Before(m.lastOK.Add(m.sessionLimit())) {
			m.lose(fmt.Errorf("%w: %w", errSessionExpired, err))
		}
		sleep(ctx, bo.next())
	}
	return nil
}

// generation joins and syncs, applies the assignment and heartbeats until
// the generation ends; the error says why it ended.
func (m *member) generation(ctx context.Context, bo *backoff) error {
	j, err := m.join(ctx)
	if err != nil {
		return err
	}
	v, mine, err := m.sync(ctx, j)
	if err != nil {
		return err
	}
	bo.reset()
	m.troubled, m.refused, m.joined = false, false, true
	hb := m.startHeartbeat(ctx, j.Generation)
	if m.apply(j.Generation, v, mine) {
		if err := m.stopHeartbeat(hb); err != nil && classify(err) != actRejoin {
			return err // fenced or expired meanwhile
		}
		return errRejoin // hand the revoked slots over now
	}
	select {
	case <-ctx.Done():
	case <-hb.done:
	}
	return m.stopHeartbeat(hb)
}

func (m *member) join(ctx context.Context) (*kmsg.JoinGroupResponse, error) {
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = m.cfg.Group
		req.SessionTimeoutMillis = int32(m.cfg.SessionTimeout.Milliseconds())
		req.RebalanceTimeoutMillis = int32(m.cfg.RebalanceTimeout.Milliseconds())
		req.MemberID = m.memberID
		req.ProtocolType = protocolType
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = protocolName(m.cfg.Slots)
		p.Metadata = m.metadata()
		req.Protocols = []kmsg.JoinGroupRequestProtocol{p}

		rctx, cancel := m.requestCtx(ctx)
		sent := time.Now()
		resp, err := req.RequestWith(rctx, m.cl)
		cancel()
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case errors.Is(err, kerr.MemberIDRequired): // JoinGroup v4+: join again with the id
			m.memberID = resp.MemberID
			continue
		case err != nil:
			return nil, fmt.Errorf("join group: %w", err)
		}
		m.memberID, m.lastOK = resp.MemberID, sent
		return resp, nil
	}
}

func (m *member) sync(ctx context.Context, j *kmsg.JoinGroupResponse) (View, []int, error) {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.Generation, req.MemberID = m.cfg.Group, j.Generation, m.memberID
	req.ProtocolType = kmsg.StringPtr(protocolType)
	req.Protocol = kmsg.StringPtr(protocolName(m.cfg.Slots))
	if j.LeaderID == m.memberID {
		p := assign(m.cfg.Slots, decodeClaims(j.Members))
		b, err := encodeAssignment(p, j.LeaderID)
		if err != nil {
			return View{}, nil, err
		}
		for _, c := range p.members {
			a := kmsg.NewSyncGroupRequestGroupAssignment()
			a.MemberID, a.MemberAssignment = c.id, b
			req.GroupAssignment = append(req.GroupAssignment, a)
		}
	}
	rctx, cancel := m.requestCtx(ctx)
	sent := time.Now()
	resp, err := req.RequestWith(rctx, m.cl)
	cancel()
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		return View{}, nil, fmt.Errorf("sync group: %w", err)
	}
	m.lastOK = sent
	return decodeAssignment(resp.MemberAssignment, m.cfg.Slots, j.Generation, m.memberID)
}

// apply tells the handler what changed: first the revocations (blocking),
// then the new slots. It reports whether it revoked anything.
func (m *member) apply(gen int32, v View, mine []int) bool {
	gone := without(m.owned, mine)
	added := without(mine, m.owned)
	if len(gone) > 0 {
		m.h.Revoked(gone, v, false)
	}
	m.owned, m.ownedGen, m.view = mine, gen, v
	if len(added) > 0 {
		m.h.Assigned(added, v)
	}
	m.log.Info("in generation", "generation", gen, "leader", v.Leader, "members", len(v.Members),
		"slots", mine, "revoked", gone, "assigned", added)
	m.h.Changed(v, EventGeneration)
	return len(gone) > 0
}

// lose revokes every slot with lost=true: the membership is gone. The
// member rejoins with a new member id: with the old one, a coordinator that
// still knew it could hand it its old assignment back.
func (m *member) lose(cause error) {
	m.memberID = ""
	if !m.joined {
		return
	}
	m.log.Warn("membership lost; revoking every slot", "err", cause, "slots", m.owned)
	if len(m.owned) > 0 {
		m.h.Revoked(m.owned, m.view, true)
	}
	m.owned, m.ownedGen, m.joined = nil, -1, false
	m.h.Changed(m.view, EventLost)
}

// refuse reports, once, that the group refuses this member's protocol.
func (m *member) refuse(ctx context.Context, err error) {
	if m.refused {
		return
	}
	m.refused = true
	dctx, cancel := context.WithTimeout(ctx, describeTimeout)
	theirs := describeProtocol(dctx, m.cl, m.cfg.Group)
	cancel()
	m.log.Error("the group refuses this member: its members use another protocol (another number of slots); retrying until they are gone",
		"ours", protocolName(m.cfg.Slots), "theirs", theirs, "err", err)
	m.h.Changed(m.view, EventRefused)
}

// leave revokes everything cooperatively and leaves the group, so that the
// others take over at once rather than after the session timeout.
func (m *member) leave(ctx context.Context) {
	if len(m.owned) > 0 {
		m.h.Revoked(m.owned, m.view, false)
		m.owned = nil
	}
	if m.memberID != "" {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
		defer cancel()
		req := kmsg.NewPtrLeaveGroupRequest()
		req.Group, req.MemberID = m.cfg.Group, m.memberID
		lm := kmsg.NewLeaveGroupRequestMember()
		lm.MemberID, lm.Reason = m.memberID, kmsg.StringPtr("edgelink agent stopping")
		req.Members = []kmsg.LeaveGroupRequestMember{lm}
		resp, err := req.RequestWith(lctx, m.cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil && len(resp.Members) > 0 {
			err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
		}
		if err != nil && !errors.Is(err, kerr.UnknownMemberID) {
			m.log.Warn("leave group failed; the others take over when the session expires", "err", err)
		}
	}
	m.log.Info("left the group")
	m.h.Changed(m.view, EventLeft)
}

func (m *member) metadata() []byte {
	b, _ := json.Marshal(metadata{Version: wireVersion, Member: m.cfg.Self, Owned: m.owned, Generation: m.ownedGen})
	return b
}

// sessionLimit is how long after lastOK this member gives its slots up
// when the coordinator does not answer. The coordinator may drop it after
// the session timeout, or after the rebalance timeout if the group was
// rebalancing and the member did not rejoin in time; giving up one heartbeat
// interval earlier leaves Revoked that long (and the others that of a
// rebalance) to stop the work before another member is given it.
func (m *member) sessionLimit() time.Duration {
	return min(m.cfg.SessionTimeout, m.cfg.RebalanceTimeout) - m.cfg.HeartbeatInterval
}

// requestCtx bounds a JoinGroup or SyncGroup: it may wait for the whole
// rebalance, but while this member owns slots never past the moment its
// session may have expired.
func (m *member) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(m.cfg.RebalanceTimeout + requestSlack)
	if expiry := m.lastOK.Add(m.sessionLimit()); len(m.owned) > 0 && expiry.Before(deadline) {
		deadline = expiry
	}
	return context.WithDeadline(ctx, deadline)
}

// heartbeat is the goroutine that heartbeats during one generation, started
// and stopped by Run's goroutine.
type heartbeat struct {
	cancel context.CancelFunc
	done   chan struct{}
	lastOK time.Time // the heartbeat goroutine's until done
	err    error     // why it stopped; set before done closes
}

func (m *member) startHeartbeat(ctx context.Context, gen int32) *heartbeat {
	ctx, cancel := context.WithCancel(ctx)
	hb := &heartbeat{cancel: cancel, done: make(chan struct{}), lastOK: m.lastOK}
	memberID := m.memberID
	go func() {
		defer close(hb.done)
		hb.err = m.heartbeats(ctx, gen, memberID, &hb.lastOK)
	}()
	return hb
}

func (m *member) stopHeartbeat(hb *heartbeat) error {
	hb.cancel()
	<-hb.done
	m.lastOK = hb.lastOK
	return hb.err
}

// heartbeats heartbeats every HeartbeatInterval until ctx ends or the
// generation ends; it returns why it ended (nil when ctx ended).
func (m *member) heartbeats(ctx context.Context, gen int32, memberID string, lastOK *time.Time) error {
	tick := time.NewTicker(m.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		rctx, cancel := context.WithDeadline(ctx, lastOK.Add(m.sessionLimit()))
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.Generation, req.MemberID = m.cfg.Group, gen, memberID
		sent := time.Now()
		resp, err := req.RequestWith(rctx, m.cl)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil || errors.Is(err, kerr.RebalanceInProgress) {
			*lastOK = sent // the coordinator knows this member
		}
		switch {
		case err == nil:
			continue
		case classify(err) != actRetry:
			return fmt.Errorf("heartbeat: %w", err)
		case !time.Now().Before(lastOK.Add(m.sessionLimit())):
			return fmt.Errorf("%w: %w", errSessionExpired, err)
		}
		m.log.Debug("heartbeat failed", "err", err)
	}
}

// without returns the elements of a that are not in b.
func without(a, b []int) []int {
	var out []int
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// backoff spaces out retries: 250ms doubling to 5s, with jitter.
type backoff struct{ n int }

func (b *backoff) next() time.Duration {
	d := min(minBackoff<<min(b.n, 8), maxBackoff)
	b.n++
	return d*3/4 + mrand.N(d/2)
}

func (b *backoff) reset() { b.n = 0 }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
