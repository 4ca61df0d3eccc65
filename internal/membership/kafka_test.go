package membership

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/testbed"
)

// TestRealKafkaKilledMemberTakeover kills one of three members with the
// default timeouts and measures how long its slots take to move.
func TestRealKafkaKilledMemberTakeover(t *testing.T) {
	k := testbed.StartKafka(t, testbed.Options{})
	tl := newTimeline()
	cfg := func(instance string) Config {
		return Config{Group: "edgelink-membership", Slots: 6, Self: Member{Instance: instance}}
	}
	startMember(t, k.Bootstrap(), tl, cfg("a"))
	startMember(t, k.Bootstrap(), tl, cfg("b"))
	victimCfg := cfg("c")
	victimCfg.crashOnCancel = true
	victim := startMember(t, k.Bootstrap(), tl, victimCfg)
	testbed.Eventually(t, 60*time.Second, func() error { return tl.balanced(6, "a", "b", "c") })
	tl.requireNoProblems(t)
	_, mark := tl.snapshot()

	killed := time.Now()
	require.NoError(t, victim.stop()) // no Revoked, no LeaveGroup, no heartbeats
	victim.cl.Close()                 // and its connections drop, as with kill -9
	tl.crash("c")
	testbed.Eventually(t, 30*time.Second, func() error { return tl.balanced(6, "a", "b") })
	took := time.Since(killed)
	t.Logf("real Kafka: slots of a killed member moved after %s (session timeout 10s, heartbeat 1s, rebalance timeout 10s)", took.Round(time.Millisecond))
	require.LessOrEqual(t, took, 20*time.Second)
	require.Empty(t, tl.revokedSince(mark), "survivors revoke nothing when they take over a dead member's slots")
	tl.requireNoProblems(t)
}
