package link

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/provenance"
)

// session is one connected run of a link. It owns its clients and dies
// whole: any error that is not handled inside it (see decide) ends it, and
// the link starts a new one, which resumes from the destination's
// checkpoints. Everything in it is owned by the goroutine running the
// link, except what the producer's callbacks touch in the sink.
type session struct {
	l    *Link
	tune tuning
	eos  bool

	dstOpts      []kgo.Opt
	src          source
	dstCl        *kgo.Client
	dstAdm       *kadm.Client
	srcID, dstID string

	store  *store
	in     *intake
	stages []stage
	// transforming is set when the stages include the link's transforms:
	// what goes in is then counted apart from what comes out; keyed is
	// the link's stateful transform, if any (see state.go).
	transforming bool
	tstage       *transformStage
	// slots are the slots the session holds (see slots.go).
	slots map[int]*slot
	// ready holds the source topics ready to replicate and their
	// partition counts, as the last look found them.
	ready map[string]int32
	// reach tells whether the destination answers, from the hooks of the
	// producers the session builds; watchReach reads it.
	reach *reach
	lost  lossCheck

	// bg counts the goroutines the session started (commits, slot
	// openings); results and opened carry what they did back, and wake
	// ends a wait for the source when they do. inflight counts commits
	// under way; opening is set while slots are being opened, and
	// retryOpen asks reconcile to look at the wanted slots again.
	bg                 sync.WaitGroup
	results            chan commitResult
	opened             chan openResult
	wake               chan struct{}
	inflight           int
	opening, retryOpen bool
	// lastCommit is when the last commit began; commitTook a moving
	// average of how long commits take (see commitSpacing).
	lastCommit time.Time
	commitTook time.Duration

	// srcTopicIDs are the selected source topics' ids, as of the last
	// discovery pass; srcOf maps mirror topics back to source topics.
	srcTopicIDs map[string]string
	srcMu       sync.Mutex
	srcOf       map[string]string
	// grown is set when a mirror topic gained partitions in a discovery pass.
	grown bool
	// mirrorLimit is the smallest max.message.bytes among the mirror
	// topics seen in the last discovery pass (mirrorLimited names one
	// such topic); zero when unknown.
	mirrorLimit   int
	mirrorLimited string
	// retention holds each selected source topic's retention by age, as of
	// the last discovery pass; zero for a topic whose records are not
	// deleted by age, or when unknown (see topicConfig).
	retention map[string]time.Duration

	// began is when the session started; steps how long each step of its
	// start took, the last ending at stepAt.
	began, stepAt time.Time
	steps         []string

	// rate is a moving average of committed records per second.
	rate          float64
	rateAt        time.Time
	nextBacklog   time.Time
	nextDiscovery time.Time
}

// openSession connects, fences older instances, loads the checkpoints and
// starts reading the source. The session it returns (also on error) must
// be closed.
func openSession(ctx context.Context, l *Link) (*session, error) {
	s := &session{
		l: l, eos: l.cfg.Delivery != config.DeliveryAtLeastOnce, tune: tuningFor(l.cfg),
		lost: make(lossCheck), reach: &reach{}, srcOf: make(map[string]string), rateAt: time.Now(),
		slots: make(map[int]*slot), results: make(chan commitResult, l.cfg.Slots+1),
		opened: make(chan openResult, 1), wake: make(chan struct{}, 1),
	}
	if l.buffer > 0 {
		s.tune.bufferBytes = l.buffer
	}
	if l.batchCap > 0 {
		s.tune.batchBytes = min(s.tune.batchBytes, max(l.batchCap, 1<<10))
	}
	s.began = time.Now()
	if err := s.connect(ctx); err != nil {
		return s, err
	}
	s.timed("connect")
	if err := s.setup(ctx); err != nil {
		return s, err
	}
	l.logger.Info("session ready", "took", time.Since(s.began).Round(time.Millisecond), "steps", s.steps)
	return s, nil
}

