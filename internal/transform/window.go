package transform

import (
	"container/heap"
	"fmt"
	"math"
	"time"
)

// millis converts a window, interval, horizon or grace to milliseconds,
// the unit of record timestamps and watermarks (a fraction of a
// millisecond is dropped). It must be at least least.
func millis(name string, d, least time.Duration) (int64, error) {
	if d < least {
		return 0, fmt.Errorf("%s is %s, it must be at least %s", name, d, least)
	}
	return d.Milliseconds(), nil
}

// floorStart returns the start of the window of size ms that holds ts:
// the largest multiple of size at or before ts (also for a negative ts).
func floorStart(ts, size int64) int64 {
	r := ts % size
	if r < 0 {
		r += size
	}
	return subSat(ts, r)
}

// addSat returns a+b (b >= 0), or math.MaxInt64 where that overflows.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// subSat returns a-b (b >= 0), or math.MinInt64 where that overflows (so
// NoWatermark less anything stays NoWatermark).
func subSat(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

// windows holds state entries grouped by the start of their window
// (aggregate) or interval (downsample), oldest first, and forgets a whole
// window at once when the watermark leaves it behind. A window remembers
// where its first record was: as records come in offset order, that is the
// oldest record of any of its entries, and the oldest over the open
// windows is where a replay rebuilds them all (Rebuild).
type windows[E any] struct {
	byStart map[int64]*window[E]
	starts  startHeap // the keys of byStart, a min-heap
}

// window is the entries of one window, by key text.
type window[E any] struct {
	start int64
	// first is the offset of the window's first record and the watermark
	// just before it.
	first   Position
	entries map[string]E
}

func newWindows[E any]() windows[E] {
	return windows[E]{byStart: map[int64]*window[E]{}}
}

// get returns the window starting at start, or nil when it is not open.
func (ws *windows[E]) get(start int64) *window[E] {
	return ws.byStart[start]
}

// open opens the window starting at start, whose first record is at first.
func (ws *windows[E]) open(start int64, first Position) *window[E] {
	w := &window[E]{start: start, first: first, entries: map[string]E{}}
	ws.byStart[start] = w
	heap.Push(&ws.starts, start)
	return w
}

// closeThrough removes the windows that start at or before last, oldest
// first, passing each to f (when f is not nil).
func (ws *windows[E]) closeThrough(last int64, f func(*window[E])) {
	for len(ws.starts) > 0 && ws.starts[0] <= last {
		start := heap.Pop(&ws.starts).(int64)
		w := ws.byStart[start]
		delete(ws.byStart, start)
		if f != nil {
			f(w)
		}
	}
}

// oldest returns the position of the first record of the oldest open
// window (by offset), or ok false when no window is open. It takes time in
// the number of open windows, not of entries.
func (ws *windows[E]) oldest() (p Position, ok bool) {
	for _, w := range ws.byStart {
		if !ok || w.first.Offset < p.Offset {
			p, ok = w.first, true
		}
	}
	return p, ok
}

// startHeap is a min-heap of window starts (container/heap).
type startHeap []int64

func (h startHeap) Len() int           { return len(h) }
func (h startHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h startHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *startHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *startHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// windowOverhead estimates the bytes of an open window besides its
// entries: the window struct, its (empty) entries map, and its slots in
// byStart and the heap.
const windowOverhead = 160
