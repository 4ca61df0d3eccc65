package diode

import (
	"cmp"
	"slices"
	"time"
)

// Gap is a range of a partition's offsets that did not arrive.
type Gap struct {
	Topic     string
	Partition int32
	// From and To are the missing offsets [From, To).
	From, To int64
	// Since is when the whole range was known to have been sent: a batch
	// beyond it arrived, or a heartbeat said the sender sent past it. The
	// repair window counts from there.
	Since time.Time
}

// AssemblerOptions configure an Assembler.
type AssemblerOptions struct {
	// RepairWindow is how long a gap waits for repetitions before it is
	// final. 0 takes it from the latest heartbeat
	// ([RedundancyInfo.RepairWindow]); until a heartbeat came, no gap is
	// final.
	RepairWindow time.Duration
	// MaxBuffered bounds the bytes of batches held ahead of a gap; 0 is
	// DefaultMaxBuffered. Beyond it the batches furthest ahead in the
	// partition holding most are dropped (counted), to come again with a
	// repetition or end as a gap.
	MaxBuffered int64
}

// AssemblerStats count what an Assembler did.
type AssemblerStats struct {
	// Buffered bytes in Pending batches.
	Buffered int64
	Pending  int
	// Released batches handed out by Ready.
	Released int64
	// Repeats are batches dropped as already written or already held.
	Repeats int64
	// Evicted are batches dropped to stay within MaxBuffered.
	Evicted int64
}

// Assembler puts the batches of each partition back in offset order from
// the destination's next offset, and tells the ranges that are missing. It
// is a pure data structure: no I/O, no clock of its own (every call that
// needs the time is given it), deterministic. Not safe for concurrent use.
type Assembler struct {
	o        AssemblerOptions
	parts    map[TopicPartition]*part
	dirty    map[TopicPartition]struct{} // partitions Ready may advance
	buffered int64
	window   time.Duration // from heartbeats, when o.RepairWindow is 0
	stats    AssemblerStats
}

// part is one partition's state.
type part struct {
	tp       TopicPartition
	expected bool
	next     int64
	pending  []pending // by From, then To
	bytes    int64
	reveals  []reveal // heartbeat positions, increasing
	skips    [][2]int64
}

type pending struct {
	b    *Batch
	at   time.Time // arrival
	size int64
}

// reveal is a heartbeat's word that the sender sent up to end, first heard
// at at.
type reveal struct {
	end int64
	at  time.Time
}

// NewAssembler returns an empty assembler.
func NewAssembler(o AssemblerOptions) *Assembler {
	if o.MaxBuffered <= 0 {
		o.MaxBuffered = DefaultMaxBuffered
	}
	return &Assembler{o: o, parts: make(map[TopicPartition]*part), dirty: make(map[TopicPartition]struct{})}
}

func (a *Assembler) part(topic string, partition int32) *part {
	tp := TopicPartition{Topic: topic, Partition: partition}
	p := a.parts[tp]
	if p == nil {
		p = &part{tp: tp}
		a.parts[tp] = p
	}
	return p
}

// Expect sets a partition's next offset to write: the destination's
// checkpoint. Batches of a partition are held until it is expected; those
// below next are dropped. Lowering next does not bring back what Ready
// released: the caller keeps released batches until they are written.
func (a *Assembler) Expect(topic string, partition int32, next int64) {
	p := a.part(topic, partition)
	p.expected, p.next = true, next
	a.dropBelow(p)
	a.dirty[p.tp] = struct{}{}
}

// Add takes a batch that arrived at now. It drops what is below the
// partition's next offset and what is held already, and holds the rest
// until Ready.
func (a *Assembler) Add(b *Batch, now time.Time) {
	if b.To <= b.From {
		return
	}
	p := a.part(b.Topic, b.Partition)
	if (p.expected && b.To <= p.next) || p.skipped(b.From, b.To) {
		a.stats.Repeats++
		return
	}
	i, _ := slices.BinarySearchFunc(p.pending, b, func(q pending, b *Batch) int {
		return cmp.Or(cmp.Compare(q.b.From, b.From), cmp.Compare(q.b.To, b.To))
	})
	// A batch held already covers b: the one before it in order (same or
	// lower From) or, for the same From, the one after it (higher To).
	if (i > 0 && p.pending[i-1].b.To >= b.To) || (i < len(p.pending) && p.pending[i].b.From == b.From) {
		a.stats.Repeats++
		return
	}
	q := pending{b: b, at: now, size: b.size()}
	p.pending = slices.Insert(p.pending, i, q)
	p.bytes += q.size
	a.buffered += q.size
	a.dirty[p.tp] = struct{}{}
	if !p.expected || b.From > p.next { // what Ready takes next does not count
		a.evict()
	}
}

