// Package verify checks, record by record, that a destination cluster holds
// an exact copy of a source cluster's topics: every committed source record
// exactly once, in source order per partition, with key, value, headers and
// timestamp intact. It is the evidence behind edgelink's exactly-once claim,
// run after crashes, outages and broker restarts.
//
// # What is compared
//
// For each topic pair and each source partition P, the check reads the
// committed records (read_committed) of source partition P from its log
// start offset up to its last stable offset, both taken when the check
// starts, and then every committed record of destination partition P up to
// its last stable offset, taken after the source's. A destination record
// names the source record it copies by its provenance header (package
// provenance): the header this hop wrote, which is the last one naming the
// source cluster's id (a record that crossed several links carries one,
// listing its earlier hops, or, written by earlier releases, one per hop;
// when the source cluster reports no id, the last header is used).
//
// Loops: a source record whose provenance says it has been in the
// destination cluster before (it came from there, directly or through
// other clusters) is one a link never copies back; it is expected nowhere
// and counted as looped.
//
// Only a fingerprint of each source record is kept: its offset, timestamp,
// the lengths of key and value (-1 for null) and 64-bit hashes (hash/maphash,
// seeded per check) of key, value and headers. Provenance headers are
// hashed as the clusters they list, since a link replaces them: a copy
// must list every cluster its source record had been in before, in order. That is 56 bytes a record,
// whatever the size of the values, and one partition is held at a time per
// worker (Options.Concurrency), so a check of 200,000 records of 900 KB each
// needs a few megabytes beyond the fetch buffers (8 MiB a worker).
// Destination records are streamed; of those naming an offset outside the
// source range (below its log start, or ahead) only the offsets are kept,
// to find duplicates among them.
//
// Offsets are listed and records fetched with direct ListOffsets, Metadata
// and Fetch requests through the caller's clients, not with a consumer:
// each Fetch response gives the exact next offset, past aborted batches and
// transaction markers, so reading a partition ends at its snapshot offset
// without waiting for a record that will never come, even when the
// partition is empty or its log start equals its end.
//
// # Findings
//
// Discrepancies, which make [Report.OK] false:
//
//   - lost: a committed source record in [log start, end) that no destination
//     record names, unless inside a range of Options.ExpectedLost (then
//     counted as expected lost).
//   - duplicated: a destination record naming a source record already named
//     by an earlier destination record of the partition; each extra copy
//     counts once.
//   - reordered: a destination record whose source offset is lower than that
//     of the previous destination record of the partition, counting only
//     first copies of records that belong to the partition (duplicates,
//     phantoms and misplaced records are left out). Each place where the
//     destination goes back in source order counts once: swapping two
//     neighbours counts 1, so does moving one record k places earlier.
//   - corrupted: a destination record whose key, value, headers (in order,
//     other than provenance headers; and the earlier clusters its
//     provenance lists, besides the source), timestamp, or the null-ness of
//     key, value or a header value differs from the source record it names;
//     a record in another partition than its provenance names (its source
//     record counts as lost unless it was also copied to its own
//     partition); a record whose provenance header cannot be decoded.
//   - phantom: a destination record naming an offset in [log start, end) that
//     holds no committed source record: a record of an aborted transaction,
//     a transaction marker, or (on compacted topics) a record the source has
//     since compacted away.
//   - foreign: a destination record without a provenance header; not a
//     discrepancy when Options.AllowForeign is set.
//   - echoed: a destination record whose provenance says it had been in
//     the destination cluster before it was copied there: a loop.
//
// Information only:
//
//   - below source start: a destination record naming an offset below the
//     source's log start, deleted at the source by retention since it was
//     copied.
//   - ahead: a destination record naming an offset at or above the source
//     end snapshot, copied after the check started.
//   - other source: a destination record whose provenance names another
//     source cluster (several sites feeding one topic).
//   - looped: a source record that had been in the destination cluster
//     before, which loop prevention keeps from going back (links both ways
//     between two clusters, rings of links). Such records are not checked.
//
// Duplicates are counted among all records that name the partition,
// including those below the source start and ahead. One destination record
// can count in more than one kind: a second copy whose value also differs
// is duplicated and corrupted.
//
// A record the link has not copied yet counts as lost: run the check once
// the link has caught up (its lag is zero), or expect the lag in the count.
package verify

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"
)

