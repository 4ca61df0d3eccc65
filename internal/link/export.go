package link

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/signing"
)

// ExportOptions say how a link's records are exported into a bundle.
type ExportOptions struct {
	// Out is the directory the bundle is written to; it must not exist
	// or be empty.
	Out string
	// MaxBytes, when positive, ends the export once its records' payload
	// reaches it; the next export goes on from there.
	MaxBytes int64
	// Signer signs the bundle; Recipients, when set, encrypt it.
	Signer     *signing.Signer
	Recipients []age.Recipient
	// ChunkSize bounds the bundle's chunk files.
	ChunkSize int64
	// Progress is called as the export goes, with what was read of what
	// there is to read (records of the source partitions).
	Progress func(done, total, bytes int64)
	Logger   *slog.Logger
}

// exportFetchBytes bounds one fetch of an export.
const exportFetchBytes = 2 << 20

// ExportResult says what an export wrote.
type ExportResult struct {
	Manifest *bundle.Manifest
	// Complete is false when MaxBytes cut the export short.
	Complete bool
	// Filtered counts records the link's transforms dropped.
	Filtered int64
	// Lost lists ranges of records deleted at the source (retention)
	// before any export carried them.
	Lost []string
}

// Export writes the records of a link that its site has not seen
// acknowledged yet into a bundle: from where the last receipt brought back
// to the site says the cloud holds them (or the link's start position) up
// to the source's last stable offsets as the export begins. It runs the
// link's transforms (filters, projections) at the site. Until a receipt is
// acknowledged (Ack), every export starts from the same place, with the
// same sequence number.
func Export(ctx context.Context, cfg *config.Config, lc *config.Link, o ExportOptions) (*ExportResult, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	id := Identity{Site: cfg.Site, Link: lc.Name}
	tune := tuningFor(lc)
	opts, err := clientOpts(cfg.Clusters[lc.From], tune, nil, o.Logger)
	if err != nil {
		return nil, err
	}
	// Smaller fetches than a link's: an export's memory stays low, and a
	// local disk, not a WAN, sets its pace.
	src, err := newKafkaSource(append(append(slices.Clip(opts), consumerOpts(tune.fetchMaxWait)...),
		kgo.FetchMaxBytes(exportFetchBytes), kgo.FetchMaxPartitionBytes(exportFetchBytes)), tune.adminTimeout())
	if err != nil {
		return nil, err
	}
	defer src.close()
	actx, cancel := context.WithTimeout(ctx, tune.adminTimeout())
	defer cancel()
	cluster, err := src.clusterID(actx)
	if err != nil {
		return nil, fmt.Errorf("connect to source cluster %s: %w", lc.From, err)
	}
	var state ExportState
	if _, err := readAirGap(actx, opts, airGapKey(id, "export"), &state); err != nil {
		return nil, err
	}
	topics, err := selectedTopics(actx, src, lc)
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(topics))
	cfgs, err := src.configs(actx, names...)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	from, lost, err := exportStarts(actx, src, lc, state.Acked, topics)
	if err != nil {
		return nil, err
	}
	ends, err := src.offsets(actx, stableOffset, names...)
	if err != nil {
		return nil, fmt.Errorf("list source offsets: %w", err)
	}
	m := bundle.Manifest{
		Format: 1, ID: newBundleID(), Sequence: 1, Site: cfg.Site, Link: lc.Name, SourceCluster: cluster,
		Created: time.Now().UTC(),
	}
	if a := state.Acked; a != nil {
		m.Sequence, m.Previous = a.Sequence+1, a.Hash
	}
	var total int64
	for _, t := range names {
		m.Topics = append(m.Topics, bundle.Topic{Name: t, ID: topics[t].id, Partitions: topics[t].partitions, Config: cfgs[t].set})
		for p := range topics[t].partitions {
			k := tp{t, p}
			end := max(ends[k], from[k])
			m.Ranges = append(m.Ranges, bundle.Range{Topic: t, Partition: p, From: from[k], To: end})
			total += end - from[k]
		}
	}
	keep, err := RecordTransform(lc)
	if err != nil {
		return nil, err
	}
	w, err := bundle.Create(o.Out, m, bundle.WriterOptions{ChunkBytes: o.ChunkSize, Signer: o.Signer, Recipients: o.Recipients})
	if err != nil {
		return nil, err
	}
	res := &ExportResult{Lost: lost, Complete: true}
	reached, err := exportRecords(ctx, src, m.Ranges, o, func(r *kgo.Record) error {
		if keep != nil {
			ok, err := keep(r)
			if err != nil {
				if lc.OnError != config.OnErrorSkip {
					return fmt.Errorf("%w: %s[%d] offset %d: %w", ErrTransform, r.Topic, r.Partition, r.Offset, err)
				}
				o.Logger.Warn("record left out of the bundle: the link's transforms cannot handle it", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
				ok = false
			}
			if !ok {
				res.Filtered++
				return nil
			}
		}
		return w.Add(toBundle(r))
	})
	if err != nil {
		w.Abort()
		return nil, err
	}
	for k, at := range reached {
		if at < ends[k] {
			res.Complete = false
		}
		if err := w.EndRange(k.Topic, k.Partition, at); err != nil {
			w.Abort()
			return nil, err
		}
	}
	if res.Manifest, err = w.Close(); err != nil {
		return nil, err
	}
	state.LastExport = &ExportInfo{
		Sequence: res.Manifest.Sequence, ID: res.Manifest.ID, Hash: res.Manifest.Hash(), At: time.Now().UTC(),
		Records: res.Manifest.Records, Bytes: res.Manifest.Bytes, Dir: o.Out, Complete: res.Complete,
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tune.adminTimeout())
	defer cancel()
	if err := writeAirGap(wctx, opts, airGapKey(id, "export"), &state); err != nil {
		return res, fmt.Errorf("bundle written, but recording the export failed: %w", err)
	}
	return res, nil
}

