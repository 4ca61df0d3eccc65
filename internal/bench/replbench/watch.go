package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// watcher follows a copy at the destination without reading it whole: it
// lists the last stable offsets of the mirror topic and, for a partition
// that holds enough offsets, reads only its last records. A partition is
// complete when its last committed record is the last of the source
// partition (keys are the record's index in its partition). It costs the
// destination broker a few small requests per poll, so the replicator under
// test keeps the machine to itself.
type watcher struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string
	want  map[int32]int64

	id     [16]byte
	leader map[int32]int32
	done   map[int32]bool
	// codec is the compression of the last data batch seen at the tail.
	codec string
}

func newWatcher(cl *kgo.Client, topic string, want map[int32]int64) *watcher {
	return &watcher{cl: cl, adm: kadm.NewClient(cl), topic: topic, want: want, done: make(map[int32]bool)}
}

// poll reports whether any committed record has arrived and whether every
// partition is complete.
func (w *watcher) poll(ctx context.Context) (started, complete bool, err error) {
	if w.leader == nil {
		ok, err := w.resolve(ctx)
		if err != nil || !ok {
			return false, false, err
		}
	}
	offs, err := w.adm.ListCommittedOffsets(ctx, w.topic)
	if err != nil {
		return false, false, fmt.Errorf("list committed offsets of %s: %w", w.topic, err)
	}
	for p, n := range w.want {
		o, ok := offs.Lookup(w.topic, p)
		if !ok || o.Err != nil {
			if o.Err != nil && !retriable(o.Err) {
				return false, false, fmt.Errorf("list committed offsets of %s/%d: %w", w.topic, p, o.Err)
			}
			continue
		}
		if o.Offset > 0 {
			started = true
		}
		if w.done[p] || o.Offset < n {
			continue
		}
		last, ok, err := w.tailKey(ctx, p, o.Offset)
		if err != nil {
			return started, false, err
		}
		if ok && last == n-1 {
			w.done[p] = true
		}
	}
	for p, n := range w.want {
		if n == 0 {
			w.done[p] = true
		}
	}
	return started, len(w.done) == len(w.want), nil
}

// resolve finds the topic's id and partition leaders once the topic exists
// with all its partitions.
func (w *watcher) resolve(ctx context.Context) (bool, error) {
	tds, err := w.adm.ListTopics(ctx, w.topic)
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", w.topic, err)
	}
	td, ok := tds[w.topic]
	if !ok || td.Err != nil {
		if td.Err != nil && !retriable(td.Err) {
			return false, fmt.Errorf("describe %s: %w", w.topic, td.Err)
		}
		return false, nil
	}
	if len(td.Partitions) < len(w.want) {
		return false, nil
	}
	leader := make(map[int32]int32, len(td.Partitions))
	for p, pd := range td.Partitions {
		if pd.Leader < 0 {
			return false, nil
		}
		leader[p] = pd.Leader
	}
	w.id, w.leader = td.ID, leader
	return true, nil
}

// tailKey reads the last committed records of partition p below lso and
// returns the key of the last one.
func (w *watcher) tailKey(ctx context.Context, p int32, lso int64) (int64, bool, error) {
	start := max(lso-4, 0) // the last record, and a commit marker after it
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = 64 << 20
	req.IsolationLevel = 1
	req.SessionID = 0
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = w.topic, w.id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = p
	rp.FetchOffset = start
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	rp.PartitionMaxBytes = 32 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, w.cl.Broker(int(w.leader[p])))
	if err != nil {
		return 0, false, fmt.Errorf("fetch tail of %s/%d: %w", w.topic, p, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, false, fmt.Errorf("fetch tail of %s/%d: %w", w.topic, p, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, false, nil
	}
	part := &resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
		if retriable(err) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("fetch tail of %s/%d: %w", w.topic, p, err)
	}
	if c := batchCodec(part.RecordBatches); c != "" {
		w.codec = c
	}
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset: start, IsolationLevel: kgo.ReadCommitted(), Topic: w.topic, Partition: p,
	}, part, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return 0, false, fmt.Errorf("decode tail of %s/%d: %w", w.topic, p, fp.Err)
	}
	var (
		last  int64
		found bool
	)
	for _, r := range fp.Records {
		if r.Offset < lso && len(r.Key) == keySize {
			last, found = int64(binary.BigEndian.Uint64(r.Key)), true
		}
	}
	return last, found, nil
}