// timed records how long a step of the session's start took (see
// openSession's log line: on a long link each round trip shows).
func (s *session) timed(name string) {
	now := time.Now()
	if s.stepAt.IsZero() {
		s.stepAt = s.began
	}
	s.steps = append(s.steps, name+"="+now.Sub(s.stepAt).Round(time.Millisecond).String())
	s.stepAt = now
}

func (s *session) connect(ctx context.Context) error {
	l := s.l
	dstOpts, err := kafka.ClientOptions(l.dst, l.logger, kafka.Dial{Raw: l.destinationDialer(), Timeout: s.tune.dialTimeout})
	if err != nil {
		return err
	}
	// Clipped, so that every append makes its own copy.
	s.dstOpts = slices.Clip(append(dstOpts, s.tune.clientOpts()...))
	if s.src, err = l.openSource(s.tune); err != nil {
		return err
	}
	// The destination client also writes the ownership claim.
	if s.dstCl, err = kgo.NewClient(append(s.dstOpts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...); err != nil {
		return fmt.Errorf("create destination client: %w", err)
	}
	s.dstAdm = kadm.NewClient(s.dstCl)
	if s.srcID, err = s.src.clusterID(ctx); err != nil {
		return fmt.Errorf("connect to source cluster %s: %w", l.src.Name, err)
	}
	return nil
}

// setup opens the slots the agent owns (fencing their earlier holders and
// loading their checkpoints) and starts reading their partitions. The
// destination's cluster id and checkpoint topic, the slots' producers and
// the mirror topics do not depend on each other: on a long link each costs round trips, so they are
// made ready in parallel.
func (s *session) setup(ctx context.Context) error {
	l := s.l
	var (
		inits map[int]*slot
		ready map[string]int32
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if s.dstID, err = clusterID(gctx, s.dstAdm, s.tune.adminTimeout()); err != nil {
			return fmt.Errorf("connect to destination cluster %s: %w", l.dst.Name, err)
		}
		actx, cancel := context.WithTimeout(gctx, s.tune.adminTimeout())
		defer cancel()
		if s.store, err = openStore(actx, s.dstCl, l.cfg.CheckpointTopic, l.id, l.cfg.Slots, l.logger); err != nil {
			return err
		}
		if l.cfg.OnError == config.OnErrorSkip {
			if _, _, err := ensureTopic(actx, s.dstAdm, SkippedTopic, 1, nil); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		l.firstWanted(gctx, l.opts.FirstAssignment)
		want, _ := l.wanted()
		// Bounded like the other set-up work: nothing watches whether the
		// destination answers yet, and a producer waits for it forever.
		ictx, cancel := context.WithTimeout(gctx, s.tune.adminTimeout())
		defer cancel()
		var err error
		inits, err = s.initSlots(ictx, slices.Sorted(maps.Keys(want)))
		return err
	})
	g.Go(func() error {
		actx, cancel := context.WithTimeout(gctx, s.tune.adminTimeout())
		defer cancel()
		var err error
		ready, err = s.mirror(actx)
		return err
	})
	err := g.Wait()
	s.timed("store+init+topics")
	if err != nil {
		closeSlots(inits)
		return err
	}
	s.ready = ready
	if len(inits) == 0 {
		// No slot to load yet (a shared link waits for its assignment):
		// a failed-over link must not look connected meanwhile.
		if m, err := readMark(ctx, s.loadOptions(), s.store, l.id); err != nil {
			return err
		} else if err := s.store.refuse(m); err != nil {
			return err
		}
	}
	opened, err := s.loadSlots(ctx, inits, ready)
	if err != nil {
		return err
	}
	s.timed(fmt.Sprintf("checkpoints(%d slots)", len(opened)))
	if admit := l.opts.admit; admit != nil {
		cps := make(map[tp]int64)
		for _, sl := range opened {
			maps.Copy(cps, sl.pos.committed)
		}
		if err := admit(cps); err != nil {
			closeSlots(opened)
			return err
		}
	}
	if s.in, err = newIntake(s.src, l.cfg.PriorityOf); err != nil {
		closeSlots(opened)
		return err
	}
	// Counted with the commit that accounts for the records (a transaction
	// aborted meanwhile sees them again), as filtered records are.
	s.stages = []stage{loopStage{dstID: s.dstID, looped: func(k tp, n int64) {
		if sl := s.slotFor(k); sl != nil {
			sl.txLooped += n
		}
	}}}
	if ts, err := newTransformStage(l); err != nil {
		closeSlots(opened)
		return err
	} else if ts != nil {
		// Counted with the commit that accounts for the records (a
		// transaction aborted meanwhile sees them again).
		ts.filtered = func(k tp, n int64) {
			if sl := s.slotFor(k); sl != nil {
				sl.txFiltered += n
			}
		}
		ts.late = func(k tp, n int64) {
			if sl := s.slotFor(k); sl != nil {
				sl.txLate += n
			}
		}
		if ts.keyed != nil {
			ts.keyed.gap = s.checkRebuildGap
		}
		s.stages = append(s.stages, ts)
		s.transforming, s.tstage = true, ts
	}
	s.install(opened)
	s.stages = append(s.stages,
		newMirrorStage(provenance.NewEncoder(s.srcID, l.id.Site), l.destination, l.tooFar),
		skipStage{l: l})
	actx, cancel := context.WithTimeout(ctx, s.tune.adminTimeout())
	defer cancel()
	err = s.startReading(actx, ready)
	if decide(err, l.cfg.OnError) == adjust {
		// Nothing was assigned yet: rebuild the producers and look again.
		if err = s.smallerBatches(ctx, err); err == nil {
			err = s.startReading(actx, ready)
		}
	}
	if err != nil {
		return err
	}
	err = s.measureBacklog(ctx)
	s.timed("backlog")
	return err
}

func (s *session) loadOptions() loadOptions {
	return loadOptions{
		client: s.dstOpts, cl: s.dstCl, adm: s.dstAdm, source: s.srcID, timeout: s.tune.adminTimeout() + s.l.opts.TransactionTimeout,
		producers: make(map[int64]int16), hanging: make(map[int64][]int32),
	}
}

// checkSource refuses checkpoints written for another source cluster: the
// link would otherwise skip or replicate again records it cannot account
// for.
func (s *session) checkSource(sv saved) error {
	for k, cp := range sv.checkpoints {
		if cp.Source != "" && cp.Source != s.srcID {
			return fmt.Errorf("%w: link %s checkpointed %s (and maybe more) in %s while replicating source cluster id %s, but cluster %q (%s) has id %s; "+
				"the link refuses to resume rather than skip or copy again records it cannot account for: "+
				"if %q is meant to be the old cluster, correct its bootstrap; if it replaced the old cluster on purpose, give the link a new name to replicate it afresh (from start: %s)",
				ErrSourceChanged, s.l.id, k, s.store.topic, cp.Source, s.l.src.Name, bootstrapList(s.l.src), s.srcID, s.l.src.Name, s.l.cfg.Start)
		}
	}
	return nil
}

func bootstrapList(c *config.Cluster) string { return strings.Join(c.Bootstrap, ",") }

// openSink creates a slot's destination producer; for exactly-once,
// initialising its producer id fences any earlier holder of the slot and
// settles its open transaction before the checkpoints are read.
func (s *session) openSink(ctx context.Context, index int) (sink, error) {
	l := s.l
	tune := s.tune
	if n := l.cfg.Slots; n > 1 {
		// The slots share the profile's buffer, each keeping enough for
		// batches to every partition it may write.
		tune.bufferBytes = max(tune.bufferBytes/n, min(tune.bufferBytes, 4<<20))
	}
	producer, err := kgo.NewClient(append(append(s.producerOpts(index), tune.producerOpts()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.WithHooks(wireCounter{l}, s.reach),
		// No RecordDeliveryTimeout: franz-go measures it from the record's
		// timestamp, which for a mirrored record is its source timestamp.
		// A transaction is bounded by the flush deadline in commit instead.
	)...)
	if err != nil {
		return nil, fmt.Errorf("create destination producer: %w", err)
	}
	out := &produceSink{
		producer: producer, eos: s.eos, txTimeout: l.opts.TransactionTimeout, onError: l.cfg.OnError,
		srcOf: s.mirrorSource,
	}
	pid, epoch, err := producer.ProducerID(ctx)
	if err != nil && s.eos {
		return out, &slotError{slot: index, err: fmt.Errorf("initialise transactional producer %s: %w", l.id.TransactionalID(index), classify(err))}
	}
	out.pid, out.epoch = pid, epoch
	// The produce connections open meanwhile the checkpoints are read, not
	// in front of the first records.
	s.bg.Go(func() {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.tune.dialTimeout)
		defer cancel()
		_ = producer.EnsureProduceConnectionIsOpen(wctx) // a courtesy: producing opens what this did not
	})
	return out, nil
}

func (s *session) close() {
	s.bg.Wait()
	for {
		select {
		case r := <-s.opened:
			for _, sl := range r.slots {
				sl.out.close()
			}
			continue
		default:
		}
		break
	}
	if s.in != nil {
		s.in.close()
	}
	for _, sl := range s.slots {
		sl.out.close()
	}
	s.l.held.clear()
	if len(s.slots) > 0 {
		gone := s.held()
		s.slots = nil
		s.l.slotsHeld(nil, nil, gone)
	}
	if s.dstCl != nil {
		s.dstCl.Close()
	}
	if s.src != nil {
		s.src.close()
	}
}

func clusterID(ctx context.Context, adm *kadm.Client, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return "", err
	}
	return md.Cluster, nil
}

