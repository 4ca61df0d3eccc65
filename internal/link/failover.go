package link

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
)

// FailoverOptions say how a link fails over.
type FailoverOptions struct {
	// DryRun reports without fencing the link or syncing groups.
	DryRun bool
	// SourceTimeout bounds trying the source (default: the link's admin
	// timeout): a source that does not answer by then is reported as lost.
	SourceTimeout time.Duration
	Logger        *slog.Logger
}

// FailoverReport says where a link stood when it failed over: per source
// partition what the destination holds and what was left behind.
type FailoverReport struct {
	Link   string    `json:"link"`
	At     time.Time `json:"at"`
	DryRun bool      `json:"dry_run"`
	// Fenced says the link's transactional ids were fenced: any instance
	// still running it stops, and its open transactions were aborted.
	Fenced bool `json:"fenced"`
	// Already says the link had failed over before, at At: the report
	// gives the positions and mirror ends of then.
	Already bool `json:"already_failed_over"`
	// SourceReachable says the source answered; SourceError why not.
	SourceReachable bool   `json:"source_reachable"`
	SourceError     string `json:"source_error,omitempty"`
	// Groups is the last group sync, when the link syncs groups and the
	// source answered.
	Groups     *GroupsStatus       `json:"groups,omitempty"`
	Partitions []FailoverPartition `json:"partitions"`
	// LeftBehind counts the records left behind in all partitions (-1
	// when the source did not answer).
	LeftBehind int64 `json:"left_behind"`
}

// FailoverPartition is one source partition at failover.
type FailoverPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Mirror    string `json:"mirror"`
	// Replicated is the source offset up to which (exclusive) everything
	// is at the destination: the checkpoint.
	Replicated int64 `json:"replicated"`
	// MirrorEnd is the mirror partition's end: what is written there from
	// now on was written at the destination.
	MirrorEnd int64 `json:"mirror_end"`
	// SourceEnd is the source partition's last stable offset, and
	// LeftBehind the records in [Replicated, SourceEnd) that were never
	// replicated (aborted records and markers do not count), from
	// FirstLeft to LastLeft; -1 when the source did not answer.
	SourceEnd  int64      `json:"source_end"`
	LeftBehind int64      `json:"left_behind"`
	FirstLeft  *time.Time `json:"first_left,omitempty"`
	LastLeft   *time.Time `json:"last_left,omitempty"`
}

// Failover stops a link for a planned or unplanned loss of its source: it
// leaves the link's failover mark at the destination (see failoverMark),
// fences the link's transactional ids (an instance still running it is
// fenced; its open transactions are aborted; no session starts again until
// Failback), syncs its consumer groups a last time when the source still
// answers, and reports per partition what the destination holds and what
// was left behind at the source. A link that failed over already is
// reported as it stood then.
func Failover(ctx context.Context, cfg *config.Config, lc *config.Link, o FailoverOptions) (*FailoverReport, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if lc.AirGapped() {
		return nil, fmt.Errorf("link %s crosses an air gap: nothing runs it to fail over (import the bundles that reached the cloud)", lc.Name)
	}
	tune := tuningFor(lc)
	timeout := tune.adminTimeout()
	if o.SourceTimeout <= 0 {
		o.SourceTimeout = timeout
	}
	id := Identity{Site: cfg.Site, Link: lc.Name}
	dstOpts, err := clientOpts(cfg.Clusters[lc.To], tune, nil, o.Logger)
	if err != nil {
		return nil, err
	}
	dst, err := kgo.NewClient(dstOpts...)
	if err != nil {
		return nil, fmt.Errorf("create destination client: %w", err)
	}
	defer dst.Close()
	rep := &FailoverReport{Link: lc.Name, At: time.Now().UTC(), DryRun: o.DryRun, LeftBehind: -1}
	st, lo, err := openMarkedStore(ctx, dst, dstOpts, id, lc, timeout+time.Minute)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	mark, err := readMark(ctx, lo, st, id)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	if mark == nil && !o.DryRun {
		// The mark first, the fence after: a session that starts after
		// the fence finds the mark, one that started before is fenced.
		mark = &failoverMark{At: rep.At}
		if err := writeMark(ctx, dstOpts, st, id, mark); err != nil {
			return nil, fmt.Errorf("destination %s: %w", lc.To, err)
		}
	}
	// An at-least-once link has no transactional ids to fence.
	fenceSlots := !o.DryRun && lc.Delivery != config.DeliveryAtLeastOnce
	cps, err := failoverCheckpoints(ctx, st, lo, id, lc, fenceSlots)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	rep.Fenced = fenceSlots
	if mark != nil && len(mark.Partitions) > 0 {
		// Failed over before: where it stood then stands.
		rep.At, rep.Already = mark.At, true
		cps = make(map[tp]int64, len(mark.Partitions))
		for _, p := range mark.Partitions {
			cps[tp{p.Topic, p.Partition}] = p.Replicated
			rep.Partitions = append(rep.Partitions, FailoverPartition{
				Topic: p.Topic, Partition: p.Partition, Mirror: p.Mirror,
				Replicated: p.Replicated, MirrorEnd: p.MirrorEnd, SourceEnd: -1, LeftBehind: -1,
			})
		}
	} else {
		if rep.Partitions, err = mirrorEnds(ctx, dst, cfg, lc, cps, timeout); err != nil {
			return nil, err
		}
		if mark != nil {
			for _, p := range rep.Partitions {
				mark.Partitions = append(mark.Partitions, markPartition{Topic: p.Topic, Partition: p.Partition, Mirror: p.Mirror, Replicated: p.Replicated, MirrorEnd: p.MirrorEnd})
			}
			if err := writeMark(ctx, dstOpts, st, id, mark); err != nil {
				return nil, fmt.Errorf("destination %s: %w", lc.To, err)
			}
		}
	}
	if err := failoverSource(ctx, cfg, lc, tune, o, rep, cps, dstOpts); err != nil {
		rep.SourceError = err.Error()
		o.Logger.Warn("source did not answer: what was left behind there is unknown", "err", err)
	}
	return rep, nil
}

