package verify

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"
)

// partitionCheck compares one source partition with the destination
// partition of the same number.
type partitionCheck struct {
	opts      *Options
	pair      Pair
	partition int32
	// srcID and dstID are the clusters' ids, empty when one reports none.
	srcID, dstID string
	// src and dst are nil when the partition does not exist on that side.
	src, dst *partitionSnapshot
	expected []Range // normalized
}

// fingerprint is what the check keeps of a record: enough to tell whether
// a copy is exact and, when it is not, what differs.
type fingerprint struct {
	ts               int64 // milliseconds
	key, value, hdrs uint64
	klen, vlen       int32 // -1 for null
}

// sourceRecord is the fingerprint of one committed source record.
type sourceRecord struct {
	offset int64
	// copied is the destination offset of its first copy, -1 until one is
	// found.
	copied int64
	fingerprint
}

// result is what one partition contributes to the report.
type result struct {
	srcRecords, dstRecords                                   int64
	lost, duplicated, reordered, corrupted, phantom, foreign int64
	echoed                                                   int64
	expectedLost, belowStart, ahead, otherSource, looped     int64
	filtered, transformErrors                                int64

	examples []Example
	perKind  map[Kind]int
	limit    int
	notes    []string
}

func (r *result) addTo(rep *Report) {
	rep.SourceRecords += r.srcRecords
	rep.DestinationRecords += r.dstRecords
	rep.Lost += r.lost
	rep.Duplicated += r.duplicated
	rep.Reordered += r.reordered
	rep.Corrupted += r.corrupted
	rep.Phantom += r.phantom
	rep.Foreign += r.foreign
	rep.Echoed += r.echoed
	rep.ExpectedLost += r.expectedLost
	rep.BelowSourceStart += r.belowStart
	rep.Ahead += r.ahead
	rep.OtherSource += r.otherSource
	rep.Looped += r.looped
	rep.Filtered += r.filtered
	rep.TransformErrors += r.transformErrors
}