// run polls the source and copies records in transactions until ctx ends or
// an error does.
func (s *session) run(ctx context.Context) error {
	// work is the session's writing (produce, commit, admin rounds): a
	// stop does not cut it short, so the transactions under way commit
	// and the stop drains; only watchReach ends it, when the destination
	// stops answering. poll is the wait for the source: a stop or
	// watchReach ends it.
	work, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	poll, cancelPoll := context.WithCancelCause(ctx)
	done := make(chan struct{})
	defer func() {
		cancelWork(nil)
		cancelPoll(nil)
		<-done
	}()
	go func() {
		defer close(done)
		s.watchReach(work, func(err error) {
			cancelWork(err)
			cancelPoll(err)
		})
	}()
	if ks, ok := s.src.(*kafkaSource); ok && s.l.cfg.Groups != nil {
		g := &groupSync{l: s.l, src: ks.adm, dst: s.dstAdm, dstOpts: s.dstOpts, held: &s.l.held, origin: origin{s.srcID, s.l.id.Site}, cache: make(map[mirrorOffset]answer)}
		s.bg.Go(func() { g.run(poll) })
	}
	for {
		err := s.step(poll, work)
		if errors.Is(context.Cause(ctx), ErrCrash) {
			// As if the process died: nothing more is committed, open
			// transactions are left to the slots' next holders.
			cancelWork(ErrCrash)
			return nil
		}
		if err == nil {
			if ctx.Err() != nil {
				return s.shutdown(work)
			}
			if s.drainedAll() {
				return errFinished
			}
			continue
		}
		err = ended(work, err)
		if ctx.Err() != nil {
			// A step that failed while stopping leaves the transactions'
			// outcome to the destination: writing checkpoints now could
			// account for records that were not committed.
			s.settle()
			return err
		}
		if s.fenced(err) {
			continue
		}
		s.settle()
		switch decide(err, s.l.cfg.OnError) {
		case skip:
			s.setAside(err)
		case adjust:
			if err := s.smallerBatches(work, err); err != nil {
				return err
			}
		default:
			return err
		}
		if err := s.rewind(work, err); err != nil {
			return err
		}
	}
}