// mirrorEnds lists, per checkpointed source partition, the checkpoint and
// the end of its mirror partition.
func mirrorEnds(ctx context.Context, dst *kgo.Client, cfg *config.Config, lc *config.Link, cps map[tp]int64, timeout time.Duration) ([]FailoverPartition, error) {
	parts := slices.SortedFunc(maps.Keys(cps), func(a, b tp) int {
		if a.Topic != b.Topic {
			return strings.Compare(a.Topic, b.Topic)
		}
		return int(a.Partition - b.Partition)
	})
	mirrors := make(map[string]bool)
	for _, k := range parts {
		mirrors[lc.DestinationTopic(cfg.Site, k.Topic)] = true
	}
	adm := kadm.NewClient(dst)
	actx, cancel := context.WithTimeout(ctx, timeout)
	mends, err := adm.ListEndOffsets(actx, slices.Sorted(maps.Keys(mirrors))...)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list end offsets of the mirror topics: %w", err)
	}
	var out []FailoverPartition
	for _, k := range parts {
		m := lc.DestinationTopic(cfg.Site, k.Topic)
		fp := FailoverPartition{Topic: k.Topic, Partition: k.Partition, Mirror: m, Replicated: cps[k], SourceEnd: -1, LeftBehind: -1}
		if e, ok := mends.Lookup(m, k.Partition); ok && e.Err == nil {
			fp.MirrorEnd = e.Offset
		}
		out = append(out, fp)
	}
	return out, nil
}

// openMarkedStore opens the link's checkpoint store at the destination for
// failover and failback, with the options to read and move the
// checkpoints of a link that failed over.
func openMarkedStore(ctx context.Context, dst *kgo.Client, dstOpts []kgo.Opt, id Identity, lc *config.Link, timeout time.Duration) (*store, loadOptions, error) {
	lo := loadOptions{
		client: dstOpts, cl: dst, adm: kadm.NewClient(dst), timeout: timeout,
		producers: make(map[int64]int16), hanging: make(map[int64][]int32), pastMark: true,
	}
	topic := lc.CheckpointTopic
	if topic == "" {
		topic = config.DefaultCheckpointTopic
	}
	st, err := openStore(ctx, dst, topic, id, lc.Slots, slog.New(slog.DiscardHandler))
	return st, lo, err
}

