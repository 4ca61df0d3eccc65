package link

import (
	"context"
	"errors"
	"fmt"
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

// Translate maps a source offset to the mirror partition exactly. Every
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
	p, err := newProber(opts, topic, partition)
	if err != nil {
		return tr, err
	}
	defer p.close()
	// Find the first mirror offset in [lo, hi) whose record has a source
	// offset >= source. Probing offset m yields the first record at or after
	// m (skipping transaction markers); its offset moves lo past the gap.
	lo, hi := so.Offset, eo.Offset
	for lo < hi {
		m := lo + (hi-lo)/2
		r, err := p.recordAt(ctx, m, hi)
		if err != nil {
			return tr, err
		}
		if r == nil { // only markers in [m, hi)
			hi = m
			continue
		}
		o, found, err := provenance.Find(r)
		if err != nil || !found {
			return tr, fmt.Errorf("record %s[%d]@%d has no valid provenance header: not written by edgelink", topic, partition, r.Offset)
		}
		if o.Offset >= source {
			hi = m
		} else {
			lo = r.Offset + 1
		}
	}
	tr.Destination = lo
	if lo >= eo.Offset {
		tr.Pending = true
		return tr, nil
	}
	r, err := p.recordAt(ctx, lo, eo.Offset)
	if err != nil {
		return tr, err
	}
	if r == nil { // only markers up to the end
		tr.Destination, tr.Pending = eo.Offset, true
		return tr, nil
	}
	tr.Destination = r.Offset
	o, _, _ := provenance.Find(r)
	tr.Exact = o.Offset == source
	return tr, nil
}

// prober reads single records at chosen offsets of one partition.
type prober struct {
	cl        *kgo.Client
	topic     string
	partition int32
}

func newProber(opts []kgo.Opt, topic string, partition int32) (*prober, error) {
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
	return &prober{cl: cl, topic: topic, partition: partition}, nil
}

func (p *prober) close() { p.cl.Close() }

// recordAt returns the first committed record at or after offset and before
// end, or nil when there is none.
func (p *prober) recordAt(ctx context.Context, offset, end int64) (*kgo.Record, error) {
	if offset >= end {
		return nil, nil
	}
	p.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{p.topic: {p.partition: {Epoch: -1, Offset: offset}}})
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := p.cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("read %s[%d]@%d: %w", p.topic, p.partition, offset, fe.Err)
			}
		}
		recs := fs.Records()
		if len(recs) == 0 {
			return nil, nil // nothing at all from offset on
		}
		for _, r := range recs {
			if r.Offset >= end {
				return nil, nil
			}
			// Markers are kept so that a range of markers and aborted
			// records is crossed without waiting for a fetch to time out.
			if r.Offset >= offset && !r.Attrs.IsControl() {
				return r, nil
			}
		}
		if recs[len(recs)-1].Offset+1 >= end {
			return nil, nil
		}
	}
}