// errFinished ends the session of a finite source (an import) that wrote
// everything: its last transactions are committed.
var errFinished = errors.New("finished")

// drainedAll reports whether a finite source was drained and every slot
// committed what it held.
func (s *session) drainedAll() bool {
	if s.inflight > 0 || !s.in.drained() {
		return false
	}
	for _, sl := range s.slots {
		if sl.committing || sl.out.open() || sl.pending() {
			return false
		}
	}
	return true
}

// step follows the wanted slots, polls the source once, copies what waits
// into the slots' open transactions, and commits, discovers and measures
// when due. poll bounds the wait for the source, work everything else.
func (s *session) step(poll, work context.Context) error {
	s.reconcile(work)
	deadline := s.nextDiscovery
	if s.nextBacklog.Before(deadline) {
		deadline = s.nextBacklog
	}
	spaced := s.lastCommit.Add(s.commitSpacing())
	for _, sl := range s.slots {
		switch {
		case sl.committing:
		case sl.out.open():
			due := sl.txStarted.Add(s.l.opts.CommitInterval)
			if sl.txBytes >= s.txLimit(sl) {
				due = spaced
			}
			if due.Before(spaced) {
				due = spaced
			}
			if due.Before(deadline) {
				deadline = due
			}
		case sl.releasing:
			deadline = time.Now() // a slot to hand over
		case sl.pending():
			if due := sl.pendingDue(s.l.opts.CommitInterval); due.Before(deadline) {
				deadline = due // positions to checkpoint
			}
		}
	}
	if err := s.in.poll(poll, deadline, s.wake, s.blocked); err != nil {
		return err
	}
	if work.Err() != nil {
		return context.Cause(work)
	}
	if err := s.collect(); err != nil {
		return err
	}
	for {
		k, recs, ok := s.in.next(s.blocked)
		if !ok {
			break
		}
		if err := s.copy(work, k, recs); err != nil {
			return err
		}
	}
	s.in.refill(s.blocked)
	// Due slots commit, the oldest transaction first, spaced out (see
	// commitSpacing).
	var due []*slot
	for _, sl := range s.slots {
		if sl.committing || sl.releasing {
			continue
		}
		open := sl.out.open()
		if (open && (time.Since(sl.txStarted) >= s.l.opts.CommitInterval || sl.txBytes >= s.txLimit(sl))) ||
			(!open && sl.pending() && !time.Now().Before(sl.pendingDue(s.l.opts.CommitInterval))) {
			due = append(due, sl)
		}
	}
	slices.SortFunc(due, func(a, b *slot) int { return a.txStarted.Compare(b.txStarted) })
	for _, sl := range due {
		if time.Since(s.lastCommit) < s.commitSpacing() {
			break
		}
		if err := s.startCommit(work, sl); err != nil {
			return err
		}
	}
	if err := s.finishReleases(work); err != nil {
		return err
	}
	// Discovery and the backlog wait for the source: a membership lost
	// meanwhile cuts them short (see Link.ReleaseNow).
	src, done := s.l.interruptible(work)
	defer done()
	if time.Now().After(s.nextDiscovery) {
		if err := s.discover(src); err != nil {
			return ended(src, err)
		}
	}
	if time.Now().After(s.nextBacklog) {
		return ended(src, s.measureBacklog(src))
	}
	return nil
}

