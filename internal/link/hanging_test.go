package link_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// TestRealKafkaHangingTransactionIsSettled: a destination broker stopped in
// the middle of a commit can leave a slot's transaction without markers
// (its coordinator counts it complete, its partitions hold records no
// marker follows), and the next marker of the same producer id, of any
// epoch, decides their fate. Such a transaction is made here by writing
// transactional records under the slot's producer id without adding their
// partitions to a transaction (the broker's verification is off). The
// restarted link must settle it as its checkpoints account for it: first
// a hanging transaction holding copies and the checkpoint that counts them
// (aborted: copied again exactly once), then hanging copies whose
// checkpoint was committed (committed: not copied again, not lost).
func TestRealKafkaHangingTransactionIsSettled(t *testing.T) {
	c := testbed.StartKafkaClusters(t, testbed.Options{Name: "hanging", Props: map[string]string{
		"transaction.partition.verification.enable": "false",
	}})[0]
	seeds := c.Bootstrap()
	ctx := t.Context()
	cl := mustClient(t, seeds)
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, "sensors.a")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	md, err := adm.BrokerMetadata(ctx)
	require.NoError(t, err)
	cfg := linkConfig(t, seeds, seeds, "    rename: \"mirror.{topic}\"\n    slots: 1\n")
	const mirror = "mirror.sensors.a"

	mirrored := func(want int64) {
		t.Helper()
		testbed.Eventually(t, time.Minute, func() error {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			rep, err := verify.Check(rctx, verify.Options{Source: cl, Destination: cl, Topics: []verify.Pair{{Source: "sensors.a", Destination: mirror}}})
			if err != nil {
				return err
			}
			if rep.Duplicated+rep.Reordered+rep.Corrupted+rep.Phantom > 0 {
				require.FailNow(t, "not exactly once", "%s", rep)
			}
			if !rep.OK() || rep.DestinationRecords != want {
				return fmt.Errorf("%d of %d mirrored: %s", rep.DestinationRecords, want, rep.Discrepancies())
			}
			return nil
		})
	}

	produce(t, seeds, "sensors.a", 1, 100, "a")
	l, stop := runLink(t, cfg, fastOpts)
	mirrored(100)
	require.NoError(t, stop())
	txnID := link.TransactionalIDOf(l, 0)
	cpKey := link.CheckpointKeyOf(l, "sensors.a", 0)

	// 1. Copies of source offsets 100-149 and the checkpoint counting them
	// (next 150), hanging.
	produce(t, seeds, "sensors.a", 1, 50, "b")
	cp := lastCheckpoint(t, cl, cpKey)
	hang(t, cl, txnID, append(copiesOf(t, cl, md.Cluster, "sensors.a", mirror, 100, 150), withNext(t, cp, 150)))
	_, stop = runLink(t, cfg, fastOpts)
	mirrored(150)
	require.NoError(t, stop())

	// 2. Copies of source offsets 150-179 hanging, while a checkpoint
	// committed beside them counts them (next 180).
	produce(t, seeds, "sensors.a", 1, 30, "c")
	copies := copiesOf(t, cl, md.Cluster, "sensors.a", mirror, 150, 180)
	hang(t, cl, txnID, copies)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer pcl.Close()
	require.NoError(t, pcl.ProduceSync(ctx, withNext(t, lastCheckpoint(t, cl, cpKey), 180)).FirstErr())
	l, stop = runLink(t, cfg, fastOpts)
	mirrored(180)
	require.NoError(t, stop())
	require.Zero(t, l.Status().Records, "the hanging copies were committed, not copied again")
}

// lastCheckpoint returns the latest committed record of the checkpoint
// topic with key: it reads every partition up to its last stable offset
// (not until the reads go quiet: a busy machine can be slower than that).
func lastCheckpoint(t *testing.T, cl *kgo.Client, key []byte) *kgo.Record {
	t.Helper()
	const topic = "__edgelink.checkpoints"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	require.NoError(t, err)
	todo := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			todo[o.Partition] = o.Offset
		}
	})
	rd, err := kgo.NewClient(kgo.SeedBrokers(seedsOf(cl)...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer rd.Close()
	var last *kgo.Record
	for len(todo) > 0 {
		fs := rd.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading %s: partitions %v not read to their ends", topic, todo)
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() && string(r.Key) == string(key) {
				last = r
			}
			if end, ok := todo[r.Partition]; ok && r.Offset+1 >= end {
				delete(todo, r.Partition)
			}
		})
	}
	require.NotNil(t, last, "no checkpoint with key %s", key)
	return last
}

