package verify_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// TestRealKafkaVerifyTransactions checks a hand-made mirror of a source
// written by a transactional producer that commits some transactions and
// aborts others, on two real Kafka clusters.
func TestRealKafkaVerifyTransactions(t *testing.T) {
	clusters := testbed.StartKafkaClusters(t, testbed.Options{Name: "verify-source"}, testbed.Options{Name: "verify-destination"})
	ctx := t.Context()
	const partitions = 3
	client := func(c *testbed.Cluster, opts ...kgo.Opt) *kgo.Client {
		cl, err := c.Client(append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		return cl
	}
	src, dst := client(clusters[0]), client(clusters[1])
	srcAdm, dstAdm := kadm.NewClient(src), kadm.NewClient(dst)
	_, err := srcAdm.CreateTopic(ctx, partitions, 1, nil, "events")
	require.NoError(t, err)
	_, err = dstAdm.CreateTopic(ctx, partitions, 1, nil, "mirror.events")
	require.NoError(t, err)
	md, err := srcAdm.Metadata(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, md.Cluster)

	// Ten transactions, every third aborted, with plain records between.
	tx := client(clusters[0], kgo.TransactionalID("verify-test"))
	var committed, aborted []*kgo.Record
	for n := range 10 {
		var batch []*kgo.Record
		for p := range int32(partitions) {
			for i := range 5 {
				r := &kgo.Record{
					Topic: "events", Partition: p, Key: fmt.Appendf(nil, "k%d-%d", n, i), Value: fmt.Appendf(nil, "txn %d record %d", n, i),
					Headers: []kgo.RecordHeader{{Key: "txn", Value: fmt.Appendf(nil, "%d", n)}},
				}
				if i == 0 {
					r.Key = nil
				}
				if i == 1 {
					r.Value = nil
				}
				batch = append(batch, r)
			}
		}
		require.NoError(t, tx.BeginTransaction())
		require.NoError(t, tx.ProduceSync(ctx, batch...).FirstErr())
		commit := n%3 != 2
		require.NoError(t, tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)))
		if commit {
			committed = append(committed, batch...)
		} else {
			aborted = append(aborted, batch...)
		}
		plain := &kgo.Record{Topic: "events", Partition: int32(n % partitions), Value: []byte{}}
		require.NoError(t, src.ProduceSync(ctx, plain).FirstErr())
		committed = append(committed, plain)
	}
	require.Len(t, aborted, 45)
	// Transaction markers are written after EndTransaction returns: wait
	// for the last stable offsets to reach the high watermarks.
	testbed.Eventually(t, 30*time.Second, func() error {
		lso, err := srcAdm.ListCommittedOffsets(ctx, "events")
		if err != nil {
			return err
		}
		hwm, err := srcAdm.ListEndOffsets(ctx, "events")
		if err != nil {
			return err
		}
		for p := range int32(partitions) {
			l, _ := lso.Lookup("events", p)
			h, _ := hwm.Lookup("events", p)
			if l.Offset != h.Offset {
				return fmt.Errorf("partition %d: last stable offset %d, high watermark %d", p, l.Offset, h.Offset)
			}
		}
		return nil
	})

	// A clean mirror, in source order per partition.
	slices.SortStableFunc(committed, func(a, b *kgo.Record) int { return int(a.Partition - b.Partition) })
	mirror := func(r *kgo.Record) *kgo.Record {
		return &kgo.Record{
			Topic: "mirror.events", Partition: r.Partition, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
			Headers: append(slices.Clone(r.Headers), provenance.Origin{ClusterID: md.Cluster, Site: "plant-1", Partition: r.Partition, Offset: r.Offset}.Header()),
		}
	}
	var copies []*kgo.Record
	for _, r := range committed {
		copies = append(copies, mirror(r))
	}
	require.NoError(t, dst.ProduceSync(ctx, copies...).FirstErr())

	opts := verify.Options{Source: src, Destination: dst, Topics: []verify.Pair{{Source: "events", Destination: "mirror.events"}}, Timeout: time.Minute}
	rep, err := verify.Check(ctx, opts)
	require.NoError(t, err)
	t.Logf("report:\n%s", rep)
	require.True(t, rep.OK(), rep.String())
	require.Equal(t, counts{}, countsOf(rep))
	require.EqualValues(t, len(committed), rep.SourceRecords)
	require.EqualValues(t, len(committed), rep.DestinationRecords)
	require.Equal(t, md.Cluster, rep.SourceClusterID)

	// One duplicate.
	require.NoError(t, dst.ProduceSync(ctx, mirror(committed[len(committed)-1])).FirstErr())
	rep, err = verify.Check(ctx, opts)
	require.NoError(t, err)
	t.Logf("report:\n%s", rep)
	require.Equal(t, counts{Duplicated: 1}, countsOf(rep))
	require.False(t, rep.OK())

	// And a copy of a record of an aborted transaction.
	require.NoError(t, dst.ProduceSync(ctx, mirror(aborted[7])).FirstErr())
	rep, err = verify.Check(ctx, opts)
	require.NoError(t, err)
	t.Logf("report:\n%s", rep)
	require.Equal(t, counts{Duplicated: 1, Phantom: 1}, countsOf(rep))
	require.Equal(t, aborted[7].Offset, rep.Examples[1].SourceOffset)
}
