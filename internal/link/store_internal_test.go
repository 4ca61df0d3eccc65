package link

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

// TestLayoutRecordSparesNewLinksAFullSearch: a checkpoint topic created by
// a link carries its layout in partition 0; while the topic keeps that
// partition count, a new link reads partition 0 and its own partition,
// not the whole topic. Once the topic has grown, it searches everything.
func TestLayoutRecordSparesNewLinksAFullSearch(t *testing.T) {
	c := testbed.StartFake(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	ctx := t.Context()
	const topic = "__edgelink.checkpoints"
	opts := func() loadOptions {
		return loadOptions{client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, adm: kadm.NewClient(cl), source: "edge", timeout: 30 * time.Second}
	}

	first, err := openStore(ctx, cl, topic, Identity{Site: "a", Link: "up"})
	require.NoError(t, err)
	require.EqualValues(t, CheckpointPartitions, first.partitions)
	again, err := openStore(ctx, cl, topic, Identity{Site: "b", Link: "up"})
	require.NoError(t, err)
	require.Equal(t, first.partitions, again.partitions)
	recs := readAllOf(t, cl, topic, 0)
	require.Len(t, recs, 1, "the layout record is written once, by the creator")
	require.Equal(t, layoutKey, string(recs[0].Key))

	// A link that committed checkpoints is found by another session.
	first.gen = 1
	rec := first.checkpointRecord(tp{"alerts", 0}, checkpoint{Next: 42, Source: "edge"})
	require.NoError(t, cl.ProduceSync(ctx, rec).FirstErr())
	got, err := (&store{topic: topic, id: first.id, partitions: first.partitions, partition: first.partition}).load(ctx, opts())
	require.NoError(t, err)
	require.EqualValues(t, 42, got.checkpoints[tp{"alerts", 0}].Next)

	// A new link finds nothing, having searched partition 0 only.
	fresh := &store{topic: topic, id: Identity{Site: "c", Link: "up"}, partitions: first.partitions, partition: Identity{Site: "c", Link: "up"}.partitionOf(first.partitions)}
	got, err = fresh.load(ctx, opts())
	require.NoError(t, err)
	require.Empty(t, got.checkpoints)
	require.Equal(t, "none (searched partition 0)", got.from)

	_, err = kadm.NewClient(cl).UpdatePartitions(ctx, CheckpointPartitions+10, topic)
	require.NoError(t, err)
	grown, err := openStore(ctx, cl, topic, first.id)
	require.NoError(t, err)
	require.EqualValues(t, CheckpointPartitions+10, grown.partitions)
	got, err = grown.load(ctx, opts())
	require.NoError(t, err)
	require.EqualValues(t, 42, got.checkpoints[tp{"alerts", 0}].Next, "found by searching the whole topic")
	require.Contains(t, got.from, "searched the whole topic", "the topic grew: search everything")
	fresh.partitions = grown.partitions
	fresh.partition = fresh.id.partitionOf(grown.partitions)
	got, err = fresh.load(ctx, opts())
	require.NoError(t, err)
	require.Equal(t, "none (searched the whole topic)", got.from)
}

// readAllOf returns the records of one partition, from its start.
func readAllOf(t *testing.T, cl *kgo.Client, topic string, partition int32) []*kgo.Record {
	t.Helper()
	end, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	require.NoError(t, err)
	o, _ := end.Lookup(topic, partition)
	r, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < o.Offset {
		require.NoError(t, ctx.Err(), "read %s[%d]", topic, partition)
		out = append(out, r.PollFetches(ctx).Records()...)
	}
	return out
}
