package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
)

// failoverMark is what edgelink failover leaves in the link's partition of
// the checkpoint topic at its destination (key Identity.failoverKey):
// while it is there, no session of the link starts (ErrFailedOver), and
// failback reads in it where the link stood. Failback removes it (a
// tombstone) when it is done.
type failoverMark struct {
	At time.Time `json:"at"`
	// Partitions is where each source partition stood: empty when the
	// failover died before it read them (running it again fills them in).
	Partitions []markPartition `json:"partitions,omitempty"`
	// Failback is set once a failback began.
	Failback *failbackMark `json:"failback,omitempty"`
}

// markPartition is a source partition at failover: its checkpoint and the
// end of its mirror partition, from which on the destination's own writes
// follow.
type markPartition struct {
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Mirror     string `json:"mirror"`
	Replicated int64  `json:"replicated"`
	MirrorEnd  int64  `json:"mirror_end"`
}

// failbackMark is what a failback fixed when it began.
type failbackMark struct {
	Began time.Time `json:"began"`
	// ResumeAt is, per source partition ("topic/partition"), the source's
	// end when the failback began: what was left behind, in [Replicated,
	// ResumeAt), goes to quarantine, and the link resumes at ResumeAt.
	ResumeAt map[string]int64 `json:"resume_at"`
}

// readMark reads the link's failover mark from its own partition of the
// checkpoint topic; nil when there is none.
func readMark(ctx context.Context, o loadOptions, st *store, id Identity) (*failoverMark, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	r := checkpointReader{o: o, topic: st.topic, slots: st.slots, mine: map[int]bool{}, leaders: st.leaders, topicID: st.topicID}
	found, _, err := r.read(ctx, []int32{st.partition}, id)
	if err != nil {
		return nil, err
	}
	return markOf(found, id), nil
}

// writeMark writes the link's failover mark to its own partition of the
// checkpoint topic; a nil mark removes it.
func writeMark(ctx context.Context, opts []kgo.Opt, st *store, id Identity, m *failoverMark) error {
	cl, err := kgo.NewClient(append(slices.Clip(opts), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	defer cl.Close()
	var v []byte
	if m != nil {
		if v, err = json.Marshal(m); err != nil {
			return err
		}
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: st.topic, Partition: st.partition, Key: id.failoverKey(), Value: v}).FirstErr(); err != nil {
		return fmt.Errorf("write the failover mark of link %s to %s: %w", id, st.topic, err)
	}
	return nil
}

// FailbackOptions say how a link fails back.
type FailbackOptions struct {
	// Link tunes the links that copy (tests shorten their intervals).
	Link Options
	// Progress, when set, is told what failback does, and, while it
	// copies, how far it got about once a second.
	Progress func(step string, copied Status)
	Logger   *slog.Logger
}

// FailbackReport says what a failback did.
type FailbackReport struct {
	Link         string              `json:"link"`
	FailedOverAt time.Time           `json:"failed_over_at"`
	At           time.Time           `json:"at"`
	Partitions   []FailbackPartition `json:"partitions"`
	// Quarantined counts the records left behind at the source, now in
	// the quarantine topics; CopiedBack the records this run copied back
	// from the destination (a failback run again after it finished copies
	// none).
	Quarantined int64 `json:"quarantined"`
	CopiedBack  int64 `json:"copied_back"`
	// Groups is how the consumer groups returned to the source, for a
	// link that syncs groups.
	Groups *FailbackGroups `json:"groups,omitempty"`
}

// FailbackPartition is one source partition's failback.
type FailbackPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Replicated is the link's checkpoint at failover; ResumeAt where it
	// resumes: the records between, left behind, are in Quarantine (a
	// topic at the source), Quarantined of them, written from FirstLeft to
	// LastLeft.
	Replicated  int64      `json:"replicated"`
	ResumeAt    int64      `json:"resume_at"`
	Quarantine  string     `json:"quarantine,omitempty"`
	Quarantined int64      `json:"quarantined"`
	FirstLeft   *time.Time `json:"first_left,omitempty"`
	LastLeft    *time.Time `json:"last_left,omitempty"`
	// Mirror's records from MirrorEnd (its end at failover) to CopiedTo
	// were written at the destination and are copied back to the source
	// partition, after ResumeAt.
	Mirror    string `json:"mirror"`
	MirrorEnd int64  `json:"mirror_end"`
	CopiedTo  int64  `json:"copied_to"`
}

