package link

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// scheduler holds fetched source records that wait to be copied, per
// partition, and hands them out in weighted fair order across priorities:
// while topics of several priorities have records waiting, each priority
// gets a share of what is copied in proportion to its weight, so high
// priorities drain first and low ones are never starved. Within a priority
// the records of one poll of the source are drained before those of the
// next (a waiting record keeps its whole fetch response in memory, so this
// keeps few responses alive), and the partitions of one poll take turns,
// so that the producer has a batch of each of them to send at once (a
// produce request carries one batch per partition, and a long round trip
// needs many in flight). Within a partition records keep their order.
//
// It is owned by the copier's goroutine.
type scheduler struct {
	parts   map[tp]*waiting
	classes map[int]*class
	// clock is the virtual time of the last chunk handed out; a priority
	// that starts waiting again starts from it, so that it cannot claim the
	// share it did not use while it had nothing to send.
	clock float64
	// mem estimates the memory the waiting records hold: their payload
	// and recordMemory each.
	mem int
	// poll counts the polls of the source (see polled).
	poll int
}

// waiting is one partition's records not yet copied.
type waiting struct {
	recs   []*kgo.Record
	bytes  int
	weight int
	// poll is the poll its first waiting records came from.
	poll int
}

// class is the waiting partitions of one priority.
type class struct {
	weight int
	// vtime is the bytes handed out for this class divided by its weight.
	vtime float64
	// ring lists its partitions with records waiting, by poll, and within
	// a poll in turn order.
	ring []tp
}

// chunkBytes is about how much of one partition is handed out at a time.
const chunkBytes = 64 << 10

// recordOverhead is added to each record's payload when weighing shares,
// so that many tiny records are not free.
const recordOverhead = 64

// recordMemory is what a fetched record costs in memory besides its
// payload: its kgo.Record (about 180 bytes), and once copied its headers and
// provenance value.
const recordMemory = 320

func newScheduler() *scheduler {
	return &scheduler{parts: make(map[tp]*waiting), classes: make(map[int]*class)}
}

func recordBytes(r *kgo.Record) int { return len(r.Key) + len(r.Value) }

// add queues records fetched for k behind any already waiting. It reports
// whether k had nothing waiting before (so that its fetching can be paused
// while they wait).
func (s *scheduler) add(k tp, weight int, recs []*kgo.Record) bool {
	if len(recs) == 0 {
		return false
	}
	n := 0
	for _, r := range recs {
		n += recordBytes(r)
	}
	s.mem += n + len(recs)*recordMemory
	if w, ok := s.parts[k]; ok {
		w.recs = append(w.recs, recs...)
		w.bytes += n
		return false
	}
	s.parts[k] = &waiting{recs: recs, bytes: n, weight: weight, poll: s.poll}
	c := s.classes[weight]
	if c == nil {
		c = &class{weight: weight}
		s.classes[weight] = c
	}
	if len(c.ring) == 0 {
		c.vtime = max(c.vtime, s.clock)
	}
	c.ring = append(c.ring, k)
	return true
}

// polled marks the end of one poll's records: records added later drain
// after them.
func (s *scheduler) polled() { s.poll++ }

// len returns the number of partitions with records waiting.
func (s *scheduler) len() int { return len(s.parts) }

// next hands out the next chunk: records of one partition, in order, of
// about chunkBytes (at least one record), passing over blocked partitions
// (nil: none is). emptied reports that the partition has nothing left
// waiting. ok is false when nothing waits that is not blocked.
func (s *scheduler) next(blocked func(tp) bool) (k tp, recs []*kgo.Record, emptied, ok bool) {
	var (
		pick *class
		at   int
	)
	for _, c := range s.classes {
		if len(c.ring) == 0 || (pick != nil && !(c.vtime < pick.vtime || (c.vtime == pick.vtime && c.weight > pick.weight))) {
			continue
		}
		i := 0
		for blocked != nil && i < len(c.ring) && blocked(c.ring[i]) {
			i++
		}
		if i < len(c.ring) {
			pick, at = c, i
		}
	}
	if pick == nil {
		return tp{}, nil, false, false
	}
	k = pick.ring[at]
	if at > 0 {
		// The blocked partitions before k keep their turn.
		copy(pick.ring[1:at+1], pick.ring[:at])
		pick.ring[0] = k
	}
	w := s.parts[k]
	n, cost, i := 0, 0, 0
	for i < len(w.recs) && (i == 0 || cost < chunkBytes) {
		b := recordBytes(w.recs[i])
		n += b
		cost += b + recordOverhead
		i++
	}
	recs, w.recs = w.recs[:i:i], w.recs[i:]
	w.bytes -= n
	s.mem -= n + i*recordMemory
	pick.vtime += float64(cost) / float64(pick.weight)
	s.clock = pick.vtime
	if len(w.recs) > 0 {
		// k goes behind the other partitions of its poll.
		n := 1
		for n < len(pick.ring) && s.parts[pick.ring[n]].poll == w.poll {
			n++
		}
		copy(pick.ring, pick.ring[1:n])
		pick.ring[n-1] = k
		return k, recs, false, true
	}
	pick.ring = pick.ring[1:]
	delete(s.parts, k)
	return k, recs, true, true
}

// ready reports whether records wait that are not blocked.
func (s *scheduler) ready(blocked func(tp) bool) bool {
	for _, c := range s.classes {
		for _, k := range c.ring {
			if blocked == nil || !blocked(k) {
				return true
			}
		}
	}
	return false
}

// memOf estimates the memory of the waiting records of blocked partitions.
func (s *scheduler) memOf(blocked func(tp) bool) int {
	if blocked == nil {
		return 0
	}
	n := 0
	for k, w := range s.parts {
		if blocked(k) {
			n += w.bytes + len(w.recs)*recordMemory
		}
	}
	return n
}

// remove forgets k's waiting records.
func (s *scheduler) remove(k tp) {
	w, ok := s.parts[k]
	if !ok {
		return
	}
	s.mem -= w.bytes + len(w.recs)*recordMemory
	delete(s.parts, k)
	c := s.classes[w.weight]
	if i := slices.Index(c.ring, k); i >= 0 {
		c.ring = slices.Delete(c.ring, i, i+1)
	}
}

// minWeight returns the lowest weight with records waiting, 0 if none.
func (s *scheduler) minWeight() int {
	m := 0
	for _, c := range s.classes {
		if len(c.ring) > 0 && (m == 0 || c.weight < m) {
			m = c.weight
		}
	}
	return m
}
