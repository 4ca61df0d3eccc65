package link

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
// so every record of the link below the high watermark is settled, but
// for a transaction a broker left without markers: such a record of an
// earlier epoch counts as aborted, and the session aborts it for good
// before the slot writes again (see hanging.go).
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
	// Slot is the slot that wrote it, of Slots: zero Slots in checkpoints
	// of releases before slots (one producer, slot 0's id).
	Slot  int `json:"slot,omitempty"`
	Slots int `json:"slots,omitempty"`
	// Rebuild, for a link with a stateful transform, is where replaying
	// the source rebuilds the transform's state at Next (see state.go).
	Rebuild *rebuildAt `json:"rebuild,omitempty"`
}

// rebuildAt is a checkpoint's rebuild position.
type rebuildAt struct {
	Offset int64 `json:"offset"`
	// Watermark is in Unix milliseconds; absent when none.
	Watermark *int64 `json:"watermark,omitempty"`
}

// slotMark is the value of a slot's marker, "<identity>/slot:<slot>",
// which the first commit of every session of the slot writes together with
// every checkpoint of the slot it knows. A marker of the slot written under
// the topic's present layout and the link's present slot count says that
// the link's partition holds the slot's complete set of checkpoints.
type slotMark struct {
	Gen    int64 `json:"gen"`
	Layout int32 `json:"layout"`
	Slots  int   `json:"slots"`
	// Owner is the agent that opened the slot, for operators reading the
	// topic.
	Owner string    `json:"owner,omitempty"`
	Since time.Time `json:"since"`
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
	// slots is the link's slot count.
	slots int
	// leaders and topicID are what the cluster said of the topic when the
	// session began (nil leaders when it created the topic).
	leaders map[int32]int32
	topicID [16]byte
}

// openStore makes sure the checkpoint topic exists and finds the link's
// partition in it. A topic it creates gets CheckpointPartitions partitions
// and, first thing in partition 0, a layout record (see layout).
//
// The layout record is written in the background (a long link would wait
// a few round trips for it): until it lands, a new link of another agent
// searches the whole topic once, which is slower, not wrong.
func openStore(ctx context.Context, cl *kgo.Client, topic string, id Identity, slots int, logger *slog.Logger) (*store, error) {
	n, created, td, err := ensureTopicDetail(ctx, kadm.NewClient(cl), topic, CheckpointPartitions, map[string]*string{
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
		cl.Produce(context.WithoutCancel(ctx), rec, func(_ *kgo.Record, err error) {
			if err != nil {
				logger.Warn("layout record not written; new links will search the checkpoint topic whole once", "topic", topic, "err", err)
			}
		})
	}
	st := &store{topic: topic, id: id, partitions: n, partition: id.partitionOf(n), slots: max(slots, 1), topicID: td.ID}
	if !created {
		st.leaders = make(map[int32]int32, len(td.Partitions))
		for p, pd := range td.Partitions {
			if pd.Leader >= 0 {
				st.leaders[p] = pd.Leader
			}
		}
		warmFetch(ctx, cl, st.leaders[st.partition], st.leaders[0])
	}
	return st, nil
}

// warmFetch opens the fetch connections to brokers with an empty Fetch, so
// that reading the checkpoints later costs one round trip, not the
// connection's set-up too.
func warmFetch(ctx context.Context, cl *kgo.Client, brokers ...int32) {
	seen := make(map[int32]bool)
	for _, b := range brokers {
		if seen[b] {
			continue
		}
		seen[b] = true
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.SessionEpoch = -1, -1
		_, _ = req.RequestWith(ctx, cl.Broker(int(b))) // a courtesy: the read sets up what this did not
	}
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
	n, created, _, err := ensureTopicDetail(ctx, adm, topic, partitions, cfg)
	return n, created, err
}

// ensureTopicDetail is ensureTopic that also returns what the cluster said
// of a topic that existed.
func ensureTopicDetail(ctx context.Context, adm *kadm.Client, topic string, partitions int32, cfg map[string]*string) (int32, bool, kadm.TopicDetail, error) {
	for i := range 5 {
		if i > 0 {
			// Another writer created it a moment ago: its partitions show
			// up shortly.
			select {
			case <-ctx.Done():
				return 0, false, kadm.TopicDetail{}, fmt.Errorf("describe internal topic %s: %w", topic, ctx.Err())
			case <-time.After(time.Duration(i) * 100 * time.Millisecond):
			}
		}
		// Asking first means Create is only needed while the topic is absent.
		tds, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return 0, false, kadm.TopicDetail{}, fmt.Errorf("describe internal topic %s: %w", topic, err)
		}
		if td, ok := tds[topic]; ok && td.Err == nil && len(td.Partitions) > 0 {
			return int32(len(td.Partitions)), false, td, nil
		}
		resp, err := adm.CreateTopic(ctx, partitions, -1, cfg, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, false, kadm.TopicDetail{}, fmt.Errorf("create internal topic %s: %w", topic, err)
		}
		if err == nil {
			return partitions, true, kadm.TopicDetail{}, nil
		}
	}
	return 0, false, kadm.TopicDetail{}, fmt.Errorf("create internal topic %s: it exists but has no partitions yet", topic)
}