// Defaults for Options fields left zero.
const (
	DefaultExamples    = 5
	DefaultTimeout     = 5 * time.Minute
	DefaultConcurrency = 4
)

// Pair is a source topic and the destination topic that mirrors it.
type Pair struct {
	Source, Destination string
}

// Range is a range of offsets [From, To).
type Range struct {
	From, To int64
}

// Options configures a check.
type Options struct {
	// Source and Destination are clients of the two clusters, owned by
	// the caller (seeded, with TLS and SASL as needed). The check only
	// issues requests with them; it changes no consumer state.
	Source, Destination *kgo.Client
	// Topics lists the topic pairs to compare; each source topic at most
	// once. A source topic must exist; a missing destination topic is
	// checked as empty.
	Topics []Pair
	// Examples is how many examples are kept per kind of finding:
	// DefaultExamples when 0, none when negative.
	Examples int
	// Timeout bounds the whole check; DefaultTimeout when 0.
	Timeout time.Duration
	// Concurrency is how many partitions are checked at once, each holding
	// its source fingerprints in memory; DefaultConcurrency when 0.
	Concurrency int
	// AllowForeign makes destination records without a provenance header
	// acceptable (they are still counted).
	AllowForeign bool
	// ExpectedLost lists, per source topic and partition, offset ranges
	// known to be missing at the destination (deleted by retention before
	// they were replicated, say). Lost records inside them are counted as
	// expected lost.
	ExpectedLost map[string]map[int32][]Range
	// Transform, when set, is what the link does to each source record
	// before it crosses (its filters and projections): it may rewrite the
	// record's value, and it reports whether the record is to be found at
	// the destination. A record it drops, or cannot handle (an error: the
	// link recorded it as skipped), is expected nowhere: it is counted as
	// filtered, and a destination record naming it is a phantom. Lost keeps
	// its meaning: a kept record missing from the destination.
	Transform func(rec *kgo.Record) (keep bool, err error)
	// Derive, when set, is what a link with a stateful transform
	// (downsample, dedupe, aggregate) does to the records of one source
	// partition, fed them in offset order from the partition's start: it
	// may rewrite a record and reports whether it crosses, and returns the
	// records it emits after it (an aggregate's windows, which the link
	// writes with the provenance of that record). It replaces Transform;
	// the check expects exactly what it keeps and emits, so it holds for a
	// link that replicated the partitions from their start.
	Derive func(topic string, partition int32) func(rec *kgo.Record) (keep bool, emit []*kgo.Record, err error)
}

// Kind is a kind of finding.
type Kind string

// Kinds of findings that have examples, in report order.
const (
	KindLost       Kind = "lost"
	KindDuplicated Kind = "duplicated"
	KindReordered  Kind = "reordered"
	KindCorrupted  Kind = "corrupted"
	KindPhantom    Kind = "phantom"
	KindForeign    Kind = "foreign"
	KindEchoed     Kind = "echoed"
)

var kindOrder = []Kind{KindLost, KindDuplicated, KindReordered, KindCorrupted, KindPhantom, KindForeign, KindEchoed}

// Example is one finding, located at the source, the destination or both.
type Example struct {
	Kind Kind
	// Source and Destination are the topics of the pair.
	Source, Destination string
	// Partition is the partition number (the same at both ends).
	Partition int32
	// SourceOffset is the source record's offset, or -1 when the finding
	// names none (foreign, malformed provenance).
	SourceOffset int64
	// DestinationOffset is the destination record's offset, or -1 for a
	// lost record.
	DestinationOffset int64
	// Detail says what is wrong.
	Detail string
}