// selectedTopics lists the source topics the link selects.
func selectedTopics(ctx context.Context, src source, lc *config.Link) (map[string]sourceTopic, error) {
	tds, err := src.topics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list source topics: %w", err)
	}
	out := make(map[string]sourceTopic)
	for _, td := range tds {
		if td.internal || strings.HasPrefix(td.name, "__") || !lc.Topics.Match(td.name) {
			continue
		}
		if td.err != nil {
			return nil, fmt.Errorf("source topic %s: %w", td.name, td.err)
		}
		out[td.name] = td
	}
	return out, nil
}

// exportStarts returns where an export reads each partition: where the
// acknowledged bundle ended, or for a partition it did not carry, the
// link's start position (a partition that appeared since starts at its
// beginning). It lists the ranges retention deleted before they were
// exported.
func exportStarts(ctx context.Context, src source, lc *config.Link, acked *AckedBundle, topics map[string]sourceTopic) (map[tp]int64, []string, error) {
	names := slices.Sorted(maps.Keys(topics))
	starts, err := src.offsets(ctx, startOffset, names...)
	if err != nil {
		return nil, nil, fmt.Errorf("list source offsets: %w", err)
	}
	var latest map[tp]int64
	if acked == nil && lc.Start == config.StartLatest {
		if latest, err = src.offsets(ctx, endOffset, names...); err != nil {
			return nil, nil, fmt.Errorf("list source offsets: %w", err)
		}
	}
	out := make(map[tp]int64)
	var lost []string
	for _, t := range names {
		for p := range topics[t].partitions {
			k := tp{t, p}
			switch at, ok := ackedAt(acked, k); {
			case ok && at < starts[k]:
				lost = append(lost, fmt.Sprintf("%s offsets %d..%d", k, at, starts[k]-1))
				out[k] = starts[k]
			case ok:
				out[k] = at
			case latest != nil:
				out[k] = latest[k]
			default:
				out[k] = starts[k]
			}
		}
	}
	return out, lost, nil
}

func ackedAt(a *AckedBundle, k tp) (int64, bool) {
	if a == nil {
		return 0, false
	}
	at, ok := a.Positions[partitionKey(k)]
	return at, ok
}

// exportRecords reads every range (read_committed, markers kept so that
// positions are exact) to its end, handing each record to add, until the
// payload reaches o.MaxBytes. It returns where it reached per partition.
func exportRecords(ctx context.Context, src *kafkaSource, ranges []bundle.Range, o ExportOptions, add func(*kgo.Record) error) (map[tp]int64, error) {
	reached := make(map[tp]int64, len(ranges))
	want := make(map[string]map[int32]kgo.Offset)
	ends := make(map[tp]int64, len(ranges))
	var total, done, payload int64
	for _, r := range ranges {
		k := tp{r.Topic, r.Partition}
		reached[k] = r.From
		if r.To <= r.From {
			continue
		}
		ends[k] = r.To
		total += r.To - r.From
		if want[r.Topic] == nil {
			want[r.Topic] = make(map[int32]kgo.Offset)
		}
		want[r.Topic][r.Partition] = kgo.NewOffset().At(r.From)
	}
	if len(ends) == 0 {
		return reached, nil
	}
	f, err := src.fetcher()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	f.AddConsumePartitions(want)
	last := time.Now()
	for len(ends) > 0 {
		if o.MaxBytes > 0 && payload >= o.MaxBytes {
			break
		}
		fs := f.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s[%d] from source: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		var stop []tp
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			k := tp{fp.Topic, fp.Partition}
			end, reading := ends[k]
			for _, r := range fp.Records {
				if !reading || r.Offset >= end || ferr != nil || (o.MaxBytes > 0 && payload >= o.MaxBytes) {
					break
				}
				done += r.Offset + 1 - reached[k]
				reached[k] = r.Offset + 1
				if r.Attrs.IsControl() {
					continue
				}
				payload += int64(len(r.Key) + len(r.Value))
				ferr = add(r)
			}
			if reading && reached[k] >= end {
				stop = append(stop, k)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		if len(stop) > 0 {
			drop := make(map[string][]int32)
			for _, k := range stop {
				delete(ends, k)
				drop[k.Topic] = append(drop[k.Topic], k.Partition)
			}
			f.RemoveConsumePartitions(drop)
		}
		if o.Progress != nil && (time.Since(last) > 100*time.Millisecond || len(ends) == 0) {
			last = time.Now()
			o.Progress(done, total, payload)
		}
	}
	return reached, nil
}

// toBundle turns a source record into a bundle's record (sharing its
// memory: the writer copies what it keeps).
func toBundle(r *kgo.Record) *bundle.Record {
	out := &bundle.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		out.Headers = make([]bundle.Header, len(r.Headers))
		for i, h := range r.Headers {
			out.Headers[i] = bundle.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}

func newBundleID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
