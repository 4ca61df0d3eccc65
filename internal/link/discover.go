package link

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/edgelink/edgelink/internal/config"
)

// discover lists source topics, mirrors them and starts reading the new
// partitions of the slots the session holds. In a slot opened since the
// last pass, a partition without a checkpoint starts at the link's
// configured start position; partitions that appear later start at their
// beginning, since everything in them is new.
func (s *session) discover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.tune.adminTimeout())
	defer cancel()
	ready, err := s.mirror(ctx)
	if err != nil {
		return err
	}
	s.ready = ready
	return s.startReading(ctx, ready)
}

// mirror lists the source topics and makes their mirror topics match,
// and returns the partition count of those ready to replicate.
func (s *session) mirror(ctx context.Context) (map[string]int32, error) {
	s.nextDiscovery = time.Now().Add(s.l.opts.DiscoveryInterval)
	src, err := s.sourceTopics(ctx)
	if err != nil {
		return nil, err
	}
	ready, err := s.syncTopics(ctx, src)
	if err != nil {
		return nil, err
	}
	s.l.update(func(st *Status) { st.SourcePartitions = maps.Clone(ready) })
	return ready, nil
}

// startReading starts reading the partitions of ready topics that the
// session's slots replicate and it does not read yet.
func (s *session) startReading(ctx context.Context, ready map[string]int32) error {
	l := s.l
	if n := s.mirrorLimit; n > 0 && n < s.tune.batchBytes {
		// The producer must not build batches a mirror refuses whole.
		return &batchCapError{limit: n, batch: s.tune.batchBytes, topic: s.mirrorLimited}
	}
	if s.grown {
		s.grown = false
		for _, sl := range s.slots {
			sl.out.topicsGrew()
		}
	}
	// fresh holds partitions without a checkpoint: [0] in slots opened
	// since the last pass, [1] in the others.
	var fresh [2][]tp
	var renewed []tp
	resume := make(map[tp]int64)
	for t, n := range ready {
		for p := range n {
			k := tp{t, p}
			sl := s.slotFor(k)
			if sl == nil || sl.releasing {
				continue
			}
			reading := s.in.reading(k)
			if s.recreated(k) {
				if reading {
					// The consumer still follows the old topic: start over.
					return fmt.Errorf("source topic %s was deleted and created again", t)
				}
				renewed = append(renewed, k)
				continue
			}
			if reading {
				continue
			}
			next, ok := sl.pos.at(k)
			if !ok {
				i := 1
				if sl.fresh {
					i = 0
				}
				fresh[i] = append(fresh[i], k)
				continue
			}
			resume[k] = s.readFrom(k, next)
		}
	}
	if len(renewed) > 0 {
		// A topic deleted and created again holds new records from offset
		// zero on: its old checkpoints say nothing about them.
		starts, err := s.startOffsets(ctx, renewed, false)
		if err != nil {
			return err
		}
		for _, t := range slices.Sorted(maps.Keys(countTopics(renewed))) {
			l.logger.Warn("source topic was deleted and created again; replicating the new topic from its start", "topic", t, "mirror", l.destination(t))
			l.event(EventTopic, fmt.Sprintf("source topic %s was deleted and created again: replicating it from its start; %s keeps the records of the old topic", t, l.destination(t)))
		}
		s.startPartitions(renewed, starts, resume)
	}
	for i, parts := range fresh {
		if len(parts) == 0 {
			continue
		}
		starts, err := s.startOffsets(ctx, parts, i == 0)
		if err != nil {
			return err
		}
		perTopic := countTopics(parts)
		for _, t := range slices.Sorted(maps.Keys(perTopic)) {
			l.event(EventTopic, fmt.Sprintf("replicating %d new partition(s) of %s to %s", perTopic[t], t, l.destination(t)))
		}
		s.startPartitions(parts, starts, resume)
	}
	for _, sl := range s.slots {
		sl.fresh = false
	}
	s.in.assign(resume)
	l.update(func(st *Status) { st.Partitions = len(s.in.assigned) })
	return nil
}

// recreated tells whether k's checkpoint was written for an earlier source
// topic of the same name.
func (s *session) recreated(k tp) bool {
	was, now := s.slotFor(k).pos.topicIDs[k], s.srcTopicIDs[k.Topic]
	return was != "" && now != "" && was != now
}

// startPartitions starts replicating partitions without a (valid)
// checkpoint at the given offsets.
func (s *session) startPartitions(parts []tp, starts map[tp]int64, assign map[tp]int64) {
	for _, k := range parts {
		off := starts[k]
		s.slotFor(k).pos.start(k, off, s.srcTopicIDs[k.Topic])
		assign[k] = off
		s.l.logger.Info("replicating partition", "topic", k.Topic, "partition", k.Partition, "from", off)
	}
}

func countTopics(parts []tp) map[string]int {
	out := make(map[string]int)
	for _, k := range parts {
		out[k.Topic]++
	}
	return out
}