// slotStore writes the checkpoints of one slot of the link.
type slotStore struct {
	*store
	slot int
	// gen is the generation this slot's session writes.
	gen int64
}

func (s slotStore) checkpointRecord(k tp, c checkpoint) *kgo.Record {
	c.Gen, c.Layout, c.Slot, c.Slots = s.gen, s.partitions, s.slot, s.slots
	v, _ := json.Marshal(c) // a struct of plain fields cannot fail to marshal
	return &kgo.Record{Topic: s.topic, Partition: s.partition, Key: s.id.checkpointKey(k), Value: v}
}

func (s slotStore) markRecord(owner string) *kgo.Record {
	v, _ := json.Marshal(slotMark{Gen: s.gen, Layout: s.partitions, Slots: s.slots, Owner: owner, Since: time.Now().UTC()}) // plain fields
	return &kgo.Record{Topic: s.topic, Partition: s.partition, Key: s.id.slotKey(s.slot), Value: v}
}

// saved is what the checkpoint topic holds for one slot of a link.
type saved struct {
	checkpoints map[tp]checkpoint
	// gen is the generation the slot's session writes.
	gen int64
	// from says where the checkpoints were found, for the logs.
	from string
}

// loadOptions are what load needs beyond the store.
type loadOptions struct {
	// client opts connect to the destination; cl is the session's client
	// there, which reads the checkpoints, and adm the same as an admin.
	client []kgo.Opt
	cl     *kgo.Client
	adm    *kadm.Client
	// source is the source cluster's id: checkpoints of the link's name
	// alone (an earlier release) are adopted only when written for it.
	source string
	// timeout bounds the read.
	timeout time.Duration
	// producers holds, by producer id, the epoch of each transactional
	// producer initialised for the slots being opened (and of any fenced
	// on the way). A record such a producer wrote under an earlier epoch
	// that no marker follows is a hanging transaction's (see hanging.go):
	// initialising the producer would have settled any transaction the
	// coordinator still held open. It counts as aborted, and hanging
	// learns where it is, so that the session aborts it for good before
	// the producer writes there again.
	producers map[int64]int16
	hanging   map[int64][]int32
	// pastMark lets load go past the link's failover mark (see
	// failoverMark): failover and failback read and move the checkpoints
	// of a link that failed over.
	pastMark bool
}

