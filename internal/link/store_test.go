package link_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

// siteConfig is linkConfig for another site.
func siteConfig(t *testing.T, site string, src, dst []string, extra string) *config.Config {
	t.Helper()
	cfg := linkConfig(t, src, dst, extra)
	cfg.Site = site
	return cfg
}

// requireSiteMirrored checks, per partition, that the records of site in
// mirror are exactly the source records, once, in order.
func requireSiteMirrored(t *testing.T, site string, src []srcRec, dst []*kgo.Record) {
	t.Helper()
	byPart := map[int32][]int64{}
	for _, r := range dst {
		o, ok, err := provenance.Find(r)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, site, o.Site)
		byPart[r.Partition] = append(byPart[r.Partition], o.Offset)
	}
	want := map[int32][]int64{}
	for _, s := range src {
		want[s.partition] = append(want[s.partition], s.offset)
	}
	require.Equal(t, want, byPart, "site %s: source offsets mirrored per partition", site)
}

// TestTwoSitesShareOneCloudFake: two sites run the same link name into one
// cloud. Neither fences the other, neither sees the other's topics as
// "deleted and created again", both mirror exactly once, through restarts
// in every order.
func TestTwoSitesShareOneCloudFake(t *testing.T) {
	edgeA := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	edgeB := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	cloud := testbed.StartFake(t)
	rename := `    rename: "{site}.{topic}"`
	cfgA := siteConfig(t, "plant-a", edgeA.ListenAddrs(), cloud.ListenAddrs(), rename)
	cfgB := siteConfig(t, "plant-b", edgeB.ListenAddrs(), cloud.ListenAddrs(), rename)
	var recsA, recsB []srcRec
	// round produces at both sites and checks the sites whose link runs.
	round := func(tag string, checkA, checkB bool) {
		recsA = append(recsA, produce(t, edgeA.ListenAddrs(), "alerts", 2, 20, "a"+tag)...)
		recsB = append(recsB, produce(t, edgeB.ListenAddrs(), "alerts", 2, 20, "b"+tag)...)
		if checkA {
			requireSiteMirrored(t, "plant-a", recsA, readAll(t, cloud.ListenAddrs(), "plant-a.alerts", len(recsA)))
		}
		if checkB {
			requireSiteMirrored(t, "plant-b", recsB, readAll(t, cloud.ListenAddrs(), "plant-b.alerts", len(recsB)))
		}
	}
	_, stopA := runLink(t, cfgA, fastOpts)
	round("1", true, false)
	_, stopB := runLink(t, cfgB, fastOpts)
	round("2", true, true)
	require.NoError(t, stopA())
	round("3", false, true)
	a, stopA := runLink(t, cfgA, fastOpts)
	round("4", true, true)
	require.NoError(t, stopB())
	round("5", true, false)
	b, stopB := runLink(t, cfgB, fastOpts)
	round("6", true, true)
	for _, l := range []*link.Link{a, b} {
		require.NotEqual(t, link.StateFailed, l.Status().State, l.Status().LastError)
		for _, e := range l.Events() {
			require.NotContains(t, e.Message, "created again")
		}
	}
	require.NoError(t, stopA())
	require.NoError(t, stopB())
}

// openForeignTransaction writes a record to every partition of topic in a
// transaction of another producer and leaves it open.
func openForeignTransaction(t *testing.T, seeds []string, topic string) {
	t.Helper()
	td, err := kadm.NewClient(mustClient(t, seeds)).ListTopics(t.Context(), topic)
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID("foreign-"+topic),
		kgo.TransactionTimeout(5*time.Minute), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	require.NoError(t, cl.BeginTransaction())
	for p := range td[topic].Partitions {
		cl.Produce(t.Context(), &kgo.Record{Topic: topic, Partition: p, Key: []byte("elsewhere:up/alerts/0"), Value: []byte(`{"next":1}`)}, nil)
	}
	require.NoError(t, cl.Flush(t.Context()))
}

