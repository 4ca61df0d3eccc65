package link

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/provenance"
)

// # Hanging transactions
//
// A transaction's records count once its marker follows them in each
// partition it wrote to; the transaction coordinator writes the markers.
// A Kafka 4 broker stopped in the middle of a commit was seen to record
// the transaction as complete while no marker reached its partitions. The
// records then hang: the partition's last stable offset stops at them,
// and the next marker the same producer id writes there, under any epoch,
// decides their fate along with its own transaction's. A slot's next
// transactions would decide it by chance: committing them with the data
// of one partition and aborting them with the checkpoint of another, so
// that records are copied twice, or lost.
//
// A slot therefore settles what its earlier epochs left hanging before it
// writes anything: once its producer is initialised, it aborts the hanging
// records of the checkpoint partition (their transaction's outcome is
// unknown, so its checkpoints do not count), then ends the hanging records
// of each of its mirror partitions the way its checkpoints account for
// them: committed when the checkpoints count the source records they
// copy, aborted when not. A transaction of nothing but markers does it:
// the producer adds the partitions to a transaction and ends it, writing
// no record.

// hangingData is a transaction of an earlier epoch of a slot's producer
// still open in one of the slot's mirror partitions.
type hangingData struct {
	slot   int
	mirror tp    // the destination partition
	source tp    // the source partition it mirrors
	start  int64 // the transaction's first offset
	leader int32
	pid    int64
}

// settleHanging settles what the slots' earlier epochs left hanging, in
// the checkpoint partitions the store found (hanging, by producer id) and
// in the slots' mirror partitions. saved are the slots' checkpoints, as
// read with the hanging ones counted as aborted.
func (s *session) settleHanging(ctx context.Context, slots map[int]*slot, mirrors map[string]int32, hanging map[int64][]int32, saved map[int]saved) error {
	if err := s.settleCheckpoints(ctx, slots, hanging); err != nil {
		return err
	}
	found, err := s.findHangingData(ctx, slots, mirrors)
	if err != nil || len(found) == 0 {
		return err
	}
	return s.settleData(ctx, slots, found, saved)
}

// settleCheckpoints aborts the hanging records the checkpoint store found
// of the slots' producers (see loadOptions.hanging).
func (s *session) settleCheckpoints(ctx context.Context, slots map[int]*slot, hanging map[int64][]int32) error {
	for _, sl := range slots {
		ps, ok := sl.out.(*produceSink)
		if !ok || len(hanging[ps.pid]) == 0 {
			continue
		}
		parts := make([]tp, 0, len(hanging[ps.pid]))
		for _, p := range hanging[ps.pid] {
			parts = append(parts, tp{s.store.topic, p})
		}
		s.l.logger.Warn("aborting a transaction of an earlier run that the destination left without markers (checkpoints)",
			"slot", sl.index, "producer_id", ps.pid, "partitions", parts)
		if err := ps.endMarkersOnly(ctx, s.l.id.TransactionalID(sl.index), parts, false); err != nil {
			return &slotError{slot: sl.index, err: fmt.Errorf("abort hanging checkpoints: %w", err)}
		}
	}
	return nil
}