// load returns the latest committed checkpoints of the partitions of the
// given slots, and the generation each slot's session writes. The caller
// must have initialised the slots' transactional producers first (see
// store): a slot's open transaction is settled by then, and another slot's
// does not matter unless it wrote checkpoints of these slots' partitions
// (the slot count changed), in which case load fences it or waits.
func (s *store) load(ctx context.Context, o loadOptions, slots []int) (map[int]saved, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	mine := make(map[int]bool, len(slots))
	for _, i := range slots {
		mine[i] = true
	}
	legacy := Identity{Link: s.id.Link}
	ids := []Identity{s.id}
	if s.id.Site != "" {
		ids = append(ids, legacy)
	}
	r := checkpointReader{o: o, topic: s.topic, slots: s.slots, mine: mine, leaders: s.leaders, topicID: s.topicID}
	// Partition 0 says whether a link with nothing in its own partition is
	// new (see layout): it comes in the same round trip.
	first := []int32{s.partition}
	if s.partition != 0 {
		first = append(first, 0)
	}
	found, shape, err := r.read(ctx, first, ids...)
	if err != nil {
		return nil, err
	}
	if err := s.failedOver(found, o); err != nil {
		return nil, err
	}
	own := found[s.partition][s.id]
	complete := true
	for _, i := range slots {
		m, ok := own.marks[i]
		complete = complete && ok && m.Layout == s.partitions && m.Slots == s.slots
	}
	if complete && own.open == nil {
		return s.split(slots, own.cps, own.gen, fmt.Sprintf("partition %d", s.partition)), nil
	}
	// Some slot has no complete set in the link's partition: the link or
	// the slot is new, the topic gained partitions, the slot count
	// changed, or an earlier release wrote the checkpoints. Partition 0
	// holds the layout record (and what the first release wrote): while
	// the topic has the layout it was created with, a link with nothing in
	// its own partition is new. Otherwise, look everywhere.
	parts := []int32{0}
	if own.any {
		delete(found, 0) // read for nothing
	}
	searched := "searched partition 0"
	if (own.any || shape != s.partitions) && s.partitions > 1 {
		parts = make([]int32, s.partitions)
		for i := range parts {
			parts[i] = int32(i)
		}
		if found, _, err = r.read(ctx, parts, ids...); err != nil {
			return nil, err
		}
		searched = "searched the whole topic"
		if err := s.failedOver(found, o); err != nil {
			return nil, err
		}
	}
	if err := r.settle(ctx, found, s.id, slots); err != nil {
		return nil, err
	}
	if cps, gen, p := merged(found, s.id); len(cps) > 0 || gen > 0 {
		return s.split(slots, cps, gen, fmt.Sprintf("partition %d (%s)", p, searched)), nil
	}
	out := s.split(slots, nil, 0, "none ("+searched+")")
	if s.id.Site == "" || !holdsAny(found, legacy) {
		return out, nil
	}
	// The link's name alone identified it in earlier releases. Adopt those
	// checkpoints when they were written for this source cluster, once their
	// transactional id is fenced too (it may hold an open transaction).
	if err := fence(ctx, o, legacy.TransactionalID(0)); err != nil {
		return nil, err
	}
	if found, _, err = r.read(ctx, parts, legacy); err != nil {
		return nil, err
	}
	if err := unsettled(found, legacy); err != nil {
		return nil, err
	}
	cps, gen, p := merged(found, legacy)
	for k, c := range cps {
		if c.Source != o.source {
			delete(cps, k)
		}
	}
	return s.split(slots, cps, gen, fmt.Sprintf("partition %d, written by an earlier release under the link's name alone", p)), nil
}

// failedOver refuses to load the checkpoints of a link that failed over
// (ErrFailedOver), unless failback is loading them.
func (s *store) failedOver(found map[int32]map[Identity]*linkState, o loadOptions) error {
	if o.pastMark {
		return nil
	}
	return s.refuse(markOf(found, s.id))
}

// refuse returns ErrFailedOver for a link with a failover mark.
func (s *store) refuse(m *failoverMark) error {
	if m == nil {
		return nil
	}
	return fmt.Errorf("%w at %s (edgelink failover): it waits until edgelink failback -c FILE --link %s hands the stream back",
		ErrFailedOver, m.At.Format(time.RFC3339), s.id.Link)
}

// markOf returns id's failover mark: the latest record of its key, in
// whichever partition (nil when the latest is a tombstone, or there is
// none).
func markOf(found map[int32]map[Identity]*linkState, id Identity) *failoverMark {
	var (
		out *failoverMark
		at  time.Time
	)
	for _, states := range found {
		if st := states[id]; st != nil && st.marked && !st.markAt.Before(at) {
			out, at = st.mark, st.markAt
		}
	}
	return out
}

