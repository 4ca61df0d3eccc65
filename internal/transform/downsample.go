package transform

import (
	"time"
)

// downsample keeps the first record of each key and interval.
type downsample struct {
	key   *Program
	every int64 // ms
}

// NewDownsample returns the downsample keeping, of the records whose key
// expression gives the same key text, the first of each interval [n*every,
// (n+1)*every) of event time. every must be at least a millisecond.
func NewDownsample(key string, every time.Duration) (Stateful, error) {
	ms, err := millis("every", every, time.Millisecond)
	if err != nil {
		return nil, err
	}
	p, err := Compile(key, nil)
	if err != nil {
		return nil, err
	}
	return &downsample{key: p, every: ms}, nil
}

// Kind implements Stateful.
func (d *downsample) Kind() string { return "downsample" }

// Partition implements Stateful.
func (d *downsample) Partition(int32) PartitionState {
	return &downsampleState{d: d, wm: NoWatermark, intervals: newWindows[struct{}]()}
}

// downsampleState is a downsample's state of one partition: the keys that
// had a record in each interval still live, that is whose end is less than
// a whole interval before the watermark.
type downsampleState struct {
	d         *downsample
	wm        int64
	intervals windows[struct{}]
	size      int64
}

// downsampleEntryOverhead estimates the bytes of a key in an interval
// besides the key's text: its slot (a string header) in a Go map at a
// typical load (BenchmarkDownsample100kKeys measures about 51 bytes a key
// of 13 bytes, whose text takes 16).
const downsampleEntryOverhead = 36

// Process implements PartitionState.
func (s *downsampleState) Process(r *Record) (Result, error) {
	k, err := evalKey(s.d.key, &vars{r: r})
	if err != nil {
		return Result{}, err
	}
	ts := r.Timestamp.UnixMilli()
	start := floorStart(ts, s.d.every)
	if s.wm != NoWatermark && addSat(start, 2*s.d.every) <= s.wm {
		// The interval ended a whole interval or more before the
		// watermark: its entries may be forgotten already.
		return Result{Late: true}, nil
	}
	var res Result
	w := s.intervals.get(start)
	if w == nil {
		w = s.intervals.open(start, Position{Offset: r.Offset, Watermark: s.wm})
		s.size += windowOverhead
	}
	if _, seen := w.entries[k]; !seen {
		w.entries[k] = struct{}{}
		s.size += int64(len(k)) + downsampleEntryOverhead
		res.Keep = true
	}
	s.advance(ts)
	return res, nil
}

// advance raises the watermark to ts and forgets the intervals that died.
func (s *downsampleState) advance(ts int64) {
	if ts <= s.wm {
		return
	}
	s.wm = ts
	s.intervals.closeThrough(subSat(s.wm, 2*s.d.every), func(w *window[struct{}]) {
		s.size -= windowOverhead
		for k := range w.entries {
			s.size -= int64(len(k)) + downsampleEntryOverhead
		}
	})
}

// Rebuild implements PartitionState. Dead intervals are forgotten as the
// watermark moves (in Process), so every open interval is live.
func (s *downsampleState) Rebuild(next int64) Position {
	if p, ok := s.intervals.oldest(); ok {
		return p
	}
	return Position{Offset: next, Watermark: s.wm}
}

// Restore implements PartitionState.
func (s *downsampleState) Restore(p Position) { s.wm = p.Watermark }

// Size implements PartitionState.
func (s *downsampleState) Size() int64 { return s.size }