// run reads the source partition into fingerprints, then streams the
// destination partition against them.
func (c *partitionCheck) run(ctx context.Context, srcCl, dstCl *kgo.Client, seed maphash.Seed) (*result, error) {
	res := &result{perKind: make(map[Kind]int), limit: c.opts.Examples}
	example := func(kind Kind, srcOff, dstOff int64, format string, args ...any) {
		if res.perKind[kind] >= res.limit {
			return
		}
		res.perKind[kind]++
		res.examples = append(res.examples, Example{
			Kind: kind, Source: c.pair.Source, Destination: c.pair.Destination, Partition: c.partition,
			SourceOffset: srcOff, DestinationOffset: dstOff, Detail: fmt.Sprintf(format, args...),
		})
	}

	// The source: fingerprints of every committed record in [start, end).
	var (
		table            []sourceRecord
		srcStart, srcEnd int64
		deleted          []gap
	)
	if c.src != nil {
		srcStart, srcEnd = c.src.start, c.src.end
	}
	if srcEnd > srcStart {
		table = make([]sourceRecord, 0, min(srcEnd-srcStart, 1<<16))
		r := &partitionReader{cl: srcCl, topic: c.pair.Source, partition: c.partition, leader: -1}
		var err error
		var derive func(*kgo.Record) (bool, []*kgo.Record, error)
		if c.opts.Derive != nil {
			derive = c.opts.Derive(c.pair.Source, c.partition)
		}
		deleted, err = r.read(ctx, srcStart, srcEnd, func(rec *kgo.Record) {
			if c.dstID != "" && len(rec.Headers) > 0 && provenance.Visited(rec.Headers, c.dstID) {
				// Loop prevention keeps it out, before any transform.
				res.looped++
				return
			}
			if derive != nil {
				keep, emit, err := derive(rec)
				if err != nil {
					res.transformErrors++
				}
				if keep && err == nil {
					table = append(table, sourceRecord{offset: rec.Offset, copied: -1, fingerprint: fingerprintOf(seed, rec, -1)})
				} else {
					res.filtered++
				}
				for _, e := range emit {
					table = append(table, sourceRecord{offset: rec.Offset, copied: -1, fingerprint: fingerprintOf(seed, e, -1)})
				}
				return
			}
			if t := c.opts.Transform; t != nil {
				keep, err := t(rec)
				if err != nil {
					res.transformErrors++
				}
				if !keep || err != nil {
					res.filtered++
					return
				}
			}
			table = append(table, sourceRecord{offset: rec.Offset, copied: -1, fingerprint: fingerprintOf(seed, rec, -1)})
		})
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		for _, g := range deleted {
			res.notes = append(res.notes, fmt.Sprintf("source %s[%d]: offsets %d to %d deleted by retention during the check",
				c.pair.Source, c.partition, g.From, g.To-1))
		}
	}
	res.srcRecords = int64(len(table))

	// The destination, streamed.
	var (
		outside = make(map[int64]int64) // source offset -> first destination offset, outside [srcStart, srcEnd)
		prev    = int64(-1)             // source offset of the previous first copy
		prevDst = int64(-1)
		hint    int
		inOrder = func(srcOff, dstOff int64) {
			if srcOff < prev {
				res.reordered++
				example(KindReordered, srcOff, dstOff, "follows source offset %d (at destination offset %d)", prev, prevDst)
			}
			prev, prevDst = srcOff, dstOff
		}
		inDeleted = func(off int64) bool {
			for _, g := range deleted {
				if off >= g.From && off < g.To {
					return true
				}
			}
			return false
		}
	)
	visit := func(rec *kgo.Record) {
		res.dstRecords++
		origin, idx, status := hop(rec, c.srcID)
		switch status {
		case hopNone:
			res.foreign++
			example(KindForeign, -1, rec.Offset, "no provenance header")
			return
		case hopMalformed:
			res.corrupted++
			example(KindCorrupted, -1, rec.Offset, "malformed provenance header")
			return
		case hopOther:
			res.otherSource++
			return
		}
		if c.dstID != "" {
			if before := earlier(rec, idx); slices.Contains(before, c.dstID) {
				res.echoed++
				example(KindEchoed, origin.Offset, rec.Offset, "it had been in the destination cluster before (its provenance lists %s)", strings.Join(before, ", "))
				return
			}
		}
		if origin.Partition != c.partition {
			res.corrupted++
			example(KindCorrupted, -1, rec.Offset, "in partition %d, but its provenance names source partition %d offset %d", c.partition, origin.Partition, origin.Offset)
			return
		}
		off := origin.Offset
		if off < srcStart || off >= srcEnd || inDeleted(off) {
			if off >= srcEnd {
				res.ahead++
			} else {
				res.belowStart++
			}
			if first, dup := outside[off]; dup {
				res.duplicated++
				example(KindDuplicated, off, rec.Offset, "extra copy (first copy at destination offset %d)", first)
				return
			}
			outside[off] = rec.Offset
			inOrder(off, rec.Offset)
			return
		}
		i, found := lookup(table, off, hint)
		if !found {
			res.phantom++
			example(KindPhantom, off, rec.Offset, "not a committed source record (aborted transaction, transaction marker, or compacted away)")
			return
		}
		if i > 0 && table[i-1].offset == off || i+1 < len(table) && table[i+1].offset == off {
			// Several records of one source offset (a record and the
			// windows it closed): the first not found yet that is this.
			i = match(table, i, off, fingerprintOf(seed, rec, idx))
		}
		hint = i + 1
		s := &table[i]
		if s.copied >= 0 {
			res.duplicated++
			example(KindDuplicated, off, rec.Offset, "extra copy (first copy at destination offset %d)", s.copied)
		} else {
			s.copied = rec.Offset
			inOrder(off, rec.Offset)
		}
		if d := diff(s.fingerprint, fingerprintOf(seed, rec, idx)); d != "" {
			res.corrupted++
			example(KindCorrupted, off, rec.Offset, "%s", d)
		}
	}
	if c.dst != nil && c.dst.end > c.dst.start {
		r := &partitionReader{cl: dstCl, topic: c.pair.Destination, partition: c.partition, leader: -1}
		gaps, err := r.read(ctx, c.dst.start, c.dst.end, visit)
		if err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
		for _, g := range gaps {
			res.notes = append(res.notes, fmt.Sprintf("destination %s[%d]: offsets %d to %d deleted by retention during the check",
				c.pair.Destination, c.partition, g.From, g.To-1))
		}
	}

	// Source records nobody named are lost, or expected lost. Each run of
	// consecutive lost records gives one example.
	exp := c.expected
	runStart, runLen := int64(-1), 0
	flush := func(last int64) {
		if runLen > 0 {
			if runLen == 1 {
				example(KindLost, runStart, -1, "no destination record names it")
			} else {
				example(KindLost, runStart, -1, "no destination record names it, nor the next %d source records (to offset %d)", runLen-1, last)
			}
		}
		runStart, runLen = -1, 0
	}
	var lastLost int64
	for i := range table {
		s := &table[i]
		if s.copied >= 0 {
			flush(lastLost)
			continue
		}
		for len(exp) > 0 && exp[0].To <= s.offset {
			exp = exp[1:]
		}
		if len(exp) > 0 && exp[0].From <= s.offset {
			res.expectedLost++
			flush(lastLost)
			continue
		}
		res.lost++
		if runLen == 0 {
			runStart = s.offset
		}
		runLen++
		lastLost = s.offset
	}
	flush(lastLost)
	return res, nil
}

// match picks, among the entries of table for source offset off (i is
// one of them), the first not copied yet with fingerprint fp, else one
// copied already with it (a duplicate), else the first not copied yet
// (corrupted), else the first.
func match(table []sourceRecord, i int, off int64, fp fingerprint) int {
	for i > 0 && table[i-1].offset == off {
		i--
	}
	first, uncopied, same := i, -1, -1
	for j := i; j < len(table) && table[j].offset == off; j++ {
		switch {
		case table[j].fingerprint == fp && table[j].copied < 0:
			return j
		case table[j].fingerprint == fp:
			if same < 0 {
				same = j
			}
		case table[j].copied < 0 && uncopied < 0:
			uncopied = j
		}
	}
	switch {
	case same >= 0:
		return same
	case uncopied >= 0:
		return uncopied
	}
	return first
}

