package link

import (
	"fmt"
	"time"

	"github.com/edgelink/edgelink/internal/diode"
)

// State is a link's life-cycle state.
type State string

// Link states.
const (
	// StateStarting: connecting for the first time.
	StateStarting State = "starting"
	// StateCatchingUp: connected, with a backlog to replicate.
	StateCatchingUp State = "catching-up"
	// StateLive: connected and replicated up to the source's end.
	StateLive State = "live"
	// StateDisconnected: a cluster is unreachable or a session failed; the
	// link retries with backoff.
	StateDisconnected State = "disconnected"
	// StateFailed: the link stopped for good (fenced, a refused record
	// under on_error: stop, checkpoints of another source cluster).
	StateFailed State = "failed"
	// StateStopped: the link was stopped.
	StateStopped State = "stopped"
	// StateFailedOver: edgelink failover stopped the link; it waits,
	// retrying, until edgelink failback hands the stream back.
	StateFailedOver State = "failed-over"
)

// Status is a snapshot of a link's progress.
type Status struct {
	Name  string
	State State
	// StateSince is when the link entered State.
	StateSince time.Time
	LastError  string
	// BacklogRecords is the number of source offsets not yet replicated
	// (records, plus any transaction markers among them), as of BacklogAt.
	BacklogRecords int64
	// BacklogBytes estimates the backlog's payload from the average record
	// size replicated so far.
	BacklogBytes int64
	// BacklogAge approximates the age of the oldest unreplicated record: the
	// time since the timestamp of the last record replicated from the
	// partition that is furthest behind. Zero without a backlog.
	BacklogAge time.Duration
	// DrainETA estimates the time to replicate the backlog at the recent
	// rate; zero when unknown or without a backlog.
	DrainETA time.Duration
	// DataLossIn is the time until the source's retention deletes records
	// not yet replicated, should the link not replicate them first: the
	// least over Topics (see DataLossIn). Zero when records are being
	// deleted unreplicated now. It counts only when DataLossKnown: false
	// without a backlog, or when no topic with a backlog has both a
	// retention by age and a known BacklogAge.
	DataLossIn    time.Duration
	DataLossKnown bool
	// BacklogAt is when the backlog was last measured.
	BacklogAt time.Time
	// WireBytes counts bytes written to destination brokers (requests,
	// framing and compression included); compare with Bytes (payload).
	WireBytes int64
	// Records and Bytes count records and payload bytes committed at the
	// destination since start.
	Records, Bytes int64
	// RecordsIn and BytesIn count the source records (and their payload)
	// the link took in since start, committed: with transforms, what the
	// filters and projections reduced to Records and Bytes.
	RecordsIn, BytesIn int64
	// Transactions counts committed destination transactions.
	Transactions int64
	// LostRecords counts source records deleted by retention before they
	// were replicated.
	LostRecords int64
	// SkippedLoops counts records not replicated because they had been in
	// the destination cluster before (their provenance names it as the
	// source or an earlier hop), once committed.
	SkippedLoops int64
	// FilteredRecords counts records the link's filters dropped (and a
	// downsample or dedupe); LateRecords those its downsample, dedupe or
	// aggregate found late.
	FilteredRecords, LateRecords int64
	// SkippedRecords counts records the destination refused that were
	// recorded in SkippedTopic instead (on_error: skip-and-record).
	SkippedRecords int64
	// Partitions is the number of source partitions being replicated.
	Partitions int
	// Slots lists the slots this agent holds (see Link.Assign), sorted;
	// SlotCount is the link's number of slots.
	Slots     []int
	SlotCount int
	// Sharing is how the agents running the link share its slots (zero
	// for a link that is not shared).
	Sharing Sharing
	// SourcePartitions holds the partition count of every source topic
	// the link replicates, as of its last discovery pass (all of them,
	// whichever agent reads them).
	SourcePartitions map[string]int32
	// Topics holds each replicated source topic's progress, sorted by
	// source topic name, as of BacklogAt.
	Topics []TopicStatus
	// Bundles, for a link carried in bundles, is where its exports stand
	// at the site: its backlog is what the cloud has not acknowledged.
	Bundles *ExportState
	// Diode, for a link sent through a data diode, is its sender's or its
	// receiver's view.
	Diode *DiodeStatus
	// Groups, for a link that syncs consumer groups, is where the sync
	// stands (nil before its first round).
	Groups *GroupsStatus
}

