package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/testbed"
)

// timeline records what the members' handlers were told, in one order.
type timeline struct {
	mu       sync.Mutex
	owner    map[int]string // slot → instance, from Assigned until Revoked returned
	problems []string       // a slot assigned while another member owned it, ...
	revoked  []revocation   // in order
	events   map[string][]string
	views    map[string]View // last view of each member
}

type revocation struct {
	instance string
	slot     int
	lost     bool
}

func newTimeline() *timeline {
	return &timeline{owner: map[int]string{}, events: map[string][]string{}, views: map[string]View{}}
}

// handler is instance's Handler; stopping a slot's work takes stop.
type handler struct {
	tl       *timeline
	instance string
	stop     time.Duration
}

func (h handler) Assigned(slots []int, v View) {
	h.tl.mu.Lock()
	defer h.tl.mu.Unlock()
	for _, s := range slots {
		if o := h.tl.owner[s]; o != "" {
			h.tl.problems = append(h.tl.problems, fmt.Sprintf("slot %d assigned to %s while %s owns it (generation %d)", s, h.instance, o, v.Generation))
		}
		h.tl.owner[s] = h.instance
	}
}

func (h handler) Revoked(slots []int, v View, lost bool) {
	time.Sleep(h.stop) // the slots' work winding down
	h.tl.mu.Lock()
	defer h.tl.mu.Unlock()
	for _, s := range slots {
		if o := h.tl.owner[s]; o != h.instance {
			h.tl.problems = append(h.tl.problems, fmt.Sprintf("slot %d revoked at %s but owned by %q", s, h.instance, o))
		} else {
			delete(h.tl.owner, s)
		}
		h.tl.revoked = append(h.tl.revoked, revocation{h.instance, s, lost})
	}
}

func (h handler) Changed(v View, event string) {
	h.tl.mu.Lock()
	defer h.tl.mu.Unlock()
	h.tl.views[h.instance] = v
	h.tl.events[h.instance] = append(h.tl.events[h.instance], event)
}

// crash forgets what instance owned: its process is gone, and its work with it.
func (tl *timeline) crash(instance string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for s, o := range tl.owner {
		if o == instance {
			delete(tl.owner, s)
		}
	}
}

// balanced says why the slots are not yet each owned by exactly one of live,
// balanced, with every live member knowing the same view.
func (tl *timeline) balanced(n int, live ...string) error {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	counts := map[string]int{}
	for s := range n {
		o := tl.owner[s]
		if !slices.Contains(live, o) {
			return fmt.Errorf("slot %d owned by %q", s, o)
		}
		counts[o]++
	}
	lo, hi := n/len(live), (n+len(live)-1)/len(live)
	for _, m := range live {
		if counts[m] < lo || counts[m] > hi {
			return fmt.Errorf("%s owns %d slots, want %d..%d", m, counts[m], lo, hi)
		}
		v := tl.views[m]
		if v.Generation != tl.views[live[0]].Generation || len(v.Members) != len(live) {
			return fmt.Errorf("%s sees generation %d with %d members, %s generation %d", m, v.Generation, len(v.Members), live[0], tl.views[live[0]].Generation)
		}
		for s := range n {
			if v.Owners[s].Instance != tl.owner[s] {
				return fmt.Errorf("%s sees slot %d at %q, but %q owns it", m, s, v.Owners[s].Instance, tl.owner[s])
			}
		}
	}
	return nil
}

func (tl *timeline) requireNoProblems(t *testing.T) {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	require.Empty(t, tl.problems)
}

// revokedSince returns the revocations after the first from of them.
func (tl *timeline) revokedSince(from int) []revocation {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.revoked[from:])
}

func (tl *timeline) snapshot() (map[int]string, int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	owner := map[int]string{}
	for s, o := range tl.owner {
		owner[s] = o
	}
	return owner, len(tl.revoked)
}

func (tl *timeline) hasEvent(instance, event string) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Contains(tl.events[instance], event)
}

// runner runs one member with its own client, as one agent process would.
type runner struct {
	instance string
	cl       *kgo.Client
	cancel   context.CancelFunc
	done     chan error
	once     sync.Once
	err      error
}

func startMember(t *testing.T, bootstrap []string, tl *timeline, cfg Config) *runner {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{instance: cfg.Self.Instance, cl: cl, cancel: cancel, done: make(chan error, 1)}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	h := handler{tl: tl, instance: cfg.Self.Instance, stop: 100 * time.Millisecond}
	go func() { r.done <- Run(ctx, cl, cfg, h) }()
	t.Cleanup(func() {
		_ = r.stop()
		cl.Close()
	})
	return r
}

// stop ends the member's Run and returns its error.
func (r *runner) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fastConfig has timeouts short enough for kfake tests.
func fastConfig(group string, slots int, instance string) Config {
	return Config{
		Group: group, Slots: slots, Self: Member{Instance: instance, PID: 1},
		SessionTimeout: 2 * time.Second, RebalanceTimeout: 3 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
	}
}

