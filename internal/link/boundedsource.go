package link

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// offsetRange is a range of offsets of a partition, [from, to).
type offsetRange struct{ from, to int64 }

// boundedSource reads fixed ranges of a source cluster's partitions, [from,
// to) each, and is drained once it handed out all of them: what failback
// copies back from a failed-over link's destination, and what it moves to
// quarantine at the source. To the session the source's logs start at
// from (or later, if retention deleted more) and end at to; a partition
// without a range is empty. Its topics are those of the ranges.
type boundedSource struct {
	*kafkaSource
	ranges map[tp]offsetRange
}

func newBoundedSource(ks *kafkaSource, ranges map[tp]offsetRange) *boundedSource {
	return &boundedSource{kafkaSource: ks, ranges: ranges}
}

func (b *boundedSource) topics(ctx context.Context) ([]sourceTopic, error) {
	all, err := b.kafkaSource.topics(ctx)
	if err != nil {
		return nil, err
	}
	ranged := make(map[string]bool)
	for k := range b.ranges {
		ranged[k.Topic] = true
	}
	var out []sourceTopic
	for _, t := range all {
		if ranged[t.name] {
			out = append(out, t)
		}
	}
	return out, nil
}

func (b *boundedSource) offsets(ctx context.Context, kind offsetKind, topics ...string) (map[tp]int64, error) {
	offs, err := b.kafkaSource.offsets(ctx, kind, topics...)
	if err != nil {
		return nil, err
	}
	var ends map[tp]int64
	for k, o := range offs {
		r, ok := b.ranges[k]
		switch {
		case !ok && kind == startOffset:
			// A partition without a range is empty, at its end.
			if ends == nil {
				if ends, err = b.kafkaSource.offsets(ctx, endOffset, topics...); err != nil {
					return nil, err
				}
			}
			offs[k] = max(ends[k], o)
		case !ok:
		case kind == startOffset:
			offs[k] = min(max(o, r.from), r.to)
		default:
			offs[k] = min(o, r.to)
		}
	}
	return offs, nil
}

func (b *boundedSource) fetcher() (fetcher, error) {
	cl, err := kgo.NewClient(b.opts...)
	if err != nil {
		return nil, fmt.Errorf("create source consumer: %w", err)
	}
	return &boundedFetcher{Client: cl, ranges: b.ranges, next: make(map[tp]int64)}, nil
}

// boundedFetcher is a consumer that hands out the records of each
// partition below its range's end, and then one record that moves the
// partition's position to the end (see advanced), so that the session
// checkpoints it there whatever the last offsets held.
type boundedFetcher struct {
	*kgo.Client
	ranges map[tp]offsetRange
	// next is, per partition added, the next offset to hand out.
	next map[tp]int64
}

func (f *boundedFetcher) AddConsumePartitions(add map[string]map[int32]kgo.Offset) {
	read := make(map[string]map[int32]kgo.Offset)
	for t, ps := range add {
		for p, o := range ps {
			k := tp{t, p}
			f.next[k] = o.EpochOffset().Offset
			if f.done(k) {
				continue
			}
			if read[t] == nil {
				read[t] = make(map[int32]kgo.Offset)
			}
			read[t][p] = o
		}
	}
	f.Client.AddConsumePartitions(read)
}

func (f *boundedFetcher) RemoveConsumePartitions(drop map[string][]int32) {
	for t, ps := range drop {
		for _, p := range ps {
			delete(f.next, tp{t, p})
		}
	}
	f.Client.RemoveConsumePartitions(drop)
}

// ResumeFetchPartitions resumes the partitions that are not done.
func (f *boundedFetcher) ResumeFetchPartitions(resume map[string][]int32) {
	keep := make(map[string][]int32)
	for t, ps := range resume {
		for _, p := range ps {
			if !f.done(tp{t, p}) {
				keep[t] = append(keep[t], p)
			}
		}
	}
	f.Client.ResumeFetchPartitions(keep)
}

// done reports whether partition k was handed out up to its range's end.
func (f *boundedFetcher) done(k tp) bool {
	r, ok := f.ranges[k]
	return !ok || f.next[k] >= r.to
}

// PollFetches drops the records at or after each range's end, and pauses a
// partition once it reaches it.
func (f *boundedFetcher) PollFetches(ctx context.Context) kgo.Fetches {
	fs := f.Client.PollFetches(ctx)
	finished := make(map[string][]int32)
	for i := range fs {
		for j := range fs[i].Topics {
			ft := &fs[i].Topics[j]
			for m := range ft.Partitions {
				fp := &ft.Partitions[m]
				k := tp{ft.Topic, fp.Partition}
				r, ok := f.ranges[k]
				if !ok {
					fp.Records = nil
					continue
				}
				recs := fp.Records[:0]
				reached := false
				for _, rec := range fp.Records {
					if rec.Offset >= r.to {
						reached = true
						break
					}
					recs = append(recs, rec)
					f.next[k] = rec.Offset + 1
				}
				if reached && f.next[k] < r.to {
					// The range ends in offsets that hold nothing to hand
					// out (compacted away): the position moves to its end.
					recs = append(recs, &kgo.Record{Topic: k.Topic, Partition: k.Partition, Offset: r.to - 1, Context: advanced})
					f.next[k] = r.to
				}
				fp.Records = recs
				if f.done(k) {
					finished[k.Topic] = append(finished[k.Topic], k.Partition)
				}
			}
		}
	}
	if len(finished) > 0 {
		f.PauseFetchPartitions(finished)
	}
	return fs
}

// drained reports whether every partition with something in its range
// was added and handed out to the range's end.
func (f *boundedFetcher) drained() bool {
	for k, r := range f.ranges {
		if r.from >= r.to {
			continue
		}
		if _, added := f.next[k]; !added || !f.done(k) {
			return false
		}
	}
	return true
}
