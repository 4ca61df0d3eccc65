package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/testbed"
)

// sourceTopic is the topic the bench loads and every replicator copies.
const sourceTopic = "orders"

// dataset describes the source topic after the load.
type dataset struct {
	topic      string
	partitions int
	// committed, aborted and markers count the source's offsets: records
	// of committed transactions, records of aborted ones, and transaction
	// markers (one per partition a transaction touched).
	committed, aborted, markers int
	// txCommitted and txAborted count the transactions.
	txCommitted, txAborted int
	// ends are the partitions' end offsets (no transaction is open: the
	// last stable offsets too).
	ends []int64
	// offsetOf maps a record's value, unique, to its source offset.
	offsetOf map[string]int64
	// example is one record's value, for the report.
	example string
	took    time.Duration
}

// value is the value of the load's seq-th record, written to partition p:
// unique, so that any copy of it tells which source record it is.
func value(p int32, seq int64) string { return fmt.Sprintf("p%02d-%09d", p, seq) }

// load creates the topic and writes transactions to it from o.producers
// transactional producers at once, each of 1 to o.maxTxn records spread
// over the partitions at random, o.abortShare of them aborted, until
// o.records records are committed; then one last aborted transaction
// writes a record to every partition, so that every partition ends with
// aborted records and a marker (a quiet topic's end is where a caught-up
// group's offset lands). It then reads the topic back to map values to
// offsets.
func load(ctx context.Context, c *testbed.Cluster, o options) (*dataset, error) {
	adm, err := c.Client()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	resp, err := kadm.NewClient(adm).CreateTopic(ctx, int32(o.partitions), 1, nil, sourceTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", sourceTopic, err)
	}
	var (
		seq, committed       atomic.Int64
		txCommitted, aborted atomic.Int64
	)
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for w := range o.producers {
		g.Go(func() error {
			rng := rand.New(rand.NewPCG(o.seed, uint64(w)+1))
			cl, err := producer(c, w)
			if err != nil {
				return err
			}
			defer cl.Close()
			for committed.Load() < int64(o.records) {
				n := 1 + rng.IntN(o.maxTxn)
				abort := rng.Float64() < o.abortShare
				parts := make([]int32, n)
				for i := range parts {
					parts[i] = int32(rng.IntN(o.partitions))
				}
				if err := transaction(gctx, cl, parts, &seq, abort); err != nil {
					return fmt.Errorf("load %s: %w", sourceTopic, err)
				}
				if abort {
					aborted.Add(1)
				} else {
					committed.Add(int64(n))
					txCommitted.Add(1)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cl, err := producer(c, o.producers)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	all := make([]int32, o.partitions)
	for p := range all {
		all[p] = int32(p)
	}
	if err := transaction(ctx, cl, all, &seq, true); err != nil {
		return nil, fmt.Errorf("load %s: %w", sourceTopic, err)
	}
	d := &dataset{
		topic: sourceTopic, partitions: o.partitions, took: time.Since(began),
		txCommitted: int(txCommitted.Load()), txAborted: int(aborted.Load()) + 1,
	}
	if err := d.readBack(ctx, c); err != nil {
		return nil, err
	}
	if d.committed != int(committed.Load()) {
		return nil, fmt.Errorf("read back %d committed records of %s, want %d", d.committed, sourceTopic, committed.Load())
	}
	fmt.Fprintf(os.Stderr, "loaded %s: %d committed records, %d aborted, %d markers (%d transactions committed, %d aborted) in %s\n",
		sourceTopic, d.committed, d.aborted, d.markers, d.txCommitted, d.txAborted, d.took.Round(time.Millisecond))
	return d, nil
}

// producer is a transactional producer of the load, the w-th.
func producer(c *testbed.Cluster, w int) (*kgo.Client, error) {
	return c.Client(
		kgo.TransactionalID(fmt.Sprintf("groupbench-load-%d", w)),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(sourceTopic),
		kgo.ProducerLinger(0),
	)
}

// transaction writes one record to each of parts, in one transaction that
// it commits or aborts.
func transaction(ctx context.Context, cl *kgo.Client, parts []int32, seq *atomic.Int64, abort bool) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var (
		mu       sync.Mutex
		firstErr error
	)
	for _, p := range parts {
		r := &kgo.Record{Partition: p, Value: []byte(value(p, seq.Add(1)))}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				if firstErr == nil {
					firstErr = err
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	err := firstErr
	mu.Unlock()
	end := kgo.TryCommit
	if abort || err != nil {
		end = kgo.TryAbort
	}
	if eerr := cl.EndTransaction(ctx, end); eerr != nil {
		return fmt.Errorf("end transaction: %w", eerr)
	}
	return err
}

// readBack reads the loaded topic once (committed records and markers) to
// count its offsets and map every value to its offset.
func (d *dataset) readBack(ctx context.Context, c *testbed.Cluster) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	if d.ends, err = endOffsets(ctx, cl, d.topic, d.partitions); err != nil {
		return err
	}
	d.offsetOf = make(map[string]int64)
	return readAll(ctx, c, d.topic, d.ends, func(r *kgo.Record) error {
		if r.Attrs.IsControl() {
			d.markers++
			return nil
		}
		v := string(r.Value)
		if _, dup := d.offsetOf[v]; dup {
			return fmt.Errorf("value %q twice at the source", v)
		}
		if d.example == "" {
			d.example = v
		}
		d.offsetOf[v] = r.Offset
		d.committed++
		return nil
	}, func() {
		var total int64
		for _, e := range d.ends {
			total += e
		}
		d.aborted = int(total) - d.committed - d.markers
	})
}

// endOffsets lists the last stable offsets of the topic's partitions.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string, partitions int) ([]int64, error) {
	listed, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	ends := make([]int64, partitions)
	for p := range ends {
		lo, ok := listed.Lookup(topic, int32(p))
		switch {
		case !ok:
			return nil, fmt.Errorf("list end offsets of %s: no partition %d", topic, p)
		case lo.Err != nil:
			return nil, fmt.Errorf("list end offsets of %s[%d]: %w", topic, p, lo.Err)
		}
		ends[p] = lo.Offset
	}
	return ends, nil
}

// readAll reads every partition of topic from its start to ends (read
// committed, markers included) and calls each with every record, in order
// within a partition, then done.
func readAll(ctx context.Context, c *testbed.Cluster, topic string, ends []int64, each func(*kgo.Record) error, done func()) error {
	parts := make(map[int32]kgo.Offset)
	left := 0
	for p, e := range ends {
		if e > 0 {
			parts[int32(p)] = kgo.NewOffset().AtStart()
			left++
		}
	}
	if left == 0 {
		done()
		return nil
	}
	cl, err := c.Client(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(32<<20),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for left > 0 {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return fmt.Errorf("read %s: %d partitions not read to their end: %w", topic, left, err)
		}
		if err := fs.Err(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		var eerr error
		fs.EachRecord(func(r *kgo.Record) {
			if eerr != nil || r.Offset >= ends[r.Partition] {
				return
			}
			if eerr = each(r); eerr != nil {
				return
			}
			if r.Offset == ends[r.Partition]-1 {
				left--
			}
		})
		if eerr != nil {
			return eerr
		}
	}
	done()
	return nil
}
