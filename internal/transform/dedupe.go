package transform

import (
	"time"
)

// dedupe drops a record when one of its key was seen within the horizon.
type dedupe struct {
	key     *Program
	horizon int64 // ms
}

// NewDedupe returns the dedupe dropping a record when a record whose key
// expression gave the same key text was seen (kept or not) with a
// timestamp no more than horizon before or after its own. horizon must be
// at least a millisecond.
func NewDedupe(key string, horizon time.Duration) (Stateful, error) {
	ms, err := millis("horizon", horizon, time.Millisecond)
	if err != nil {
		return nil, err
	}
	p, err := Compile(key, nil)
	if err != nil {
		return nil, err
	}
	return &dedupe{key: p, horizon: ms}, nil
}

// Kind implements Stateful.
func (d *dedupe) Kind() string { return "dedupe" }

// Partition implements Stateful.
func (d *dedupe) Partition(int32) PartitionState {
	return &dedupeState{d: d, wm: NoWatermark, sweepAt: NoWatermark, keys: map[string]dedupeEntry{}}
}

// dedupeState is a dedupe's state of one partition: per key, the largest
// timestamp seen.
//
// That is enough: a record that is not late has a timestamp ts >= wm -
// horizon, and every timestamp seen is at most wm, so ts + horizon is past
// them all; one was seen within the horizon of ts exactly when the largest
// is at least ts - horizon. By the same token an entry whose largest
// timestamp is less than wm - 2*horizon is dead: no record that is not
// late can be within its horizon.
type dedupeState struct {
	d    *dedupe
	wm   int64
	keys map[string]dedupeEntry
	size int64
	// sweepAt is the watermark from which the next sweep of dead entries
	// is due, and taken the number of records taken since the last one.
	sweepAt int64
	taken   int
}

// dedupeEntry is what a dedupe remembers of a key.
type dedupeEntry struct {
	// maxSeen is the largest timestamp of a record of the key that was
	// not late.
	maxSeen int64
	// at is the first record with that timestamp and the watermark just
	// before it: replaying from there sees it again.
	at Position
}

// dedupeEntryOverhead estimates the bytes of a key's entry besides its
// text: a Go map slot (string header and dedupeEntry, 40 bytes) at a
// typical load (BenchmarkDedupe100kKeys measures about 79 bytes a key of
// 13 bytes, whose text takes 16).
const dedupeEntryOverhead = 64

// Process implements PartitionState.
func (s *dedupeState) Process(r *Record) (Result, error) {
	k, err := evalKey(s.d.key, &vars{r: r})
	if err != nil {
		return Result{}, err
	}
	ts := r.Timestamp.UnixMilli()
	if ts < subSat(s.wm, s.d.horizon) {
		// More than horizon older than the watermark: the entries of its
		// horizon may be forgotten already.
		return Result{Late: true}, nil
	}
	e, seen := s.keys[k]
	dup := seen && e.maxSeen >= subSat(ts, s.d.horizon)
	if !seen {
		s.size += int64(len(k)) + dedupeEntryOverhead
	}
	if !seen || ts > e.maxSeen {
		s.keys[k] = dedupeEntry{maxSeen: ts, at: Position{Offset: r.Offset, Watermark: s.wm}}
	}
	if ts > s.wm {
		s.wm = ts
	}
	s.taken++
	// Sweep when the watermark moved a horizon since the last sweep and
	// at least a quarter as many records as there are entries were taken
	// since: a sweep's cost, amortised, is O(1) per record.
	if s.wm >= s.sweepAt && s.taken >= len(s.keys)/4 {
		s.sweep()
	}
	return Result{Keep: !dup}, nil
}

// sweep forgets the dead entries.
func (s *dedupeState) sweep() {
	dead := subSat(subSat(s.wm, s.d.horizon), s.d.horizon)
	for k, e := range s.keys {
		if e.maxSeen < dead {
			delete(s.keys, k)
			s.size -= int64(len(k)) + dedupeEntryOverhead
		}
	}
	s.sweepAt = addSat(s.wm, s.d.horizon)
	s.taken = 0
}

// Rebuild implements PartitionState. It sweeps: the oldest record that
// matters is that of the oldest live entry.
func (s *dedupeState) Rebuild(next int64) Position {
	s.sweep()
	p := Position{Offset: next, Watermark: s.wm}
	for _, e := range s.keys {
		if e.at.Offset < p.Offset {
			p = e.at
		}
	}
	return p
}

// Restore implements PartitionState.
func (s *dedupeState) Restore(p Position) { s.wm = p.Watermark }

// Size implements PartitionState.
func (s *dedupeState) Size() int64 { return s.size }