// startOffsets resolves where partitions without a checkpoint begin.
func (s *session) startOffsets(ctx context.Context, parts []tp, first bool) (map[tp]int64, error) {
	topics := slices.Sorted(maps.Keys(countTopics(parts)))
	kind := startOffset
	if first && s.l.cfg.Start == config.StartLatest {
		kind = endOffset
	}
	offs, err := s.src.offsets(ctx, kind, topics...)
	if err != nil {
		return nil, fmt.Errorf("list source offsets: %w", err)
	}
	out := make(map[tp]int64, len(parts))
	for _, k := range parts {
		o, ok := offs[k]
		if !ok {
			return nil, fmt.Errorf("list offsets of %s: the source has none", k)
		}
		out[k] = o
	}
	return out, nil
}

// backlogInterval is how often a link measures its backlog.
const backlogInterval = time.Second

// liveWithin is the drain time under which a link with a backlog counts as live.
const liveWithin = 2 * time.Second

// measureBacklog compares the positions of the partitions being read with
// the source's last stable offsets and sets the link's backlog figures
// (with, per topic, the backlog's age against the topic's retention: the
// time until data loss) and its state: catching-up while there is a
// backlog, live when there is none.
func (s *session) measureBacklog(ctx context.Context) error {
	l := s.l
	ctx, cancel := context.WithTimeout(ctx, s.tune.adminTimeout())
	defer cancel()
	s.nextBacklog = time.Now().Add(backlogInterval)
	l.followBandwidthSchedule()
	parts := make(map[tp]int64, len(s.in.assigned))
	for k := range s.in.assigned {
		if sl := s.slotFor(k); sl == nil {
			continue
		} else if pos, ok := sl.pos.at(k); ok {
			parts[k] = pos
		}
	}
	topics := sortedTopics(parts)
	var backlog int64
	var oldest time.Time
	// topicOldest is, per topic, the oldest l.lastTS of its partitions
	// with a backlog; a partition nothing was replicated from yet has
	// none, and its age stays unknown.
	topicOldest := make(map[string]time.Time, len(topics))
	perTopic := make(map[string]*TopicStatus, len(topics))
	for _, t := range topics {
		n, in := l.done[t], l.doneIn[t]
		perTopic[t] = &TopicStatus{
			Source: t, Destination: l.destination(t), Priority: l.cfg.PriorityOf(t), Records: n.records, Bytes: n.bytes,
			RecordsIn: in.records, BytesIn: in.bytes, Retention: s.retention[t],
		}
	}
	for k := range parts {
		perTopic[k.Topic].Partitions++
	}
	if len(topics) > 0 {
		ends, err := s.src.offsets(ctx, stableOffset, topics...)
		if err != nil {
			return fmt.Errorf("measure backlog: %w", err)
		}
		for k, pos := range parts {
			end, found := ends[k]
			if !found || end <= pos {
				continue
			}
			backlog += end - pos
			perTopic[k.Topic].BacklogRecords += end - pos
			ts, ok := l.lastTS[k]
			if !ok {
				continue
			}
			if oldest.IsZero() || ts.Before(oldest) {
				oldest = ts
			}
			if to, seen := topicOldest[k.Topic]; !seen || ts.Before(to) {
				topicOldest[k.Topic] = ts
			}
		}
	}
	now := time.Now()
	for t, ts := range topicOldest {
		// A timestamp ahead of the clock leaves the age unknown.
		perTopic[t].BacklogAge = max(now.Sub(ts), 0)
	}
	l.update(func(st *Status) {
		st.BacklogRecords, st.BacklogAt = backlog, now
		st.Topics = st.Topics[:0:0]
		for _, t := range slices.Sorted(maps.Keys(perTopic)) {
			st.Topics = append(st.Topics, *perTopic[t])
		}
		st.DataLossIn, st.DataLossKnown = DataLossIn(st.Topics)
		st.BacklogBytes, st.BacklogAge, st.DrainETA = 0, 0, 0
		if backlog == 0 {
			return
		}
		if st.Records > 0 {
			st.BacklogBytes = backlog * (st.Bytes / st.Records)
		}
		if !oldest.IsZero() {
			st.BacklogAge = now.Sub(oldest)
		}
		if s.rate > 1 {
			st.DrainETA = time.Duration(float64(backlog) / s.rate * float64(time.Second))
		}
	})
	// Under steady load there is always a little backlog (the records of the
	// open transaction): a link is live while what is left would drain
	// within liveWithin at the recent rate.
	state := StateLive
	if backlog > 0 && (s.rate < 1 || float64(backlog)/s.rate > liveWithin.Seconds()) {
		state = StateCatchingUp
	}
	if !l.slots.isSettled() {
		// A shared link whose agent has not joined its group yet runs
		// nothing: it is still starting.
		return nil
	}
	l.setState(state, nil)
	return nil
}