// FailbackGroups is how a failback returned the consumer groups.
type FailbackGroups struct {
	// Groups counts the destination groups selected; Returned those whose
	// offsets the source holds now, translated; Committed the offsets
	// written; Active the groups left alone because members consume at
	// the source; Pending the group partitions whose offset at the
	// destination is past what was copied back (run failback again).
	Groups    int `json:"groups"`
	Returned  int `json:"returned"`
	Committed int `json:"committed"`
	Active    int `json:"active"`
	Pending   int `json:"pending"`
}

// QuarantineTopic is the topic at a link's source that keeps the records
// failback found left behind in topic: "__edgelink.quarantine.<link>.<topic>",
// which no link replicates (its name starts with "__"). Records keep their
// key, value, headers, timestamp and partition, and name their place in
// topic in their provenance header.
func QuarantineTopic(link, topic string) string {
	return "__edgelink.quarantine." + link + "." + topic
}

// Failback hands a failed-over link's stream back to its source (see
// Failover), after the source returned:
//
//  1. It fixes, once, where the link resumes: the source's end now.
//  2. The records left behind at the source (after the link's checkpoint)
//     are copied, exactly once, to the quarantine topics at the source
//     (QuarantineTopic): the stream goes on without them, and nothing is
//     deleted.
//  3. What was written at the destination since the failover is copied
//     back to the source, exactly once and in order, after them; it
//     carries provenance, so the link, resumed, does not copy it again.
//  4. The link's checkpoints move to where it resumes.
//  5. The consumer groups the link syncs return to the source: a group's
//     offset at the destination becomes the source offset of the first
//     record it has not consumed (never backwards; a group with members
//     at the source is left alone).
//  6. The failover mark goes: the agents running the link resume it.
//
// A failback that was interrupted is run again; every step continues
// where it stopped.
func Failback(ctx context.Context, cfg *config.Config, lc *config.Link, o FailbackOptions) (*FailbackReport, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(string, Status) {}
	}
	if lc.AirGapped() {
		return nil, fmt.Errorf("link %s crosses an air gap: it cannot fail back", lc.Name)
	}
	fb, err := newFailback(ctx, cfg, lc, o)
	if err != nil {
		return nil, err
	}
	defer fb.close()
	return fb.run(ctx)
}

// failback is one run of Failback.
type failback struct {
	cfg              *config.Config
	lc               *config.Link
	o                FailbackOptions
	id               Identity
	tune             tuning
	srcOpts, dstOpts []kgo.Opt
	src, dst         *kgo.Client
	srcAdm, dstAdm   *kadm.Client
	srcID, dstID     string
	st               *store
	lo               loadOptions
	mark             *failoverMark
}

func newFailback(ctx context.Context, cfg *config.Config, lc *config.Link, o FailbackOptions) (*failback, error) {
	f := &failback{cfg: cfg, lc: lc, o: o, id: Identity{Site: cfg.Site, Link: lc.Name}, tune: tuningFor(lc)}
	var err error
	if f.dstOpts, err = clientOpts(cfg.Clusters[lc.To], f.tune, o.Link.DestinationDialer, o.Logger); err != nil {
		return nil, err
	}
	if f.srcOpts, err = clientOpts(cfg.Clusters[lc.From], f.tune, o.Link.SourceDialer, o.Logger); err != nil {
		return nil, err
	}
	if f.dst, err = kgo.NewClient(f.dstOpts...); err != nil {
		return nil, fmt.Errorf("create destination client: %w", err)
	}
	if f.src, err = kgo.NewClient(f.srcOpts...); err != nil {
		f.dst.Close()
		return nil, fmt.Errorf("create source client: %w", err)
	}
	f.srcAdm, f.dstAdm = kadm.NewClient(f.src), kadm.NewClient(f.dst)
	return f, nil
}

