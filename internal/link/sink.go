package link

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/provenance"
)

// A sink writes what the stages let through to where the link delivers,
// together with the checkpoints that account for it. Records are written
// asynchronously into the open unit of work (a transaction, a batch);
// commit makes them and the checkpoint records durable together, or
// returns why not. A sink is owned by the session's goroutine; refusals
// and failures reported by its writers come back through commit.
type sink interface {
	// begin opens a unit of work if none is open.
	begin() error
	// open reports whether a unit of work is open.
	open() bool
	// write sends records into the open unit of work.
	write(ctx context.Context, recs []*kgo.Record)
	// commit writes marks and ends the unit of work: exactly-once in the
	// same transaction; at-least-once once the records are acknowledged.
	commit(ctx context.Context, marks []*kgo.Record) error
	// abort drops the open unit of work, as far as the destination lets it.
	abort(ctx context.Context)
	// lastStepAt is when the last commit's final step (a bare round trip
	// to the destination) began; transactions are sized by it.
	lastStepAt() time.Time
	// topicsGrew tells the sink that destination topics gained partitions.
	topicsGrew()
	close()
}

// produceSink writes to the destination cluster with one producer:
// transactional for exactly-once, acknowledged (acks=all) for
// at-least-once.
type produceSink struct {
	producer *kgo.Client
	// pid and epoch are the producer's id and epoch once initialised.
	pid     int64
	epoch   int16
	eos     bool
	onError config.OnError
	// txTimeout bounds a flush.
	txTimeout time.Duration
	started   bool

	errMu   sync.Mutex
	txErr   error
	refused []refusal
	// srcOf maps mirror topics back to their source topics, for refusals.
	srcOf func(mirror string) string
	// lastStep is when the last step of the open unit's commit, a bare
	// round trip to the destination, began.
	lastStep time.Time
}

func (s *produceSink) open() bool { return s.started }

func (s *produceSink) begin() error {
	if s.started {
		return nil
	}
	if s.eos {
		if err := s.producer.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", classify(err))
		}
	}
	s.started = true
	return nil
}

func (s *produceSink) write(ctx context.Context, recs []*kgo.Record) {
	for _, r := range recs {
		s.producer.Produce(ctx, r, s.produced)
	}
}

// produced is the callback of every mirrored record; it runs on the
// producer's goroutines. The record's last header is its provenance.
func (s *produceSink) produced(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	var offset int64 = -1
	if n := len(r.Headers); n > 0 {
		if o, derr := provenance.Decode(r.Headers[n-1].Value); derr == nil {
			offset = o.Offset
		}
	}
	if recordError(err) {
		s.errMu.Lock()
		s.refused = append(s.refused, refusal{tp{r.Topic, r.Partition}, offset, err})
		s.errMu.Unlock()
		return
	}
	s.fail(fmt.Errorf("produce source offset %d to %s[%d]: %w", offset, r.Topic, r.Partition, err))
}

func (s *produceSink) fail(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.txErr == nil {
		s.txErr = err
	}
}

// takeErr returns (and forgets) what went wrong since the last call:
// refused records first, as they decide what the link does.
func (s *produceSink) takeErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	err, refused := s.txErr, s.refused
	s.txErr, s.refused = nil, nil
	if len(refused) == 0 {
		return err
	}
	for i := range refused {
		if t := s.srcOf(refused[i].at.Topic); t != "" {
			refused[i].at.Topic = t
		}
	}
	return &refusedError{refused: refused, onError: s.onError}
}

func (s *produceSink) commit(ctx context.Context, marks []*kgo.Record) error {
	if err := s.begin(); err != nil {
		return err
	}
	if !s.eos {
		if err := s.flush(ctx); err != nil {
			return err
		}
	}
	// At least once, the checkpoints' flush is one round trip; exactly
	// once, the transaction's end is.
	s.lastStep = time.Now()
	for _, m := range marks {
		s.producer.Produce(ctx, m, func(r *kgo.Record, err error) {
			if err != nil {
				s.fail(fmt.Errorf("write checkpoint %s: %w", r.Key, err))
			}
		})
	}
	err := s.flush(ctx)
	switch {
	case !s.eos && err != nil:
		return err
	case errors.Is(err, errUnreachable):
		// Nothing can be aborted without the destination; the next
		// session's producer settles the open transaction.
		return err
	case err != nil:
		s.abort(ctx)
		return classify(err)
	case s.eos:
		s.lastStep = time.Now()
		if err := ended(ctx, s.producer.EndTransaction(ctx, kgo.TryCommit)); err != nil {
			return fmt.Errorf("commit transaction: %w", classify(err))
		}
	}
	s.started = false
	return nil
}

// abort drops what could not be sent and aborts the open transaction. It is
// a courtesy (the next session's producer settles the transaction anyway),
// so it is bounded tightly.
func (s *produceSink) abort(ctx context.Context) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	_ = s.producer.AbortBufferedRecords(actx)
	cancel()
	if s.eos && s.started {
		actx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = s.producer.EndTransaction(actx, kgo.TryAbort)
		cancel()
	}
	s.started = false
	_ = s.takeErr() // what failed in the aborted unit is moot
}

// flush waits, within the transaction timeout, for every produced record to
// be acknowledged, and returns the first failure of any of them.
func (s *produceSink) flush(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, s.txTimeout)
	defer cancel()
	flushErr := ended(fctx, s.producer.Flush(fctx))
	if errors.Is(flushErr, errUnreachable) {
		return flushErr
	}
	if err := s.takeErr(); err != nil {
		return err // a record's own failure says more than the flush's
	}
	if flushErr != nil {
		return fmt.Errorf("wait for acknowledgements: %w", flushErr)
	}
	return nil
}

func (s *produceSink) close() { s.producer.Close() }

func (s *produceSink) lastStepAt() time.Time { return s.lastStep }

func (s *produceSink) topicsGrew() { s.producer.ForceMetadataRefresh() }

// ended returns why ctx's work was cut short, when the reach watchdog (see
// session.watchReach) or a lost membership (Link.ReleaseNow) cut it,
// rather than the error that caused in the step under way.
func ended(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); ctx.Err() != nil && (errors.Is(cause, errUnreachable) || errors.Is(cause, errReleased)) {
		return cause
	}
	return err
}