// copy takes one chunk of a partition through its slot's positions, the
// stages and into the slot's sink.
func (s *session) copy(ctx context.Context, k tp, recs []*kgo.Record) error {
	sl := s.slotFor(k)
	if sl == nil {
		return nil // the slot was handed over while the chunk waited
	}
	if s.tstage != nil && s.tstage.keyed != nil {
		recs = s.tstage.replay(k, recs)
	}
	recs = sl.pos.admit(k, recs)
	if s.transforming && len(recs) > 0 {
		var size int64
		for _, r := range recs {
			size += int64(len(r.Key) + len(r.Value))
		}
		sl.txIn[k.Topic] = sl.txIn[k.Topic].add(int64(len(recs)), size)
	}
	for _, st := range s.stages {
		if len(recs) == 0 {
			return nil
		}
		var err error
		if recs, err = st.process(k, recs); err != nil {
			return err
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if !sl.out.open() {
		if err := sl.out.begin(); err != nil {
			return &slotError{slot: sl.index, err: err}
		}
		sl.txStarted = time.Now()
		if sl.mark {
			sl.out.write(ctx, []*kgo.Record{sl.store.markRecord(s.l.opts.Instance)})
			sl.markSent = true
		}
	}
	var (
		n, size int64
		lastTS  time.Time
	)
	for _, r := range recs {
		if r.Topic == SkippedTopic {
			continue
		}
		n++
		size += int64(len(r.Key) + len(r.Value))
		lastTS = r.Timestamp
	}
	if n > 0 {
		for i, r := range recs {
			if i == 0 || r.Topic != recs[i-1].Topic { // a transform's output topics too
				s.noteMirror(r.Topic, k.Topic)
			}
		}
		sl.txBytes += int(size)
		sl.txRecs += int(n)
		sl.txTopics[k.Topic] = sl.txTopics[k.Topic].add(n, size)
		s.l.lastTS[k] = lastTS
	}
	sl.out.write(ctx, recs)
	return nil
}

// noteMirror remembers the source topic of a mirror topic, for refusals.
func (s *session) noteMirror(mirror, source string) {
	if mirror == SkippedTopic {
		return
	}
	s.srcMu.Lock()
	defer s.srcMu.Unlock()
	if _, ok := s.srcOf[mirror]; !ok {
		s.srcOf[mirror] = source
	}
}

// mirrorSource returns the source topic of a mirror topic; sinks call it
// from their commit's goroutine.
func (s *session) mirrorSource(mirror string) string {
	s.srcMu.Lock()
	defer s.srcMu.Unlock()
	return s.srcOf[mirror]
}

// committed records a successful commit of a slot's transaction.
func (s *session) committed(sl *slot) {
	l := s.l
	sl.pos.committedNow()
	s.l.held.set(sl.pos.committed)
	if c, ok := s.src.(interface{ committed(map[tp]int64) }); ok {
		c.committed(sl.pos.committed) // a source that cannot read again forgets what is written
	}
	sl.mark = false
	sl.markSent = false
	recs, bytes := sl.txRecs, sl.txBytes
	if bytes >= s.txLimit(sl) {
		s.sizeTransactions(sl, time.Since(sl.txStarted), time.Since(sl.out.lastStepAt()))
	}
	for t, n := range sl.txTopics {
		l.done[t] = l.done[t].add(n.records, n.bytes)
	}
	// What went into the stages: without transforms, what came out.
	in := sl.txTopics
	if s.transforming {
		in = sl.txIn
	}
	var inRecs, inBytes int64
	for t, n := range in {
		l.doneIn[t] = l.doneIn[t].add(n.records, n.bytes)
		inRecs, inBytes = inRecs+n.records, inBytes+n.bytes
	}
	if dt := time.Since(s.rateAt).Seconds(); dt > 0 {
		// An exponentially weighted rate with a time constant of ~10 s.
		// Source records, as the backlog counts them: a link whose
		// transforms keep one record in a hundred drains at the rate it
		// reads, not the rate it writes.
		w := min(dt/10, 1)
		s.rate = (1-w)*s.rate + w*float64(inRecs)/dt
		s.rateAt = time.Now()
	}
	l.update(func(st *Status) {
		st.Records += int64(recs)
		st.Bytes += int64(bytes)
		st.RecordsIn += inRecs
		st.BytesIn += inBytes
		st.FilteredRecords += sl.txFiltered
		st.SkippedLoops += sl.txLooped
		st.LateRecords += sl.txLate
		st.Transactions++
		st.Topics = slices.Clone(st.Topics) // snapshots share the old array
		for i := range st.Topics {
			if n, ok := sl.txTopics[st.Topics[i].Source]; ok {
				st.Topics[i].Records += n.records
				st.Topics[i].Bytes += n.bytes
			}
			if n, ok := in[st.Topics[i].Source]; ok {
				st.Topics[i].RecordsIn += n.records
				st.Topics[i].BytesIn += n.bytes
			}
		}
	})
	sl.forgetTransaction()
}

// setAside records the source records the destination refused, so that the
// skip stage writes a record of each instead (on_error: skip-and-record).
func (s *session) setAside(err error) {
	var refused *refusedError
	if !errors.As(err, &refused) {
		return
	}
	for _, r := range refused.refused {
		if s.l.skip[r.at] == nil {
			s.l.skip[r.at] = make(map[int64]string)
		}
		s.l.skip[r.at][r.offset] = r.err.Error()
	}
}

// smallerBatches rebuilds the slots' producers with batches the mirror
// topics accept. The caller rewinds.
func (s *session) smallerBatches(ctx context.Context, err error) error {
	var capped *batchCapError
	if !errors.As(err, &capped) {
		return err
	}
	s.l.batchCap = capped.limit
	s.tune.batchBytes = min(s.tune.batchBytes, max(capped.limit, 1<<10))
	for i, sl := range s.slots {
		sl.out.abort(ctx)
		sl.out.close()
		out, err := s.openSink(ctx, i)
		if err != nil {
			if out != nil {
				out.close()
			}
			delete(s.slots, i)
			s.l.slotsHeld(s.held(), nil, []int{i})
			return err
		}
		sl.out = out
	}
	return nil
}

// rewind drops the open transactions and starts reading again at the
// committed positions, within the session: the link stays connected. No
// commit may be under way (see settle).
func (s *session) rewind(ctx context.Context, why error) error {
	s.l.logger.Warn("transaction aborted; copying again from the last checkpoint", "reason", why)
	s.l.update(func(st *Status) { st.LastError = why.Error() })
	for _, sl := range s.slots {
		if sl.out.open() {
			sl.out.abort(ctx)
		}
		sl.forgetTransaction()
		sl.pos.rewind()
	}
	s.nextDiscovery = time.Now()
	return s.in.rewind(func(k tp) int64 {
		v, _ := s.slotFor(k).pos.saved(k)
		return s.readFrom(k, v)
	})
}

// readFrom returns where to read partition k, resumed at its checkpoint
// next: there, or, for a link with a stateful transform, at the
// checkpoint's rebuild position, with k's state starting over to be
// replayed up to next (see state.go).
func (s *session) readFrom(k tp, next int64) int64 {
	if s.tstage == nil || s.tstage.keyed == nil {
		return next
	}
	from := s.slotFor(k).pos.rebuildFrom(k)
	s.tstage.keyed.begin(k, from, next)
	return from.Offset
}

// watchReach cancels the session's work with errUnreachable once the
// destination has not answered for the dial timeout: a Produce blocked on a
// full producer buffer, a flush or a transaction's end would otherwise wait
// for it forever (franz-go retries without end).
func (s *session) watchReach(ctx context.Context, cancel func(error)) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := s.reach.down(s.tune.dialTimeout); err != nil {
				cancel(err)
				return
			}
		}
	}
}

