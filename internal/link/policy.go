package link

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/provenance"
)

// Errors that stop a link for good (see decide).
var (
	// ErrCrash, as the cause of a link's cancelled context, stops it as
	// if its process had died (kill -9): nothing more is committed and the
	// open transactions are left to the next holder of each slot (the
	// demo's "kill agent").
	ErrCrash = errors.New("agent killed")
	// ErrFenced reports that another instance of the same link took over.
	ErrFenced = errors.New("fenced by another instance of this link")
	// ErrRefused reports a record the destination refused, with on_error: stop.
	ErrRefused = errors.New("record refused by the destination")
	// ErrTransform reports a record a transform could not handle (a value
	// that is not JSON where it must be, an expression that failed), with
	// on_error: stop.
	ErrTransform = errors.New("record not transformed")
	// ErrOutOfSequence reports bundles that do not follow what the
	// destination holds: a bundle before them is missing.
	ErrOutOfSequence = errors.New("bundle out of sequence")
	// ErrFailedOver reports a link that edgelink failover stopped: its
	// sessions wait (retrying) until edgelink failback hands the stream
	// back.
	ErrFailedOver = errors.New("the link failed over")
)

// action is what a link does about an error.
type action string

const (
	// retry ends the session and connects again after a backoff: a
	// cluster was lost (unreachable, timed out, refused the credentials)
	// and the link shows disconnected meanwhile.
	retry action = "retry"
	// adjust is handled inside the session: the open transaction is
	// aborted, the producer rebuilt with smaller batches, and the intake
	// rewound to the committed positions. The link stays connected.
	adjust action = "adjust"
	// skip is handled inside the session: the records the destination
	// refused are set aside (on_error: skip-and-record), the open
	// transaction aborted and the intake rewound; the copy then writes a
	// record of each refusal instead of the record.
	skip action = "skip"
	// stop stops the link for good: another instance fenced it, a record
	// was refused or crossed too many links under on_error: stop, or its
	// checkpoints belong to another source cluster. Nothing is skipped or
	// replicated twice; an operator decides.
	stop action = "stop"
)

// decide is the one table of what the link does about an error.
func decide(err error, onError config.OnError) action {
	var (
		refused *refusedError
		capped  *batchCapError
	)
	switch {
	case err == nil:
		return retry
	case errors.As(err, &refused):
		if onError == config.OnErrorSkip {
			return skip
		}
		return stop
	case errorsIsAny(err, ErrFenced, ErrSourceChanged, ErrRefused, ErrTransform, ErrStateLimit, ErrOutOfSequence, provenance.ErrTooManyHops):
		return stop
	case errorsIsAny(err, bundle.ErrTampered, bundle.ErrFormat, bundle.ErrDecrypt):
		// A bundle read again is read the same: what it holds needs an
		// operator (a file changed since it was verified, a signer's bug).
		return stop
	case errors.As(err, &capped):
		return adjust
	}
	return retry
}

// refusal is a source record the destination refused.
type refusal struct {
	at     tp
	offset int64
	err    error
}

// refusedError reports records the destination refused: too large, invalid.
// Under on_error: stop it also is ErrRefused.
type refusedError struct {
	refused []refusal
	onError config.OnError
}

func (e *refusedError) Error() string {
	r := e.refused[0]
	if e.onError != config.OnErrorSkip {
		return fmt.Sprintf("%v: %s offset %d: %v (set on_error: skip-and-record to skip such records and record them in %s)",
			ErrRefused, r.at, r.offset, r.err, SkippedTopic)
	}
	return fmt.Sprintf("destination refused %d record(s), first %s offset %d: %v; replicating again without them",
		len(e.refused), r.at, r.offset, r.err)
}

// Is makes a refusal under on_error: stop an ErrRefused.
func (e *refusedError) Is(target error) bool {
	return target == ErrRefused && e.onError != config.OnErrorSkip
}

func (e *refusedError) Unwrap() error { return e.refused[0].err }

// batchCapError reports mirror topics that accept smaller batches than the
// producer builds: the destination refuses a whole batch above a topic's
// max.message.bytes, records that fit along with the one that does not.
type batchCapError struct {
	limit, batch int
	topic        string
}

func (e *batchCapError) Error() string {
	return fmt.Sprintf("mirror topic %s accepts batches of up to %d bytes (max.message.bytes), less than the link's %d: writing smaller batches", e.topic, e.limit, e.batch)
}

// recordError reports whether a produce error concerns one record (its size
// or content) rather than the link or the cluster.
func recordError(err error) bool {
	return errorsIsAny(err, kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.CorruptMessage, kerr.InvalidTimestamp)
}

// classify maps a producer error to ErrFenced when another instance took over.
func classify(err error) error {
	if errorsIsAny(err, kerr.ProducerFenced, kerr.InvalidProducerEpoch) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}