// split hands each slot the checkpoints of its partitions, and the
// generation after gen.
func (s *store) split(slots []int, cps map[tp]checkpoint, gen int64, from string) map[int]saved {
	out := make(map[int]saved, len(slots))
	for _, i := range slots {
		out[i] = saved{checkpoints: make(map[tp]checkpoint), gen: gen + 1, from: from}
	}
	for k, c := range cps {
		if sv, ok := out[slotOf(k, s.slots)]; ok {
			sv.checkpoints[k] = c
		}
	}
	return out
}

// merged returns, across partitions, the latest committed checkpoint of
// each of id's partitions: the one of the highest generation (a later
// session of a slot always writes a higher one than it read), the highest
// generation seen, and the partition holding it.
func merged(found map[int32]map[Identity]*linkState, id Identity) (map[tp]checkpoint, int64, int32) {
	out := make(map[tp]checkpoint)
	var (
		gen   int64
		bestP int32
	)
	for _, p := range slices.Sorted(maps.Keys(found)) {
		st := found[p][id]
		if st == nil {
			continue
		}
		if st.gen > gen {
			gen, bestP = st.gen, p
		}
		for k, c := range st.cps {
			if was, ok := out[k]; !ok || c.Gen > was.Gen {
				out[k] = c
			}
		}
	}
	return out, gen, bestP
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
// transaction, if any, and fences whoever holds it; o.producers learns its
// producer id and epoch.
func fence(ctx context.Context, o loadOptions, id string) error {
	cl, err := kgo.NewClient(append(o.client[:len(o.client):len(o.client)], kgo.TransactionalID(id))...)
	if err != nil {
		return fmt.Errorf("create producer to fence %s: %w", id, err)
	}
	defer cl.Close()
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("fence transactional id %s: %w", id, err)
	}
	if o.producers != nil {
		o.producers[pid] = epoch
	}
	return nil
}

// linkState is what one partition of the checkpoint topic holds for one
// link: the latest committed checkpoint of each of the partitions it reads
// and the latest marker of each slot.
type linkState struct {
	cps   map[tp]checkpoint
	marks map[int]slotMark
	// gen is the highest generation committed (of any slot), layout the
	// partition count it was written under.
	gen    int64
	layout int32
	// slots is the highest slot count any record was written under.
	slots int
	// pending holds transactional records not settled yet, by producer id;
	// open says that some are still not settled at the high watermark.
	pending map[int64][]*kgo.Record
	open    error
	// any is set when the partition holds any record of the link.
	any bool
	// mark is the link's failover mark, nil after a tombstone; marked
	// says a record of its key was seen, at markAt.
	mark   *failoverMark
	marked bool
	markAt time.Time
}

// unmarked settles what is still pending once the high watermark was
// read: records no marker follows. A record of a producer initialised
// since (see loadOptions.producers) hangs and counts as aborted (the
// session aborts it, see hanging.go); one older than any
// transaction may stay open lost its marker to compaction and counts as
// committed; any other is in a transaction still open (open says which).
func (st *linkState) unmarked(id Identity, topic string, producers map[int64]int16, hanging map[int64][]int32) {
	for pid, recs := range st.pending {
		last := recs[len(recs)-1]
		if epoch, ok := producers[pid]; ok && last.ProducerEpoch < epoch {
			if hanging != nil && !slices.Contains(hanging[pid], last.Partition) {
				hanging[pid] = append(hanging[pid], last.Partition)
			}
			continue
		}
		if time.Since(last.Timestamp) < settleAfter {
			var c checkpoint
			if json.Unmarshal(last.Value, &c) == nil {
				st.slots = max(st.slots, c.Slots)
			}
			st.open = fmt.Errorf("a transaction of link %s (producer id %d, %s[%d] offset %d) is still open", id, pid, topic, last.Partition, last.Offset)
			continue
		}
		for _, rec := range recs {
			st.apply(id, rec)
		}
	}
	clear(st.pending)
}

