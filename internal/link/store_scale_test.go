package link

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestRealKafkaCheckpointReadAtScale fills a real cluster's checkpoint
// topic with the checkpoints of a fleet (1,000 sites × 5 links, 12
// partitions each, two session generations, plus a foreign transaction
// left open on every partition), then loads the checkpoints of links the
// way a starting session does and checks that each gets exactly its own
// latest set. It logs the read times (median of 5); BENCHMARKS.md quotes
// them (make bench-checkpoints).
func TestRealKafkaCheckpointReadAtScale(t *testing.T) {
	c := testbed.StartKafka(t, testbed.Options{Name: "checkpoints"})
	const (
		sites, linksPerSite, parts = 1000, 5, 12
		topic                      = "__edgelink.checkpoints"
	)
	ctx := t.Context()
	allSlots := make([]int, config.DefaultSlots)
	for i := range allSlots {
		allSlots[i] = i
	}
	cl, err := c.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	st, err := openStore(ctx, cl, topic, Identity{}, config.DefaultSlots, discard)
	require.NoError(t, err)
	require.EqualValues(t, CheckpointPartitions, st.partitions)

	ids := make([]Identity, 0, sites*linksPerSite)
	for s := range sites {
		for l := range linksPerSite {
			ids = append(ids, Identity{Site: fmt.Sprintf("site-%04d", s), Link: fmt.Sprintf("link-%d", l)})
		}
	}
	// Twenty writers, each committing the checkpoints of its share of the
	// links in transactions of 50 links, generation 1 then 2.
	began := time.Now()
	const writers = 20
	var g errgroup.Group
	for w := range writers {
		share := ids[w*len(ids)/writers : (w+1)*len(ids)/writers]
		g.Go(func() error { return fill(ctx, c, topic, w, share, parts) })
	}
	require.NoError(t, g.Wait())
	written := len(ids) * parts * 2
	// A site whose WAN died mid-commit: its transaction stays open on
	// every partition.
	foreign, err := c.Client(kgo.TransactionalID("stuck-site"), kgo.TransactionTimeout(10*time.Minute), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer foreign.Close()
	require.NoError(t, foreign.BeginTransaction())
	for p := range int32(CheckpointPartitions) {
		foreign.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Key: []byte("stuck:link/t/0"), Value: []byte(`{"next":1}`)}, nil)
	}
	require.NoError(t, foreign.Flush(ctx))
	t.Logf("wrote %d checkpoint records of %d links in %s", written, len(ids), time.Since(began).Round(time.Millisecond))

	var took []time.Duration
	for i := range 5 {
		id := ids[(i*977+13)%len(ids)]
		s := &store{topic: topic, id: id, partitions: CheckpointPartitions, partition: id.partitionOf(CheckpointPartitions), slots: config.DefaultSlots}
		start := time.Now()
		lctx, cancel := context.WithTimeout(ctx, time.Minute)
		// A starting session's clients: the reader is built inside load.
		rcl, err := c.Client()
		require.NoError(t, err)
		bySlot, err := s.load(lctx, loadOptions{client: []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...)}, cl: rcl, adm: kadm.NewClient(rcl), source: "edge-" + id.Site, timeout: time.Minute}, allSlots)
		cancel()
		d := time.Since(start)
		rcl.Close()
		require.NoError(t, err)
		took = append(took, d)
		got := make(map[tp]checkpoint)
		for _, sv := range bySlot {
			require.EqualValues(t, 3, sv.gen)
			require.Equal(t, fmt.Sprintf("partition %d", s.partition), sv.from)
			maps.Copy(got, sv.checkpoints)
		}
		require.Len(t, got, parts, "link %s", id)
		for p := range int32(parts) {
			require.Equal(t, 2000+int64(p), got[tp{"sensors.temp", p}].Next, "link %s partition %d", id, p)
		}
		t.Logf("load %d: link %s, partition %d of %d: %s", i+1, id, s.partition, CheckpointPartitions, d.Round(time.Millisecond))
	}
	slices.Sort(took)
	msg := fmt.Sprintf("checkpoint read at start-up with %d links' checkpoints present: median %s (min %s, max %s) of 5",
		len(ids), took[2].Round(time.Millisecond), took[0].Round(time.Millisecond), took[4].Round(time.Millisecond))
	// A link with no checkpoints anywhere reads its partition and partition 0.
	fresh := Identity{Site: "site-new", Link: "link-0"}
	s := &store{topic: topic, id: fresh, partitions: CheckpointPartitions, partition: fresh.partitionOf(CheckpointPartitions), slots: config.DefaultSlots}
	rcl, err := c.Client()
	require.NoError(t, err)
	defer rcl.Close()
	start := time.Now()
	got, err := s.load(ctx, loadOptions{client: []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...)}, cl: rcl, adm: kadm.NewClient(rcl), source: "edge-new", timeout: time.Minute}, allSlots)
	require.NoError(t, err)
	for _, sv := range got {
		require.Empty(t, sv.checkpoints)
	}
	msg += fmt.Sprintf("; a new link's first start (no checkpoints of its own; reads its partition and partition 0): %s", time.Since(start).Round(time.Millisecond))
	t.Log(msg)
	if f := os.Getenv("EDGELINK_BENCH_OUT"); f != "" {
		require.NoError(t, os.WriteFile(f, []byte(msg+"\n"), 0o644))
	}
}

// fill commits the checkpoints of ids, generation 1 then 2, in
// transactions of 50 links.
func fill(ctx context.Context, c *testbed.Cluster, topic string, w int, ids []Identity, parts int32) error {
	tx, err := c.Client(kgo.TransactionalID(fmt.Sprintf("fill-%d", w)), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return err
	}
	defer tx.Close()
	for gen := int64(1); gen <= 2; gen++ {
		for chunk := range slices.Chunk(ids, 50) {
			if err := tx.BeginTransaction(); err != nil {
				return err
			}
			var recs []*kgo.Record
			for _, id := range chunk {
				st := &store{topic: topic, id: id, partitions: CheckpointPartitions, partition: id.partitionOf(CheckpointPartitions), slots: config.DefaultSlots}
				for i := range config.DefaultSlots {
					s := slotStore{store: st, slot: i, gen: gen}
					recs = append(recs, s.markRecord("fill"))
					for p := range parts {
						if k := (tp{"sensors.temp", p}); slotOf(k, st.slots) == i {
							recs = append(recs, s.checkpointRecord(k, checkpoint{Next: gen*1000 + int64(p), Source: "edge-" + id.Site}))
						}
					}
				}
			}
			if err := tx.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return err
			}
			if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
				return err
			}
		}
	}
	return nil
}
