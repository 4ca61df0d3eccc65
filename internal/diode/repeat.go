package diode

import "time"

// repeats keeps sealed datagrams for their timed repetitions. Datagrams
// enter in the order they were first sent, so each repetition stage (one
// per delay) goes through the queue in order behind a cursor. The queue
// holds at most limit bytes: the oldest datagram leaves when it is full,
// skipping the repetitions it still had to go. Not safe for concurrent
// use; the Sender's mutex guards it.
type repeats struct {
	delays  []time.Duration
	limit   int64
	q       []repeatEntry
	base    int64   // absolute index of q[0]
	cursor  []int64 // per stage, absolute index of the next entry to repeat
	bytes   int64
	skipped int64 // repetitions skipped: their datagram left the buffer first
}

type repeatEntry struct {
	sent time.Time
	b    []byte
}

func newRepeats(delays []time.Duration, limit int64) *repeats {
	if len(delays) == 0 {
		return nil
	}
	return &repeats{delays: delays, limit: limit, cursor: make([]int64, len(delays))}
}

// push adds a datagram first sent at sent.
func (r *repeats) push(b []byte, sent time.Time) {
	r.q = append(r.q, repeatEntry{sent: sent, b: b})
	r.bytes += int64(len(b))
	for r.bytes > r.limit && len(r.q) > 0 {
		for i, c := range r.cursor {
			if c <= r.base {
				r.skipped++
				r.cursor[i] = r.base + 1
			}
		}
		r.dropFront()
	}
}

func (r *repeats) dropFront() {
	r.bytes -= int64(len(r.q[0].b))
	r.q[0] = repeatEntry{}
	r.q = r.q[1:]
	r.base++
}

// next returns when the next repetition is due; false when none is.
func (r *repeats) next() (time.Time, bool) {
	var due time.Time
	ok := false
	end := r.base + int64(len(r.q))
	for i, c := range r.cursor {
		if c >= end {
			continue
		}
		t := r.q[c-r.base].sent.Add(r.delays[i])
		if !ok || t.Before(due) {
			due, ok = t, true
		}
	}
	return due, ok
}

// pop returns a datagram whose repetition is due at now, the earliest due
// first; false when none is.
func (r *repeats) pop(now time.Time) ([]byte, bool) {
	best := -1
	var due time.Time
	end := r.base + int64(len(r.q))
	for i, c := range r.cursor {
		if c >= end {
			continue
		}
		t := r.q[c-r.base].sent.Add(r.delays[i])
		if t.After(now) {
			continue
		}
		if best < 0 || t.Before(due) {
			best, due = i, t
		}
	}
	if best < 0 {
		return nil, false
	}
	b := r.q[r.cursor[best]-r.base].b
	r.cursor[best]++
	// The last stage's cursor is the furthest behind: entries before it
	// have no repetition left.
	for len(r.q) > 0 && r.cursor[len(r.cursor)-1] > r.base {
		r.dropFront()
	}
	return b, true
}