// apply takes a committed record of the link into the state.
func (st *linkState) apply(id Identity, r *kgo.Record) {
	if string(r.Key) == string(id.failoverKey()) {
		st.mark, st.marked, st.markAt = nil, true, r.Timestamp
		if r.Value != nil {
			var m failoverMark
			if err := json.Unmarshal(r.Value, &m); err == nil {
				st.mark = &m
			} else {
				// Unreadable, it still says the link failed over.
				st.mark = &failoverMark{At: r.Timestamp}
			}
		}
		return
	}
	key, ok := parseKey(id, r.Key)
	if !ok {
		return
	}
	if key.legacy && r.Value != nil {
		var v struct {
			Next *int64 `json:"next"`
		}
		if json.Unmarshal(r.Value, &v) == nil && v.Next == nil {
			key.slot = int(key.tp.Partition) // an earlier release's slot marker
		}
	}
	if key.slot >= 0 {
		var m slotMark
		if r.Value != nil && json.Unmarshal(r.Value, &m) == nil {
			st.marks[key.slot] = m
			st.note(m.Gen, m.Layout, m.Slots)
		}
		return
	}
	if r.Value == nil { // a tombstone forgets the partition
		delete(st.cps, key.tp)
		return
	}
	var c checkpoint
	if err := json.Unmarshal(r.Value, &c); err != nil {
		return // not ours to interpret; a newer format would carry a version
	}
	st.cps[key.tp] = c
	st.note(c.Gen, c.Layout, c.Slots)
}

func (st *linkState) note(gen int64, layout int32, slots int) {
	if gen >= st.gen {
		st.gen, st.layout = gen, layout
	}
	st.slots = max(st.slots, slots)
}

// storeKey is a parsed key of the link: a checkpoint's partition, or a
// slot's marker (slot >= 0). A key "slot/<n>" is either (legacy): a
// checkpoint of a topic named "slot", or the marker of slot n as earlier
// releases keyed it; the value tells (see apply).
type storeKey struct {
	tp     tp
	slot   int
	legacy bool
}

// parseKey parses a key of id (other keys, and the ownership records of
// earlier releases, are not ok).
func parseKey(id Identity, key []byte) (storeKey, bool) {
	rest, ok := strings.CutPrefix(string(key), id.keyPrefix())
	if !ok {
		return storeKey{}, false
	}
	if n, ok := strings.CutPrefix(rest, "slot:"); ok {
		i, err := strconv.Atoi(n)
		return storeKey{slot: i}, err == nil && i >= 0
	}
	first, part, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(part, "/") {
		return storeKey{}, false
	}
	n, err := strconv.ParseInt(part, 10, 32)
	if err != nil || n < 0 {
		return storeKey{}, false
	}
	return storeKey{tp: tp{first, int32(n)}, slot: -1, legacy: first == "slot"}, true
}

// settleAfter is how old a record must be to count as committed when no
// marker follows it: older than any transaction may stay open (Kafka's
// transaction.max.timeout.ms, 15 minutes by default), its marker can only
// have been compacted away with its transaction's other records.
const settleAfter = 20 * time.Minute

// checkpointReader reads the checkpoint topic for the slots of one link
// being opened.
type checkpointReader struct {
	o     loadOptions
	topic string
	// slots is the link's slot count and mine the slots being opened: only
	// their records are settled; another slot's open transaction is
	// another agent's business.
	slots int
	mine  map[int]bool
	// leaders and topicID, when known, spare asking for them.
	leaders map[int32]int32
	topicID [16]byte
}

// relevant reports whether a record of the link concerns the slots being
// opened.
func (r checkpointReader) relevant(id Identity, key []byte) bool {
	k, ok := parseKey(id, key)
	switch {
	case !ok:
		return false
	case k.legacy:
		return r.mine[int(k.tp.Partition)] || r.mine[slotOf(k.tp, r.slots)]
	case k.slot >= 0:
		return r.mine[k.slot]
	}
	return r.mine[slotOf(k.tp, r.slots)]
}

