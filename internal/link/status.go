package link

import (
	"fmt"
	"time"
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
	// BacklogAt is when the backlog was last measured.
	BacklogAt time.Time
	// WireBytes counts bytes written to destination brokers (requests,
	// framing and compression included); compare with Bytes (payload).
	WireBytes int64
	// Records and Bytes count records and payload bytes committed at the
	// destination since start.
	Records, Bytes int64
	// Transactions counts committed destination transactions.
	Transactions int64
	// LostRecords counts source records deleted by retention before they
	// were replicated.
	LostRecords int64
	// SkippedLoops counts records not replicated because they came from the
	// destination cluster in the first place.
	SkippedLoops int64
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
}

// TopicStatus is the progress of one replicated source topic.
type TopicStatus struct {
	// Source and Destination are the topic's names at both ends.
	Source, Destination string
	Partitions          int
	// Priority is the topic's weight when the link has a backlog.
	Priority int
	// Records and Bytes count records and payload bytes committed at the
	// destination since start.
	Records, Bytes int64
	// BacklogRecords is the number of source offsets not yet replicated.
	BacklogRecords int64
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