func startFake(t *testing.T) []string {
	return testbed.StartFake(t, kfake.GroupMinSessionTimeout(100*time.Millisecond)).ListenAddrs()
}

func TestThreeMembersShareSlots(t *testing.T) {
	addrs := startFake(t)
	tl := newTimeline()
	for _, m := range []string{"a", "b", "c"} {
		startMember(t, addrs, tl, fastConfig("g", 8, m))
	}
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(8, "a", "b", "c") })
	tl.requireNoProblems(t)
}

func TestNewMemberTakesItsShareCooperatively(t *testing.T) {
	addrs := startFake(t)
	tl := newTimeline()
	for _, m := range []string{"a", "b", "c"} {
		startMember(t, addrs, tl, fastConfig("g", 12, m))
	}
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(12, "a", "b", "c") })
	before, mark := tl.snapshot()

	startMember(t, addrs, tl, fastConfig("g", 12, "d"))
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(12, "a", "b", "c", "d") })
	tl.requireNoProblems(t)

	after, _ := tl.snapshot()
	revoked := tl.revokedSince(mark)
	require.Len(t, revoked, 3, "only d's share moves: %v", revoked)
	for _, r := range revoked {
		require.False(t, r.lost)
		require.Equal(t, before[r.slot], r.instance)
		require.Equal(t, "d", after[r.slot], "slot %d revoked at %s went elsewhere", r.slot, r.instance)
	}
}

func TestKilledMemberSlotsMoveAfterSessionTimeout(t *testing.T) {
	addrs := startFake(t)
	tl := newTimeline()
	cfg := fastConfig("g", 6, "c")
	cfg.crashOnCancel = true
	startMember(t, addrs, tl, fastConfig("g", 6, "a"))
	startMember(t, addrs, tl, fastConfig("g", 6, "b"))
	victim := startMember(t, addrs, tl, cfg)
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(6, "a", "b", "c") })
	_, mark := tl.snapshot()

	killed := time.Now()
	require.NoError(t, victim.stop()) // no Revoked, no LeaveGroup, no heartbeats
	victim.cl.Close()
	tl.crash("c")
	testbed.Eventually(t, cfg.SessionTimeout+5*time.Second, func() error { return tl.balanced(6, "a", "b") })
	took := time.Since(killed)
	t.Logf("kfake: slots of a killed member moved after %s (session timeout %s)", took.Round(time.Millisecond), cfg.SessionTimeout)
	require.Less(t, took, cfg.SessionTimeout+3*time.Second)
	require.Empty(t, tl.revokedSince(mark), "survivors revoke nothing when they take over a dead member's slots")
	tl.requireNoProblems(t)
}

func TestLeavingMemberSlotsMoveAtOnce(t *testing.T) {
	addrs := startFake(t)
	tl := newTimeline()
	slow := func(m string) Config {
		cfg := fastConfig("g", 6, m)
		cfg.SessionTimeout, cfg.RebalanceTimeout, cfg.HeartbeatInterval = 10*time.Second, 10*time.Second, 300*time.Millisecond
		return cfg
	}
	startMember(t, addrs, tl, slow("a"))
	startMember(t, addrs, tl, slow("b"))
	leaver := startMember(t, addrs, tl, slow("c"))
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(6, "a", "b", "c") })

	left := time.Now()
	require.NoError(t, leaver.stop())
	require.True(t, tl.hasEvent("c", EventLeft))
	testbed.Eventually(t, 3*time.Second, func() error { return tl.balanced(6, "a", "b") })
	t.Logf("kfake: slots of a leaving member moved after %s", time.Since(left).Round(time.Millisecond))
	tl.requireNoProblems(t)
}

func TestOtherSlotCountIsRefusedUntilTheOthersLeave(t *testing.T) {
	addrs := startFake(t)
	tl, tl6 := newTimeline(), newTimeline()
	a := startMember(t, addrs, tl, fastConfig("g", 4, "a"))
	b := startMember(t, addrs, tl, fastConfig("g", 4, "b"))
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(4, "a", "b") })

	var logs syncBuffer
	cfg := fastConfig("g", 6, "c")
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, tWriter{t}), nil))
	startMember(t, addrs, tl6, cfg)
	testbed.Eventually(t, 10*time.Second, func() error {
		if !tl6.hasEvent("c", EventRefused) {
			return errors.New("c not refused yet")
		}
		return nil
	})
	require.Contains(t, logs.String(), "ours=slots-6 theirs=slots-4")
	require.NoError(t, tl.balanced(4, "a", "b"), "the others carry on")

	require.NoError(t, a.stop())
	require.NoError(t, b.stop())
	testbed.Eventually(t, 15*time.Second, func() error { return tl6.balanced(6, "c") })
	tl.requireNoProblems(t)
	tl6.requireNoProblems(t)
}