// shutdown finishes the open transactions within a few seconds, or leaves
// them to be aborted by the next holder of each slot (or the transaction
// timeout).
func (s *session) shutdown(work context.Context) error {
	s.settle()
	ctx, cancel := context.WithTimeout(work, 5*time.Second)
	defer cancel()
	for _, sl := range s.slots {
		if sl.out.open() || sl.pending() {
			if err := s.startCommit(ctx, sl); err != nil {
				s.l.logger.Warn("last transaction not committed; it will be replicated again by the next run", "slot", sl.index, "err", err)
			}
		}
	}
	for s.inflight > 0 {
		r := <-s.results
		s.inflight--
		r.sl.committing = false
		if r.err != nil {
			s.l.logger.Warn("last transaction not committed; it will be replicated again by the next run", "slot", r.sl.index, "err", r.err)
			r.sl.out.abort(ctx)
			continue
		}
		s.committed(r.sl)
	}
	return nil
}

// Transaction sizes, in payload bytes.
const (
	minTxBytes     = 64 << 10
	initialTxBytes = 1 << 20
)

// sizeTransactions adapts a slot's transaction size after a full
// transaction that took total, whose commit ended with a bare round trip of
// rtt (the transaction's end). A commit costs the slot about two round
// trips during which it sends nothing (the last acknowledgements, then the
// end); other slots send meanwhile. Two aims:
//   - throughput: when those round trips take more than a quarter of the
//     time (a long round trip), transactions double;
//   - priorities: a transaction is what a newly arrived record of a higher
//     priority may wait behind, so one that takes more than twice the
//     profile's transaction time shrinks (unless round trips dominate),
//     and one that takes less than half of it grows.
func (s *session) sizeTransactions(sl *slot, total, rtt time.Duration) {
	target := s.tune.txTime
	switch {
	case 2*rtt > total/4:
		sl.txSize *= 2
	case total > 2*target:
		sl.txSize *= 0.7
	case total < target/2:
		sl.txSize *= 1.5
	}
	sl.txSize = min(max(sl.txSize, minTxBytes), float64(s.l.opts.MaxTransactionBytes))
}