// settle makes sure no transaction that wrote checkpoints of the slots
// being opened is open: when one is, the slot count changed (another
// slot's producer wrote them); the producers of slots that no longer exist
// are fenced by the slot that inherits their partitions, those of slots
// that still exist by whoever opens them.
func (r checkpointReader) settle(ctx context.Context, found map[int32]map[Identity]*linkState, id Identity, slots []int) error {
	if unsettled(found, id) == nil {
		return nil
	}
	was := 0
	for _, states := range found {
		was = max(was, states[id].slots)
	}
	for _, i := range slots {
		for j := i + r.slots; j < was; j += r.slots {
			if err := fence(ctx, r.o, id.TransactionalID(j)); err != nil {
				return err
			}
		}
	}
	return unsettled(found, id)
}

// read reads partitions of the checkpoint topic, read_uncommitted, from
// their start to the high watermark each one's first answer reports, and
// returns the committed state of each identity per partition (see store),
// the partition count of the layout record when partition 0 was read and
// holds one (else 0).
//
// It sends plain Fetch requests (no wait) to the partitions' leaders over
// the session's destination client: no client to set up, no offsets to
// list first, and a definite end — an answer without records below the
// high watermark means the rest was compacted away. (A consumer that gave
// up after a few idle polls missed everything on a long link, whose first
// fetch takes longer than that.)
func (r checkpointReader) read(ctx context.Context, parts []int32, ids ...Identity) (map[int32]map[Identity]*linkState, int32, error) {
	topic, o := r.topic, r.o
	out := make(map[int32]map[Identity]*linkState, len(parts))
	next := make(map[int32]int64, len(parts))
	end := make(map[int32]int64, len(parts))
	for _, p := range parts {
		out[p] = make(map[Identity]*linkState, len(ids))
		for _, id := range ids {
			out[p][id] = &linkState{cps: make(map[tp]checkpoint), marks: make(map[int]slotMark), pending: make(map[int64][]*kgo.Record)}
		}
		next[p] = 0
	}
	prefixes := make([]string, len(ids))
	for i, id := range ids {
		prefixes[i] = id.keyPrefix()
	}
	var layoutOf int32
	take := func(rec *kgo.Record) {
		if rec.Partition == 0 && string(rec.Key) == layoutKey {
			var l layout
			if json.Unmarshal(rec.Value, &l) == nil {
				layoutOf = l.Partitions
			}
			return
		}
		states := out[rec.Partition]
		if rec.Attrs.IsControl() {
			commit, ok := controlType(rec.Key)
			if !ok {
				return
			}
			for _, id := range ids {
				st := states[id]
				recs := st.pending[rec.ProducerID]
				if len(recs) == 0 {
					continue
				}
				delete(st.pending, rec.ProducerID)
				if commit {
					for _, pr := range recs {
						st.apply(id, pr)
					}
				}
			}
			return
		}
		for i, prefix := range prefixes {
			if !strings.HasPrefix(string(rec.Key), prefix) {
				continue
			}
			id, st := ids[i], states[ids[i]]
			st.any = true
			switch {
			case !rec.Attrs.IsTransactional():
				st.apply(id, rec)
			case r.relevant(id, rec.Key):
				st.pending[rec.ProducerID] = append(st.pending[rec.ProducerID], rec)
			default:
				// Another slot's: its transaction may be open for as long
				// as its agent lives. What it wrote is noted for the slot
				// count only.
				var c checkpoint
				if json.Unmarshal(rec.Value, &c) == nil {
					st.slots = max(st.slots, c.Slots)
				}
			}
		}
	}
	leaders, topicID := r.leaders, r.topicID
	for _, p := range parts {
		if _, ok := leaders[p]; !ok {
			var err error
			if leaders, topicID, err = r.findLeaders(ctx, false); err != nil {
				return nil, 0, err
			}
			break
		}
	}
	for len(next) > 0 {
		byLeader := make(map[int32][]int32)
		for p := range next {
			l, ok := leaders[p]
			if !ok {
				return nil, 0, fmt.Errorf("read checkpoints from %s: partition %d has no leader yet", topic, p)
			}
			byLeader[l] = append(byLeader[l], p)
		}
		refresh := false
		for leader, ps := range byLeader {
			req := kmsg.NewPtrFetchRequest()
			req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 0, 0, 32<<20
			req.SessionEpoch = -1
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = topic, topicID
			for _, p := range ps {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, next[p], 8<<20
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			resp, err := req.RequestWith(ctx, o.cl.Broker(int(leader)))
			if err != nil {
				return nil, 0, fmt.Errorf("read checkpoints from %s: %w", topic, err)
			}
			if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
				return nil, 0, fmt.Errorf("read checkpoints from %s: %w", topic, err)
			}
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					rp := &resp.Topics[i].Partitions[j]
					p := rp.Partition
					if _, ok := next[p]; !ok {
						continue
					}
					switch err := kerr.ErrorForCode(rp.ErrorCode); {
					case err == nil:
					case errors.Is(err, kerr.OffsetOutOfRange) && rp.LogStartOffset > next[p]:
						next[p] = rp.LogStartOffset
						continue
					case kerr.IsRetriable(err) || errors.Is(err, kerr.OffsetOutOfRange):
						refresh = true
						continue
					default:
						return nil, 0, fmt.Errorf("read checkpoints from %s[%d]: %w", topic, p, err)
					}
					if _, ok := end[p]; !ok {
						end[p] = rp.HighWatermark
					}
					fp, after := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
						KeepControlRecords: true, Offset: next[p], IsolationLevel: kgo.ReadUncommitted(), Topic: topic, Partition: p,
					}, rp, kgo.DefaultDecompressor(), nil)
					if fp.Err != nil {
						return nil, 0, fmt.Errorf("read checkpoints from %s[%d]: %w", topic, p, fp.Err)
					}
					for _, rec := range fp.Records {
						take(rec)
					}
					if len(fp.Records) == 0 || after >= end[p] {
						delete(next, p)
					} else {
						next[p] = after
					}
				}
			}
		}
		if refresh {
			select {
			case <-ctx.Done():
				return nil, 0, fmt.Errorf("read checkpoints from %s: %w", topic, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
			var err error
			if leaders, topicID, err = r.findLeaders(ctx, true); err != nil {
				return nil, 0, err
			}
		}
	}
	for _, states := range out {
		for id, st := range states {
			st.unmarked(id, topic, o.producers, o.hanging)
		}
	}
	return out, layoutOf, nil
}