// TestForeignOpenTransactionOnCheckpointsFake: another writer holds a
// transaction open on every partition of the checkpoint topic; a link
// restarting meanwhile still finds its latest checkpoints.
func TestForeignOpenTransactionOnCheckpointsFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	recs := produce(t, src.ListenAddrs(), "alerts", 2, 50, "a")
	_, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	openForeignTransaction(t, dst.ListenAddrs(), config.DefaultCheckpointTopic)
	for i := range 3 {
		recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 2, 30, fmt.Sprint("b", i))...)
		requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
		require.NoError(t, stop())
		var l *link.Link
		l, stop = runLink(t, cfg, fastOpts)
		waitState(t, l, link.StateLive)
	}
	recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 2, 10, "c")...)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stop())
}

// TestUpgradeFromLinkNameCheckpointsFake: an agent of an earlier release
// named its checkpoints (and transactional id) by the link name alone, in a
// one-partition checkpoint topic. Upgraded and given a site, the link
// resumes from them: nothing is copied twice, even though the earlier
// release left a transaction open with a later (uncommitted) checkpoint.
func TestUpgradeFromLinkNameCheckpointsFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	dseeds := dst.ListenAddrs()
	before := produce(t, src.ListenAddrs(), "alerts", 2, 40, "old")
	md, err := kadm.NewClient(mustClient(t, src.ListenAddrs())).BrokerMetadata(t.Context())
	require.NoError(t, err)
	dadm := kadm.NewClient(mustClient(t, dseeds))
	resp, err := dadm.CreateTopic(t.Context(), 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, config.DefaultCheckpointTopic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)

	// The earlier release's last committed transaction: checkpoints at 40.
	old, err := kgo.NewClient(kgo.SeedBrokers(dseeds...), kgo.TransactionalID("edgelink-up-0"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(old.Close)
	write := func(next int64) {
		for p := range int32(2) {
			v, _ := json.Marshal(map[string]any{"next": next, "source": md.Cluster})
			old.Produce(t.Context(), &kgo.Record{Topic: config.DefaultCheckpointTopic, Partition: 0, Key: fmt.Appendf(nil, "up/alerts/%d", p), Value: v}, nil)
		}
		require.NoError(t, old.Flush(t.Context()))
	}
	require.NoError(t, old.BeginTransaction())
	write(40)
	require.NoError(t, old.EndTransaction(t.Context(), kgo.TryCommit))
	// Then it crashed in the middle of the next one.
	require.NoError(t, old.BeginTransaction())
	write(45)

	after := produce(t, src.ListenAddrs(), "alerts", 2, 20, "new")
	cfg := linkConfig(t, src.ListenAddrs(), dseeds, "")
	require.Equal(t, "plant-1", cfg.Site)
	_, stop := runLink(t, cfg, fastOpts)
	requireSiteMirrored(t, "plant-1", after, readAll(t, dseeds, "alerts", len(after)))
	require.NoError(t, stop())
	require.Len(t, before, 80)

	// Restarted, it resumes from its own checkpoints.
	more := produce(t, src.ListenAddrs(), "alerts", 2, 5, "more")
	_, stop = runLink(t, cfg, fastOpts)
	requireSiteMirrored(t, "plant-1", append(after, more...), readAll(t, dseeds, "alerts", len(after)+len(more)))
	require.NoError(t, stop())
}

// TestSourceClusterChangedFake: a link whose "from" now reaches another
// cluster (same topic names, other cluster id) refuses to resume, says
// why and how to fix it, and copies nothing.
func TestSourceClusterChangedFake(t *testing.T) {
	first := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"), kfake.ClusterID("edge-1"))
	second := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"), kfake.ClusterID("edge-2"))
	dst := testbed.StartFake(t)
	recs := produce(t, first.ListenAddrs(), "alerts", 1, 20, "a")
	_, stop := runLink(t, linkConfig(t, first.ListenAddrs(), dst.ListenAddrs(), ""), fastOpts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stop())

	produce(t, second.ListenAddrs(), "alerts", 1, 30, "b")
	l, stop := runLink(t, linkConfig(t, second.ListenAddrs(), dst.ListenAddrs(), ""), fastOpts)
	waitState(t, l, link.StateFailed)
	err := stop()
	require.ErrorIs(t, err, link.ErrSourceChanged)
	require.ErrorContains(t, err, "give the link a new name")
	require.Contains(t, l.Status().LastError, `cluster "edge"`)
	require.Len(t, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), len(recs), "nothing copied from the other cluster")
}