// skipped reports whether [from, to) lies in a skipped range.
func (p *part) skipped(from, to int64) bool {
	for _, s := range p.skips {
		if s[0] <= from && to <= s[1] {
			return true
		}
	}
	return false
}

// Heartbeat takes a heartbeat that arrived at now: its positions reveal a
// partition's missing tail, and its redundancy sets the repair window
// (unless the options set one).
func (a *Assembler) Heartbeat(h *Heartbeat, now time.Time) {
	a.window = h.Repeat.RepairWindow()
	for tp, end := range h.Positions {
		p := a.part(tp.Topic, tp.Partition)
		if n := len(p.reveals); n == 0 || end > p.reveals[n-1].end {
			p.reveals = append(p.reveals, reveal{end: end, at: now})
		}
	}
}

// Ready returns, for every expected partition, the batches that continue
// it from its next offset, in order, and advances next past them. A batch
// reaching below next comes trimmed to start at next. Partitions come in
// order of topic and partition.
func (a *Assembler) Ready() []*Batch {
	if len(a.dirty) == 0 {
		return nil
	}
	tps := make([]TopicPartition, 0, len(a.dirty))
	for tp := range a.dirty {
		tps = append(tps, tp)
	}
	clear(a.dirty)
	slices.SortFunc(tps, compareTP)
	var out []*Batch
	for _, tp := range tps {
		p := a.parts[tp]
		if p == nil || !p.expected {
			continue
		}
		taken := 0
		for {
			a.applySkips(p)
			if taken == len(p.pending) || p.pending[taken].b.From > p.next {
				break
			}
			q := p.pending[taken]
			taken++
			p.bytes -= q.size
			a.buffered -= q.size
			if q.b.To <= p.next {
				a.stats.Repeats++
				continue
			}
			out = append(out, trim(q.b, p.next))
			p.next = q.b.To
			a.stats.Released++
		}
		clear(p.pending[:taken])
		p.pending = p.pending[taken:]
		p.pruneReveals()
	}
	return out
}

// trim returns b without what lies below next.
func trim(b *Batch, next int64) *Batch {
	if b.From >= next {
		return b
	}
	c := *b
	c.From = next
	i, _ := slices.BinarySearchFunc(b.Records, next, func(r Record, o int64) int { return cmp.Compare(r.Offset, o) })
	c.Records = b.Records[i:]
	if len(c.Records) == 0 {
		c.Records = nil
	}
	return &c
}

// applySkips moves next past a skipped range it reached.
func (a *Assembler) applySkips(p *part) {
	for len(p.skips) > 0 && p.skips[0][0] <= p.next {
		p.next = max(p.next, p.skips[0][1])
		p.skips = p.skips[1:]
	}
}

// dropBelow drops the held batches that end at or below next.
func (a *Assembler) dropBelow(p *part) {
	n := 0
	for _, q := range p.pending {
		if q.b.To <= p.next {
			p.bytes -= q.size
			a.buffered -= q.size
			a.stats.Repeats++
			continue
		}
		p.pending[n] = q
		n++
	}
	clear(p.pending[n:])
	p.pending = p.pending[:n]
}

func (p *part) pruneReveals() {
	i := 0
	for i < len(p.reveals)-1 && p.reveals[i].end <= p.next {
		i++
	}
	p.reveals = p.reveals[i:]
}

// Gaps returns the missing ranges of every expected partition at now, in
// order of topic, partition and offset: open ones still wait for
// repetitions, final ones waited longer than the repair window. A gap
// appears once a batch beyond it arrived or a heartbeat said the sender
// sent past it; Ready must have taken what it could.
func (a *Assembler) Gaps(now time.Time) (open, final []Gap) {
	window, known := a.o.RepairWindow, true
	if window <= 0 {
		window, known = a.window, a.window > 0
	}
	tps := make([]TopicPartition, 0, len(a.parts))
	for tp, p := range a.parts {
		if p.expected {
			tps = append(tps, tp)
		}
	}
	slices.SortFunc(tps, compareTP)
	for _, tp := range tps {
		for _, g := range a.parts[tp].holes() {
			if known && now.Sub(g.Since) >= window {
				final = append(final, g)
			} else {
				open = append(open, g)
			}
		}
	}
	return open, final
}