// batchCodec returns the compression of the last data batch in raw record
// batches, or "" when there is none.
func batchCodec(raw []byte) string {
	codec := ""
	for len(raw) >= 23 {
		n := int(binary.BigEndian.Uint32(raw[8:12])) + 12
		if n > len(raw) {
			break // a partial batch at the end of the response
		}
		attrs := binary.BigEndian.Uint16(raw[21:23])
		if raw[16] == 2 && attrs&0x20 == 0 { // magic 2, not a control batch
			codec = [...]string{"none", "gzip", "snappy", "lz4", "zstd", "?", "?", "?"}[attrs&7]
		}
		raw = raw[n:]
	}
	return codec
}

// retriable reports whether err means "not there yet" (a topic being
// created or a leader being elected) rather than a real failure.
func retriable(err error) bool {
	var ke *kerr.Error
	return isUnknownTopic(err) || (errors.As(err, &ke) && ke.Retriable)
}

// tally is what a full read of a copy found.
type tally struct {
	records, bytes int64
	// lost counts keys that never arrived, dups records whose key arrived
	// before, reordered records that came after a later key.
	lost, dups, reordered int64
}

func (t tally) String() string {
	return fmt.Sprintf("%d records, %d lost, %d duplicated, %d reordered", t.records, t.lost, t.dups, t.reordered)
}

// verifyCopy reads every committed record of topic and checks it against
// the dataset: each partition must hold keys 0..n-1 in order.
func verifyCopy(ctx context.Context, seeds []string, topic string, want map[int32]int64) (tally, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(metadataAge))
	if err != nil {
		return tally{}, fmt.Errorf("create client: %w", err)
	}
	defer admCl.Close()
	offs, err := kadm.NewClient(admCl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return tally{}, fmt.Errorf("list committed offsets of %s: %w", topic, err)
	}
	lso := make(map[int32]int64)
	parts := make(map[int32]kgo.Offset)
	for p := range want {
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil {
			return tally{}, fmt.Errorf("list committed offsets of %s/%d: %w", topic, p, o.Err)
		}
		lso[p] = o.Offset
		if o.Offset > 0 {
			parts[p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(metadataAge),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		return tally{}, fmt.Errorf("create consumer: %w", err)
	}
	defer cl.Close()
	var t tally
	next := make(map[int32]int64)
	lastOff := make(map[int32]int64)
	for p := range want {
		lastOff[p] = -1
	}
	// reached: every partition read up to its last stable offset. A read
	// ending one offset short may stop before a commit marker or before a
	// record, so it waits briefly for more before it counts as the end.
	reached := func(slack int64) bool {
		for p, end := range lso {
			if end > 0 && lastOff[p] < end-1-slack {
				return false
			}
		}
		return true
	}
	for !reached(0) {
		wait := 5 * time.Minute
		if reached(1) {
			wait = time.Second
		}
		pctx, pcancel := context.WithTimeout(ctx, wait)
		fs := cl.PollFetches(pctx)
		pcancel()
		if err := ctx.Err(); err != nil {
			return t, fmt.Errorf("read %s: %w (read %s)", topic, err, t)
		}
		if fs.NumRecords() == 0 && reached(1) {
			break
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return t, fmt.Errorf("read %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			lastOff[r.Partition] = r.Offset
			t.records++
			t.bytes += int64(len(r.Key) + len(r.Value))
			if len(r.Key) != keySize {
				t.dups++ // not one of ours
				return
			}
			k := int64(binary.BigEndian.Uint64(r.Key))
			switch n := next[r.Partition]; {
			case k == n:
				next[r.Partition]++
			case k < n:
				t.dups++
			default:
				t.reordered++
				t.lost += k - n
				next[r.Partition] = k + 1
			}
		})
	}
	for p, n := range want {
		t.lost += max(n-next[p], 0)
	}
	return t, nil
}
