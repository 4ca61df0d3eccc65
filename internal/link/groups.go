package link

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// GroupsStatus is where a link's consumer group sync stands.
type GroupsStatus struct {
	// Groups counts the source groups selected at the last round; Synced
	// those whose offsets of the partitions this agent holds are at the
	// destination, translated; Committed the offsets the last round
	// wrote.
	Groups, Synced, Committed int
	// Active counts groups left alone at the destination because members
	// consume there; Pending the group partitions whose committed offset
	// is past what the link replicated (synced once it is).
	Active, Pending int
	// LastSync is when the last round ended and Took how long it took.
	LastSync time.Time
	Took     time.Duration
	// LastError is the last round's error, if it failed.
	LastError string
	// idle is set for a round that had no partition to sync: the session
	// holds no slot yet.
	idle bool
}

// heldPositions is what the group sync knows of the link's replication:
// the committed source position (next offset) of every partition of the
// slots the session holds. The session writes it, the sync reads it.
type heldPositions struct {
	mu  sync.Mutex
	pos map[tp]int64
}

func (h *heldPositions) set(from map[tp]int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pos == nil {
		h.pos = make(map[tp]int64, len(from))
	}
	maps.Copy(h.pos, from)
}

func (h *heldPositions) forget(parts []tp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range parts {
		delete(h.pos, k)
	}
}

func (h *heldPositions) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.pos)
}

func (h *heldPositions) snapshot() map[tp]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.pos)
}

// groupSync copies the committed offsets of the source's selected consumer
// groups to the destination, for the partitions of the slots the agent
// holds: each committed source offset becomes the mirror offset of the
// first record not consumed yet (see Translate), once the link replicated
// up to it. A destination group with members is left alone, and no offset
// at the destination moves backwards. It runs in a goroutine of its own
// per session.
type groupSync struct {
	l        *Link
	src, dst *kadm.Client
	dstOpts  []kgo.Opt
	held     *heldPositions
	// origin is the link's source as the mirror's provenance names it:
	// records of other links (several sites into one topic) and records
	// written at the destination are not the link's.
	origin origin
	// cache holds translations of earlier rounds: a mirror record's offset
	// does not change.
	cache map[mirrorOffset]answer
	// mirrors holds the mirror topic of each source topic seen.
	mirrors map[string]string
	// done holds, per group, the source offsets whose translations the
	// destination group holds since an earlier round: a group whose
	// offsets have not moved is not looked at again.
	done map[string]map[tp]int64
}

// mirror returns the mirror topic of a source topic.
func (g *groupSync) mirror(topic string) string {
	m, ok := g.mirrors[topic]
	if !ok {
		if g.mirrors == nil {
			g.mirrors = make(map[string]string)
		}
		m = g.l.destination(topic)
		g.mirrors[topic] = m
	}
	return m
}

type mirrorOffset struct {
	k      tp // the mirror partition
	source int64
}

// maxGroupCache bounds the translations kept between rounds.
const maxGroupCache = 1 << 20

// commitConcurrency bounds the groups committed at once.
const commitConcurrency = 64

// run syncs every interval until ctx ends.
func (g *groupSync) run(ctx context.Context) {
	interval := g.l.cfg.Groups.Interval
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		began := time.Now()
		st, err := g.round(ctx)
		if ctx.Err() != nil {
			return
		}
		st.LastSync, st.Took = time.Now(), time.Since(began)
		if err != nil {
			st.LastError = err.Error()
			g.l.logger.Warn("consumer group sync failed; trying again next round", "err", err)
		}
		wait := max(interval-time.Since(began), 0)
		if st.idle {
			// No slot held yet (the session is starting): look again soon
			// rather than an interval later.
			wait = min(wait, time.Second)
		} else {
			g.l.update(func(s *Status) { s.Groups = &st })
		}
		t.Reset(wait)
	}
}

// groupPart is one partition's committed offset of a group.
type groupPart struct {
	group  string
	source tp
	offset int64 // at the source
	epoch  int32
	meta   string
}

