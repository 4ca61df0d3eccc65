package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// latencyPlan is a fixed-rate load for measuring end-to-end latency.
type latencyPlan struct {
	// rate is records per second, spread over the partitions.
	rate int
	// warmup is sent first and not measured; duration is measured after it.
	warmup, duration time.Duration
}

// latencies is what a latency measurement found.
type latencies struct {
	p50, p99, max time.Duration
	// sent counts measured records, missing those that never arrived.
	sent, missing int
}

// measureLatency writes records at a fixed rate to src (a topic the
// replicator copies to dst), each value starting with its send time, and
// reads dst at the destination with read_committed: a record's latency is
// its arrival at the destination consumer minus its send time, producer
// and replicator included. Both ends run on this machine, so one clock
// serves. src is new to the replicator, which finds it by its periodic
// topic discovery; the warm-up starts when the first record arrives, and
// only records sent after it count.
func measureLatency(ctx context.Context, srcSeeds, dstSeeds []string, src, dst string, p profile, partitions int, plan latencyPlan) (latencies, error) {
	comp := kgo.NoCompression()
	if p.compression == "zstd" {
		comp = kgo.ZstdCompression()
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(srcSeeds...), kgo.MetadataMinAge(metadataAge),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(comp))
	if err != nil {
		return latencies{}, fmt.Errorf("create latency producer: %w", err)
	}
	defer prod.Close()
	if err := waitTopic(ctx, dstSeeds, dst, partitions, 2*time.Minute); err != nil {
		return latencies{}, fmt.Errorf("wait for the replicator to mirror %s: %w", src, err)
	}
	parts := make(map[int32]kgo.Offset, partitions)
	for i := range partitions {
		parts[int32(i)] = kgo.NewOffset().AtStart()
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(dstSeeds...), kgo.MetadataMinAge(metadataAge),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{dst: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return latencies{}, fmt.Errorf("create latency consumer: %w", err)
	}
	defer cons.Close()

	// Values: 8 bytes of send time (unix nanoseconds), then filler.
	filler := valuePool(max(p.size, 8), 1)[0][8:]
	var (
		mu sync.Mutex
		// measuredFrom is zero until the first record arrives.
		measuredFrom time.Time
		got          []time.Duration
		seen         = make(map[int64]bool)
		prodErr      error
		readErr      error
	)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			fs := cons.PollFetches(readCtx)
			now := time.Now()
			if readCtx.Err() != nil {
				return
			}
			mu.Lock()
			fs.EachError(func(_ string, _ int32, err error) {
				if readErr == nil && !errors.Is(err, context.Canceled) {
					readErr = err
				}
			})
			if measuredFrom.IsZero() && fs.NumRecords() > 0 {
				measuredFrom = now.Add(plan.warmup)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < 8 || len(r.Key) != keySize {
					return
				}
				i := int64(binary.BigEndian.Uint64(r.Key))
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))
				if seen[i] || sent.Before(measuredFrom) {
					return
				}
				seen[i] = true
				got = append(got, now.Sub(sent))
			})
			mu.Unlock()
		}
	})
	stop := func() {
		stopReading()
		wg.Wait()
	}

	// Send in 100 slices a second, each on time against the start, so that
	// a slow send does not lower the rate, until the measured time is over.
	began := time.Now()
	firstBy := began.Add(2 * time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sent, measured := 0, 0
	for {
		select {
		case <-ctx.Done():
			stop()
			return latencies{}, ctx.Err()
		case <-tick.C:
		}
		mu.Lock()
		from := measuredFrom
		mu.Unlock()
		now := time.Now()
		if from.IsZero() && now.After(firstBy) {
			stop()
			return latencies{}, fmt.Errorf("no record written to %s reached %s within %s", src, dst, firstBy.Sub(began))
		}
		if !from.IsZero() && now.After(from.Add(plan.duration)) {
			break
		}
		due := int(now.Sub(began).Seconds() * float64(plan.rate))
		for ; sent < due; sent++ {
			key := make([]byte, keySize)
			binary.BigEndian.PutUint64(key, uint64(sent))
			val := make([]byte, 8, 8+len(filler))
			at := time.Now()
			binary.BigEndian.PutUint64(val, uint64(at.UnixNano()))
			if !from.IsZero() && !at.Before(from) {
				measured++
			}
			prod.Produce(ctx, &kgo.Record{Topic: src, Partition: int32(sent % partitions), Key: key, Value: append(val, filler...)},
				func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						if prodErr == nil {
							prodErr = err
						}
						mu.Unlock()
					}
				})
		}
	}
	if err := prod.Flush(ctx); err != nil {
		stop()
		return latencies{}, fmt.Errorf("flush latency records: %w", err)
	}
	// Wait for the stragglers, then stop reading.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= measured || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if prodErr != nil {
		return latencies{}, fmt.Errorf("send latency records to %s: %w", src, prodErr)
	}
	if readErr != nil {
		return latencies{}, fmt.Errorf("read latency records from %s: %w", dst, readErr)
	}
	if len(got) == 0 {
		return latencies{}, fmt.Errorf("none of %d latency records reached %s", measured, dst)
	}
	slices.Sort(got)
	return latencies{
		p50: quantile(got, 0.50), p99: quantile(got, 0.99), max: got[len(got)-1],
		sent: measured, missing: max(measured-len(got), 0),
	}, nil
}

// quantile returns the q-quantile of sorted values (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// waitTopic waits until topic exists with all its partitions led.
func waitTopic(ctx context.Context, seeds []string, topic string, partitions int, timeout time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(metadataAge))
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	for {
		tds, err := adm.ListTopics(ctx, topic)
		if err == nil {
			if td, ok := tds[topic]; ok && td.Err == nil && len(td.Partitions) >= partitions {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s did not appear within %s", topic, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