// lookup finds off in table (sorted by offset), trying index hint first:
// destination records mostly come in source order.
func lookup(table []sourceRecord, off int64, hint int) (int, bool) {
	if hint < len(table) && table[hint].offset == off {
		return hint, true
	}
	return slices.BinarySearchFunc(table, off, func(s sourceRecord, off int64) int { return cmpInt64(s.offset, off) })
}

type hopStatus int

const (
	hopFound     hopStatus = iota
	hopNone                // no provenance header at all
	hopMalformed           // a provenance header that cannot be decoded, none usable
	hopOther               // provenance headers, none naming the source cluster
)

// hop finds the provenance header the link from srcID added to rec: the
// last one naming srcID, or the last one when srcID is empty. It returns
// the origin and the header's index.
func hop(rec *kgo.Record, srcID string) (provenance.Origin, int, hopStatus) {
	seen, malformed := false, false
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		h := rec.Headers[i]
		if h.Key != provenance.Key {
			continue
		}
		seen = true
		o, err := provenance.Decode(h.Value)
		if err != nil {
			malformed = true
			continue
		}
		if srcID == "" || o.ClusterID == srcID {
			return o, i, hopFound
		}
	}
	switch {
	case !seen:
		return provenance.Origin{}, -1, hopNone
	case malformed:
		return provenance.Origin{}, -1, hopMalformed
	default:
		return provenance.Origin{}, -1, hopOther
	}
}

// earlier returns the ids of the clusters rec had been in before the one
// its hop (the provenance header at index hop, -1 for none) names: every
// cluster its provenance headers list, oldest first, but the hop's own.
// They are what a link copying rec on lists as its hops.
func earlier(rec *kgo.Record, hop int) []string {
	var out []string
	for i, h := range rec.Headers {
		if h.Key != provenance.Key {
			continue
		}
		o, err := provenance.Decode(h.Value)
		if err != nil {
			continue // not a header of ours: compared as any other
		}
		out = append(out, o.Hops...)
		if i != hop {
			out = append(out, o.ClusterID)
		}
	}
	return out
}

// fingerprintOf fingerprints rec as a copy of it by the hop whose
// provenance header is at index hop (-1 for a source record): its
// provenance headers, which a link replaces, count as the clusters they
// list before the hop (see earlier).
func fingerprintOf(seed maphash.Seed, rec *kgo.Record, hop int) fingerprint {
	f := fingerprint{ts: rec.Timestamp.UnixMilli(), klen: -1, vlen: -1}
	if rec.Key != nil {
		f.klen, f.key = int32(len(rec.Key)), maphash.Bytes(seed, rec.Key)
	}
	if rec.Value != nil {
		f.vlen, f.value = int32(len(rec.Value)), maphash.Bytes(seed, rec.Value)
	}
	var h maphash.Hash
	h.SetSeed(seed)
	var n [binary.MaxVarintLen64]byte
	chained := false
	for _, hd := range rec.Headers {
		if provenance.Valid(hd) {
			chained = true
			continue
		}
		h.Write(binary.AppendVarint(n[:0], int64(len(hd.Key))))
		h.WriteString(hd.Key)
		if hd.Value == nil {
			h.Write(binary.AppendVarint(n[:0], -1))
			continue
		}
		h.Write(binary.AppendVarint(n[:0], int64(len(hd.Value))))
		h.Write(hd.Value)
	}
	if chained {
		for _, c := range earlier(rec, hop) {
			// -2, which no header's key length is, marks a cluster.
			h.Write(binary.AppendVarint(n[:0], -2))
			h.Write(binary.AppendVarint(n[:0], int64(len(c))))
			h.WriteString(c)
		}
	}
	f.hdrs = h.Sum64()
	return f
}

// diff describes how a copy d differs from its source s, or returns "".
func diff(s, d fingerprint) string {
	var parts []string
	field := func(name string, slen, dlen int32, sh, dh uint64) {
		switch {
		case slen == dlen && sh == dh:
		case slen < 0 || dlen < 0:
			parts = append(parts, fmt.Sprintf("%s is %s at the source, %s at the destination", name, size(slen), size(dlen)))
		default:
			parts = append(parts, fmt.Sprintf("%s differs (source %s, destination %s)", name, size(slen), size(dlen)))
		}
	}
	field("key", s.klen, d.klen, s.key, d.key)
	field("value", s.vlen, d.vlen, s.value, d.value)
	if s.hdrs != d.hdrs {
		parts = append(parts, "headers differ")
	}
	if s.ts != d.ts {
		parts = append(parts, fmt.Sprintf("timestamp differs (source %d, destination %d)", s.ts, d.ts))
	}
	return strings.Join(parts, "; ")
}

func size(n int32) string {
	switch n {
	case -1:
		return "null"
	case 1:
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}
