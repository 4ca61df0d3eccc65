package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch sizes. A fetch returns at least one whole batch even when it is
// larger than the limit, so a record bigger than fetchMaxBytes is still read.
const (
	fetchMaxBytes  = 8 << 20
	fetchMaxWaitMs = 500
)

// Retry pacing for a partition read that makes no progress: after a
// broker restart, a leader change or a connection reset. The check gives up
// when a partition has made no progress for retryFor.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
	retryFor   = time.Minute
)

// partitionReader reads the committed records of one partition with direct
// Fetch requests to its leader. Driving Fetch itself (rather than a consumer)
// gives the exact next offset after every response, including past aborted
// batches, control records and batches emptied by compaction, so a read
// always ends at its end offset instead of waiting for a record that will
// never come.
type partitionReader struct {
	cl        *kgo.Client
	topic     string
	partition int32

	id     [16]byte
	leader int32 // -1 until looked up, and after an error
}

// gap is a range of offsets [From, To) that a read skipped because the
// partition's log start moved past it (retention) during the read.
type gap = Range

// read calls fn with every committed record of the partition with an offset
// in [from, to), in offset order. It returns the ranges skipped because
// retention deleted them while they were being read.
func (r *partitionReader) read(ctx context.Context, from, to int64, fn func(*kgo.Record)) ([]gap, error) {
	var (
		gaps       []gap
		off        = from
		wait       = retryFirst
		stuckSince time.Time
		lastErr    error
	)
	decompressor := kgo.DefaultDecompressor()
	// retry waits before the next attempt, or reports why it will not.
	retry := func(err error) error {
		if !retryable(err) {
			return err
		}
		now := time.Now()
		if stuckSince.IsZero() {
			stuckSince = now
		} else if now.Sub(stuckSince) > retryFor {
			return fmt.Errorf("no progress at offset %d for %s: %w", off, retryFor, err)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), lastErr)
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
		return nil
	}
	for off < to {
		if err := ctx.Err(); err != nil {
			return gaps, err
		}
		if r.leader < 0 {
			if err := r.lookup(ctx); err != nil {
				if err := retry(err); err != nil {
					return gaps, fmt.Errorf("find leader of %s[%d]: %w", r.topic, r.partition, err)
				}
				continue
			}
		}
		rp, err := r.fetch(ctx, off)
		if err == nil {
			err = kerr.ErrorForCode(rp.ErrorCode)
		}
		switch {
		case err == nil:
		case errors.Is(err, kerr.OffsetOutOfRange) && rp != nil && rp.LogStartOffset > off:
			// Retention deleted [off, log start) since the read began.
			gaps = append(gaps, gap{From: off, To: min(rp.LogStartOffset, to)})
			off = rp.LogStartOffset
			continue
		case errors.Is(err, kerr.OffsetOutOfRange):
			return gaps, fmt.Errorf("read %s[%d] at offset %d: %w (the partition was truncated or recreated during the check)", r.topic, r.partition, off, err)
		default:
			r.leader = -1
			if err := retry(err); err != nil {
				return gaps, fmt.Errorf("read %s[%d] at offset %d: %w", r.topic, r.partition, off, err)
			}
			continue
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset:         off,
			IsolationLevel: kgo.ReadCommitted(),
			Topic:          r.topic,
			Partition:      r.partition,
		}, rp, decompressor, nil)
		if fp.Err != nil {
			return gaps, fmt.Errorf("decode %s[%d] at offset %d: %w", r.topic, r.partition, off, fp.Err)
		}
		for _, rec := range fp.Records {
			if rec.Offset >= off && rec.Offset < to {
				fn(rec)
			}
		}
		if next <= off {
			// Nothing decided yet at off: the end offset of the check
			// is below the last stable offset, so this only happens
			// while a new leader catches up.
			if err := retry(kerr.OffsetNotAvailable); err != nil {
				return gaps, fmt.Errorf("read %s[%d] at offset %d: %w", r.topic, r.partition, off, err)
			}
			continue
		}
		off, stuckSince, wait = next, time.Time{}, retryFirst
	}
	return gaps, nil
}

// fetch issues one read_committed Fetch for the partition at off.
func (r *partitionReader) fetch(ctx context.Context, off int64) (*kmsg.FetchResponseTopicPartition, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = fetchMaxWaitMs
	req.MinBytes = 1
	req.MaxBytes = fetchMaxBytes
	req.IsolationLevel = 1
	t := kmsg.NewFetchRequestTopic()
	t.Topic, t.TopicID = r.topic, r.id
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition, p.FetchOffset, p.PartitionMaxBytes = r.partition, off, fetchMaxBytes
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	kresp, err := r.cl.Broker(int(r.leader)).RetriableRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, ok := kresp.(*kmsg.FetchResponse)
	if !ok {
		return nil, fmt.Errorf("unexpected response %T to a fetch request", kresp)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if rp := &resp.Topics[i].Partitions[j]; rp.Partition == r.partition {
				return rp, nil
			}
		}
	}
	return nil, fmt.Errorf("fetch response without partition %d: %w", r.partition, kerr.UnknownTopicOrPartition)
}

// lookup finds the partition's leader and the topic's id with a direct
// (uncached) metadata request.
func (r *partitionReader) lookup(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(r.topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, r.cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != r.topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return err
		}
		for _, p := range t.Partitions {
			if p.Partition != r.partition {
				continue
			}
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
			if p.Leader < 0 {
				return kerr.LeaderNotAvailable
			}
			r.id, r.leader = t.TopicID, p.Leader
			return nil
		}
	}
	return kerr.UnknownTopicOrPartition
}

// retryable decides, in one place, whether a read that failed with err may
// succeed when tried again: Kafka's retriable errors (leadership moved, a
// replica catching up) and transport errors (a broker restarting, a
// connection reset) are; everything else (authorization, a cancelled or
// expired context, a corrupt batch) is not.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed) {
		return false
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return true
}
