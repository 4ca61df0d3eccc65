package link

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/transform"
)

// positions tracks, per source partition, the next source offset to
// replicate: committed (what the destination holds) and dirty (reached in
// the open transaction, or to be checkpointed at the next commit). It
// turns them into checkpoint records for the sink, and notices gaps in
// the offsets it is handed. It is owned by the session's goroutine.
type positions struct {
	store slotStore
	// source is the source cluster's id, written into every checkpoint.
	source string
	// committed holds the next source offset of every partition known,
	// as the destination holds it (for a partition not checkpointed yet:
	// where it starts).
	committed map[tp]int64
	dirty     map[tp]int64
	// topicIDs holds the source topic id each partition's checkpoint was
	// written for ("" for checkpoints from before ids were recorded).
	topicIDs map[tp]string
	// gap is called for offsets missing in what admit is handed: records
	// deleted at the source before they were replicated, or (usually)
	// aborted records, markers or compaction.
	gap func(k tp, expected, got int64)
	// rebuild, for a link with a stateful transform, gives where
	// replaying k rebuilds its state at next (nil: keep the position of
	// the committed checkpoint). rebuilds hold those of the committed
	// checkpoints, writing those the commit under way writes.
	rebuild           func(k tp, next int64) *transform.Position
	rebuilds, writing map[tp]transform.Position
}

func newPositions(st slotStore, source string, saved map[tp]checkpoint, gap func(tp, int64, int64)) *positions {
	p := &positions{
		store: st, source: source, gap: gap,
		committed: make(map[tp]int64, len(saved)), dirty: make(map[tp]int64, len(saved)),
		topicIDs: make(map[tp]string, len(saved)),
		rebuilds: make(map[tp]transform.Position), writing: make(map[tp]transform.Position),
	}
	// The session's first commit writes every checkpoint it knows, under
	// its own generation (see store).
	for k, cp := range saved {
		p.committed[k], p.dirty[k], p.topicIDs[k] = cp.Next, cp.Next, cp.TopicID
		if rb := cp.Rebuild; rb != nil && rb.Offset <= cp.Next {
			pos := transform.Position{Offset: rb.Offset, Watermark: transform.NoWatermark}
			if rb.Watermark != nil {
				pos.Watermark = *rb.Watermark
			}
			p.rebuilds[k] = pos
		}
	}
	return p
}

// rebuildFrom returns where replaying k rebuilds the state of its committed
// checkpoint: its rebuild position, or the checkpoint itself when it has
// none.
func (p *positions) rebuildFrom(k tp) transform.Position {
	if pos, ok := p.rebuilds[k]; ok {
		return pos
	}
	next, _ := p.saved(k)
	return transform.Position{Offset: next, Watermark: transform.NoWatermark}
}

// saved returns a partition's committed position.
func (p *positions) saved(k tp) (int64, bool) {
	v, ok := p.committed[k]
	return v, ok
}

// at returns where k stands: in the open transaction, or committed.
func (p *positions) at(k tp) (int64, bool) {
	if v, ok := p.dirty[k]; ok {
		return v, true
	}
	v, ok := p.committed[k]
	return v, ok
}

// start records a partition that starts at off without a checkpoint, for
// the source topic id.
func (p *positions) start(k tp, off int64, topicID string) {
	p.committed[k], p.dirty[k], p.topicIDs[k] = off, off, topicID
}

// admit drops from recs what was replicated already (a re-fetch) and the
// transaction markers, reports gaps, and advances k past the chunk. It
// reuses recs' array, and writes to it only from the first record it
// drops (usually none: this is the hot path).
func (p *positions) admit(k tp, recs []*kgo.Record) []*kgo.Record {
	next, known := p.at(k)
	n := 0 // records kept so far; recs[:n] is the result
	for i, r := range recs {
		keep := !known || r.Offset >= next
		if keep {
			if known && r.Offset > next {
				p.gap(k, next, r.Offset)
			}
			next, known = r.Offset+1, true
			keep = !r.Attrs.IsControl() && r.Context != advanced
		}
		if keep {
			if n != i {
				recs[n] = r
			}
			n++
		}
	}
	if known {
		p.dirty[k] = next
	}
	return recs[:n]
}

// pending reports whether positions wait to be checkpointed.
func (p *positions) pending() bool { return len(p.dirty) > 0 }

// marks returns the checkpoint records of every dirty position.
func (p *positions) marks(currentIDs map[string]string) []*kgo.Record {
	out := make([]*kgo.Record, 0, len(p.dirty))
	for k, next := range p.dirty {
		if id := currentIDs[k.Topic]; id != "" && p.topicIDs[k] == "" {
			p.topicIDs[k] = id // a checkpoint from before ids were recorded
		}
		c := checkpoint{Next: next, Source: p.source, TopicID: p.topicIDs[k]}
		if p.rebuild != nil {
			pos, ok := p.rebuilds[k]
			if rb := p.rebuild(k, next); rb != nil {
				pos, ok = *rb, true
			}
			if ok {
				p.writing[k] = pos
				c.Rebuild = &rebuildAt{Offset: pos.Offset}
				if pos.Watermark != transform.NoWatermark {
					c.Rebuild.Watermark = &pos.Watermark
				}
			}
		}
		out = append(out, p.store.checkpointRecord(k, c))
	}
	return out
}

// committedNow records that the dirty positions are committed.
func (p *positions) committedNow() {
	for k, next := range p.dirty {
		p.committed[k] = next
	}
	clear(p.dirty)
	for k, pos := range p.writing {
		p.rebuilds[k] = pos
	}
	clear(p.writing)
}

// rewind forgets the open transaction's positions: every position is
// written again at the next commit.
func (p *positions) rewind() {
	clear(p.writing)
	clear(p.dirty)
	for k, v := range p.committed {
		p.dirty[k] = v
	}
}

// lossCheck throttles the checks for records lost to retention, per
// partition.
type lossCheck map[tp]time.Time

func (c lossCheck) due(k tp) bool {
	if time.Since(c[k]) < time.Second {
		return false
	}
	c[k] = time.Now()
	return true
}