func TestRemovedMemberRevokesAsLost(t *testing.T) {
	addrs := startFake(t)
	tl := newTimeline()
	startMember(t, addrs, tl, fastConfig("g", 4, "a"))
	b := startMember(t, addrs, tl, fastConfig("g", 4, "b"))
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(4, "a", "b") })
	_, mark := tl.snapshot()

	// An operator removes b from the group (as kafka-consumer-groups
	// --delete-members would): b learns it at its next heartbeat.
	id := memberIDOf(t, b.cl, "g", "b")
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group = "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: id}}
	_, err := leave.RequestWith(t.Context(), b.cl)
	require.NoError(t, err)

	testbed.Eventually(t, 10*time.Second, func() error {
		if !tl.hasEvent("b", EventLost) {
			return errors.New("b has not lost its membership yet")
		}
		return tl.balanced(4, "a", "b")
	})
	var lost []int
	for _, r := range tl.revokedSince(mark) {
		if r.instance == "b" && r.lost {
			lost = append(lost, r.slot)
		}
	}
	require.Len(t, lost, 2, "b revoked its slots as lost")
	// No problem check: a removed member keeps its slots until it hears of
	// the removal, which is what fencing at the destination is for.
}

func TestPartitionedMemberRevokesAsLost(t *testing.T) {
	c := testbed.StartFake(t, kfake.GroupMinSessionTimeout(100*time.Millisecond))
	var partitioned atomic.Bool
	var bID atomic.Value
	bID.Store("")
	c.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !partitioned.Load() || req.(*kmsg.HeartbeatRequest).MemberID != bID.Load() {
			return nil, nil, false
		}
		return nil, errors.New("partitioned"), true // kfake drops the connection
	})
	tl := newTimeline()
	cfg := func(instance string) Config {
		cfg := fastConfig("g", 4, instance)
		cfg.HeartbeatInterval = 500 * time.Millisecond // b gives up 500ms before it may expire
		return cfg
	}
	startMember(t, c.ListenAddrs(), tl, cfg("a"))
	b := startMember(t, c.ListenAddrs(), tl, cfg("b"))
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(4, "a", "b") })
	_, mark := tl.snapshot()

	bID.Store(memberIDOf(t, b.cl, "g", "b"))
	partitioned.Store(true)
	cut := time.Now()
	testbed.Eventually(t, cfg("b").SessionTimeout+3*time.Second, func() error {
		if !tl.hasEvent("b", EventLost) {
			return errors.New("b has not given up its slots yet")
		}
		return nil
	})
	t.Logf("b gave up its slots %s after its heartbeats stopped getting through", time.Since(cut).Round(time.Millisecond))
	var lost []int
	for _, r := range tl.revokedSince(mark) {
		if r.instance == "b" {
			require.True(t, r.lost)
			lost = append(lost, r.slot)
		}
	}
	require.Len(t, lost, 2)

	partitioned.Store(false)
	testbed.Eventually(t, 10*time.Second, func() error { return tl.balanced(4, "a", "b") })
	// b's Revoked (100ms) returned before the coordinator expired it, so
	// a got the slots only after.
	tl.requireNoProblems(t)
}

// memberIDOf finds instance's group member id from its metadata.
func memberIDOf(t *testing.T, cl *kgo.Client, group, instance string) string {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(t.Context(), cl)
	require.NoError(t, err)
	for _, m := range resp.Groups[0].Members {
		c := decodeClaims([]kmsg.JoinGroupResponseMember{{MemberID: m.MemberID, ProtocolMetadata: m.ProtocolMetadata}})
		if c[0].member.Instance == instance {
			return m.MemberID
		}
	}
	require.FailNow(t, "no member "+instance)
	return ""
}

func TestGroupAuthorizationFailedIsFatal(t *testing.T) {
	c := testbed.StartFake(t)
	c.ControlKey(kmsg.JoinGroup.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil, true
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer cl.Close()
	tl := newTimeline()
	err = Run(t.Context(), cl, Config{Group: "g", Slots: 2, Logger: testLogger(t)}, handler{tl: tl, instance: "a"})
	require.ErrorIs(t, err, kerr.GroupAuthorizationFailed)
	require.ErrorContains(t, err, `READ on group "g"`)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Slots: 1}, "group is empty"},
		{Config{Group: "g"}, "slots is 0: want at least 1"},
		{Config{Group: "g", Slots: 1, HeartbeatInterval: 4 * time.Second}, "heartbeat interval 4s: want less than a third of the session timeout 10s"},
		{Config{Group: "g", Slots: 1, SessionTimeout: 30 * time.Second, HeartbeatInterval: 4 * time.Second}, "heartbeat interval 4s: want less than a third of the rebalance timeout 10s"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			err := Run(t.Context(), nil, tc.cfg, handler{})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
