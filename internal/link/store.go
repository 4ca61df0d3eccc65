package link

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The checkpoint store: where a link keeps its positions, at the
// destination, in the same transactions as the records they account for.
//
// # Layout
//
// The checkpoint topic (default __edgelink.checkpoints) is compacted and
// shared by every link that writes to the cluster, across the fleet. A link
// writes all its keys to one partition, chosen by a hash of its identity
// (Identity.partitionOf), so that it reads only that partition when it
// starts. A new topic gets CheckpointPartitions partitions; an existing one
// keeps its count (one, if an earlier release created it).
//
// Keys are "<identity>/<topic>/<partition>" for a checkpoint and
// "<identity>/owner" for the ownership claim (see Identity); values are
// JSON. Every checkpoint carries the session generation that wrote it (one
// more than the highest found when the session started) and the topic's
// partition count at the time. A session's first commit writes every
// checkpoint it knows, so the checkpoints of the highest committed
// generation are always a complete set.
//
// # Reading without being disturbed by other writers
//
// A read_committed consumer stops at the partition's last stable offset: a
// transaction that another site left open (its WAN died mid-commit) would
// hide everything written after it until its timeout. So the store reads
// read_uncommitted, to the high watermark, and settles the link's own
// records itself: a transactional record of the link counts once its
// producer's commit marker follows it, and is dropped when an abort marker
// does. Records of other links are skipped without a look at their
// transactions. Before it reads, the session has initialised its
// transactional producer, which fences earlier instances and settles their
// open transaction (the coordinator writes the markers before answering),
// so every record of the link below the high watermark is settled.
//
// # When the link's partition holds nothing (or an old layout)
//
// A new link, a checkpoint topic that gained partitions, or checkpoints
// written by a release that named links without their site. A topic a link
// created starts with a layout record in partition 0 (its partition
// count): while the topic still has that count, a link that finds nothing
// in its own partition is new, and only partition 0 (where an earlier
// release wrote) is read besides. Otherwise the store reads every
// partition once and takes the partition whose committed checkpoints have
// the highest generation. Checkpoints of the link's name alone (the
// earlier format) are adopted only when they were written for this link's
// source cluster, after their transactional id was fenced too.

// SkippedTopic is the destination topic that records every source record a
// link with on_error: skip-and-record did not replicate, and why.
const SkippedTopic = "__edgelink.skipped"

// CheckpointPartitions is the partition count of a checkpoint topic that a
// link creates: enough for a fleet of thousands of links to start by
// reading a small share of it each.
const CheckpointPartitions = 50

// tp names a source topic partition.
type tp struct {
	Topic     string
	Partition int32
}

func (t tp) String() string { return t.Topic + "[" + strconv.Itoa(int(t.Partition)) + "]" }

// checkpoint is the value of a checkpoint record: the next source offset to
// replicate. It is written in the same transaction as the records before it.
type checkpoint struct {
	// Next is the next source offset to read.
	Next int64 `json:"next"`
	// Source is the source cluster's id, to notice a source that was
	// replaced by another cluster under the same name.
	Source string `json:"source,omitempty"`
	// TopicID is the source topic's id, to notice a topic that was
	// deleted and created again under the same name (its offsets restart).
	TopicID string `json:"topic_id,omitempty"`
	// Gen is the generation of the session that wrote it (see store).
	// Zero in checkpoints of earlier releases.
	Gen int64 `json:"gen,omitempty"`
	// Layout is the checkpoint topic's partition count when it was written.
	Layout int32 `json:"layout,omitempty"`
}

