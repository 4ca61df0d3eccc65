package link

import (
	"slices"
	"time"
)

// EventKind classifies what happened to a link.
type EventKind string

// Event kinds.
const (
	// EventState: the link changed state (an outage began or ended, the
	// backlog drained, the link stopped).
	EventState EventKind = "state"
	// EventTopic: a source topic or partition was found and is replicated.
	EventTopic EventKind = "topic"
	// EventLost: source records were deleted by retention before they were
	// replicated.
	EventLost EventKind = "lost"
	// EventSkipped: the destination refused a record that was skipped and
	// recorded (on_error: skip-and-record).
	EventSkipped EventKind = "skipped"
	// EventSlots: the link opened or closed slots (agents sharing the
	// link handed them over, or one took over a dead agent's).
	EventSlots EventKind = "slots"
	// EventError: a topic could not be replicated, or a session failed.
	EventError EventKind = "error"
)

// Event is one notable thing that happened to a link.
type Event struct {
	Time    time.Time
	Kind    EventKind
	Message string
}

// maxEvents is how many recent events a link keeps.
const maxEvents = 100

// repeatAfter is how long an event is not repeated for.
const repeatAfter = 5 * time.Minute

// eventLocked records an event, unless the same event was recorded within
// repeatAfter; the caller holds l.mu.
func (l *Link) eventLocked(kind EventKind, msg string) {
	now := time.Now()
	for i := len(l.events) - 1; i >= 0 && now.Sub(l.events[i].Time) < repeatAfter; i-- {
		if e := l.events[i]; e.Kind == kind && e.Message == msg && kind != EventState {
			return
		}
	}
	if len(l.events) >= maxEvents {
		l.events = slices.Delete(l.events, 0, len(l.events)-maxEvents+1)
	}
	l.events = append(l.events, Event{Time: now, Kind: kind, Message: msg})
}

func (l *Link) event(kind EventKind, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.eventLocked(kind, msg)
}

// Events returns the link's recent events, oldest first (at most 100).
func (l *Link) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}