// String formats e on one line.
func (e Example) String() string {
	var b strings.Builder
	b.WriteString(string(e.Kind))
	if e.SourceOffset >= 0 {
		fmt.Fprintf(&b, " %s[%d] offset %d", e.Source, e.Partition, e.SourceOffset)
		if e.DestinationOffset >= 0 {
			b.WriteString(" at")
		}
	}
	if e.DestinationOffset >= 0 {
		fmt.Fprintf(&b, " %s[%d] offset %d", e.Destination, e.Partition, e.DestinationOffset)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Report is the result of a check.
type Report struct {
	// SourceClusterID is the id the source cluster reports, which the
	// provenance headers of its mirrored records name; DestinationClusterID
	// the destination's, which no record at the destination may have been
	// in before (looped, echoed).
	SourceClusterID, DestinationClusterID string
	// Topics and Partitions are how many topic pairs and partitions were
	// checked.
	Topics, Partitions int
	// SourceRecords counts the committed source records in the checked
	// ranges (those Options.Transform keeps); DestinationRecords every
	// committed destination record read.
	SourceRecords, DestinationRecords int64

	// Discrepancies; see the package documentation.
	Lost, Duplicated, Reordered, Corrupted, Phantom, Foreign, Echoed int64

	// Information; see the package documentation.
	ExpectedLost, BelowSourceStart, Ahead, OtherSource, Looped int64
	// Filtered counts the source records Options.Transform dropped (or
	// could not handle: TransformErrors of them).
	Filtered, TransformErrors int64

	// AllowForeign is Options.AllowForeign, which OK honours.
	AllowForeign bool
	// Examples holds the first examples of each kind, by kind, then by
	// topic, partition and offset.
	Examples []Example
	// Notes are remarks about the clusters, such as a missing destination
	// topic or records deleted by retention during the check.
	Notes []string
}

// OK reports whether the check found no discrepancy.
func (r *Report) OK() bool { return r.Discrepancies() == "" }

// Discrepancies summarises the discrepancies found, such as
// "2 lost, 1 duplicated", or returns "" when there are none.
func (r *Report) Discrepancies() string {
	var parts []string
	add := func(n int64, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(r.Lost, "lost")
	add(r.Duplicated, "duplicated")
	add(r.Reordered, "reordered")
	add(r.Corrupted, "corrupted")
	add(r.Phantom, "phantom")
	if !r.AllowForeign {
		add(r.Foreign, "foreign")
	}
	add(r.Echoed, "echoed")
	return strings.Join(parts, ", ")
}

// String is a multi-line human summary of r, with its notes and examples.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checked %s, %s: %d source records, %d destination records\n",
		plural(r.Topics, "topic"), plural(r.Partitions, "partition"), r.SourceRecords, r.DestinationRecords)
	fmt.Fprintf(&b, "lost %d, duplicated %d, reordered %d, corrupted %d, phantom %d, foreign %d",
		r.Lost, r.Duplicated, r.Reordered, r.Corrupted, r.Phantom, r.Foreign)
	if r.AllowForeign && r.Foreign > 0 {
		b.WriteString(" (allowed)")
	}
	if r.Echoed > 0 { // loops are rare: said when they happen
		fmt.Fprintf(&b, ", echoed %d", r.Echoed)
	}
	fmt.Fprintf(&b, "\nexpected lost %d, below source start %d, ahead %d, other source %d",
		r.ExpectedLost, r.BelowSourceStart, r.Ahead, r.OtherSource)
	if r.Looped > 0 {
		fmt.Fprintf(&b, ", looped %d", r.Looped)
	}
	b.WriteString("\n")
	if r.Filtered > 0 {
		fmt.Fprintf(&b, "filtered by the link's transforms %d (%d of them could not be transformed and were recorded as skipped)\n", r.Filtered, r.TransformErrors)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if d := r.Discrepancies(); d != "" {
		fmt.Fprintf(&b, "NOT OK: %s\n", d)
	} else {
		b.WriteString("OK\n")
	}
	if len(r.Examples) > 0 {
		b.WriteString("examples:\n")
		for _, e := range r.Examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	return b.String()
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Check compares the destination with the source for every pair of
// opts.Topics and reports what it found. It returns an error only when it
// cannot check (a bad option, a missing source topic, a cluster that
// cannot be read before the timeout), never for discrepancies.
func Check(ctx context.Context, opts Options) (*Report, error) {
	if opts.Source == nil || opts.Destination == nil {
		return nil, errors.New("verify: source and destination clients are required")
	}
	if opts.Examples == 0 {
		opts.Examples = DefaultExamples
	}
	opts.Examples = max(opts.Examples, 0)
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	var srcTopics, dstTopics []string
	seen := make(map[string]bool)
	for _, p := range opts.Topics {
		if p.Source == "" || p.Destination == "" {
			return nil, fmt.Errorf("verify: topic pair %q -> %q: both names are required", p.Source, p.Destination)
		}
		if seen[p.Source] {
			return nil, fmt.Errorf("verify: source topic %s is listed twice", p.Source)
		}
		seen[p.Source] = true
		srcTopics = append(srcTopics, p.Source)
		dstTopics = append(dstTopics, p.Destination)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	// The source snapshot is taken before the destination's, so that every
	// source record below the source end had its chance to be copied.
	src, err := snapshot(ctx, opts.Source, srcTopics)
	if err != nil {
		return nil, fmt.Errorf("snapshot source: %w", err)
	}
	dst, err := snapshot(ctx, opts.Destination, dstTopics)
	if err != nil {
		return nil, fmt.Errorf("snapshot destination: %w", err)
	}

	rep := &Report{SourceClusterID: src.clusterID, DestinationClusterID: dst.clusterID, Topics: len(opts.Topics), AllowForeign: opts.AllowForeign}
	var jobs []*partitionCheck
	for _, pair := range opts.Topics {
		st := src.topics[pair.Source]
		if st == nil {
			return nil, fmt.Errorf("source topic %s: %w", pair.Source, kerr.UnknownTopicOrPartition)
		}
		dt := dst.topics[pair.Destination]
		switch {
		case dt == nil:
			rep.Notes = append(rep.Notes, fmt.Sprintf("destination topic %s does not exist: checked as empty", pair.Destination))
			dt = &topicSnapshot{}
		case len(dt.partitions) != len(st.partitions):
			rep.Notes = append(rep.Notes, fmt.Sprintf("source topic %s has %s, destination topic %s has %d",
				pair.Source, plural(len(st.partitions), "partition"), pair.Destination, len(dt.partitions)))
		}
		n := max(len(st.partitions), len(dt.partitions))
		for p := range int32(n) {
			jobs = append(jobs, &partitionCheck{
				opts:      &opts,
				pair:      pair,
				partition: p,
				srcID:     src.clusterID,
				dstID:     dst.clusterID,
				src:       st.partitions[p],
				dst:       dt.partitions[p],
				expected:  normalize(opts.ExpectedLost[pair.Source][p]),
			})
		}
	}
	rep.Partitions = len(jobs)

	seed := maphash.MakeSeed()
	var mu sync.Mutex
	var examples []Example
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for _, j := range jobs {
		g.Go(func() error {
			res, err := j.run(gctx, opts.Source, opts.Destination, seed)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			res.addTo(rep)
			examples = append(examples, res.examples...)
			rep.Notes = append(rep.Notes, res.notes...)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rep.Examples = firstExamples(examples, opts.Examples)
	slices.Sort(rep.Notes)
	return rep, nil
}

// firstExamples sorts examples by kind, topic, partition and offset, and
// keeps the first n of each kind.
func firstExamples(all []Example, n int) []Example {
	rank := func(k Kind) int { return slices.Index(kindOrder, k) }
	slices.SortFunc(all, func(a, b Example) int {
		switch {
		case a.Kind != b.Kind:
			return rank(a.Kind) - rank(b.Kind)
		case a.Source != b.Source:
			return strings.Compare(a.Source, b.Source)
		case a.Partition != b.Partition:
			return int(a.Partition - b.Partition)
		case a.DestinationOffset != b.DestinationOffset:
			return cmpInt64(a.DestinationOffset, b.DestinationOffset)
		default:
			return cmpInt64(a.SourceOffset, b.SourceOffset)
		}
	})
	var out []Example
	per := make(map[Kind]int)
	for _, e := range all {
		if per[e.Kind] < n {
			per[e.Kind]++
			out = append(out, e)
		}
	}
	return out
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// normalize sorts ranges and merges those that overlap or touch, dropping
// empty ones.
func normalize(rs []Range) []Range {
	var out []Range
	for _, r := range rs {
		if r.To > r.From {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Range) int { return cmpInt64(a.From, b.From) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.From <= merged[n-1].To {
			merged[n-1].To = max(merged[n-1].To, r.To)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// clusterSnapshot is what a check needs to know about one cluster's topics
// at the time it starts.
type clusterSnapshot struct {
	clusterID string
	topics    map[string]*topicSnapshot // existing topics only
}

type topicSnapshot struct {
	partitions map[int32]*partitionSnapshot
}

// partitionSnapshot holds a partition's log start and last stable offset.
type partitionSnapshot struct {
	start, end int64
}

// snapshot lists the cluster id, the partitions of the topics that exist
// and their log start and last stable offsets.
func snapshot(ctx context.Context, cl *kgo.Client, topics []string) (*clusterSnapshot, error) {
	// A direct metadata request: the client's cache may predate a topic
	// or partitions created a moment ago.
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	md, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("request metadata: %w", err)
	}
	snap := &clusterSnapshot{topics: make(map[string]*topicSnapshot)}
	if md.ClusterID != nil {
		snap.clusterID = *md.ClusterID
	}
	var existing []string
	for _, t := range md.Topics {
		err := kerr.ErrorForCode(t.ErrorCode)
		switch {
		case t.Topic == nil || errors.Is(err, kerr.UnknownTopicOrPartition):
			continue
		case err != nil:
			return nil, fmt.Errorf("describe topic %s: %w", *t.Topic, err)
		}
		ts := &topicSnapshot{partitions: make(map[int32]*partitionSnapshot)}
		for _, p := range t.Partitions {
			ts.partitions[p.Partition] = &partitionSnapshot{}
		}
		snap.topics[*t.Topic] = ts
		existing = append(existing, *t.Topic)
	}
	if len(existing) == 0 {
		return snap, nil
	}
	starts, err := listOffsets(ctx, cl, snap, -2, 0)
	if err != nil {
		return nil, fmt.Errorf("list log start offsets: %w", err)
	}
	// The last stable offset: the end offset at isolation read_committed.
	ends, err := listOffsets(ctx, cl, snap, -1, 1)
	if err != nil {
		return nil, fmt.Errorf("list last stable offsets: %w", err)
	}
	for t, ts := range snap.topics {
		for p, ps := range ts.partitions {
			ps.start = starts[t][p]
			ps.end = max(ends[t][p], ps.start)
		}
	}
	return snap, nil
}

// listOffsets lists an offset of every partition of snap with one
// ListOffsets request, split by the client among the leaders: timestamp -2
// is the log start, -1 the end; isolation 1 (read_committed) makes the end
// the last stable offset. Retriable errors are retried until retryFor
// passes.
func listOffsets(ctx context.Context, cl *kgo.Client, snap *clusterSnapshot, timestamp int64, isolation int8) (map[string]map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = isolation
	for t, ts := range snap.topics {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = t
		for p := range ts.partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, timestamp
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	deadline := time.Now().Add(retryFor)
	wait := retryFirst
	for {
		out, err := tryListOffsets(ctx, cl, req)
		if err == nil {
			return out, nil
		}
		if !retryable(err) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

func tryListOffsets(ctx context.Context, cl *kgo.Client, req *kmsg.ListOffsetsRequest) (map[string]map[int32]int64, error) {
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[int32]int64)
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
			}
			if out[t.Topic] == nil {
				out[t.Topic] = make(map[int32]int64)
			}
			out[t.Topic][p.Partition] = p.Offset
		}
	}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			if _, ok := out[rt.Topic][rp.Partition]; !ok {
				return nil, fmt.Errorf("%s[%d]: no offset in the response: %w", rt.Topic, rp.Partition, kerr.UnknownTopicOrPartition)
			}
		}
	}
	return out, nil
}