// DiodeStatus is one end of a link through a data diode.
type DiodeStatus struct {
	// Role is "sender" or "receiver".
	Role string
	// Session is the sender's session id (as heard, at the receiver).
	Session  string
	Sender   *diode.SenderStats
	Receiver *diode.ReceiverStats
	// LastHeartbeat is when the receiver last heard the sender; Silent
	// is set once it missed several heartbeats.
	LastHeartbeat time.Time
	Silent        bool
	// Gaps are the ranges the receiver misses now, waiting for repeats
	// (or, once their repair window passed, recorded as lost).
	Gaps []diode.Gap
	// GapsLost counts ranges given up as lost; their records count in
	// Status.LostRecords.
	GapsLost int64
	// RepairWindow is how long the receiver waits for a repeat.
	RepairWindow time.Duration
}

// TopicStatus is the progress of one replicated source topic.
type TopicStatus struct {
	// Source and Destination are the topic's names at both ends.
	Source, Destination string
	Partitions          int
	// Priority is the topic's weight when the link has a backlog.
	Priority int
	// Records and Bytes count records and payload bytes committed at the
	// destination since start; RecordsIn and BytesIn the source records
	// they came from (more with transforms).
	Records, Bytes     int64
	RecordsIn, BytesIn int64
	// BacklogRecords is the number of source offsets not yet replicated.
	BacklogRecords int64
	// BacklogAge approximates the age of the topic's oldest unreplicated
	// record like Status.BacklogAge, over the topic's partitions with a
	// backlog that the link replicated records from (the others' is
	// unknown). Zero without a backlog, or when unknown.
	BacklogAge time.Duration
	// Retention is how long the source topic keeps records by age (its
	// effective retention.ms). Zero when it does not delete them by age
	// (retention.ms -1, or cleanup.policy compact only) or it is unknown.
	Retention time.Duration
}

// DataLossIn returns the time until the source's retention deletes
// records of the topics that are not replicated yet, should the link not
// replicate them first: the least Retention less BacklogAge over the
// topics with a backlog, a Retention and a known BacklogAge, floored at
// zero (records are being deleted unreplicated now). known is false when
// no topic has all three.
//
// It errs on the side of early: BacklogAge, from the last record
// replicated, is usually a little more than the age of the oldest record
// not replicated, and the source deletes whole log segments, once their
// newest record is older than the retention. It leaves retention.bytes
// out.
func DataLossIn(topics []TopicStatus) (in time.Duration, known bool) {
	for _, t := range topics {
		if t.BacklogRecords <= 0 || t.BacklogAge <= 0 || t.Retention <= 0 {
			continue
		}
		left := max(t.Retention-t.BacklogAge, 0)
		if !known || left < in {
			in, known = left, true
		}
	}
	return in, known
}

// Status returns a snapshot of the link's progress.
func (l *Link) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.status
	st.SlotCount = l.slots.n
	return st
}

func (l *Link) update(f func(*Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.status)
}

func (l *Link) setState(s State, err error) {
	l.mu.Lock()
	prev := l.status.State
	if prev != s {
		l.status.State, l.status.StateSince = s, time.Now()
		msg := string(prev) + " → " + string(s)
		if err != nil {
			msg += ": " + err.Error()
		}
		l.eventLocked(EventState, msg)
	}
	if err != nil {
		l.status.LastError = err.Error()
	}
	l.mu.Unlock()
	if prev != s {
		l.logger.Info("link state changed", "from", prev, "to", s)
	}
}

// topicError reports a problem with one topic that does not stop the link.
func (l *Link) topicError(topic string, err error) {
	l.logger.Error("topic not replicated", "topic", topic, "err", err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.LastError = err.Error()
	l.eventLocked(EventError, fmt.Sprintf("topic %s not replicated: %v", topic, err))
}