// findLeaders returns the leader of each partition of the checkpoint topic
// and the topic's id, from the client's metadata (refreshed first when
// fresh is set: a leader moved).
//
// A topic created a moment ago may not be known to every broker yet: an
// unknown topic or a partition without a leader is asked again, for as
// long as ctx allows.
func (r checkpointReader) findLeaders(ctx context.Context, fresh bool) (map[int32]int32, [16]byte, error) {
	var td kadm.TopicDetail
	for {
		if fresh {
			r.o.cl.ForceMetadataRefresh()
		}
		tds, err := r.o.adm.ListTopics(ctx, r.topic)
		if err != nil {
			return nil, [16]byte{}, fmt.Errorf("find the leaders of %s: %w", r.topic, err)
		}
		var ok bool
		td, ok = tds[r.topic]
		if ok && td.Err == nil {
			break
		}
		if ok && !kerr.IsRetriable(td.Err) {
			return nil, [16]byte{}, fmt.Errorf("find the leaders of %s: %w", r.topic, td.Err)
		}
		select {
		case <-ctx.Done():
			return nil, [16]byte{}, fmt.Errorf("find the leaders of %s: %w", r.topic, cmp.Or(td.Err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
		fresh = true
	}
	out := make(map[int32]int32, len(td.Partitions))
	for p, pd := range td.Partitions {
		if pd.Leader >= 0 {
			out[p] = pd.Leader
		}
	}
	return out, td.ID, nil
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
