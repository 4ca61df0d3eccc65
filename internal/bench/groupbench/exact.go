package main

import (
	"slices"

	"github.com/edgelink/edgelink/internal/bench/mdreport"
)

// partitionMap is what a mirror partition holds: the source offsets of
// its records and their offsets in the mirror, both increasing, and the
// mirror's end offset. It gives the exact translation of any source
// offset.
type partitionMap struct {
	src, mir []int64
	end      int64
}

// add appends a mirror record: the copy of source offset src at mirror
// offset mir. A record whose source offset is not past the last one (a
// duplicate, or out of order) is not added: add returns false.
func (m *partitionMap) add(src, mir int64) bool {
	if n := len(m.src); n > 0 && (src <= m.src[n-1] || mir <= m.mir[n-1]) {
		return false
	}
	m.src, m.mir = append(m.src, src), append(m.mir, mir)
	return true
}

// expected is where a group that committed source offset s (the next
// record it would read) must continue in the mirror: the mirror offset of
// the first record copied from s or later, or the mirror's end when there
// is none (a caught-up group of a quiet partition).
func (m *partitionMap) expected(s int64) int64 {
	i, _ := slices.BinarySearch(m.src, s)
	if i == len(m.src) {
		return m.end
	}
	return m.mir[i]
}

// index counts the mirror's records before mirror offset o: where a
// consumer at o continues, in records.
func (m *partitionMap) index(o int64) int64 {
	i, _ := slices.BinarySearch(m.mir, o)
	return int64(i)
}

// distance is how far a committed mirror offset got is from the exact one
// want, in records: positive when got is ahead (the group would skip that
// many records), negative when behind (it would read them again), zero
// when both continue at the same record.
func (m *partitionMap) distance(got, want int64) int64 { return m.index(got) - m.index(want) }

// tally counts how the groups' offsets at the destination compare with
// the exact ones.
type tally struct {
	// groups counts the groups checked; complete those with an offset at
	// the destination for every partition, partial for some, none for
	// none; exact the complete ones whose every partition is exact; off
	// those with at least one partition off.
	groups, complete, partial, none, exact, off int
	// exactAtEnd counts the exact groups that were committed at the end
	// of every partition (caught up).
	exactAtEnd int
	// parts counts the partitions checked, present those with an offset
	// at the destination; exactParts the present ones that continue at the
	// exact record, sameOffset those at the exact offset itself (fewer
	// only when an offset lands on a marker before the exact record);
	// ahead and behind the others.
	parts, present, exactParts, sameOffset, ahead, behind int
	// dist holds the distance in records of every partition off, as a
	// positive number; maxAhead and maxBehind the largest of each sign.
	dist                []int64
	maxAhead, maxBehind int64
}

// addGroup checks one group: src are its committed source offsets, one per
// partition (the maps' index), and got its offsets at the destination by
// partition.
func (t *tally) addGroup(maps []partitionMap, src []int64, got map[int32]int64) {
	t.groups++
	n, off := 0, false
	for p, s := range src {
		t.parts++
		g, ok := got[int32(p)]
		if !ok {
			continue
		}
		n++
		t.present++
		m := &maps[p]
		want := m.expected(s)
		if g == want {
			t.sameOffset++
		}
		switch d := m.distance(g, want); {
		case d == 0:
			t.exactParts++
		case d > 0:
			off = true
			t.ahead++
			t.dist = append(t.dist, d)
			t.maxAhead = max(t.maxAhead, d)
		default:
			off = true
			t.behind++
			t.dist = append(t.dist, -d)
			t.maxBehind = max(t.maxBehind, -d)
		}
	}
	switch {
	case n == len(src):
		t.complete++
		if !off {
			t.exact++
		}
	case n > 0:
		t.partial++
	default:
		t.none++
	}
	if off {
		t.off++
	}
}

// medianOff is the median distance of the partitions off, in records (0
// when none is).
func (t *tally) medianOff() float64 {
	xs := make([]float64, len(t.dist))
	for i, d := range t.dist {
		xs[i] = float64(d)
	}
	return mdreport.Median(xs)
}

// maxOff is the largest distance of a partition off, in records.
func (t *tally) maxOff() int64 { return max(t.maxAhead, t.maxBehind) }

// translated counts the groups with an offset at the destination for at
// least one partition.
func (t *tally) translated() int { return t.complete + t.partial }