// failoverCheckpoints reads the link's committed checkpoints. With fence,
// it first initialises every slot's transactional producer, which fences
// whoever runs the slot and aborts its open transaction, so that the
// checkpoints are final.
func failoverCheckpoints(ctx context.Context, st *store, o loadOptions, id Identity, lc *config.Link, fenceSlots bool) (map[tp]int64, error) {
	slots := make([]int, max(lc.Slots, 1))
	for i := range slots {
		slots[i] = i
	}
	out := make(map[tp]int64)
	if !fenceSlots {
		// A dry run fences nothing: the committed checkpoints, whatever
		// transactions are open.
		parts := make([]int32, st.partitions)
		for i := range parts {
			parts[i] = int32(i)
		}
		mine := make(map[int]bool, len(slots))
		for _, i := range slots {
			mine[i] = true
		}
		r := checkpointReader{o: o, topic: st.topic, slots: st.slots, mine: mine, leaders: st.leaders, topicID: st.topicID}
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		found, _, err := r.read(rctx, parts, id)
		if err != nil {
			return nil, err
		}
		cps, _, _ := merged(found, id)
		for k, c := range cps {
			out[k] = c.Next
		}
		return out, nil
	}
	for _, i := range slots {
		if err := fence(ctx, o, id.TransactionalID(i)); err != nil {
			return nil, err
		}
	}
	saved, err := st.load(ctx, o, slots)
	if err != nil {
		return nil, err
	}
	for _, sv := range saved {
		for k, c := range sv.checkpoints {
			out[k] = c.Next
		}
	}
	return out, nil
}

// failoverSource fills in what the source says: its ends, what was left
// behind, and a last group sync.
func failoverSource(ctx context.Context, cfg *config.Config, lc *config.Link, tune tuning, o FailoverOptions, rep *FailoverReport, cps map[tp]int64, dstOpts []kgo.Opt) error {
	srcOpts, err := clientOpts(cfg.Clusters[lc.From], tune, nil, o.Logger)
	if err != nil {
		return err
	}
	src, err := kgo.NewClient(srcOpts...)
	if err != nil {
		return fmt.Errorf("create source client: %w", err)
	}
	defer src.Close()
	adm := kadm.NewClient(src)
	var topics []string
	for k := range cps {
		if !slices.Contains(topics, k.Topic) {
			topics = append(topics, k.Topic)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, o.SourceTimeout)
	ends, err := adm.ListCommittedOffsets(sctx, topics...)
	cancel()
	if err != nil {
		return fmt.Errorf("source %s: %w", lc.From, err)
	}
	rep.SourceReachable = true
	rep.LeftBehind = 0
	for i := range rep.Partitions {
		fp := &rep.Partitions[i]
		e, ok := ends.Lookup(fp.Topic, fp.Partition)
		if !ok || e.Err != nil {
			continue
		}
		fp.SourceEnd = e.Offset
		n, first, last, err := countRange(ctx, srcOpts, fp.Topic, fp.Partition, fp.Replicated, e.Offset)
		if err != nil {
			return fmt.Errorf("source %s: read what was left behind in %s[%d]: %w", lc.From, fp.Topic, fp.Partition, err)
		}
		fp.LeftBehind = n
		rep.LeftBehind += n
		if n > 0 {
			fp.FirstLeft, fp.LastLeft = &first, &last
		}
	}
	if lc.Groups == nil || o.DryRun {
		return nil
	}
	dst, err := kgo.NewClient(dstOpts...)
	if err != nil {
		return fmt.Errorf("create destination client: %w", err)
	}
	defer dst.Close()
	srcID, err := clusterID(ctx, adm, o.SourceTimeout)
	if err != nil {
		return fmt.Errorf("source %s: %w", lc.From, err)
	}
	l := New(cfg, lc, Options{}, o.Logger)
	g := &groupSync{l: l, src: adm, dst: kadm.NewClient(dst), dstOpts: dstOpts, held: &heldPositions{}, origin: origin{srcID, cfg.Site}, cache: make(map[mirrorOffset]answer)}
	g.held.set(cps)
	began := time.Now()
	st, err := g.round(ctx)
	st.LastSync, st.Took = time.Now(), time.Since(began)
	if err != nil {
		st.LastError = err.Error()
	}
	rep.Groups = &st
	return nil
}

// countRange counts the committed records of a source partition in
// [from, to) and returns the timestamps of the first and the last.
func countRange(ctx context.Context, opts []kgo.Opt, topic string, partition int32, from, to int64) (n int64, first, last time.Time, err error) {
	if from >= to {
		return 0, first, last, nil
	}
	cl, err := kgo.NewClient(append(slices.Clip(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())...)
	if err != nil {
		return 0, first, last, err
	}
	defer cl.Close()
	for next := from; next < to; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, first, last, err
		}
		if err := fs.Err(); err != nil {
			return 0, first, last, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= to {
				next = to
				return
			}
			next = max(next, r.Offset+1)
			if r.Attrs.IsControl() {
				return
			}
			if n == 0 {
				first = r.Timestamp.UTC()
			}
			last = r.Timestamp.UTC()
			n++
		})
	}
	return n, first, last, nil
}