// TestCheckpointTopicGainsPartitionsFake: a one-partition checkpoint topic
// (as an earlier release created it) grows to many partitions, twice; the
// link finds its checkpoints each time and copies nothing twice.
func TestCheckpointTopicGainsPartitionsFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "alerts"))
	dst := testbed.StartFake(t)
	dadm := kadm.NewClient(mustClient(t, dst.ListenAddrs()))
	resp, err := dadm.CreateTopic(t.Context(), 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, config.DefaultCheckpointTopic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	var recs []srcRec
	for i, partitions := range []int{1, 7, 50} {
		if partitions > 1 {
			_, err := dadm.UpdatePartitions(t.Context(), partitions, config.DefaultCheckpointTopic)
			require.NoError(t, err)
		}
		// Only one partition of the source gets new records: the others'
		// checkpoints must carry over too.
		recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 3, 10, fmt.Sprint("all", i))...)
		_, stop := runLink(t, cfg, fastOpts)
		requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
		require.NoError(t, stop())
	}
}

// TestSkippedRecordsCarryTheSiteFake: a skipped-record entry names the
// site and link, and is keyed by the link's identity.
func TestSkippedRecordsCarryTheSiteFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	dst := testbed.StartFake(t)
	dadm := kadm.NewClient(mustClient(t, dst.ListenAddrs()))
	resp, err := dadm.CreateTopic(t.Context(), 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("65536")}, "alerts")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	produceRecords(t, src.ListenAddrs(), &kgo.Record{Topic: "alerts", Value: random(100_000)})
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    on_error: skip-and-record")
	l, stop := runLink(t, cfg, fastOpts)
	skipped := readAll(t, dst.ListenAddrs(), link.SkippedTopic, 1)
	require.Len(t, skipped, 1)
	require.Equal(t, "plant-1:up/alerts/0", string(skipped[0].Key))
	var e map[string]any
	require.NoError(t, json.Unmarshal(skipped[0].Value, &e))
	require.Equal(t, "plant-1", e["site"])
	require.Equal(t, "up", e["link"])
	// Handled within the session: the link never showed disconnected.
	for _, ev := range l.Events() {
		require.False(t, strings.Contains(ev.Message, string(link.StateDisconnected)), ev.Message)
	}
	require.NoError(t, stop())
}

// TestTopicNamedSlotResumesFake: a source topic named "slot" has
// checkpoint keys like "<identity>/slot/0", which a slot's marker once had
// too: the link must resume it from its checkpoint, not copy it again.
func TestTopicNamedSlotResumesFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "slot"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	cfg := linkConfig(t, seeds, dseeds, `    rename: "m.{topic}"`)
	cfg.Links[0].Topics.IncludeRE = append(cfg.Links[0].Topics.IncludeRE, regexp.MustCompile(`^(?:slot)$`))
	first := produce(t, seeds, "slot", 2, 20, "a")
	_, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, first, readAll(t, dseeds, "m.slot", len(first)), "m.slot")
	require.NoError(t, stop())
	more := produce(t, seeds, "slot", 2, 5, "b")
	_, stop = runLink(t, cfg, fastOpts)
	requireMirrored(t, append(first, more...), readAll(t, dseeds, "m.slot", len(first)+len(more)), "m.slot")
	require.NoError(t, stop())
}
