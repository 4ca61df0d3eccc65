package agent_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
)

// sharing is the membership timing of the sharing tests: quick to notice
// a dead agent, within what brokers allow.
const sharing = "membership: {session_timeout: 6s, heartbeat_interval: 300ms, rebalance_timeout: 5s}"

// waitHeld waits until each link holds the given number of slots.
func waitHeld(t *testing.T, want map[*link.Link]int) {
	t.Helper()
	testbed.Eventually(t, 30*time.Second, func() error {
		for l, n := range want {
			if got := l.Held(); len(got) != n {
				return fmt.Errorf("an agent holds slots %v, want %d of them (sharing: %+v)", got, n, l.Status().Sharing)
			}
		}
		return nil
	})
}

// TestAgentsShareALinkFake: two agents with one configuration share the
// link's slots; a third joining and one leaving move only the slots that
// must move, the others' partitions keep replicating without a pause, and
// every record arrives exactly once.
func TestAgentsShareALinkFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(12, "sensors"))
	dst := testbed.StartFake(t)
	cfg := conf{site: "plant-1", edge: src.ListenAddrs(), cloud: dst.ListenAddrs(), links: []lnk{up("up", "sensors", sharing)}}.parse(t)
	p := newProducer(t, src.ListenAddrs())
	stopSteady := p.steady("sensors", 2*time.Millisecond)

	a := agent.New(cfg, fast, testLogger(t))
	ra := runAgent(t, a)
	la := a.Links()[0]
	waitHeld(t, map[*link.Link]int{la: 6})
	waitState(t, la, connected...)
	since := time.Now()

	b := agent.New(cfg, fast, testLogger(t))
	rb := runAgent(t, b)
	lb := b.Links()[0]
	waitHeld(t, map[*link.Link]int{la: 3, lb: 3})
	require.Empty(t, slices.Concat(la.Held(), lb.Held())[6:], "no slot held twice")
	require.ElementsMatch(t, []int{0, 1, 2, 3, 4, 5}, slices.Concat(la.Held(), lb.Held()))
	require.Empty(t, interrupted(la, since), "the first agent's link kept running")
	sh := la.Status().Sharing
	require.Len(t, sh.Agents, 2)
	require.Len(t, sh.Owners, 6)

	c := agent.New(cfg, fast, testLogger(t))
	rc := runAgent(t, c)
	lc := c.Links()[0]
	waitHeld(t, map[*link.Link]int{la: 2, lb: 2, lc: 2})

	require.NoError(t, rb.stop())
	waitHeld(t, map[*link.Link]int{la: 3, lc: 3})
	require.Empty(t, interrupted(la, since), "the first agent's link kept running")
	var moved []string
	for _, e := range la.Events() {
		if e.Kind == link.EventSlots {
			moved = append(moved, e.Message)
		}
	}
	require.NotEmpty(t, moved)

	n, err := stopSteady()
	require.NoError(t, err)
	requireMirrored(t, dst.ListenAddrs(), "sensors", int(n))
	require.NoError(t, rc.stop())
	require.NoError(t, ra.stop())
}

// TestKilledAgentsSlotsTakenOverFake: an agent killed mid-stream (no last
// commit, no goodbye to its group, transactions left open) loses its
// slots to the survivor once its session times out; the survivor's
// producers settle what it left open, and every record arrives exactly
// once.
func TestKilledAgentsSlotsTakenOverFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(12, "sensors"))
	dst := testbed.StartFake(t)
	cfg := conf{site: "plant-1", edge: src.ListenAddrs(), cloud: dst.ListenAddrs(), links: []lnk{up("up", "sensors", sharing)}}.parse(t)
	p := newProducer(t, src.ListenAddrs())
	stopSteady := p.steady("sensors", time.Millisecond)

	a := agent.New(cfg, fast, testLogger(t))
	ra := runAgent(t, a)
	la := a.Links()[0]
	b := agent.New(cfg, fast, testLogger(t))
	rb := runAgent(t, b)
	lb := b.Links()[0]
	waitHeld(t, map[*link.Link]int{la: 3, lb: 3})
	time.Sleep(500 * time.Millisecond) // both copy for a while

	killed := time.Now()
	b.Kill()
	require.NoError(t, rb.stop())
	waitHeld(t, map[*link.Link]int{la: 6})
	took := time.Since(killed)
	t.Logf("takeover %s after the kill", took.Round(time.Millisecond))
	require.Less(t, took, 6*time.Second+5*time.Second, "session timeout plus a rebalance")
	var takeovers []string
	for _, e := range la.Events() {
		if e.Kind == link.EventSlots && strings.Contains(e.Message, "taken over") {
			takeovers = append(takeovers, e.Message)
		}
	}
	require.NotEmpty(t, takeovers, "the survivor says which slots it took over from whom")

	n, err := stopSteady()
	require.NoError(t, err)
	requireMirrored(t, dst.ListenAddrs(), "sensors", int(n))
	require.NoError(t, ra.stop())
}