// round syncs once.
func (g *groupSync) round(ctx context.Context) (GroupsStatus, error) {
	var st GroupsStatus
	// The positions first, the mirror's ends after: every record below a
	// position is committed at the destination before the ends are read.
	pos := g.held.snapshot()
	if len(pos) == 0 {
		st.idle = true
		return st, nil
	}
	listed, err := g.src.ListGroups(ctx)
	if err != nil {
		return st, fmt.Errorf("list source groups: %w", err)
	}
	var ids []string
	for id, lg := range listed {
		if g.l.cfg.Groups.IDs.Match(id) && (lg.ProtocolType == "" || lg.ProtocolType == "consumer") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	st.Groups = len(ids)
	if len(ids) == 0 {
		return st, nil
	}
	fetched := g.src.FetchManyOffsets(ctx, ids...)
	var parts []groupPart
	for _, id := range ids {
		r, ok := fetched[id]
		if !ok || r.Err != nil {
			if ok && !errors.Is(r.Err, kerr.GroupIDNotFound) {
				return st, fmt.Errorf("fetch offsets of source group %s: %w", id, r.Err)
			}
			continue
		}
		if g.unchanged(id, r.Fetched, pos) {
			st.Synced++
			continue
		}
		r.Fetched.Each(func(o kadm.OffsetResponse) {
			k := tp{o.Topic, o.Partition}
			at, held := pos[k]
			if o.Err != nil || o.At < 0 || !held {
				return
			}
			if o.At > at {
				st.Pending++ // consumed past what the destination holds
				return
			}
			parts = append(parts, groupPart{group: id, source: k, offset: o.At, epoch: o.LeaderEpoch, meta: o.Metadata})
		})
	}
	if len(parts) == 0 {
		return st, nil
	}
	dests, err := g.translate(ctx, parts)
	if err != nil {
		return st, err
	}
	return g.commit(ctx, st, parts, dests)
}

// unchanged reports whether every offset of source group id that the
// sync would copy is one the destination group got from an earlier round.
func (g *groupSync) unchanged(id string, fetched kadm.OffsetResponses, pos map[tp]int64) bool {
	done, ok := g.done[id]
	if !ok {
		return false
	}
	same := true
	fetched.Each(func(o kadm.OffsetResponse) {
		k := tp{o.Topic, o.Partition}
		if _, held := pos[k]; !held || o.Err != nil || o.At < 0 {
			return
		}
		if at, ok := done[k]; !ok || at != o.At {
			same = false
		}
	})
	return same
}

// synced notes that the destination group id holds the translations of
// these source offsets.
func (g *groupSync) synced(id string, parts []groupPart) {
	if g.done == nil {
		g.done = make(map[string]map[tp]int64)
	}
	d := g.done[id]
	if d == nil {
		d = make(map[tp]int64, len(parts))
		g.done[id] = d
	}
	for _, p := range parts {
		d[p.source] = p.offset
	}
}

// translate maps every group partition's source offset to its mirror
// offset: dests[i] is parts[i]'s, or -1 when its mirror partition is
// gone.
func (g *groupSync) translate(ctx context.Context, parts []groupPart) ([]int64, error) {
	want := make(map[tp][]int64) // by mirror partition
	var topics []string
	for _, p := range parts {
		m := tp{g.mirror(p.source.Topic), p.source.Partition}
		if _, ok := want[m]; !ok && !slices.Contains(topics, m.Topic) {
			topics = append(topics, m.Topic)
		}
		want[m] = append(want[m], p.offset)
	}
	starts, err := g.dst.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets of the mirror topics: %w", err)
	}
	ends, err := g.dst.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of the mirror topics: %w", err)
	}
	found := make(map[mirrorOffset]int64)
	for m, ss := range want {
		so, ok1 := starts.Lookup(m.Topic, m.Partition)
		eo, ok2 := ends.Lookup(m.Topic, m.Partition)
		if !ok1 || !ok2 || so.Err != nil || eo.Err != nil {
			continue // not mirrored yet: the next round
		}
		slices.Sort(ss)
		ss = slices.Compact(ss)
		var todo []int64
		for _, s := range ss {
			if a, ok := g.cache[mirrorOffset{m, s}]; ok && a.offset >= so.Offset {
				found[mirrorOffset{m, s}] = a.offset
				continue
			}
			todo = append(todo, s)
		}
		if len(todo) == 0 {
			continue
		}
		out, err := g.resolve(ctx, m, todo, so.Offset, eo.Offset)
		if err != nil {
			return nil, err
		}
		if len(g.cache) > maxGroupCache {
			clear(g.cache)
		}
		for s, a := range out {
			// Every record below the position is in the mirror: a source
			// offset no record at or after has reached yet lands at the
			// end (a quiet topic), exactly. Only offsets a record answers
			// are kept: a later record may answer the others.
			found[mirrorOffset{m, s}] = a.offset
			if a.offset < eo.Offset {
				g.cache[mirrorOffset{m, s}] = a
			}
		}
	}
	dests := make([]int64, len(parts))
	for i, p := range parts {
		m := tp{g.mirror(p.source.Topic), p.source.Partition}
		d, ok := found[mirrorOffset{m, p.offset}]
		if !ok {
			d = -1
		}
		dests[i] = d
	}
	return dests, nil
}

