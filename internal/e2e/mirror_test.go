package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

const upLink = `  - name: up
    from: edge
    to: cloud
    topics:
      include: ['sensors\..*', 'events']
    rename: "{site}.{topic}"
`

func pairsFor(topics ...string) []verify.Pair {
	out := make([]verify.Pair, len(topics))
	for i, t := range topics {
		out[i] = verify.Pair{Source: t, Destination: "plant-1." + t}
	}
	return out
}

// TestRealKafkaKillNineExactlyOnce: 3 topics x 6 partitions, about 200k
// records from 10 B to 900 KB, transactional producers that abort every
// fourth transaction, a topic created and partitions added while running;
// the agent is killed with SIGKILL at 5 random moments and restarted. The
// checker must find every committed record exactly once, in order, intact.
func TestRealKafkaKillNineExactlyOnce(t *testing.T) {
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge"}, testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	topics := []string{"sensors.temp", "sensors.vibration", "events"}
	createTopics(t, edge, 6, nil, topics...)
	cfg := writeConfig(t, edge, cloud, upLink)

	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	var l load
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.produce(gctx, t, edge, topics[:2], 180_000, 1) })
	g.Go(func() error { return l.transact(gctx, edge, "events", 80, 250, 2) })

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	a := startAgent(t, "agent-0", cfg)
	for kill := 1; kill <= 5; kill++ {
		time.Sleep(time.Duration(2000+rng.IntN(4000)) * time.Millisecond)
		a.kill()
		t.Logf("kill -9 #%d after %d records produced", kill, l.records.Load()+l.committed.Load())
		a = startAgent(t, fmt.Sprintf("agent-%d", kill), cfg)
		if kill == 2 {
			// While the agent runs: a new topic and more partitions.
			createTopics(t, edge, 3, nil, "sensors.pressure")
			topics = append(topics, "sensors.pressure")
			g.Go(func() error { return l.produce(gctx, t, edge, []string{"sensors.pressure"}, 5_000, 4) })
			cl, err := edge.Client()
			require.NoError(t, err)
			_, err = kadm.NewClient(cl).UpdatePartitions(ctx, 9, "sensors.vibration")
			cl.Close()
			require.NoError(t, err)
		}
	}
	require.NoError(t, g.Wait(), "load")
	t.Logf("produced %d plain records, %d committed and %d aborted transactional records",
		l.records.Load(), l.committed.Load(), l.aborted.Load())

	rep := checkUntilClean(t, edge, cloud, pairsFor(topics...), 3*time.Minute, nil)
	requireClean(t, rep)
	require.EqualValues(t, l.records.Load()+l.committed.Load(), rep.SourceRecords)
	require.EqualValues(t, rep.SourceRecords, rep.DestinationRecords)

	code, took := a.stop()
	require.Equal(t, 0, code, "exit status after SIGTERM")
	require.Less(t, took, 10*time.Second, "SIGTERM exit time")
}

// TestRealKafkaSecondAgentSharesTheLink starts a second agent with the same
// configuration while the first runs and records keep arriving: the two
// share the link (both keep running, each holds some of its slots, every
// slot is held by exactly one of them, and neither fences the other), and
// no record is ever written twice.
func TestRealKafkaSecondAgentSharesTheLink(t *testing.T) {
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge"}, testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	topics := []string{"sensors.temp", "events"}
	createTopics(t, edge, 6, nil, topics...)
	cfg := writeConfig(t, edge, cloud, upLink)

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	var l load
	require.NoError(t, l.produce(ctx, t, edge, topics[:1], 20_000, 5))
	first := startAgent(t, "first", cfg)
	alone := waitLayout(t, time.Minute, first)
	t.Logf("the first agent alone holds slots %v", alone.of(0))
	// Both instances run while records keep arriving: the second joins the
	// link's group and the first hands it some of its slots.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return l.produce(gctx, t, edge, topics[:1], 30_000, 6) })
	g.Go(func() error { return l.transact(gctx, edge, "events", 40, 200, 7) })
	time.Sleep(time.Second)
	second := startAgent(t, "second", cfg)
	shared := waitLayout(t, time.Minute, first, second)
	t.Logf("generation %d: the first agent holds slots %v, the second %v", shared.generation, shared.of(0), shared.of(1))
	require.NoError(t, g.Wait())
	require.NoError(t, l.produce(ctx, t, edge, topics[:1], 5_000, 8))

	rep := checkUntilClean(t, edge, cloud, pairsFor(topics...), 2*time.Minute, nil)
	requireClean(t, rep)
	require.EqualValues(t, l.records.Load()+l.committed.Load(), rep.DestinationRecords)
	// Both still run and share the link; neither was fenced.
	shared = waitLayout(t, 10*time.Second, first, second)
	t.Logf("after the check, generation %d: slots %v and %v", shared.generation, shared.of(0), shared.of(1))
	for _, a := range []*agent{first, second} {
		require.Empty(t, a.logsWith("fenced"), "agent %s logged a fence", a.name)
		require.Empty(t, a.logsWith("taken over by another agent"), "agent %s lost a slot to a fence", a.name)
	}
	stopAgents(t, first, second)
}