// checkLost reports source records deleted before they were replicated: a
// gap in offsets is loss when the source's log now starts after its first
// missing offset. Other gaps (aborted transactions, compaction) are normal.
func (s *session) checkLost(k tp, expected, got int64) {
	if !s.lost.due(k) {
		return
	}
	l := s.l
	ctx, cancel := context.WithTimeout(context.Background(), s.tune.adminTimeout())
	defer cancel()
	offs, err := s.src.offsets(ctx, startOffset, k.Topic)
	if err != nil {
		l.logger.Warn("check for records lost to retention", "partition", k.String(), "err", err)
		return
	}
	start, ok := offs[k]
	if !ok || start <= expected {
		return
	}
	end := min(start, got)
	l.logger.Error("source records deleted before they were replicated",
		"topic", k.Topic, "partition", k.Partition, "from", expected, "to", end-1, "count", end-expected)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.LostRecords += end - expected
	l.status.LastError = fmt.Sprintf("records %d..%d of %s were deleted at the source before replication", expected, end-1, k)
	l.eventLocked(EventLost, l.status.LastError)
}

// checkRebuildGap reports source records a stateful transform needed to
// rebuild its state of k (from its checkpoint's rebuild position on) that
// retention deleted: they were replicated before, but the windows,
// intervals or horizons open at the checkpoint now lack them, and what
// they emit may differ from an uninterrupted run's.
func (s *session) checkRebuildGap(k tp, from, got int64) {
	ctx, cancel := context.WithTimeout(context.Background(), s.tune.adminTimeout())
	defer cancel()
	offs, err := s.src.offsets(ctx, startOffset, k.Topic)
	if err != nil {
		s.l.logger.Warn("check the rebuild of a transform's state", "partition", k.String(), "err", err)
		return
	}
	start, ok := offs[k]
	if !ok || start <= from {
		return // a gap of markers or aborted records
	}
	end := min(start, got)
	msg := fmt.Sprintf("records %d..%d of %s, needed to rebuild the transform's state, were deleted at the source: what was open at the checkpoint may be emitted without them", from, end-1, k)
	s.l.logger.Warn(msg, "topic", k.Topic, "partition", k.Partition, "from", from, "to", end-1)
	s.l.event(EventLost, msg)
}

// wireCounter counts the bytes the producer writes to destination brokers.
type wireCounter struct{ l *Link }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (w wireCounter) OnBrokerWrite(_ kgo.BrokerMetadata, _ int16, n int, _, _ time.Duration, _ error) {
	w.l.update(func(s *Status) { s.WireBytes += int64(n) })
}

// sortedTopics returns the topics of parts, sorted.
func sortedTopics(parts map[tp]int64) []string {
	seen := make(map[string]bool)
	for k := range parts {
		seen[k.Topic] = true
	}
	return slices.Sorted(maps.Keys(seen))
}