// resolve translates the source offsets ss (sorted) of mirror partition m,
// which holds [start, end).
func (g *groupSync) resolve(ctx context.Context, m tp, ss []int64, start, end int64) (map[int64]answer, error) {
	p, err := newProber(g.dstOpts, m.Topic, m.Partition, g.origin)
	if err != nil {
		return nil, err
	}
	defer p.close()
	out := make(map[int64]answer, len(ss))
	if err := p.resolve(ctx, ss, start, end, end, out); err != nil {
		return nil, fmt.Errorf("translate offsets of %s: %w", m, err)
	}
	return out, nil
}

// commit writes the translated offsets to the destination groups that have
// no members, where they move forward.
func (g *groupSync) commit(ctx context.Context, st GroupsStatus, parts []groupPart, dests []int64) (GroupsStatus, error) {
	byGroup := make(map[string]kadm.Offsets)
	partsOf := make(map[string][]groupPart)
	for i, p := range parts {
		if dests[i] < 0 {
			continue
		}
		partsOf[p.group] = append(partsOf[p.group], p)
		set := byGroup[p.group]
		if set == nil {
			set = make(kadm.Offsets)
			byGroup[p.group] = set
		}
		set.Add(kadm.Offset{Topic: g.mirror(p.source.Topic), Partition: p.source.Partition, At: dests[i], LeaderEpoch: -1, Metadata: p.meta})
	}
	ids := slices.Sorted(maps.Keys(byGroup))
	if len(ids) == 0 {
		return st, nil
	}
	described, err := g.dst.DescribeGroups(ctx, ids...)
	if err != nil && len(described) == 0 {
		return st, fmt.Errorf("describe destination groups: %w", err)
	}
	var idle []string
	for _, id := range ids {
		d, ok := described[id]
		if ok && d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound) {
			return st, fmt.Errorf("describe destination group %s: %w", id, d.Err)
		}
		if ok && d.Err == nil && (len(d.Members) > 0 || !idleState(d.State)) {
			st.Active++
			continue
		}
		idle = append(idle, id)
	}
	current := g.dst.FetchManyOffsets(ctx, idle...)
	type job struct {
		id  string
		set kadm.Offsets
	}
	var jobs []job
	for _, id := range idle {
		set := make(kadm.Offsets)
		have := current[id]
		if have.Err != nil && !errors.Is(have.Err, kerr.GroupIDNotFound) {
			return st, fmt.Errorf("fetch offsets of destination group %s: %w", id, have.Err)
		}
		byGroup[id].Each(func(o kadm.Offset) {
			if cur, ok := have.Fetched.Lookup(o.Topic, o.Partition); ok && cur.Err == nil && cur.At >= o.At {
				return // never backwards, nor again
			}
			set.Add(o)
		})
		if len(set) == 0 {
			st.Synced++
			g.synced(id, partsOf[id])
			continue
		}
		jobs = append(jobs, job{id, set})
	}
	var (
		mu    sync.Mutex
		errs  []error
		wg    sync.WaitGroup
		slots = make(chan struct{}, commitConcurrency)
	)
	for _, j := range jobs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			resp, err := g.dst.CommitOffsets(ctx, j.id, j.set)
			if err == nil {
				err = resp.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				st.Synced++
				j.set.Each(func(kadm.Offset) { st.Committed++ })
				g.synced(j.id, partsOf[j.id])
			case errorsIsAny(err, kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.RebalanceInProgress):
				st.Active++ // a member joined meanwhile
			default:
				errs = append(errs, fmt.Errorf("commit offsets of destination group %s: %w", j.id, err))
			}
		})
	}
	wg.Wait()
	return st, errors.Join(errs...)
}

// idleState reports whether a group in state s has no members consuming.
func idleState(s string) bool { return s == "Empty" || s == "Dead" || s == "" }