// TestRealKafkaRetentionLossReported: records deleted by source retention
// before they were replicated are reported with their exact offsets, and
// the link carries on from the earliest available offset.
func TestRealKafkaRetentionLossReported(t *testing.T) {
	cs := testbed.StartKafkaClusters(t,
		testbed.Options{Name: "edge", Props: map[string]string{"log.retention.check.interval.ms": "300"}},
		testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	createTopics(t, edge, 1, nil, "sensors.temp")
	cfg := writeConfig(t, edge, cloud, upLink)
	ctx := t.Context()

	var l load
	require.NoError(t, l.produce(ctx, t, edge, []string{"sensors.temp"}, 100, 7))
	a := startAgent(t, "before", cfg)
	rep := checkUntilClean(t, edge, cloud, pairsFor("sensors.temp"), time.Minute, nil)
	requireClean(t, rep)
	code, _ := a.stop()
	require.Equal(t, 0, code)

	// While the agent is stopped, offsets 100..199 are written and then
	// deleted by retention (a tiny retention.ms; Kafka rolls and deletes even
	// the active segment); retention is then restored and one more record,
	// offset 200, is written.
	require.NoError(t, l.produce(ctx, t, edge, []string{"sensors.temp"}, 100, 8))
	cl, err := edge.Client()
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	set := func(k, v string) {
		_, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)}}, "sensors.temp")
		require.NoError(t, err)
	}
	set("segment.ms", "100")
	set("retention.ms", "100")
	testbed.Eventually(t, 30*time.Second, func() error {
		so, err := adm.ListStartOffsets(ctx, "sensors.temp")
		if err != nil {
			return err
		}
		if o, _ := so.Lookup("sensors.temp", 0); o.Offset != 200 {
			return fmt.Errorf("log start offset %d, want 200", o.Offset)
		}
		return nil
	})
	set("retention.ms", "604800000")
	set("segment.ms", "604800000")
	require.NoError(t, l.produce(ctx, t, edge, []string{"sensors.temp"}, 1, 9))

	a = startAgent(t, "after", cfg)
	testbed.Eventually(t, 60*time.Second, func() error {
		if len(a.logsWith("deleted before they were replicated")) == 0 {
			return fmt.Errorf("no loss reported yet")
		}
		return nil
	})
	lost := a.logsWith("deleted before they were replicated")
	require.Len(t, lost, 1)
	require.EqualValues(t, 100, lost[0]["from"])
	require.EqualValues(t, 199, lost[0]["to"])
	require.EqualValues(t, 100, lost[0]["count"])
	rep = checkUntilClean(t, edge, cloud, pairsFor("sensors.temp"), time.Minute, nil)
	requireClean(t, rep)
	require.EqualValues(t, 1, rep.SourceRecords, "only offset 200 remains at the source")
	require.EqualValues(t, 101, rep.DestinationRecords, "0..99 and 200 were replicated")
	code, _ = a.stop()
	require.Equal(t, 0, code)
}