// claim is the value of a link's ownership record, "<identity>/owner", which
// every exactly-once session writes (outside any transaction) before its
// transactional producer fences earlier instances, so that a fenced
// instance always finds the newer claim. An instance whose session fails reads it
// back before reconnecting: if another instance claimed the link since, it
// stops instead of fencing the newer one in turn. (Since transactions v2,
// a producer fenced mid-transaction can see INVALID_TXN_STATE rather than
// PRODUCER_FENCED, so the error alone cannot tell.)
type claim struct {
	Instance string    `json:"instance"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Since    time.Time `json:"since"`
}

func (c claim) String() string {
	return fmt.Sprintf("instance %s (host %s, pid %d) since %s", c.Instance, c.Host, c.PID, c.Since.Format(time.RFC3339))
}

// newClaim identifies this process.
func newClaim() claim {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	host, _ := os.Hostname()
	return claim{Instance: hex.EncodeToString(b), Host: host, PID: os.Getpid()}
}

// ErrSourceChanged reports checkpoints written for another source cluster
// than the one the link's "from" names now.
var ErrSourceChanged = errors.New("the link's checkpoints were written for another source cluster")

// store is one session's view of the link's checkpoints.
type store struct {
	topic string
	id    Identity
	// partitions is the topic's partition count when the session began;
	// partition is the link's own.
	partitions, partition int32
	// gen is the generation this session writes.
	gen int64
}

// openStore makes sure the checkpoint topic exists and finds the link's
// partition in it. A topic it creates gets CheckpointPartitions partitions
// and, first thing in partition 0, a layout record (see layout).
func openStore(ctx context.Context, cl *kgo.Client, topic string, id Identity) (*store, error) {
	n, created, err := ensureTopic(ctx, kadm.NewClient(cl), topic, CheckpointPartitions, map[string]*string{
		"cleanup.policy":            kadm.StringPtr("compact"),
		"min.cleanable.dirty.ratio": kadm.StringPtr("0.1"),
		"segment.ms":                kadm.StringPtr(strconv.Itoa(int(time.Hour / time.Millisecond))),
	})
	if err != nil {
		return nil, err
	}
	if created {
		v, _ := json.Marshal(layout{Partitions: n}) // a struct of plain fields cannot fail to marshal
		rec := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(layoutKey), Value: v}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return nil, fmt.Errorf("write the layout of %s: %w", topic, err)
		}
	}
	return &store{topic: topic, id: id, partitions: n, partition: id.partitionOf(n)}, nil
}

// layoutKey keys the layout record; no identity starts with "_".
const layoutKey = "__edgelink/layout"

// layout is the value of the layout record that a link creating the
// checkpoint topic writes to partition 0: the partition count the topic
// was created with. While the topic still has that count, every link's
// records are in the partition its identity hashes to, so a link that
// finds nothing there is new and need not search the whole topic.
type layout struct {
	Partitions int32 `json:"partitions"`
}

// ensureTopic creates an internal topic with the given partitions when it
// is missing, and returns its partition count and whether it created it.
func ensureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, cfg map[string]*string) (int32, bool, error) {
	for range 3 {
		// Asking first means Create is only needed while the topic is absent.
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return 0, false, fmt.Errorf("describe internal topic %s: %w", topic, err)
		}
		if td, ok := tds[topic]; ok && td.Err == nil && len(td.Partitions) > 0 {
			return int32(len(td.Partitions)), false, nil
		}
		resp, err := adm.CreateTopic(ctx, partitions, -1, cfg, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, false, fmt.Errorf("create internal topic %s: %w", topic, err)
		}
		if err == nil {
			return partitions, true, nil
		}
	}
	return 0, false, fmt.Errorf("create internal topic %s: it exists but has no partitions yet", topic)
}

func (s *store) checkpointRecord(k tp, c checkpoint) *kgo.Record {
	c.Gen, c.Layout = s.gen, s.partitions
	v, _ := json.Marshal(c) // a struct of plain fields cannot fail to marshal
	return &kgo.Record{Topic: s.topic, Partition: s.partition, Key: s.id.checkpointKey(k), Value: v}
}

func (s *store) claimRecord(c claim) *kgo.Record {
	v, _ := json.Marshal(c) // a struct of plain fields cannot fail to marshal
	return &kgo.Record{Topic: s.topic, Partition: s.partition, Key: s.id.ownerKey(), Value: v}
}

// saved is what the checkpoint topic holds for one link.
type saved struct {
	checkpoints map[tp]checkpoint
	owner       claim
	// gen is the highest generation committed.
	gen int64
	// from says where the checkpoints were found, for the logs.
	from string
}

// loadOptions are what load needs beyond the store.
type loadOptions struct {
	// client opts connect to the destination.
	client []kgo.Opt
	adm    *kadm.Client
	// source is the source cluster's id: checkpoints of the link's name
	// alone (an earlier release) are adopted only when written for it.
	source string
	// timeout bounds the read.
	timeout time.Duration
}

// load returns the link's latest committed checkpoints and its latest
// ownership claim, and sets the generation this session writes. The
// caller must have initialised the link's transactional producer first
// (see store).
func (s *store) load(ctx context.Context, o loadOptions) (saved, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	legacy := Identity{Link: s.id.Link}
	ids := []Identity{s.id}
	if s.id.Site != "" {
		ids = append(ids, legacy)
	}
	found, shape, err := readCheckpoints(ctx, o, s.topic, []int32{s.partition}, ids...)
	if err != nil {
		return saved{}, err
	}
	mine := found[s.partition][s.id]
	if mine.open != nil {
		return saved{}, fmt.Errorf("read checkpoints: %w; retrying", mine.open)
	}
	out := saved{owner: mine.owner}
	if mine.gen > 0 && mine.layout == s.partitions {
		out.checkpoints, out.gen, out.from = mine.latest(), mine.gen, fmt.Sprintf("partition %d", s.partition)
		s.gen = out.gen + 1
		return out, nil
	}
	// Nothing of this link in its partition, or only what it wrote under
	// another partition count. Partition 0 holds the layout record (and
	// what an earlier release wrote): while the topic has the layout it
	// was created with, a link with nothing in its own partition is new.
	// Otherwise, look everywhere.
	parts := []int32{0}
	if mine.gen == 0 && s.partition != 0 {
		if found, shape, err = readCheckpoints(ctx, o, s.topic, parts, ids...); err != nil {
			return saved{}, err
		}
	}
	searched := "searched partition 0"
	if (mine.gen > 0 || shape != s.partitions) && s.partitions > 1 {
		parts = make([]int32, s.partitions)
		for i := range parts {
			parts[i] = int32(i)
		}
		if found, _, err = readCheckpoints(ctx, o, s.topic, parts, ids...); err != nil {
			return saved{}, err
		}
		searched = "searched the whole topic"
	}
	if err := unsettled(found, s.id); err != nil {
		return saved{}, err
	}
	if p, best := newest(found, s.id); best != nil {
		out.checkpoints, out.gen, out.from = best.latest(), best.gen, fmt.Sprintf("partition %d (%s)", p, searched)
		s.gen = out.gen + 1
		return out, nil
	}
	out.checkpoints, out.from = map[tp]checkpoint{}, "none ("+searched+")"
	s.gen = 1
	if s.id.Site == "" {
		return out, nil
	}
	// The link's name alone identified it in earlier releases. Adopt those
	// checkpoints when they were written for this source cluster, once their
	// transactional id is fenced too (it may hold an open transaction).
	if !holdsAny(found, legacy) {
		return out, nil
	}
	if err := fence(ctx, o.client, legacy.TransactionalID()); err != nil {
		return saved{}, err
	}
	if found, _, err = readCheckpoints(ctx, o, s.topic, parts, legacy); err != nil {
		return saved{}, err
	}
	if err := unsettled(found, legacy); err != nil {
		return saved{}, err
	}
	if p, old := newest(found, legacy); old != nil {
		for k, c := range old.latest() {
			if c.Source == o.source {
				out.checkpoints[k] = c
			}
		}
		out.gen = old.gen
		s.gen = out.gen + 1
		out.from = fmt.Sprintf("partition %d, written by an earlier release under the link's name alone", p)
	}
	return out, nil
}

// newest returns the partition whose committed checkpoints of id have the
// highest generation, and its state; nil when none holds any.
func newest(found map[int32]map[Identity]*linkState, id Identity) (int32, *linkState) {
	var (
		bestP int32
		best  *linkState
	)
	for p, states := range found {
		st := states[id]
		if st == nil || len(st.cps) == 0 {
			continue
		}
		if best == nil || st.gen > best.gen || (st.gen == best.gen && p < bestP) {
			bestP, best = p, st
		}
	}
	return bestP, best
}

// unsettled returns an error when a transaction of id is still open in
// some partition.
func unsettled(found map[int32]map[Identity]*linkState, id Identity) error {
	for _, states := range found {
		if st := states[id]; st != nil && st.open != nil {
			return fmt.Errorf("read checkpoints: %w; retrying", st.open)
		}
	}
	return nil
}

// holdsAny reports whether some partition holds a record of id.
func holdsAny(found map[int32]map[Identity]*linkState, id Identity) bool {
	for _, states := range found {
		if st := states[id]; st != nil && st.any {
			return true
		}
	}
	return false
}

// fence initialises a transactional producer with id, which aborts its open
// transaction, if any, and fences whoever holds it.
func fence(ctx context.Context, opts []kgo.Opt, id string) error {
	cl, err := kgo.NewClient(append(opts[:len(opts):len(opts)], kgo.TransactionalID(id))...)
	if err != nil {
		return fmt.Errorf("create producer to fence %s: %w", id, err)
	}
	defer cl.Close()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("fence transactional id %s: %w", id, err)
	}
	return nil
}

// linkState is what one partition of the checkpoint topic holds for one
// link: its committed checkpoints by generation, and its latest claim.
type linkState struct {
	// cps holds the latest committed checkpoint of each partition, and
	// gens the generation of each.
	cps   map[tp]checkpoint
	owner claim
	// gen is the highest generation committed, layout the partition count
	// it was written under.
	gen    int64
	layout int32
	// pending holds transactional records not settled yet, by producer id;
	// open says that some are still not settled at the high watermark.
	pending map[int64][]*kgo.Record
	open    error
	// any is set when the partition holds any record of the link.
	any bool
}

// latest returns the complete set of checkpoints: those of the highest
// generation (every session's first commit writes them all), or all of
// them when they come from before generations were recorded.
func (st *linkState) latest() map[tp]checkpoint {
	out := make(map[tp]checkpoint, len(st.cps))
	for k, c := range st.cps {
		if c.Gen == st.gen {
			out[k] = c
		}
	}
	return out
}

// apply takes a committed record of the link into the state.
func (st *linkState) apply(id Identity, r *kgo.Record) {
	if string(r.Key) == string(id.ownerKey()) {
		var c claim
		if r.Value != nil && json.Unmarshal(r.Value, &c) == nil {
			st.owner = c
		}
		return
	}
	rest := strings.TrimPrefix(string(r.Key), id.keyPrefix())
	topic, part, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(part, "/") {
		return
	}
	p, err := strconv.ParseInt(part, 10, 32)
	if err != nil {
		return
	}
	k := tp{topic, int32(p)}
	if r.Value == nil { // a tombstone forgets the partition
		delete(st.cps, k)
		return
	}
	var c checkpoint
	if err := json.Unmarshal(r.Value, &c); err != nil {
		return // not ours to interpret; a newer format would carry a version
	}
	st.cps[k] = c
	if c.Gen >= st.gen {
		st.gen, st.layout = c.Gen, c.Layout
	}
}

// settleAfter is how old a record must be to count as committed when no
// marker follows it: older than any transaction may stay open (Kafka's
// transaction.max.timeout.ms, 15 minutes by default), its marker can only
// have been compacted away with its transaction's other records.
const settleAfter = 20 * time.Minute

// readCheckpoints reads the partitions of the checkpoint topic to their
// high watermarks, read_uncommitted, and returns the committed state of
// each identity per partition (see store), and the partition count of the
// layout record when partition 0 was read and holds one (else 0).
func readCheckpoints(ctx context.Context, o loadOptions, topic string, parts []int32, ids ...Identity) (map[int32]map[Identity]*linkState, int32, error) {
	ends, err := o.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	starts := make(map[int32]kgo.Offset)
	end := make(map[int32]int64)
	out := make(map[int32]map[Identity]*linkState, len(parts))
	for _, p := range parts {
		e, ok := ends.Lookup(topic, p)
		switch {
		case !ok:
			return nil, 0, fmt.Errorf("list end offsets of %s: partition %d not known yet", topic, p)
		case e.Err != nil:
			return nil, 0, fmt.Errorf("list end offsets of %s[%d]: %w", topic, p, e.Err)
		}
		out[p] = make(map[Identity]*linkState, len(ids))
		for _, id := range ids {
			out[p][id] = &linkState{cps: make(map[tp]checkpoint), pending: make(map[int64][]*kgo.Record)}
		}
		if e.Offset > 0 {
			starts[p] = kgo.NewOffset().AtStart()
			end[p] = e.Offset
		}
	}
	if len(end) == 0 {
		return out, 0, nil
	}
	cl, err := kgo.NewClient(append(o.client[:len(o.client):len(o.client)],
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.FetchMaxBytes(32<<20),
		kgo.FetchMaxPartitionBytes(8<<20),
	)...)
	if err != nil {
		return nil, 0, fmt.Errorf("create checkpoint reader: %w", err)
	}
	defer cl.Close()
	prefixes := make([]string, len(ids))
	for i, id := range ids {
		prefixes[i] = id.keyPrefix()
	}
	var layoutOf int32
	// A log can end below its high watermark when compaction removed its
	// last records (markers of long-gone transactions): after a few empty
	// polls everything there is has been read.
	idle := 0
	for len(end) > 0 && idle < 3 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("read checkpoints from %s: %w", topic, err)
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				return nil, 0, fmt.Errorf("read checkpoints from %s[%d]: %w", topic, fe.Partition, fe.Err)
			}
		}
		if fs.NumRecords() == 0 {
			idle++
			continue
		}
		idle = 0
		fs.EachRecord(func(r *kgo.Record) {
			if e, ok := end[r.Partition]; ok && r.Offset+1 >= e {
				delete(end, r.Partition)
			}
			if r.Partition == 0 && string(r.Key) == layoutKey {
				var l layout
				if json.Unmarshal(r.Value, &l) == nil {
					layoutOf = l.Partitions
				}
				return
			}
			states := out[r.Partition]
			if r.Attrs.IsControl() {
				commit, ok := controlType(r.Key)
				if !ok {
					return
				}
				for _, id := range ids {
					st := states[id]
					recs := st.pending[r.ProducerID]
					if len(recs) == 0 {
						continue
					}
					delete(st.pending, r.ProducerID)
					if commit {
						for _, pr := range recs {
							st.apply(id, pr)
						}
					}
				}
				return
			}
			for i, prefix := range prefixes {
				if !strings.HasPrefix(string(r.Key), prefix) {
					continue
				}
				id, st := ids[i], states[ids[i]]
				st.any = true
				if r.Attrs.IsTransactional() {
					st.pending[r.ProducerID] = append(st.pending[r.ProducerID], r)
				} else {
					st.apply(id, r)
				}
			}
		})
	}
	// What is still pending had no marker below the high watermark.
	for _, states := range out {
		for id, st := range states {
			for pid, recs := range st.pending {
				if last := recs[len(recs)-1]; time.Since(last.Timestamp) < settleAfter {
					st.open = fmt.Errorf("a transaction of link %s (producer id %d, %s[%d] offset %d) is still open", id, pid, topic, last.Partition, last.Offset)
					continue
				}
				for _, r := range recs {
					st.apply(id, r)
				}
			}
			clear(st.pending)
		}
	}
	return out, layoutOf, nil
}

// controlType decodes a transaction marker's key: version, then type (0
// abort, 1 commit).
func controlType(key []byte) (commit, ok bool) {
	if len(key) < 4 {
		return false, false
	}
	switch binary.BigEndian.Uint16(key[2:4]) {
	case 0:
		return false, true
	case 1:
		return true, true
	}
	return false, false
}