func (f *failback) close() {
	f.src.Close()
	f.dst.Close()
}

func (f *failback) run(ctx context.Context) (*FailbackReport, error) {
	lc, timeout := f.lc, f.tune.adminTimeout()
	var err error
	if f.dstID, err = clusterID(ctx, f.dstAdm, timeout); err != nil {
		return nil, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	if f.srcID, err = clusterID(ctx, f.srcAdm, timeout); err != nil {
		return nil, fmt.Errorf("source %s does not answer (failback needs it back): %w", lc.From, err)
	}
	if f.st, f.lo, err = openMarkedStore(ctx, f.dst, f.dstOpts, f.id, lc, timeout+time.Minute); err != nil {
		return nil, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	if f.mark, err = readMark(ctx, f.lo, f.st, f.id); err != nil {
		return nil, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	switch {
	case f.mark == nil:
		return nil, fmt.Errorf("link %s has not failed over (edgelink failover -c FILE --link %s): there is nothing to fail back", lc.Name, lc.Name)
	case len(f.mark.Partitions) == 0:
		return nil, fmt.Errorf("the failover of link %s at %s did not finish: run edgelink failover again, then failback", lc.Name, f.mark.At.Format(time.RFC3339))
	}
	rep := &FailbackReport{Link: lc.Name, FailedOverAt: f.mark.At, At: time.Now().UTC()}
	f.o.Progress("fencing the link and fixing where it resumes", Status{})
	if lc.Delivery != config.DeliveryAtLeastOnce {
		for i := range max(lc.Slots, 1) {
			if err := fence(ctx, f.lo, f.id.TransactionalID(i)); err != nil {
				return nil, fmt.Errorf("destination %s: %w", lc.To, err)
			}
		}
	}
	if err := f.fixResume(ctx); err != nil {
		return nil, err
	}
	for _, p := range f.mark.Partitions {
		rep.Partitions = append(rep.Partitions, FailbackPartition{
			Topic: p.Topic, Partition: p.Partition, Replicated: p.Replicated,
			ResumeAt: f.mark.Failback.ResumeAt[partitionKey(tp{p.Topic, p.Partition})], Mirror: p.Mirror, MirrorEnd: p.MirrorEnd,
		})
	}
	if err := f.quarantine(ctx, rep); err != nil {
		return rep, err
	}
	if err := f.copyBack(ctx, rep); err != nil {
		return rep, err
	}
	f.o.Progress("moving the link's checkpoints to where it resumes", Status{})
	resume := make(map[tp]int64, len(rep.Partitions))
	for _, p := range rep.Partitions {
		resume[tp{p.Topic, p.Partition}] = p.ResumeAt
	}
	if err := moveCheckpoints(ctx, f.st, f.lo, f.id, resume); err != nil {
		return rep, fmt.Errorf("destination %s: move the link's checkpoints: %w", lc.To, err)
	}
	if lc.Groups != nil {
		f.o.Progress("returning the consumer groups", Status{})
		if rep.Groups, err = f.returnGroups(ctx, rep); err != nil {
			return rep, err
		}
	}
	f.o.Progress("removing the failover mark: the link resumes", Status{})
	if err := writeMark(ctx, f.dstOpts, f.st, f.id, nil); err != nil {
		return rep, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	return rep, nil
}

// fixResume fixes, at the first run, where the link resumes at the source:
// the end of each partition now.
func (f *failback) fixResume(ctx context.Context) error {
	if f.mark.Failback != nil {
		return nil
	}
	var topics []string
	for _, p := range f.mark.Partitions {
		if !slices.Contains(topics, p.Topic) {
			topics = append(topics, p.Topic)
		}
	}
	actx, cancel := context.WithTimeout(ctx, f.tune.adminTimeout())
	defer cancel()
	ends, err := f.srcAdm.ListCommittedOffsets(actx, topics...)
	if err != nil {
		return fmt.Errorf("source %s: list end offsets: %w", f.lc.From, err)
	}
	fm := &failbackMark{Began: time.Now().UTC(), ResumeAt: make(map[string]int64, len(f.mark.Partitions))}
	for _, p := range f.mark.Partitions {
		e, ok := ends.Lookup(p.Topic, p.Partition)
		if !ok || e.Err != nil {
			var why error = kerr.UnknownTopicOrPartition
			if ok {
				why = e.Err
			}
			return fmt.Errorf("source %s: partition %d of %s: %w", f.lc.From, p.Partition, p.Topic, why)
		}
		fm.ResumeAt[partitionKey(tp{p.Topic, p.Partition})] = max(e.Offset, p.Replicated)
	}
	f.mark.Failback = fm
	if err := writeMark(ctx, f.dstOpts, f.st, f.id, f.mark); err != nil {
		return fmt.Errorf("destination %s: %w", f.lc.To, err)
	}
	return nil
}

// quarantine copies the records left behind at the source to the
// quarantine topics there.
func (f *failback) quarantine(ctx context.Context, rep *FailbackReport) error {
	ranges := make(map[tp]offsetRange)
	partitions := make(map[string]int32)
	for i := range rep.Partitions {
		p := &rep.Partitions[i]
		if p.ResumeAt <= p.Replicated {
			continue
		}
		n, first, last, err := countRange(ctx, f.srcOpts, p.Topic, p.Partition, p.Replicated, p.ResumeAt)
		if err != nil {
			return fmt.Errorf("source %s: read what was left behind in %s[%d]: %w", f.lc.From, p.Topic, p.Partition, err)
		}
		if n == 0 {
			continue // markers and aborted records only
		}
		p.Quarantine, p.Quarantined = QuarantineTopic(f.lc.Name, p.Topic), n
		p.FirstLeft, p.LastLeft = &first, &last
		rep.Quarantined += n
		ranges[tp{p.Topic, p.Partition}] = offsetRange{p.Replicated, p.ResumeAt}
		partitions[p.Topic] = 0
	}
	if len(ranges) == 0 {
		return nil
	}
	// Every partition of a quarantine topic exists, so that records keep
	// their partition; and it keeps them until an operator deletes it.
	actx, cancel := context.WithTimeout(ctx, f.tune.adminTimeout())
	defer cancel()
	tds, err := f.srcAdm.ListTopics(actx, slices.Collect(maps.Keys(partitions))...)
	if err != nil {
		return fmt.Errorf("source %s: describe topics: %w", f.lc.From, err)
	}
	for t := range partitions {
		n := int32(len(tds[t].Partitions))
		if _, _, err := ensureTopic(actx, f.srcAdm, QuarantineTopic(f.lc.Name, t), max(n, 1), map[string]*string{
			"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1"), "retention.bytes": kadm.StringPtr("-1"),
		}); err != nil {
			return fmt.Errorf("source %s: %w", f.lc.From, err)
		}
	}
	f.o.Progress(fmt.Sprintf("quarantining %d records left behind", rep.Quarantined), Status{})
	name := func(t string) string { return QuarantineTopic(f.lc.Name, t) }
	_, err = f.copyRanges(ctx, "quarantine", f.lc.From, f.lc.From, ranges, name)
	return err
}

// copyBack copies what was written at the destination since the failover
// back to the source.
func (f *failback) copyBack(ctx context.Context, rep *FailbackReport) error {
	mirrorOf := sourceOf(rep.Partitions)
	actx, cancel := context.WithTimeout(ctx, f.tune.adminTimeout())
	defer cancel()
	ends, err := f.dstAdm.ListCommittedOffsets(actx, slices.Collect(maps.Keys(mirrorOf))...)
	if err != nil {
		return fmt.Errorf("destination %s: list end offsets of the mirror topics: %w", f.lc.To, err)
	}
	ranges := make(map[tp]offsetRange)
	for i := range rep.Partitions {
		p := &rep.Partitions[i]
		e, ok := ends.Lookup(p.Mirror, p.Partition)
		if !ok || e.Err != nil {
			return fmt.Errorf("destination %s: mirror partition %d of %s is gone", f.lc.To, p.Partition, p.Mirror)
		}
		p.CopiedTo = max(e.Offset, p.MirrorEnd)
		ranges[tp{p.Mirror, p.Partition}] = offsetRange{p.MirrorEnd, p.CopiedTo}
	}
	f.o.Progress("copying back what was written at the destination since the failover", Status{})
	st, err := f.copyRanges(ctx, "failback", f.lc.To, f.lc.From, ranges, func(m string) string { return mirrorOf[m] })
	rep.CopiedBack = st.Records
	return err
}

// copyRanges copies the ranges of the from cluster's partitions to the to
// cluster, the topic named by rename, with a link of its own, exactly once
// (a run killed and started again goes on where it stopped), and returns
// the link's status at the end. The link is named after the failover, so
// that each failback copies afresh.
func (f *failback) copyRanges(ctx context.Context, what, from, to string, ranges map[tp]offsetRange, rename func(string) string) (Status, error) {
	var topics []string
	for k := range ranges {
		if !slices.Contains(topics, k.Topic) {
			topics = append(topics, k.Topic)
		}
	}
	slices.Sort(topics)
	patterns := make([]*regexp.Regexp, len(topics))
	for i, t := range topics {
		patterns[i] = regexp.MustCompile("^(?:" + regexp.QuoteMeta(t) + ")$")
	}
	cl := &config.Link{
		Name: f.lc.Name + "." + what + "." + f.mark.At.UTC().Format("20060102T150405.000Z"),
		From: from, To: to,
		Topics:  config.Topics{Include: topics, IncludeRE: patterns},
		Profile: f.lc.Profile, Tuning: f.lc.Tuning, Compression: f.lc.Compression,
		Slots: 1, Start: config.StartEarliest, Delivery: config.DeliveryExactlyOnce, OnError: config.OnErrorStop,
		CheckpointTopic: config.DefaultCheckpointTopic, CommitInterval: f.lc.CommitInterval, DiscoveryInterval: f.lc.DiscoveryInterval,
		Membership: f.lc.Membership, MaxState: f.lc.MaxState,
	}
	opts := f.o.Link
	opts.rename, opts.ownConfigs = rename, true
	// The dialers given are the link's, for its source and destination.
	dialer := func(cluster string) kafka.DialFunc {
		if cluster == f.lc.From {
			return f.o.Link.SourceDialer
		}
		return f.o.Link.DestinationDialer
	}
	opts.SourceDialer, opts.DestinationDialer = dialer(from), dialer(to)
	srcOpts := f.srcOpts
	if from == f.lc.To {
		srcOpts = f.dstOpts
	}
	opts.source = func() (source, error) {
		ks, err := newKafkaSource(append(slices.Clip(srcOpts), consumerOpts(f.tune.fetchMaxWait)...), f.tune.adminTimeout())
		if err != nil {
			return nil, err
		}
		return newBoundedSource(ks, ranges), nil
	}
	l := New(f.cfg, cl, opts, f.o.Logger)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- l.Run(runCtx) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			st := l.Status()
			if err == nil && ctx.Err() != nil {
				err = fmt.Errorf("failback interrupted: %w; run it again to go on where it stopped", ctx.Err())
			}
			if err != nil {
				return st, fmt.Errorf("%s (link %s): %w", what, cl.Name, err)
			}
			return st, nil
		case <-tick.C:
			f.o.Progress(what, l.Status())
		}
	}
}

// moveCheckpoints moves the link's checkpoints of the given partitions
// forward to the given offsets. Per slot it initialises the slot's
// transactional producer (fencing whoever holds it), loads the slot's
// checkpoints and commits them, moved, in one transaction under a new
// generation with the slot's marker, as a session's first commit does.
func moveCheckpoints(ctx context.Context, st *store, o loadOptions, id Identity, to map[tp]int64) error {
	slots := make(map[int]bool)
	for k := range to {
		slots[slotOf(k, st.slots)] = true
	}
	for _, slot := range slices.Sorted(maps.Keys(slots)) {
		if err := moveSlot(ctx, st, o, id, slot, to); err != nil {
			return err
		}
	}
	return nil
}

func moveSlot(ctx context.Context, st *store, o loadOptions, id Identity, slot int, to map[tp]int64) error {
	producer, err := kgo.NewClient(append(slices.Clip(o.client),
		kgo.TransactionalID(id.TransactionalID(slot)),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return fmt.Errorf("create producer %s: %w", id.TransactionalID(slot), err)
	}
	defer producer.Close()
	pid, epoch, err := producer.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("initialise transactional producer %s: %w", id.TransactionalID(slot), err)
	}
	o.producers[pid] = epoch
	saved, err := st.load(ctx, o, []int{slot})
	if err != nil {
		return err
	}
	sv := saved[slot]
	ss := slotStore{store: st, slot: slot, gen: sv.gen}
	if err := producer.BeginTransaction(); err != nil {
		return err
	}
	recs := []*kgo.Record{ss.markRecord("edgelink failback")}
	for _, k := range slices.SortedFunc(maps.Keys(sv.checkpoints), func(a, b tp) int { return strings.Compare(a.String(), b.String()) }) {
		c := sv.checkpoints[k]
		if n, ok := to[k]; ok && n > c.Next {
			c.Next = n
		}
		recs = append(recs, ss.checkpointRecord(k, c))
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = producer.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		return fmt.Errorf("write checkpoints: %w", err)
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit checkpoints: %w", err)
	}
	return nil
}

// returnGroups returns the consumer groups the link syncs to the source:
// each offset a group committed at a mirror partition becomes the source
// offset of the first record it has not consumed. Below the mirror's end
// at failover that is the source offset the record's provenance names;
// after it, the offset of the record's copy back at the source. A group
// whose offset at the source lies among the records quarantined moves
// past them.
func (f *failback) returnGroups(ctx context.Context, rep *FailbackReport) (*FailbackGroups, error) {
	out := &FailbackGroups{}
	listed, err := f.dstAdm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("destination %s: list groups: %w", f.lc.To, err)
	}
	var ids []string
	for id, lg := range listed {
		if f.lc.Groups.IDs.Match(id) && (lg.ProtocolType == "" || lg.ProtocolType == "consumer") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out.Groups = len(ids)
	if len(ids) == 0 {
		return out, nil
	}
	byMirror := make(map[tp]*FailbackPartition, len(rep.Partitions))
	var sources []string
	for i := range rep.Partitions {
		p := &rep.Partitions[i]
		byMirror[tp{p.Mirror, p.Partition}] = p
		if !slices.Contains(sources, p.Topic) {
			sources = append(sources, p.Topic)
		}
	}
	fetched := f.dstAdm.FetchManyOffsets(ctx, ids...)
	var parts []groupPart
	for _, id := range ids {
		r := fetched[id]
		if r.Err != nil {
			if errors.Is(r.Err, kerr.GroupIDNotFound) {
				continue
			}
			return nil, fmt.Errorf("destination %s: fetch offsets of group %s: %w", f.lc.To, id, r.Err)
		}
		r.Fetched.Each(func(o kadm.OffsetResponse) {
			p, ok := byMirror[tp{o.Topic, o.Partition}]
			if !ok || o.Err != nil || o.At < 0 {
				return
			}
			if o.At > p.CopiedTo {
				out.Pending++ // consumed at the destination past what was copied back
				return
			}
			parts = append(parts, groupPart{group: id, source: tp{o.Topic, o.Partition}, offset: o.At, epoch: o.LeaderEpoch, meta: o.Metadata})
		})
	}
	dests, err := f.translateBack(ctx, parts, byMirror)
	if err != nil {
		return nil, err
	}
	// A group that consumed records at the source that are quarantined now
	// goes on after them.
	current := f.srcAdm.FetchManyOffsets(ctx, ids...)
	for i, gp := range parts {
		p := byMirror[gp.source]
		cur, ok := current[gp.group].Fetched.Lookup(p.Topic, p.Partition)
		if ok && cur.Err == nil && cur.At > p.Replicated && cur.At < p.ResumeAt && dests[i] < p.ResumeAt {
			dests[i] = p.ResumeAt
		}
	}
	// The group sync's commit, from the mirror partitions to the source's.
	mirrorOf := sourceOf(rep.Partitions)
	g := &groupSync{l: New(f.cfg, f.lc, Options{rename: func(m string) string { return mirrorOf[m] }}, f.o.Logger), dst: f.srcAdm}
	st, err := g.commit(ctx, GroupsStatus{}, parts, dests)
	out.Returned, out.Committed, out.Active = st.Synced, st.Committed, st.Active
	if err != nil {
		return out, fmt.Errorf("source %s: %w", f.lc.From, err)
	}
	return out, nil
}

// sourceOf maps the mirror topics of the partitions to their source topics.
func sourceOf(parts []FailbackPartition) map[string]string {
	out := make(map[string]string, len(parts))
	for _, p := range parts {
		out[p.Mirror] = p.Topic
	}
	return out
}

// translateBack maps each group partition's offset at a mirror partition
// to the source partition: dests[i] is parts[i]'s.
func (f *failback) translateBack(ctx context.Context, parts []groupPart, byMirror map[tp]*FailbackPartition) ([]int64, error) {
	want := make(map[tp][]int64)
	for _, gp := range parts {
		want[gp.source] = append(want[gp.source], gp.offset)
	}
	// The source's ends, once: a translation past the last copy lands there.
	var topics []string
	for m := range want {
		if t := byMirror[m].Topic; !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	actx, cancel := context.WithTimeout(ctx, f.tune.adminTimeout())
	ends, err := f.srcAdm.ListCommittedOffsets(actx, topics...)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("source %s: list end offsets: %w", f.lc.From, err)
	}
	found := make(map[mirrorOffset]int64)
	for m, cs := range want {
		p := byMirror[m]
		slices.Sort(cs)
		cs = slices.Compact(cs)
		var after []int64
		// Below the mirror's end at failover: the link's own copies, whose
		// provenance names their source offsets.
		fwd, err := newProber(f.dstOpts, m.Topic, m.Partition, origin{f.srcID, f.id.Site})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c >= p.MirrorEnd {
				after = append(after, c)
				continue
			}
			_, src, err := fwd.run(ctx, c, p.MirrorEnd)
			if err != nil {
				fwd.close()
				return nil, fmt.Errorf("translate offsets of %s: %w", m, err)
			}
			if len(src) == 0 {
				after = append(after, c) // only markers left before the failover
				continue
			}
			found[mirrorOffset{m, c}] = src[0]
		}
		fwd.close()
		if len(after) == 0 {
			continue
		}
		// After it: the copies failback wrote back, from ResumeAt on.
		end, ok := ends.Lookup(p.Topic, p.Partition)
		if !ok || end.Err != nil {
			return nil, fmt.Errorf("source %s: partition %d of %s has no end offset", f.lc.From, p.Partition, p.Topic)
		}
		back, err := newProber(f.srcOpts, p.Topic, p.Partition, origin{f.dstID, f.id.Site})
		if err != nil {
			return nil, err
		}
		// A group at the end of what was copied continues after the
		// last copy; with nothing copied, where the link resumes.
		none := p.ResumeAt
		if p.CopiedTo > p.MirrorEnd {
			none = end.Offset
		}
		ans := make(map[int64]answer, len(after))
		err = back.resolve(ctx, after, p.ResumeAt, end.Offset, none, ans)
		back.close()
		if err != nil {
			return nil, fmt.Errorf("translate offsets of %s back to %s: %w", m, p.Topic, err)
		}
		for c, a := range ans {
			found[mirrorOffset{m, c}] = a.offset
		}
	}
	dests := make([]int64, len(parts))
	for i, gp := range parts {
		d, ok := found[mirrorOffset{gp.source, gp.offset}]
		if !ok {
			d = -1
		}
		dests[i] = d
	}
	return dests, nil
}