// findHangingData asks the destination which mirror partitions of the
// slots hold a transaction of an earlier epoch of their producer.
// mirrors holds the source topics ready to replicate and their partition
// counts. A destination that cannot tell (too old, or the link may not
// read its mirror topics) is logged and found to hold none.
func (s *session) findHangingData(ctx context.Context, slots map[int]*slot, mirrors map[string]int32) ([]hangingData, error) {
	type mine struct {
		slot  int
		epoch int16
	}
	pids := make(map[int64]mine, len(slots))
	for i, sl := range slots {
		if ps, ok := sl.out.(*produceSink); ok && ps.eos {
			pids[ps.pid] = mine{i, ps.epoch}
		}
	}
	if len(pids) == 0 {
		return nil, nil
	}
	set := make(kadm.TopicsSet)
	sourceOf := make(map[string]string)
	for t, n := range mirrors {
		m := s.l.destination(t)
		sourceOf[m] = t
		for p := range n {
			if slots[slotOf(tp{t, p}, s.store.slots)] != nil {
				set.Add(m, p)
			}
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.tune.adminTimeout())
	defer cancel()
	described, err := s.dstAdm.DescribeProducers(ctx, set)
	var shardErrs *kadm.ShardErrors
	switch {
	case err == nil:
	case errors.As(err, &shardErrs):
		// Partial: what answered is settled now, the rest when the slot
		// opens next.
		s.l.logger.Debug("describe producers: some brokers did not answer", "err", err)
	case errorsIsAny(err, kerr.UnsupportedVersion, kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed) || isAuthError(err):
		s.l.logger.Warn("cannot look for transactions a destination broker left without markers (needs Kafka 3.0 and Read on the mirror topics)", "err", err)
		return nil, nil
	default:
		return nil, fmt.Errorf("describe producers of the mirror topics: %w", err)
	}
	var out []hangingData
	described.EachProducer(func(d kadm.DescribedProducer) {
		m, ok := pids[d.ProducerID]
		if !ok || d.CurrentTxnStartOffset < 0 || d.ProducerEpoch >= m.epoch {
			return
		}
		out = append(out, hangingData{
			slot: m.slot, mirror: tp{d.Topic, d.Partition}, source: tp{sourceOf[d.Topic], d.Partition},
			start: d.CurrentTxnStartOffset, leader: d.Leader, pid: d.ProducerID,
		})
	})
	return out, nil
}

func isAuthError(err error) bool {
	var ae *kadm.AuthError
	return errors.As(err, &ae)
}

// settleData ends each hanging mirror transaction as the slot's
// checkpoints account for it: committed when its first record's source
// offset is below the checkpointed position of its source partition (the
// checkpoints count it as copied), aborted otherwise.
func (s *session) settleData(ctx context.Context, slots map[int]*slot, found []hangingData, saved map[int]saved) error {
	type ends struct{ commit, abort []tp }
	bySlot := make(map[int]*ends)
	for _, h := range found {
		first, err := s.firstRecordOf(ctx, h)
		if err != nil {
			return &slotError{slot: h.slot, err: err}
		}
		e := bySlot[h.slot]
		if e == nil {
			e = &ends{}
			bySlot[h.slot] = e
		}
		next, counted := saved[h.slot].checkpoints[h.source]
		commit := false
		if first != nil {
			if o, ok := lastProvenance(first); ok && counted && o.Offset < next.Next {
				commit = true
			}
		}
		if commit {
			e.commit = append(e.commit, h.mirror)
		} else {
			e.abort = append(e.abort, h.mirror)
		}
	}
	for i, e := range bySlot {
		sl := slots[i]
		ps := sl.out.(*produceSink)
		id := s.l.id.TransactionalID(i)
		for _, end := range []struct {
			parts  []tp
			commit bool
		}{{e.commit, true}, {e.abort, false}} {
			if len(end.parts) == 0 {
				continue
			}
			verb := "aborting"
			if end.commit {
				verb = "committing"
			}
			s.l.logger.Warn(verb+" a transaction of an earlier run that the destination left without markers (mirror partitions), as the checkpoints account for it",
				"slot", i, "producer_id", ps.pid, "partitions", end.parts)
			if err := ps.endMarkersOnly(ctx, id, end.parts, end.commit); err != nil {
				return &slotError{slot: i, err: fmt.Errorf("end hanging transaction: %w", err)}
			}
		}
	}
	return nil
}

// lastProvenance returns the origin the link's own hop recorded: the last
// provenance header.
func lastProvenance(r *kgo.Record) (provenance.Origin, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == provenance.Key {
			o, err := provenance.Decode(r.Headers[i].Value)
			return o, err == nil
		}
	}
	return provenance.Origin{}, false
}

// firstRecordOf reads a hanging transaction's first record (nil when the
// partition holds none of the producer's past the transaction's start).
func (s *session) firstRecordOf(ctx context.Context, h hangingData) (*kgo.Record, error) {
	cl, err := kgo.NewClient(append(s.dstOpts[:len(s.dstOpts):len(s.dstOpts)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{h.mirror.Topic: {h.mirror.Partition: kgo.NewOffset().At(h.start)}}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("read hanging transaction in %s: %w", h.mirror, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, s.tune.adminTimeout())
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read hanging transaction in %s: %w", h.mirror, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			return nil, fmt.Errorf("read hanging transaction in %s: %w", h.mirror, fe.Err)
		}
		var (
			found    *kgo.Record
			caughtUp bool
		)
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				if found == nil && r.ProducerID == h.pid {
					found = r
				}
			}
			if n := len(p.Records); n > 0 && p.Records[n-1].Offset+1 >= p.HighWatermark {
				caughtUp = true
			}
		})
		if found != nil || caughtUp {
			return found, nil
		}
	}
}

// endMarkersOnly ends a transaction of nothing but markers over parts:
// it adds them to a transaction of the producer's current epoch and ends
// it, so that a marker of the producer id follows every partition's
// hanging records, deciding them. The producer must have no transaction
// open.
func (s *produceSink) endMarkersOnly(ctx context.Context, txnID string, parts []tp, commit bool) error {
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = txnID, s.pid, s.epoch
	byTopic := make(map[string][]int32)
	for _, p := range parts {
		byTopic[p.Topic] = append(byTopic[p.Topic], p.Partition)
	}
	for t, ps := range byTopic {
		at := kmsg.NewAddPartitionsToTxnRequestTopic()
		at.Topic, at.Partitions = t, ps
		add.Topics = append(add.Topics, at)
	}
	if err := retryTxn(ctx, func() error {
		resp, err := add.RequestWith(ctx, s.producer)
		if err != nil {
			return err
		}
		return addPartitionsErr(resp)
	}); err != nil {
		return fmt.Errorf("add partitions to transaction: %w", classify(err))
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = txnID, s.pid, s.epoch, commit
	if err := retryTxn(ctx, func() error {
		resp, err := end.RequestWith(ctx, s.producer)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}); err != nil {
		return fmt.Errorf("end transaction: %w", classify(err))
	}
	return nil
}

func addPartitionsErr(resp *kmsg.AddPartitionsToTxnResponse) error {
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
			}
		}
	}
	for _, txn := range resp.Transactions {
		for _, t := range txn.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
				}
			}
		}
	}
	return nil
}

// retryTxn runs a transaction coordinator request until it succeeds, fails
// for good, or ctx ends; CONCURRENT_TRANSACTIONS (the coordinator still
// completing the previous transaction) and other retriable errors retry.
func retryTxn(ctx context.Context, fn func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := fn()
		if err == nil || !kerr.IsRetriable(err) && !errors.Is(err, kerr.ConcurrentTransactions) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
