package link

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/bundle"
)

// bundleSource serves the records of verified bundles, in sequence, as if
// they came from the site's source cluster: an import is a session whose
// source is its bundles (see Import). Offsets, topic ids, the cluster id
// and the topic configs are the site's, from the manifests.
type bundleSource struct {
	bundles []*bundle.Bundle
	cluster string
	// known holds each topic as the newest bundle knows it.
	known map[string]bundle.Topic
	// starts and ends hold, per partition, where the first bundle's range
	// begins and the last one's ends.
	starts, ends map[tp]int64
	// stats counts what the fetchers handed out, across rewinds.
	stats *fetchStats
}

// fetchStats counts what a finite source's fetchers handed out.
type fetchStats struct {
	records, bytes int64
	// drained is set once a fetcher handed out everything.
	drained bool
	// stuck is the topic whose next record waits for its partition to be
	// read (its mirror topic is not ready), since when; "" when none. The
	// import watches it from its own goroutine.
	mu         sync.Mutex
	stuck      string
	stuckSince time.Time
}

// stuckOn sets the topic the stream waits on ("" for none).
func (s *fetchStats) stuckOn(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stuck != topic {
		s.stuck, s.stuckSince = topic, time.Now()
	}
}

// stuckTopic returns the topic the stream waits on and for how long.
func (s *fetchStats) stuckTopic() (string, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stuck == "" {
		return "", 0
	}
	return s.stuck, time.Since(s.stuckSince)
}

func newBundleSource(bundles []*bundle.Bundle) *bundleSource {
	b := &bundleSource{
		bundles: bundles, known: make(map[string]bundle.Topic),
		starts: make(map[tp]int64), ends: make(map[tp]int64), stats: &fetchStats{},
	}
	for _, bd := range bundles {
		m := bd.Manifest()
		b.cluster = m.SourceCluster
		for _, t := range m.Topics {
			b.known[t.Name] = t
		}
		for _, r := range m.Ranges {
			k := tp{r.Topic, r.Partition}
			if _, ok := b.starts[k]; !ok {
				b.starts[k] = r.From
			}
			b.ends[k] = r.To
		}
	}
	return b
}

func (b *bundleSource) clusterID(context.Context) (string, error) { return b.cluster, nil }

func (b *bundleSource) topics(context.Context) ([]sourceTopic, error) {
	out := make([]sourceTopic, 0, len(b.known))
	for _, t := range b.known {
		out = append(out, sourceTopic{name: t.Name, id: t.ID, partitions: t.Partitions})
	}
	return out, nil
}

func (b *bundleSource) configs(_ context.Context, topics ...string) (map[string]topicConfig, error) {
	out := make(map[string]topicConfig, len(topics))
	for _, name := range topics {
		t, ok := b.known[name]
		if !ok {
			continue
		}
		tc := topicConfig{set: make(map[string]string, len(t.Config))}
		for k, v := range t.Config {
			if excludedConfig(k) {
				continue
			}
			tc.set[k] = v
			if k == "max.message.bytes" {
				tc.maxMessage, _ = strconv.Atoi(v)
			}
		}
		out[name] = tc
	}
	return out, nil
}

func (b *bundleSource) offsets(_ context.Context, kind offsetKind, topics ...string) (map[tp]int64, error) {
	from := b.ends
	if kind == startOffset {
		from = b.starts
	}
	want := make(map[string]bool, len(topics))
	for _, t := range topics {
		want[t] = true
	}
	out := make(map[tp]int64)
	for k, o := range from {
		if want[k.Topic] {
			out[k] = o
		}
	}
	// A partition no bundle carries holds nothing: it starts and ends at 0.
	for _, t := range topics {
		for p := range b.known[t].Partitions {
			if _, ok := out[tp{t, p}]; !ok {
				out[tp{t, p}] = 0
			}
		}
	}
	return out, nil
}

func (b *bundleSource) fetcher() (fetcher, error) {
	return &bundleFetcher{src: b, ctx: context.Background(), partitionsRead: newPartitionsRead()}, nil
}

func (b *bundleSource) close() {}

// advanced marks a record that carries nothing but moves a partition's
// position to its offset + 1: the end of a bundle's range, past offsets
// the site read but did not carry (aborted transactions, markers,
// filtered records), so that the checkpoint says what the next bundle
// starts from.
var advanced = context.WithValue(context.Background(), advancedKey{}, true)

type advancedKey struct{}

// bundleFetcher reads the bundles' records in their order, from the start
// of the first bundle, handing out those of the partitions added from their
// offset on. A record of a partition paused (its records wait) or not
// added yet holds everything behind it, as a partition's log would: the
// bundles interleave partitions in one stream.
type bundleFetcher struct {
	src *bundleSource
	ctx context.Context
	// next is the index of the bundle to open after it; tail holds the
	// advance records of the bundle being read, handed out after its last
	// record.
	next int
	it   *bundle.Iterator
	tail []*kgo.Record
	// held is the record read but not handed out yet.
	held *kgo.Record
	done bool
	err  error
	partitionsRead
	copies copier
}

