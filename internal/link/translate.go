package link

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"
)

// Translation is where a source offset lands in a mirror partition.
type Translation struct {
	// Topic and Partition name the mirror partition.
	Topic     string
	Partition int32
	// Source is the source offset that was translated.
	Source int64
	// Destination is the offset of the first mirrored record whose source
	// offset is at least Source: a consumer that has consumed the source
	// up to (not including) Source continues at Destination. When no such
	// record exists yet, it is the mirror's end offset.
	Destination int64
	// Exact is true when the record at Destination is the source record
	// at Source itself (false when Source was a gap at the source: an
	// aborted or compacted record, or a transaction marker).
	Exact bool
	// Pending is true when Source has not been replicated yet.
	Pending bool
}

// Translate maps a source offset to the mirror partition exactly. Records
// without provenance (written at the destination) are passed over. Every
// mirrored record carries its source offset in its provenance header and
// mirrors keep source order, so a binary search over the mirror partition
// finds the answer with O(log n) fetches and no sampling: unlike a table of
// sampled offset syncs it is exact for every offset the mirror retains.
// opts connect to the destination cluster.
func Translate(ctx context.Context, opts []kgo.Opt, topic string, partition int32, source int64) (Translation, error) {
	tr := Translation{Topic: topic, Partition: partition, Source: source}
	dst, err := kgo.NewClient(opts...)
	if err != nil {
		return tr, fmt.Errorf("create destination client: %w", err)
	}
	defer dst.Close()
	adm := kadm.NewClient(dst)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return tr, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return tr, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	so, ok1 := starts.Lookup(topic, partition)
	eo, ok2 := ends.Lookup(topic, partition)
	if !ok1 || !ok2 {
		return tr, fmt.Errorf("mirror partition %s[%d] does not exist", topic, partition)
	}
	if so.Err != nil || eo.Err != nil {
		return tr, fmt.Errorf("list offsets of %s[%d]: %w", topic, partition, errors.Join(so.Err, eo.Err))
	}
	p, err := newProber(opts, topic, partition, origin{})
	if err != nil {
		return tr, err
	}
	defer p.close()
	out := make(map[int64]answer, 1)
	if err := p.resolve(ctx, []int64{source}, so.Offset, eo.Offset, eo.Offset, out); err != nil {
		return tr, err
	}
	a := out[source]
	tr.Destination, tr.Exact, tr.Pending = a.offset, a.exact, a.offset >= eo.Offset
	return tr, nil
}

// answer is where a source offset lands in a mirror partition: offset, and
// whether the record there is the source record itself.
type answer struct {
	offset int64
	exact  bool
}

// resolve translates every source offset of ss (sorted, distinct) whose
// answer lies in [lo, hi) of the mirror partition: the offset of the first
// record there whose source offset is at least it; none when no record of
// [lo, hi) is. Each probe reads a run of records (a fetch's worth) and
// answers every offset the run covers, so translating many offsets of a
// partition at once costs little more than translating one.
func (p *prober) resolve(ctx context.Context, ss []int64, lo, hi, none int64, out map[int64]answer) error {
	for len(ss) > 0 {
		if lo >= hi {
			for _, s := range ss {
				out[s] = answer{offset: none}
			}
			return nil
		}
		m := lo + (hi-lo)/2
		run, src, err := p.run(ctx, m, hi)
		if err != nil {
			return err
		}
		if len(run) == 0 { // only markers and aborted records in [m, hi)
			hi = m
			continue
		}
		first, last := src[0], src[len(src)-1]
		var left, right []int64
		for _, s := range ss {
			switch {
			case s < first:
				left = append(left, s)
			case s > last:
				right = append(right, s)
			default:
				i, _ := slices.BinarySearch(src, s)
				out[s] = answer{offset: run[i].Offset, exact: src[i] == s}
			}
		}
		if err := p.resolve(ctx, left, lo, run[0].Offset, run[0].Offset, out); err != nil {
			return err
		}
		ss, lo = right, run[len(run)-1].Offset+1
	}
	return nil
}

// prober reads single records at chosen offsets of one partition. Records
// another link wrote (their provenance names another source than origin)
// and records no link wrote (no provenance: written at the destination,
// after a failover say) are passed over, as markers are.
type prober struct {
	cl        *kgo.Client
	topic     string
	partition int32
	// origin, when set, is the source cluster's id and site of the link
	// whose records count.
	origin origin
}

// origin is a link's source, as its provenance headers name it.
type origin struct{ cluster, site string }

func newProber(opts []kgo.Opt, topic string, partition int32, from origin) (*prober, error) {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(1<<20),
		kgo.FetchMaxPartitionBytes(1<<20),
	)...)
	if err != nil {
		return nil, fmt.Errorf("create mirror reader: %w", err)
	}
	return &prober{cl: cl, topic: topic, partition: partition, origin: from}, nil
}

func (p *prober) close() { p.cl.Close() }

// run returns the committed records of one fetch's worth at or after
// offset and before end, with their source offsets, which increase: none
// when [offset, end) holds only markers and aborted records.
func (p *prober) run(ctx context.Context, offset, end int64) ([]*kgo.Record, []int64, error) {
	if offset >= end {
		return nil, nil, nil
	}
	p.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{p.topic: {p.partition: {Epoch: -1, Offset: offset}}})
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := p.cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return nil, nil, fmt.Errorf("read %s[%d]@%d: %w", p.topic, p.partition, offset, fe.Err)
			}
		}
		recs := fs.Records()
		if len(recs) == 0 {
			return nil, nil, nil // nothing at all from offset on
		}
		var (
			run []*kgo.Record
			src []int64
		)
		for _, r := range recs {
			// Markers are kept so that a range of markers and aborted
			// records is crossed without waiting for a fetch to time out.
			if r.Offset < offset || r.Offset >= end || r.Attrs.IsControl() {
				continue
			}
			o, found, err := provenance.Find(r)
			if err != nil || !found || (p.origin.cluster != "" && (o.ClusterID != p.origin.cluster || o.Site != p.origin.site)) {
				continue
			}
			if n := len(src); n > 0 && o.Offset <= src[n-1] {
				return nil, nil, fmt.Errorf("record %s[%d]@%d comes from source offset %d, after a record from %d: the mirror is not in source order",
					p.topic, p.partition, r.Offset, o.Offset, src[n-1])
			}
			run, src = append(run, r), append(src, o.Offset)
		}
		if len(run) > 0 || recs[len(recs)-1].Offset+1 >= end {
			return run, src, nil
		}
		offset = recs[len(recs)-1].Offset + 1
	}
}
