package link

import (
	"context"
	"fmt"
	"log/slog"
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
	cl, o := checkpointCluster(t)
	ctx := t.Context()
	const topic = "__edgelink.checkpoints"
	opts := func() loadOptions { return o }

	first, err := openStore(ctx, cl, topic, Identity{Site: "a", Link: "up"}, 1, discard)
	require.NoError(t, err)
	require.EqualValues(t, CheckpointPartitions, first.partitions)
	again, err := openStore(ctx, cl, topic, Identity{Site: "b", Link: "up"}, 1, discard)
	require.NoError(t, err)
	require.Equal(t, first.partitions, again.partitions)
	require.NoError(t, cl.Flush(ctx), "the layout record is written in the background")
	recs := readAllOf(t, cl, topic, 0)
	require.Len(t, recs, 1, "the layout record is written once, by the creator")
	require.Equal(t, layoutKey, string(recs[0].Key))

	// A link that committed checkpoints is found by another session.
	w := slotStore{store: first, slot: 0, gen: 1}
	require.NoError(t, cl.ProduceSync(ctx, w.checkpointRecord(tp{"alerts", 0}, checkpoint{Next: 42, Source: "edge"}), w.markRecord("test")).FirstErr())
	got, err := first.load(ctx, opts(), []int{0})
	require.NoError(t, err)
	require.EqualValues(t, 42, got[0].checkpoints[tp{"alerts", 0}].Next)
	require.Equal(t, fmt.Sprintf("partition %d", first.partition), got[0].from)
	require.EqualValues(t, 2, got[0].gen)

	// A new link finds nothing, having searched partition 0 only.
	fresh := &store{topic: topic, id: Identity{Site: "c", Link: "up"}, partitions: first.partitions, partition: Identity{Site: "c", Link: "up"}.partitionOf(first.partitions), slots: 1}
	got, err = fresh.load(ctx, opts(), []int{0})
	require.NoError(t, err)
	require.Empty(t, got[0].checkpoints)
	require.Equal(t, "none (searched partition 0)", got[0].from)

	_, err = kadm.NewClient(cl).UpdatePartitions(ctx, CheckpointPartitions+10, topic)
	require.NoError(t, err)
	grown, err := openStore(ctx, cl, topic, first.id, 1, discard)
	require.NoError(t, err)
	require.EqualValues(t, CheckpointPartitions+10, grown.partitions)
	got, err = grown.load(ctx, opts(), []int{0})
	require.NoError(t, err)
	require.EqualValues(t, 42, got[0].checkpoints[tp{"alerts", 0}].Next, "found by searching the whole topic")
	require.Contains(t, got[0].from, "searched the whole topic", "the topic grew: search everything")
	fresh.partitions = grown.partitions
	fresh.partition = fresh.id.partitionOf(grown.partitions)
	got, err = fresh.load(ctx, opts(), []int{0})
	require.NoError(t, err)
	require.Equal(t, "none (searched the whole topic)", got[0].from)
}

// TestSlotCountChangeKeepsEveryCheckpoint: checkpoints written under one
// slot count are found by the slots of another (each takes those of the
// partitions it now replicates), from the link's own partition, whichever
// slot wrote them; and a slot with a complete set reads only its partition.
func TestSlotCountChangeKeepsEveryCheckpoint(t *testing.T) {
	cl, opts := checkpointCluster(t)
	ctx := t.Context()
	const topic = "__edgelink.checkpoints"
	id := Identity{Site: "a", Link: "up"}
	three, err := openStore(ctx, cl, topic, id, 3, discard)
	require.NoError(t, err)
	want := make(map[tp]int64)
	for i := range 3 {
		w := slotStore{store: three, slot: i, gen: int64(5 + i)}
		recs := []*kgo.Record{w.markRecord("test")}
		for p := range int32(12) {
			if k := (tp{"alerts", p}); slotOf(k, 3) == i {
				want[k] = int64(100*i) + int64(p)
				recs = append(recs, w.checkpointRecord(k, checkpoint{Next: want[k], Source: "edge"}))
			}
		}
		require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
	}
	got, err := three.load(ctx, opts, []int{0, 1, 2})
	require.NoError(t, err)
	for i := range 3 {
		require.Equal(t, fmt.Sprintf("partition %d", three.partition), got[i].from, "complete sets: the link's partition only")
		require.EqualValues(t, 8, got[i].gen, "one more than the highest generation of any slot")
	}

	four, err := openStore(ctx, cl, topic, id, 4, discard)
	require.NoError(t, err)
	got, err = four.load(ctx, opts, []int{0, 1, 2, 3})
	require.NoError(t, err)
	seen := 0
	for i := range 4 {
		require.Contains(t, got[i].from, "searched", "no complete set under 4 slots yet")
		for k, cp := range got[i].checkpoints {
			require.Equal(t, i, slotOf(k, 4))
			require.Equal(t, want[k], cp.Next, "%s", k)
			seen++
		}
	}
	require.Equal(t, len(want), seen)
}