// holes returns p's missing ranges, each with the time the whole range was
// known to have been sent.
func (p *part) holes() []Gap {
	// suffix[i] is the earliest arrival among pending[i:].
	suffix := make([]time.Time, len(p.pending)+1)
	for i := len(p.pending) - 1; i >= 0; i-- {
		suffix[i] = p.pending[i].at
		if !suffix[i+1].IsZero() && suffix[i+1].Before(suffix[i]) {
			suffix[i] = suffix[i+1]
		}
	}
	// proof is the earliest time offsets up to x were known sent: a held
	// batch from x on arrived, or a heartbeat said the sender sent x.
	proof := func(x int64) time.Time {
		i, _ := slices.BinarySearchFunc(p.pending, x, func(q pending, x int64) int { return cmp.Compare(q.b.From, x) })
		t := suffix[i]
		for _, r := range p.reveals { // few: one per heartbeat that moved
			if r.end >= x {
				if t.IsZero() || r.at.Before(t) {
					t = r.at
				}
				break
			}
		}
		return t
	}
	spans := make([][2]int64, 0, len(p.pending)+len(p.skips))
	for _, q := range p.pending {
		spans = append(spans, [2]int64{q.b.From, q.b.To})
	}
	spans = append(spans, p.skips...)
	slices.SortFunc(spans, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var out []Gap
	cursor := p.next
	hole := func(to int64) {
		if to > cursor {
			out = append(out, Gap{Topic: p.tp.Topic, Partition: p.tp.Partition, From: cursor, To: to, Since: proof(to)})
		}
	}
	for _, s := range spans {
		hole(s[0])
		cursor = max(cursor, s[1])
	}
	if n := len(p.reveals); n > 0 {
		hole(p.reveals[n-1].end)
	}
	return out
}

// Skip accepts a gap as lost: the partition's next offset moves past it
// once it reaches it, and batches within it are dropped.
func (a *Assembler) Skip(g Gap) {
	if g.To <= g.From {
		return
	}
	p := a.part(g.Topic, g.Partition)
	if p.expected && g.To <= p.next {
		return
	}
	i, _ := slices.BinarySearchFunc(p.skips, g.From, func(s [2]int64, from int64) int { return cmp.Compare(s[0], from) })
	p.skips = slices.Insert(p.skips, i, [2]int64{g.From, g.To})
	// Merge overlapping or touching ranges.
	merged := p.skips[:1]
	for _, s := range p.skips[1:] {
		last := &merged[len(merged)-1]
		if s[0] <= last[1] {
			last[1] = max(last[1], s[1])
			continue
		}
		merged = append(merged, s)
	}
	p.skips = merged
	// Drop held batches wholly inside a skipped range.
	n := 0
	for _, q := range p.pending {
		if p.skipped(q.b.From, q.b.To) {
			p.bytes -= q.size
			a.buffered -= q.size
			continue
		}
		p.pending[n] = q
		n++
	}
	clear(p.pending[n:])
	p.pending = p.pending[:n]
	a.dirty[p.tp] = struct{}{}
}

// Buffered returns the bytes of batches held.
func (a *Assembler) Buffered() int64 { return a.buffered }

// Stats returns the assembler's counters.
func (a *Assembler) Stats() AssemblerStats {
	st := a.stats
	st.Buffered = a.buffered
	for _, p := range a.parts {
		st.Pending += len(p.pending)
	}
	return st
}

// evict drops the batches furthest ahead in the partition holding most
// until the bound is kept.
func (a *Assembler) evict() {
	for a.buffered > a.o.MaxBuffered {
		var worst *part
		for _, p := range a.parts {
			if len(p.pending) == 0 {
				continue
			}
			if worst == nil || p.bytes > worst.bytes || (p.bytes == worst.bytes && compareTP(p.tp, worst.tp) < 0) {
				worst = p
			}
		}
		if worst == nil {
			return
		}
		q := worst.pending[len(worst.pending)-1]
		worst.pending[len(worst.pending)-1] = pending{}
		worst.pending = worst.pending[:len(worst.pending)-1]
		worst.bytes -= q.size
		a.buffered -= q.size
		a.stats.Evicted++
	}
}