func seedsOf(cl *kgo.Client) []string {
	return cl.OptValue(kgo.SeedBrokers).([]string)
}

// withNext returns a copy of a checkpoint record that says next.
func withNext(t *testing.T, cp *kgo.Record, next int64) *kgo.Record {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(cp.Value, &v))
	v["next"] = next
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return &kgo.Record{Topic: cp.Topic, Partition: cp.Partition, Key: cp.Key, Value: b}
}

// copiesOf returns mirror copies of source offsets [from, to) of partition
// 0 of src, with the provenance header the link writes.
func copiesOf(t *testing.T, cl *kgo.Client, cluster, src, mirror string, from, to int64) []*kgo.Record {
	t.Helper()
	enc := provenance.NewEncoder(cluster, "plant-1")
	var out []*kgo.Record
	for _, r := range readAll(t, seedsOf(cl), src, int(to)) {
		if r.Offset < from || r.Offset >= to {
			continue
		}
		hdrs := append(append([]kgo.RecordHeader(nil), r.Headers...), kgo.RecordHeader{Key: provenance.Key, Value: enc.Append(nil, r.Partition, r.Offset)})
		out = append(out, &kgo.Record{Topic: mirror, Partition: 0, Key: r.Key, Value: r.Value, Headers: hdrs, Timestamp: r.Timestamp})
	}
	require.Len(t, out, int(to-from))
	return out
}

// hang writes recs as transactional records of the producer of txnID, at a
// new epoch, without adding their partitions to a transaction: no marker
// will follow them unless the producer id writes one.
func hang(t *testing.T, cl *kgo.Client, txnID string, recs []*kgo.Record) {
	t.Helper()
	ctx := t.Context()
	p, err := kgo.NewClient(kgo.SeedBrokers(seedsOf(cl)...), kgo.TransactionalID(txnID), kgo.MaxVersions(link.ExplicitTxnVersions()))
	require.NoError(t, err)
	defer p.Close()
	pid, epoch, err := p.ProducerID(ctx)
	require.NoError(t, err)
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = &txnID, -1, 10000
	byTP := make(map[string]map[int32][]*kgo.Record)
	for _, r := range recs {
		if byTP[r.Topic] == nil {
			byTP[r.Topic] = make(map[int32][]*kgo.Record)
		}
		byTP[r.Topic][r.Partition] = append(byTP[r.Topic][r.Partition], r)
	}
	for topic, parts := range byTP {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		for p, rs := range parts {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = p, transactionalBatch(pid, epoch, rs)
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	pr, err := req.RequestWith(ctx, p)
	require.NoError(t, err)
	for _, rt := range pr.Topics {
		for _, rp := range rt.Partitions {
			require.NoError(t, kerr.ErrorForCode(rp.ErrorCode), "%s[%d]", rt.Topic, rp.Partition)
		}
	}
	// The records hang: the partitions' last stable offset stops at them.
	lso, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, recs[0].Topic)
	require.NoError(t, err)
	end, err := kadm.NewClient(cl).ListEndOffsets(ctx, recs[0].Topic)
	require.NoError(t, err)
	o, _ := lso.Lookup(recs[0].Topic, recs[0].Partition)
	e, _ := end.Lookup(recs[0].Topic, recs[0].Partition)
	require.Less(t, o.Offset, e.Offset, "a hanging transaction")
}

// transactionalBatch encodes recs as one transactional record batch of a
// producer, from sequence 0.
func transactionalBatch(pid int64, epoch int16, recs []*kgo.Record) []byte {
	base := recs[0].Timestamp.UnixMilli()
	if recs[0].Timestamp.IsZero() {
		base = time.Now().UnixMilli()
	}
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{TimestampDelta64: max(r.Timestamp.UnixMilli()-base, 0), OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		enc := rec.AppendTo(nil)[1:] // encoded with Length 0 (one byte)
		body = binary.AppendVarint(body, int64(len(enc)))
		body = append(body, enc...)
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: 0x10, // transactional
		LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: base, MaxTimestamp: base,
		ProducerID: pid, ProducerEpoch: epoch, FirstSequence: 0, NumRecords: int32(len(recs)), Records: body,
	}
	b := rb.AppendTo(nil)
	rb.Length = int32(len(b) - 12)
	b = rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[17:21], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}