// pollBytes bounds what one poll of a fetcher that is not a consumer
// hands out; bundlePollBytes that of a bundle's, smaller: an import's
// memory stays low, and a disk keeps it fed.
const (
	pollBytes       = 4 << 20
	bundlePollBytes = 1 << 20
)

// PollFetches hands out what can be handed out now; when nothing can, it
// waits for ctx (a nil ctx does not wait), as a consumer waits for records.
func (f *bundleFetcher) PollFetches(ctx context.Context) kgo.Fetches {
	var (
		parts []kgo.FetchPartition
		index = make(map[tp]int)
		size  int
	)
	for size < bundlePollBytes {
		r, err := f.peek()
		if err != nil {
			return kgo.NewErrFetch(err)
		}
		if r == nil {
			break
		}
		k := tp{r.Topic, r.Partition}
		at, added := f.at[k]
		if !added {
			f.src.stats.stuckOn(r.Topic)
		}
		if !added || f.paused[k] {
			break
		}
		f.src.stats.stuckOn("")
		f.held = nil
		if r.Offset < at {
			continue // written already
		}
		f.at[k] = r.Offset + 1
		i, ok := index[k]
		if !ok {
			i = len(parts)
			index[k] = i
			parts = append(parts, kgo.FetchPartition{Partition: k.Partition})
			parts[i].Records = make([]*kgo.Record, 0, 64)
		}
		parts[i].Records = append(parts[i].Records, r)
		if r.Context != advanced {
			size += len(r.Key) + len(r.Value)
			f.src.stats.records++
			f.src.stats.bytes += int64(len(r.Key) + len(r.Value))
		}
	}
	if len(parts) == 0 {
		if ctx != nil {
			<-ctx.Done()
		}
		return nil
	}
	topics := make(map[string]int)
	var fetch kgo.Fetch
	for k, i := range index {
		ti, ok := topics[k.Topic]
		if !ok {
			ti = len(fetch.Topics)
			topics[k.Topic] = ti
			fetch.Topics = append(fetch.Topics, kgo.FetchTopic{Topic: k.Topic})
		}
		fetch.Topics[ti].Partitions = append(fetch.Topics[ti].Partitions, parts[i])
	}
	return kgo.Fetches{fetch}
}

// peek returns the next record without handing it out; nil once every
// bundle was read.
func (f *bundleFetcher) peek() (*kgo.Record, error) {
	for f.held == nil {
		switch {
		case f.err != nil:
			return nil, f.err
		case f.done:
			return nil, nil
		case f.it != nil && f.it.Next():
			f.held = f.copies.record(f.it.Record())
		case f.it != nil:
			if err := f.it.Err(); err != nil {
				f.err = fmt.Errorf("read bundle: %w", err)
				continue
			}
			_ = f.it.Close()
			f.it = nil
		case len(f.tail) > 0:
			f.held, f.tail = f.tail[0], f.tail[1:]
		case f.next < len(f.src.bundles):
			bd := f.src.bundles[f.next]
			f.next++
			f.it = bd.Records(f.ctx)
			f.tail = f.tail[:0]
			for _, r := range bd.Manifest().Ranges {
				if r.To > r.From {
					f.tail = append(f.tail, &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.To - 1, Context: advanced})
				}
			}
		default:
			f.done = true
			f.src.stats.drained = true
		}
	}
	return f.held, nil
}

// drained reports whether every record was handed out.
func (f *bundleFetcher) drained() bool { return f.done && f.held == nil }

func (f *bundleFetcher) Close() {
	if f.it != nil {
		_ = f.it.Close()
		f.it = nil
	}
}

// copier copies bundle records into records of their own, carving their
// bytes and structs out of shared blocks: a record of its own per record,
// without an allocation per record and field.
type copier struct {
	data []byte
	recs []kgo.Record
}

const (
	copierData = 256 << 10
	copierRecs = 256
)

// record turns a bundle's record into the record a fetch of the source
// would have returned. The bundle's record is reused by its iterator: what
// is kept is copied.
func (c *copier) record(r *bundle.Record) *kgo.Record {
	if len(c.recs) == 0 {
		c.recs = make([]kgo.Record, copierRecs)
	}
	out := &c.recs[0]
	c.recs = c.recs[1:]
	*out = kgo.Record{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: c.bytes(r.Key), Value: c.bytes(r.Value),
	}
	if len(r.Headers) > 0 {
		out.Headers = make([]kgo.RecordHeader, len(r.Headers), len(r.Headers)+1) // room for provenance
		for i, h := range r.Headers {
			out.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: c.bytes(h.Value)}
		}
	}
	return out
}

// bytes copies b, keeping nil nil and empty empty.
func (c *copier) bytes(b []byte) []byte {
	switch {
	case b == nil:
		return nil
	case len(b) > copierData/4:
		return cloneBytes(b) // large: a block of its own
	case len(b) > cap(c.data)-len(c.data):
		c.data = make([]byte, 0, copierData)
	}
	n := len(c.data)
	c.data = append(c.data, b...)
	return c.data[n:len(c.data):len(c.data)]
}

// cloneBytes copies b, keeping nil nil and empty empty.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
