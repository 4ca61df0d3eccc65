package link

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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

	srcOpts, dstOpts []kgo.Opt
	srcCl, dstCl     *kgo.Client
	srcAdm, dstAdm   *kadm.Client
	srcID, dstID     string

	store  *store
	in     *intake
	stages []stage
	out    sink
	// reach tells whether the destination answers, from the hooks of the
	// producers the session builds; watchReach reads it.
	reach *reach
	pos   *positions
	lost  lossCheck

	// srcTopicIDs are the selected source topics' ids, as of the last
	// discovery pass; srcOf maps mirror topics back to source topics.
	srcTopicIDs map[string]string
	srcOf       map[string]string
	// grown is set when a mirror topic gained partitions in a discovery pass.
	grown bool
	// mirrorLimit is the smallest max.message.bytes among the mirror
	// topics seen in the last discovery pass (mirrorLimited names one
	// such topic); zero when unknown.
	mirrorLimit   int
	mirrorLimited string

	// The open transaction: its payload, records, per-topic counts.
	txBytes, txRecs int
	txTopics        map[string]counts
	txStarted       time.Time
	// txSize is the payload at which the open transaction commits; see
	// txLimit and sizeTransactions. Zero until the first one.
	txSize float64

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
		lost: make(lossCheck), reach: &reach{}, srcOf: make(map[string]string), txTopics: make(map[string]counts), rateAt: time.Now(),
	}
	if l.buffer > 0 {
		s.tune.bufferBytes = l.buffer
	}
	if l.batchCap > 0 {
		s.tune.batchBytes = min(s.tune.batchBytes, max(l.batchCap, 1<<10))
	}
	if err := s.connect(ctx); err != nil {
		return s, err
	}
	if err := s.setup(ctx); err != nil {
		return s, err
	}
	return s, nil
}