// checkpointCluster starts a cluster for a checkpoint topic and returns a
// client that writes to given partitions, and what load needs to read.
func checkpointCluster(t *testing.T) (*kgo.Client, loadOptions) {
	t.Helper()
	c := testbed.StartFake(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl, loadOptions{client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, cl: cl, adm: kadm.NewClient(cl), source: "edge", timeout: 30 * time.Second}
}

// discard drops logs.
var discard = slog.New(slog.DiscardHandler)

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

// TestUnmarkedRecordsOfAnInitialisedProducerAreAborted: a checkpoint that
// no marker follows, written by a producer under an epoch older than the
// one its initialisation gave the slot, can never commit (a hanging
// transaction after a broker restart leaves exactly that); it is dropped
// instead of blocking the slot. The same record of another producer is an
// open transaction, and a very old one lost its marker to compaction.
func TestUnmarkedRecordsOfAnInitialisedProducerAreAborted(t *testing.T) {
	id := Identity{Site: "a", Link: "up"}
	w := slotStore{store: &store{topic: "cp", id: id, partitions: 1, slots: 1}, gen: 3}
	rec := func(pid int64, epoch int16, next int64, age time.Duration) *kgo.Record {
		r := w.checkpointRecord(tp{"alerts", 0}, checkpoint{Next: next})
		r.ProducerID, r.ProducerEpoch, r.Timestamp = pid, epoch, time.Now().Add(-age)
		return r
	}
	state := func(recs ...*kgo.Record) *linkState {
		st := &linkState{cps: make(map[tp]checkpoint), marks: make(map[int]slotMark), pending: make(map[int64][]*kgo.Record)}
		for _, r := range recs {
			st.pending[r.ProducerID] = append(st.pending[r.ProducerID], r)
		}
		return st
	}

	st := state(rec(5, 98, 59295, time.Second))
	hanging := make(map[int64][]int32)
	st.unmarked(id, "cp", map[int64]int16{5: 100}, hanging)
	require.NoError(t, st.open)
	require.Empty(t, st.cps, "a hanging transaction's, which the session aborts")
	require.Equal(t, map[int64][]int32{5: {0}}, hanging, "where it hangs, for the session to abort it")

	st = state(rec(5, 98, 59295, time.Second))
	st.unmarked(id, "cp", map[int64]int16{7: 100}, nil)
	require.ErrorContains(t, st.open, "producer id 5")

	st = state(rec(5, 98, 59295, time.Second))
	st.unmarked(id, "cp", map[int64]int16{5: 98}, nil)
	require.Error(t, st.open, "the producer's own epoch: not settled by its initialisation")

	st = state(rec(5, 98, 59295, settleAfter+time.Minute))
	st.unmarked(id, "cp", nil, nil)
	require.NoError(t, st.open)
	require.EqualValues(t, 59295, st.cps[tp{"alerts", 0}].Next, "its marker was compacted away")
}

// TestSlotMarkerKeys: a slot's marker is keyed "<identity>/slot:<n>",
// which no checkpoint key can be; the key "<identity>/slot/<n>" is a
// checkpoint of a topic named "slot", or the marker of slot n as earlier
// releases keyed it, told apart by the value.
func TestSlotMarkerKeys(t *testing.T) {
	id := Identity{Site: "s", Link: "up"}
	require.Equal(t, "s:up/slot:3", string(id.slotKey(3)))
	st := &linkState{cps: make(map[tp]checkpoint), marks: make(map[int]slotMark)}
	rec := func(key, value string) *kgo.Record { return &kgo.Record{Key: []byte(key), Value: []byte(value)} }
	st.apply(id, rec("s:up/slot:3", `{"gen":4,"layout":50,"slots":6}`))
	st.apply(id, rec("s:up/slot/2", `{"gen":3,"layout":50,"slots":6,"since":"2026-01-01T00:00:00Z"}`))
	st.apply(id, rec("s:up/slot/0", `{"next":17,"gen":4}`))
	st.apply(id, rec("s:up/sensors/0", `{"next":9,"gen":4}`))
	require.Equal(t, map[int]slotMark{3: {Gen: 4, Layout: 50, Slots: 6}, 2: {Gen: 3, Layout: 50, Slots: 6, Since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}, st.marks)
	require.Equal(t, map[tp]checkpoint{{"slot", 0}: {Next: 17, Gen: 4}, {"sensors", 0}: {Next: 9, Gen: 4}}, st.cps)
}