func (s *session) connect(ctx context.Context) error {
	l := s.l
	srcOpts, err := kafka.ClientOptions(l.src, l.logger, kafka.Dial{Raw: l.opts.SourceDialer, Timeout: s.tune.dialTimeout})
	if err != nil {
		return err
	}
	dstOpts, err := kafka.ClientOptions(l.dst, l.logger, kafka.Dial{Raw: l.destinationDialer(), Timeout: s.tune.dialTimeout})
	if err != nil {
		return err
	}
	// Clipped, so that every append makes its own copy.
	s.srcOpts = slices.Clip(append(srcOpts, s.tune.clientOpts()...))
	s.dstOpts = slices.Clip(append(dstOpts, s.tune.clientOpts()...))
	if s.srcCl, err = kgo.NewClient(s.srcOpts...); err != nil {
		return fmt.Errorf("create source client: %w", err)
	}
	// The destination client also writes the ownership claim.
	if s.dstCl, err = kgo.NewClient(append(s.dstOpts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...); err != nil {
		return fmt.Errorf("create destination client: %w", err)
	}
	s.srcAdm, s.dstAdm = kadm.NewClient(s.srcCl), kadm.NewClient(s.dstCl)
	if s.srcID, err = clusterID(ctx, s.srcAdm, s.tune.adminTimeout()); err != nil {
		return fmt.Errorf("connect to source cluster %s: %w", l.src.Name, err)
	}
	if s.dstID, err = clusterID(ctx, s.dstAdm, s.tune.adminTimeout()); err != nil {
		return fmt.Errorf("connect to destination cluster %s: %w", l.dst.Name, err)
	}
	return nil
}

// setup claims the link, fences older instances, loads the checkpoints and
// assigns the source partitions.
func (s *session) setup(ctx context.Context) error {
	l := s.l
	actx, cancel := context.WithTimeout(ctx, s.tune.adminTimeout())
	defer cancel()
	var err error
	if s.store, err = openStore(actx, s.dstCl, l.cfg.CheckpointTopic, l.id); err != nil {
		return err
	}
	if l.cfg.OnError == config.OnErrorSkip {
		if _, _, err := ensureTopic(actx, s.dstAdm, SkippedTopic, 1, nil); err != nil {
			return err
		}
	}
	if s.eos {
		if err := s.claim(ctx); err != nil {
			return err
		}
	}
	if err := s.openSink(ctx); err != nil {
		return err
	}
	saved, err := s.store.load(ctx, s.loadOptions())
	if err != nil {
		return err
	}
	if err := s.checkSource(saved); err != nil {
		return err
	}
	if len(saved.checkpoints) > 0 {
		l.logger.Info("resuming from checkpoints", "partitions", len(saved.checkpoints), "found_in", saved.from, "generation", s.store.gen)
	}
	s.pos = newPositions(s.store, s.srcID, saved.checkpoints, s.checkLost)
	if s.in, err = newIntake(s.srcOpts, s.tune.fetchMaxWait, l.cfg.PriorityOf); err != nil {
		return err
	}
	s.stages = []stage{
		loopStage{dstID: s.dstID, looped: func(n int64) { l.update(func(st *Status) { st.SkippedLoops += n }) }},
		newMirrorStage(provenance.NewEncoder(s.srcID, l.id.Site), l.destination),
		skipStage{l: l},
	}
	err = s.discover(ctx, true)
	if decide(err, l.cfg.OnError) == adjust {
		// Nothing was assigned yet: rebuild the producer and look again.
		if err = s.smallerBatches(ctx, err); err == nil {
			err = s.discover(ctx, true)
		}
	}
	if err != nil {
		return err
	}
	return s.measureBacklog(ctx)
}

func (s *session) loadOptions() loadOptions {
	return loadOptions{client: s.dstOpts, adm: s.dstAdm, source: s.srcID, timeout: s.tune.adminTimeout() + s.l.opts.TransactionTimeout}
}

// checkSource refuses checkpoints written for another source cluster: the
// link would otherwise skip or replicate again records it cannot account
// for.
func (s *session) checkSource(saved saved) error {
	for k, cp := range saved.checkpoints {
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

// openSink creates the destination producer; for exactly-once,
// initialising its producer id fences any earlier instance and settles its
// open transaction before the checkpoints are read.
func (s *session) openSink(ctx context.Context) error {
	l := s.l
	opts := s.dstOpts
	if s.eos {
		opts = append(opts, kgo.TransactionalID(l.id.TransactionalID()), kgo.TransactionTimeout(l.opts.TransactionTimeout))
	}
	producer, err := kgo.NewClient(append(append(opts, s.tune.producerOpts()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.WithHooks(wireCounter{l}, s.reach),
		// No RecordDeliveryTimeout: franz-go measures it from the record's
		// timestamp, which for a mirrored record is its source timestamp.
		// A transaction is bounded by the flush deadline in commit instead.
	)...)
	if err != nil {
		return fmt.Errorf("create destination producer: %w", err)
	}
	s.out = &produceSink{
		producer: producer, eos: s.eos, txTimeout: l.opts.TransactionTimeout, onError: l.cfg.OnError,
		srcOf: func(m string) string { return s.srcOf[m] },
	}
	if _, _, err := producer.ProducerID(ctx); err != nil && s.eos {
		return fmt.Errorf("initialise transactional producer %s: %w", l.id.TransactionalID(), classify(err))
	}
	return nil
}

// claim writes this instance's ownership record (see claim) before its
// transactional producer fences anyone, so that an instance fenced by it
// always finds the newer claim. An instance that claimed the link before
// first checks that nobody claimed it since: if someone did, it stops
// instead of fencing the newer instance in turn.
func (s *session) claim(ctx context.Context) error {
	l := s.l
	ctx, cancel := context.WithTimeout(ctx, s.tune.adminTimeout())
	defer cancel()
	if l.claimed {
		st, _, err := readCheckpoints(ctx, s.loadOptions(), s.store.topic, []int32{s.store.partition}, l.id)
		if err != nil {
			return err
		}
		if o := st[s.store.partition][l.id].owner; o.Instance != "" && o.Instance != l.self.Instance {
			return fmt.Errorf("%w: %s claimed the link", ErrFenced, o)
		}
	}
	c := l.self
	c.Since = time.Now().UTC()
	if err := s.dstCl.ProduceSync(ctx, s.store.claimRecord(c)).FirstErr(); err != nil {
		return fmt.Errorf("write ownership claim to %s: %w", s.store.topic, err)
	}
	l.claimed = true
	if l.afterClaim != nil {
		l.afterClaim()
	}
	return nil
}

func (s *session) close() {
	if s.in != nil {
		s.in.close()
	}
	if s.out != nil {
		s.out.close()
	}
	if s.dstCl != nil {
		s.dstCl.Close()
	}
	if s.srcCl != nil {
		s.srcCl.Close()
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
	// stop does not cut it short, so the transaction under way commits
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
	for {
		err := s.step(poll, work)
		if err == nil {
			if ctx.Err() != nil {
				return s.shutdown()
			}
			continue
		}
		err = ended(work, err)
		if ctx.Err() != nil {
			// A step that failed while stopping leaves the transaction's
			// outcome to the destination: writing checkpoints now could
			// account for records that were not committed.
			return err
		}
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

// step polls the source once, copies what waits into the open transaction,
// and commits, discovers and measures when due. poll bounds the wait for
// the source, work everything else.
func (s *session) step(poll, work context.Context) error {
	deadline := s.nextDiscovery
	if s.nextBacklog.Before(deadline) {
		deadline = s.nextBacklog
	}
	if s.out.open() {
		deadline = s.txStarted.Add(s.l.opts.CommitInterval)
	} else if s.pos.pending() {
		deadline = time.Now() // positions to checkpoint
	}
	if err := s.in.poll(poll, deadline); err != nil {
		return err
	}
	if work.Err() != nil {
		return context.Cause(work)
	}
	limit := s.txLimit()
	for s.txBytes < limit {
		k, recs, ok := s.in.next()
		if !ok {
			break
		}
		if err := s.copy(work, k, recs); err != nil {
			return err
		}
	}
	s.in.refill()
	due := s.out.open() && (time.Since(s.txStarted) >= s.l.opts.CommitInterval || s.txBytes >= limit)
	if due || (!s.out.open() && s.pos.pending()) {
		if err := s.commit(work); err != nil {
			return err
		}
	}
	if time.Now().After(s.nextDiscovery) {
		if err := s.discover(work, false); err != nil {
			return err
		}
	}
	if time.Now().After(s.nextBacklog) {
		return s.measureBacklog(work)
	}
	return nil
}

// copy takes one chunk of a partition through the positions, the stages and
// into the sink.
func (s *session) copy(ctx context.Context, k tp, recs []*kgo.Record) error {
	recs = s.pos.admit(k, recs)
	for _, st := range s.stages {
		if len(recs) == 0 {
			return nil
		}
		recs = st.process(k, recs)
	}
	if len(recs) == 0 {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
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
		dst := recs[0].Topic
		if _, ok := s.srcOf[dst]; !ok && dst != SkippedTopic {
			s.srcOf[dst] = k.Topic
		}
		s.txBytes += int(size)
		s.txRecs += int(n)
		s.txTopics[k.Topic] = s.txTopics[k.Topic].add(n, size)
		s.l.lastTS[k] = lastTS
	}
	s.out.write(ctx, recs)
	return nil
}

func (s *session) begin() error {
	if s.out.open() {
		return nil
	}
	if err := s.out.begin(); err != nil {
		return err
	}
	s.txStarted = time.Now()
	return nil
}

// commit writes the checkpoints of the open transaction and commits it.
func (s *session) commit(ctx context.Context) error {
	if err := s.begin(); err != nil {
		return err
	}
	if err := s.out.commit(ctx, s.pos.marks(s.srcTopicIDs)); err != nil {
		return err
	}
	s.committed()
	return nil
}

// committed records a successful commit of the open transaction.
func (s *session) committed() {
	l := s.l
	s.pos.committedNow()
	recs, bytes := s.txRecs, s.txBytes
	if bytes >= s.txLimit() {
		s.sizeTransactions(time.Since(s.txStarted), time.Since(s.out.lastStepAt()))
	}
	for t, n := range s.txTopics {
		l.done[t] = l.done[t].add(n.records, n.bytes)
	}
	if dt := time.Since(s.rateAt).Seconds(); dt > 0 {
		// An exponentially weighted rate with a time constant of ~10 s.
		w := min(dt/10, 1)
		s.rate = (1-w)*s.rate + w*float64(recs)/dt
		s.rateAt = time.Now()
	}
	l.update(func(st *Status) {
		st.Records += int64(recs)
		st.Bytes += int64(bytes)
		st.Transactions++
		st.Topics = slices.Clone(st.Topics) // snapshots share the old array
		for i := range st.Topics {
			if n, ok := s.txTopics[st.Topics[i].Source]; ok {
				st.Topics[i].Records += n.records
				st.Topics[i].Bytes += n.bytes
			}
		}
	})
	s.forgetTransaction()
}

func (s *session) forgetTransaction() {
	clear(s.txTopics)
	s.txBytes, s.txRecs = 0, 0
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

// smallerBatches rebuilds the producer with batches the mirror topics accept.
func (s *session) smallerBatches(ctx context.Context, err error) error {
	var capped *batchCapError
	if !errors.As(err, &capped) {
		return err
	}
	s.l.batchCap = capped.limit
	s.tune.batchBytes = min(s.tune.batchBytes, max(capped.limit, 1<<10))
	s.out.abort(ctx)
	s.out.close()
	return s.openSink(ctx)
}

// rewind drops the open transaction and starts reading again at the
// committed positions, within the session: the link stays connected.
func (s *session) rewind(ctx context.Context, why error) error {
	s.l.logger.Warn("transaction aborted; copying again from the last checkpoint", "reason", why)
	s.l.update(func(st *Status) { st.LastError = why.Error() })
	if s.out.open() {
		s.out.abort(ctx)
	}
	s.forgetTransaction()
	s.pos.rewind()
	s.nextDiscovery = time.Now()
	return s.in.rewind(func(k tp) int64 {
		v, _ := s.pos.saved(k)
		return v
	})
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

// shutdown finishes the open transaction within a few seconds, or leaves it
// to be aborted by the next instance (or the transaction timeout).
func (s *session) shutdown() error {
	if !s.out.open() && !s.pos.pending() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.commit(ctx); err != nil {
		s.l.logger.Warn("last transaction not committed; it will be replicated again by the next run", "err", err)
		s.out.abort(ctx)
	}
	return nil
}

// Transaction sizes, in payload bytes.
const (
	minTxBytes     = 64 << 10
	initialTxBytes = 1 << 20
)

// txLimit is the payload at which the open transaction commits, within
// [64 KiB, MaxTransactionBytes]: at first the bandwidth budget's worth of
// the profile's transaction time (or 1 MiB), then as sizeTransactions
// adapts it.
func (s *session) txLimit() int {
	if s.txSize == 0 {
		s.txSize = initialTxBytes
		if s.l.limit != nil && s.l.limit.Rate() > 0 {
			s.txSize = float64(s.l.limit.Rate()) * s.tune.txTime.Seconds()
		}
	}
	s.txSize = min(max(s.txSize, minTxBytes), float64(s.l.opts.MaxTransactionBytes))
	return int(s.txSize)
}

// sizeTransactions adapts the transaction size after a full transaction
// that took total, whose commit ended with a bare round trip of rtt (the
// transaction's end). A commit costs the link about two round trips during
// which it sends nothing (the last acknowledgements, then the end). Two
// aims:
//   - throughput: when those round trips take more than a quarter of the
//     time (a long round trip), transactions double;
//   - priorities: a transaction is what a newly arrived record of a higher
//     priority may wait behind, so one that takes more than twice the
//     profile's transaction time shrinks (unless round trips dominate),
//     and one that takes less than half of it grows.
func (s *session) sizeTransactions(total, rtt time.Duration) {
	target := s.tune.txTime
	switch {
	case 2*rtt > total/4:
		s.txSize *= 2
	case total > 2*target:
		s.txSize *= 0.7
	case total < target/2:
		s.txSize *= 1.5
	}
	s.txSize = min(max(s.txSize, minTxBytes), float64(s.l.opts.MaxTransactionBytes))
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
	offs, err := s.srcAdm.ListStartOffsets(ctx, k.Topic)
	if err != nil {
		l.logger.Warn("check for records lost to retention", "partition", k.String(), "err", err)
		return
	}
	o, ok := offs.Lookup(k.Topic, k.Partition)
	if !ok || o.Err != nil || o.Offset <= expected {
		return
	}
	end := min(o.Offset, got)
	l.logger.Error("source records deleted before they were replicated",
		"topic", k.Topic, "partition", k.Partition, "from", expected, "to", end-1, "count", end-expected)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.LostRecords += end - expected
	l.status.LastError = fmt.Sprintf("records %d..%d of %s were deleted at the source before replication", expected, end-1, k)
	l.eventLocked(EventLost, l.status.LastError)
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
