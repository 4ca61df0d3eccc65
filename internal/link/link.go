// Package link is edgelink's replication engine. A Link copies the records of
// the source topics it selects to mirror topics at the destination, in
// source order per partition, with key, value, headers and timestamp intact.
//
// With exactly-once delivery every batch of records is written in one
// destination transaction together with the link's checkpoint (the next
// source offset of each partition it touched). A link that restarts, crashes
// or loses its connection resumes from the checkpoint the destination holds,
// so nothing is lost or written twice. A second instance of the same link
// fences the first through the shared transactional id.
package link

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/bandwidth"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/provenance"
)

// Options tune a link; the zero value of a field takes its default.
type Options struct {
	// CommitInterval is how long a transaction collects records before it
	// commits, default 100ms.
	CommitInterval time.Duration
	// MaxTransactionBytes caps a transaction's payload, default 64 MiB.
	// Below the cap, transactions are sized to what the link sent in the
	// profile's transaction time (see copier.txLimit).
	MaxTransactionBytes int
	// DiscoveryInterval is how often source topics are listed to find new
	// topics and partitions, default 10s.
	DiscoveryInterval time.Duration
	// TransactionTimeout is the destination transaction timeout, default 60s.
	TransactionTimeout time.Duration
	// MinBackoff and MaxBackoff bound the capped exponential backoff
	// between sessions after an error, defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// SourceDialer and DestinationDialer, when set, open the raw TCP
	// connections to the source and destination brokers (tests route them
	// through a fault-injecting network); TLS and the profile's dial
	// timeout are applied on top.
	SourceDialer, DestinationDialer kafka.DialFunc
}

func (o *Options) defaults() {
	if o.CommitInterval <= 0 {
		o.CommitInterval = 100 * time.Millisecond
	}
	if o.MaxTransactionBytes <= 0 {
		o.MaxTransactionBytes = 64 << 20
	}
	if o.DiscoveryInterval <= 0 {
		o.DiscoveryInterval = 10 * time.Second
	}
	if o.TransactionTimeout <= 0 {
		o.TransactionTimeout = 60 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
}

// ErrFenced reports that another instance of the same link took over.
var ErrFenced = errors.New("fenced by another instance of this link")

// ErrRefused reports a record the destination refused, with on_error: stop.
var ErrRefused = errors.New("record refused by the destination")

// refusal is a source record the destination refused: at names the mirror
// topic's partition (copier.srcOf maps it back), offset the source offset.
type refusal struct {
	at     tp
	offset int64
	err    error
}

// recordError reports whether err concerns one record (its size or
// content) rather than the link or the cluster.
func recordError(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.CorruptMessage) ||
		errors.Is(err, kerr.InvalidTimestamp)
}

// State is a link's life-cycle state.
type State string

// Link states.
const (
	// StateStarting: connecting for the first time.
	StateStarting State = "starting"
	// StateCatchingUp: connected, with a backlog to replicate.
	StateCatchingUp State = "catching-up"
	// StateLive: connected and replicated up to the source's end.
	StateLive State = "live"
	// StateDisconnected: a cluster is unreachable or a session failed; the
	// link retries with backoff.
	StateDisconnected State = "disconnected"
	StateFailed       State = "failed"
	StateStopped      State = "stopped"
)

// Link replicates one configured link. Run it with Run; read its progress
// with Status from any goroutine.
type Link struct {
	cfg      *config.Link
	site     string
	src, dst *config.Cluster
	opts     Options
	logger   *slog.Logger

	// limit enforces the link's bandwidth budget on everything it sends to
	// the destination; nil when unlimited. It outlives sessions.
	limit *bandwidth.Limiter

	// skip holds source records refused by the destination that the link
	// records instead of replicating (on_error: skip-and-record). It
	// outlives sessions; it is owned by the goroutine running Run.
	skip map[tp]map[int64]string

	// self identifies this instance in the link's ownership claim; claimed
	// is set once a session wrote it (owned by the goroutine running Run).
	self    claim
	claimed bool
	// buffer, when set, replaces the profile's producer buffer (tests make
	// it small).
	buffer int
	// afterClaim, when set, runs after a session wrote its claim and
	// before its producer fences anyone (a test hook).
	afterClaim func()
	// lastTS and done: see copier; they outlive sessions.
	lastTS map[tp]time.Time
	done   map[string]counts

	// Session state, owned by the goroutine running Run.
	srcAdm, dstAdm *kadm.Client
	dstCl          *kgo.Client
	srcID, dstID   string
	// grown is set when a mirror topic gained partitions in a discovery pass.
	grown bool
	// srcTopicIDs are the selected source topics' ids, as of the last
	// discovery pass.
	srcTopicIDs map[string]string
	// mirrorLimit is the smallest max.message.bytes among the mirror
	// topics seen in the last discovery pass (mirrorLimited names one
	// such topic); zero when unknown. batchCap, when set, caps the
	// producer's batches below it; it outlives sessions.
	mirrorLimit   int
	mirrorLimited string
	batchCap      int

	mu     sync.Mutex
	status Status
	events []Event
}

// Status is a snapshot of a link's progress.
type Status struct {
	Name  string
	State State
	// StateSince is when the link entered State.
	StateSince time.Time
	LastError  string
	// BacklogRecords is the number of source offsets not yet replicated
	// (records, plus any transaction markers among them), as of BacklogAt.
	BacklogRecords int64
	// BacklogBytes estimates the backlog's payload from the average record
	// size replicated so far.
	BacklogBytes int64
	// BacklogAge approximates the age of the oldest unreplicated record: the
	// time since the timestamp of the last record replicated from the
	// partition that is furthest behind. Zero without a backlog.
	BacklogAge time.Duration
	// DrainETA estimates the time to replicate the backlog at the recent
	// rate; zero when unknown or without a backlog.
	DrainETA time.Duration
	// BacklogAt is when the backlog was last measured.
	BacklogAt time.Time
	// WireBytes counts bytes written to destination brokers (requests,
	// framing and compression included); compare with Bytes (payload).
	WireBytes int64
	// Records and Bytes count records and payload bytes committed at the
	// destination since start.
	Records, Bytes int64
	// Transactions counts committed destination transactions.
	Transactions int64
	// LostRecords counts source records deleted by retention before they
	// were replicated.
	LostRecords int64
	// SkippedLoops counts records not replicated because they came from the
	// destination cluster in the first place.
	SkippedLoops int64
	// SkippedRecords counts records the destination refused that were
	// recorded in SkippedTopic instead (on_error: skip-and-record).
	SkippedRecords int64
	// Partitions is the number of source partitions being replicated.
	Partitions int
	// Topics holds each replicated source topic's progress, sorted by
	// source topic name, as of BacklogAt.
	Topics []TopicStatus
}

// TopicStatus is the progress of one replicated source topic.
type TopicStatus struct {
	// Source and Destination are the topic's names at both ends.
	Source, Destination string
	Partitions          int
	// Priority is the topic's weight when the link has a backlog.
	Priority int
	// Records and Bytes count records and payload bytes committed at the
	// destination since start.
	Records, Bytes int64
	// BacklogRecords is the number of source offsets not yet replicated.
	BacklogRecords int64
}

// New returns a link for lc of cfg; it does nothing until Run.
func New(cfg *config.Config, lc *config.Link, opts Options, logger *slog.Logger) *Link {
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = lc.CommitInterval
	}
	if opts.DiscoveryInterval <= 0 {
		opts.DiscoveryInterval = lc.DiscoveryInterval
	}
	opts.defaults()
	l := &Link{
		cfg:    lc,
		site:   cfg.Site,
		src:    cfg.Clusters[lc.From],
		dst:    cfg.Clusters[lc.To],
		opts:   opts,
		logger: logger.With("component", "link", "link", lc.Name),
		status: Status{Name: lc.Name, State: StateStarting, StateSince: time.Now()},
		skip:   make(map[tp]map[int64]string),
		lastTS: make(map[tp]time.Time),
		done:   make(map[string]counts),
		self:   newClaim(),
	}
	if lc.Bandwidth > 0 || len(lc.BandwidthSchedule) > 0 {
		l.limit = bandwidth.New(lc.BandwidthAt(time.Now()))
	}
	return l
}

// Name returns the link's name.
func (l *Link) Name() string { return l.cfg.Name }

// Status returns a snapshot of the link's progress.
func (l *Link) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}

func (l *Link) update(f func(*Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.status)
}

func (l *Link) setState(s State, err error) {
	l.mu.Lock()
	prev := l.status.State
	if prev != s {
		l.status.State, l.status.StateSince = s, time.Now()
		msg := string(prev) + " → " + string(s)
		if err != nil {
			msg += ": " + err.Error()
		}
		l.eventLocked(EventState, msg)
	}
	if err != nil {
		l.status.LastError = err.Error()
	}
	l.mu.Unlock()
	if prev != s {
		l.logger.Info("link state changed", "from", prev, "to", s)
	}
}

// transactionalID is shared by every instance of the link, so that a new
// instance fences the old one.
func (l *Link) transactionalID() string { return "edgelink-" + l.cfg.Name + "-0" }

// destination returns the mirror topic of a source topic.
func (l *Link) destination(topic string) string { return l.cfg.DestinationTopic(l.site, topic) }

// topicError reports a problem with one topic that does not stop the link.
func (l *Link) topicError(topic string, err error) {
	l.logger.Error("topic not replicated", "topic", topic, "err", err)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.LastError = err.Error()
	l.eventLocked(EventError, fmt.Sprintf("topic %s not replicated: %v", topic, err))
}

// Run replicates until ctx is cancelled, then finishes or aborts the open
// transaction and returns nil. It retries errors with capped exponential
// backoff and returns an error only when the link cannot continue (for
// example when another instance fenced it).
func (l *Link) Run(ctx context.Context) error {
	backoff := l.opts.MinBackoff
	for {
		began := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			l.setState(StateStopped, nil)
			return nil
		}
		if errors.Is(err, ErrRefused) {
			l.logger.Error("link stopped: the destination refused a record (on_error: stop)", "err", err)
			l.setState(StateFailed, err)
			return fmt.Errorf("link %s: %w", l.cfg.Name, err)
		}
		if errors.Is(err, ErrFenced) {
			l.logger.Error("link stopped: another instance of this link took over (fenced)", "err", err)
			l.setState(StateFailed, err)
			return fmt.Errorf("link %s: %w", l.cfg.Name, err)
		}
		if time.Since(began) > time.Minute {
			backoff = l.opts.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter
		err = kafka.Explain(err, l.src, l.dst)
		l.setState(StateDisconnected, err)
		l.logger.Warn("link interrupted; retrying", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			l.setState(StateStopped, nil)
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, l.opts.MaxBackoff)
	}
}

// session is one connected run of the link: it builds clients, fences older
// instances, resumes from the checkpoints and copies until an error or ctx
// ends it.
func (l *Link) session(ctx context.Context) error {
	tune := tuningFor(l.cfg)
	if l.buffer > 0 {
		tune.bufferBytes = l.buffer
	}
	if l.batchCap > 0 {
		tune.batchBytes = min(tune.batchBytes, max(l.batchCap, 1<<10))
	}
	srcOpts, err := kafka.ClientOptions(l.src, l.logger, kafka.Dial{Raw: l.opts.SourceDialer, Timeout: tune.dialTimeout})
	if err != nil {
		return err
	}
	dstOpts, err := kafka.ClientOptions(l.dst, l.logger, kafka.Dial{Raw: l.destinationDialer(), Timeout: tune.dialTimeout})
	if err != nil {
		return err
	}
	srcOpts = append(srcOpts, tune.clientOpts()...)
	dstOpts = append(dstOpts, tune.clientOpts()...)
	// Clipped, so that every append below makes its own copy.
	srcOpts, dstOpts = slices.Clip(srcOpts), slices.Clip(dstOpts)
	srcCl, err := kgo.NewClient(srcOpts...)
	if err != nil {
		return fmt.Errorf("create source client: %w", err)
	}
	defer srcCl.Close()
	// The destination client also writes the ownership claim, to partition 0.
	dstCl, err := kgo.NewClient(append(dstOpts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("create destination client: %w", err)
	}
	defer dstCl.Close()
	l.srcAdm, l.dstAdm, l.dstCl = kadm.NewClient(srcCl), kadm.NewClient(dstCl), dstCl

	if l.srcID, err = clusterID(ctx, l.srcAdm, tune.adminTimeout()); err != nil {
		return fmt.Errorf("connect to source cluster %s: %w", l.src.Name, err)
	}
	if l.dstID, err = clusterID(ctx, l.dstAdm, tune.adminTimeout()); err != nil {
		return fmt.Errorf("connect to destination cluster %s: %w", l.dst.Name, err)
	}
	if err := ensureCheckpointTopic(ctx, l.dstAdm, l.cfg.CheckpointTopic); err != nil {
		return err
	}
	if l.cfg.OnError == config.OnErrorSkip {
		if err := ensureTopic(ctx, l.dstAdm, SkippedTopic, nil); err != nil {
			return err
		}
	}

	eos := l.cfg.Delivery != config.DeliveryAtLeastOnce
	if eos {
		if err := l.claim(ctx, dstOpts, dstCl, tune.adminTimeout()); err != nil {
			return err
		}
	}
	prodOpts := dstOpts
	if eos {
		prodOpts = append(prodOpts,
			kgo.TransactionalID(l.transactionalID()),
			kgo.TransactionTimeout(l.opts.TransactionTimeout))
	}
	prodOpts = append(prodOpts, tune.producerOpts()...)
	dstReach := &reach{}
	producer, err := kgo.NewClient(append(prodOpts,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.WithHooks(wireCounter{l}, dstReach),
		// No RecordDeliveryTimeout: franz-go measures it from the record's
		// timestamp, which for a mirrored record is its source timestamp.
		// A transaction is bounded by the flush deadline in commit instead.
	)...)
	if err != nil {
		return fmt.Errorf("create destination producer: %w", err)
	}
	defer producer.Close()
	// Initialising the producer id fences any earlier instance and settles
	// its open transaction before the checkpoints are read.
	if _, _, err := producer.ProducerID(ctx); err != nil && eos {
		return fmt.Errorf("initialise transactional producer %s: %w", l.transactionalID(), classify(err))
	}
	saved, err := loadCheckpoints(ctx, dstOpts, l.dstAdm, l.cfg.CheckpointTopic, l.cfg.Name)
	if err != nil {
		return err
	}

	consumer, err := kgo.NewClient(append(srcOpts,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxWait(tune.fetchMaxWait),
	)...)
	if err != nil {
		return fmt.Errorf("create source consumer: %w", err)
	}
	defer consumer.Close()

	c := &copier{
		l: l, producer: producer, consumer: consumer, eos: eos, tune: tune, reach: dstReach,
		sched: newScheduler(), held: make(map[tp]int),
		committed: make(map[tp]int64), dirty: make(map[tp]int64),
		assigned: make(map[tp]struct{}), lastLostCheck: make(map[tp]time.Time),
		lastTS: l.lastTS, rateAt: time.Now(),
		txTopics: make(map[string]counts), done: l.done, topicIDs: make(map[tp]string),
		origin: provenance.NewEncoder(l.srcID, l.site), srcOf: make(map[string]string),
	}
	for t, cp := range saved.checkpoints {
		c.committed[t] = cp.Next
		c.topicIDs[t] = cp.TopicID
	}
	if err := c.discover(ctx, true); err != nil {
		return err
	}
	if err := c.measureBacklog(ctx); err != nil {
		return err
	}
	return c.run(ctx)
}

// claim writes this instance's ownership record (see claim) before its
// transactional producer fences anyone, so that an instance fenced by it
// always finds the newer claim. An instance that claimed the link before
// first checks that nobody claimed it since: if someone did, it stops
// instead of fencing the newer instance in turn.
func (l *Link) claim(ctx context.Context, dstOpts []kgo.Opt, cl *kgo.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if l.claimed {
		s, err := loadCheckpoints(ctx, dstOpts, l.dstAdm, l.cfg.CheckpointTopic, l.cfg.Name)
		if err != nil {
			return err
		}
		if s.owner.Instance != "" && s.owner.Instance != l.self.Instance {
			return fmt.Errorf("%w: %s claimed the link", ErrFenced, s.owner)
		}
	}
	c := l.self
	c.Since = time.Now().UTC()
	if err := cl.ProduceSync(ctx, claimRecord(l.cfg.CheckpointTopic, l.cfg.Name, c)).FirstErr(); err != nil {
		return fmt.Errorf("write ownership claim to %s: %w", l.cfg.CheckpointTopic, err)
	}
	l.claimed = true
	if l.afterClaim != nil {
		l.afterClaim()
	}
	return nil
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

// destinationDialer opens raw connections to the destination brokers,
// paced by the bandwidth budget when there is one (TLS goes on top, so the
// budget counts the bytes on the wire).
func (l *Link) destinationDialer() kafka.DialFunc {
	raw := l.opts.DestinationDialer
	if l.limit == nil {
		return raw
	}
	if raw == nil {
		raw = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, host string) (net.Conn, error) {
		c, err := raw(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return l.limit.Wrap(c), nil
	}
}

// followBandwidthSchedule sets the budget that applies now.
func (l *Link) followBandwidthSchedule() {
	if l.limit == nil {
		return
	}
	want := l.cfg.BandwidthAt(time.Now())
	if was := l.limit.Rate(); want != was {
		l.limit.SetRate(want)
		msg := "unlimited"
		if want > 0 {
			msg = fmt.Sprintf("%d B/s", want)
		}
		l.logger.Info("bandwidth budget changed", "bytes_per_second", want)
		l.event(EventState, "bandwidth budget now "+msg)
	}
}

// wireCounter counts the bytes the producer writes to destination brokers.
type wireCounter struct{ l *Link }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (w wireCounter) OnBrokerWrite(_ kgo.BrokerMetadata, _ int16, n int, _, _ time.Duration, _ error) {
	w.l.update(func(s *Status) { s.WireBytes += int64(n) })
}

// classify maps a producer error to ErrFenced when another instance took over.
func classify(err error) error {
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}

// copier is one session's copy loop; it is owned by one goroutine.
type copier struct {
	l        *Link
	producer *kgo.Client
	consumer *kgo.Client
	// eos selects destination transactions (exactly-once); without them
	// (at-least-once) checkpoints are written once the records are acked.
	eos  bool
	tune tuning
	// reach tells whether the destination answers.
	reach *reach

	// sched holds fetched records waiting to be copied; a partition with
	// records waiting is not fetched. held lists partitions (with their
	// weight) whose waiting records are gone but that are not fetched
	// again yet, because too much waits already (pendingCap).
	sched *scheduler
	held  map[tp]int
	// txSize is the payload at which the open transaction commits; see
	// txLimit and sizeTransactions. Zero until the first one.
	txSize float64

	// committed holds the next source offset of every assigned partition as
	// the destination knows it; dirty holds positions reached in the open
	// transaction (and new assignments) not yet committed.
	committed map[tp]int64
	dirty     map[tp]int64
	// started is the zero time when no transaction is open.
	started time.Time
	txBytes int
	txRecs  int
	// txTopics and done count records and bytes per source topic in the
	// open transaction and since start.
	txTopics, done map[string]counts
	// lastStep is when the last step of the open transaction's commit, a
	// bare round trip to the destination, began.
	lastStep time.Time
	// topicIDs holds the source topic id each partition's checkpoint was
	// written for ("" for checkpoints from before ids were recorded).
	topicIDs map[tp]string

	errMu   sync.Mutex
	txErr   error
	refused []refusal

	// origin encodes the provenance header values of this session's source.
	origin provenance.Encoder
	// srcOf maps mirror topics back to their source topics.
	srcOf map[string]string

	// assigned holds the partitions the consumer was told to read.
	assigned map[tp]struct{}
	// lastTS is the timestamp of the last record copied per partition
	// (the link's, which outlives sessions, so that the backlog's age is
	// known again as soon as a session reconnects).
	lastTS map[tp]time.Time
	// rate is a moving average of committed records per second.
	rate          float64
	rateAt        time.Time
	nextBacklog   time.Time
	nextDiscovery time.Time
	lastLostCheck map[tp]time.Time
}

func (c *copier) fail(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.txErr == nil {
		c.txErr = err
	}
}

func (c *copier) takeErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	err := c.txErr
	c.txErr = nil
	refused := c.refused
	c.refused = nil
	if len(refused) == 0 {
		return err
	}
	for i := range refused {
		refused[i].at.Topic = c.srcOf[refused[i].at.Topic]
	}
	// Records the destination refused decide the outcome.
	if c.l.cfg.OnError != config.OnErrorSkip {
		r := refused[0]
		return fmt.Errorf("%w: %s offset %d: %w (set on_error: skip-and-record to skip such records and record them in %s)",
			ErrRefused, r.at, r.offset, r.err, SkippedTopic)
	}
	for _, r := range refused {
		if c.l.skip[r.at] == nil {
			c.l.skip[r.at] = make(map[int64]string)
		}
		c.l.skip[r.at][r.offset] = r.err.Error()
	}
	return fmt.Errorf("destination refused %d record(s), first %s offset %d: %w; replicating again without them", len(refused), refused[0].at, refused[0].offset, refused[0].err)
}

// discover lists source topics, mirrors them and assigns new partitions. At
// session start (first), a partition without a checkpoint starts at the
// link's configured start position; partitions that appear later start at
// their beginning, since everything in them is new.
func (c *copier) discover(ctx context.Context, first bool) error {
	l := c.l
	ctx, cancel := context.WithTimeout(ctx, c.tune.adminTimeout())
	defer cancel()
	c.nextDiscovery = time.Now().Add(l.opts.DiscoveryInterval)
	src, err := l.sourceTopics(ctx)
	if err != nil {
		return err
	}
	ready, err := l.syncTopics(ctx, src)
	if err != nil {
		return err
	}
	if n := l.mirrorLimit; n > 0 && n < c.tune.batchBytes {
		// The destination refuses a whole batch above the topic's limit,
		// records that fit along with the one that does not: the producer
		// must not build such batches. It is rebuilt with a smaller cap.
		l.batchCap = n
		return fmt.Errorf("mirror topic %s accepts batches of up to %d bytes (max.message.bytes), less than the link's %d: reconnecting with smaller batches", l.mirrorLimited, n, c.tune.batchBytes)
	}
	if l.grown {
		l.grown = false
		c.producer.ForceMetadataRefresh()
	}
	var fresh, renewed []tp
	assign := make(map[string]map[int32]kgo.Offset)
	for t, n := range ready {
		for p := range n {
			k := tp{t, p}
			_, assigned := c.assigned[k]
			if c.recreated(k) {
				if assigned {
					// The consumer still follows the old topic: start over.
					return fmt.Errorf("source topic %s was deleted and created again", t)
				}
				renewed = append(renewed, k)
				continue
			}
			if _, ok := c.dirty[k]; ok {
				continue
			}
			next, ok := c.committed[k]
			if !ok {
				fresh = append(fresh, k)
				continue
			}
			if assigned {
				continue
			}
			if assign[t] == nil {
				assign[t] = make(map[int32]kgo.Offset)
			}
			assign[t][p] = kgo.NewOffset().At(next)
			c.assigned[k] = struct{}{}
		}
	}
	if len(renewed) > 0 {
		// A topic deleted and created again holds new records from offset
		// zero on: its old checkpoints say nothing about them.
		starts, err := c.startOffsets(ctx, renewed, false)
		if err != nil {
			return err
		}
		for _, t := range slices.Sorted(maps.Keys(countTopics(renewed))) {
			l.logger.Warn("source topic was deleted and created again; replicating the new topic from its start", "topic", t, "mirror", l.destination(t))
			l.event(EventTopic, fmt.Sprintf("source topic %s was deleted and created again: replicating it from its start; %s keeps the records of the old topic", t, l.destination(t)))
		}
		c.startPartitions(renewed, starts, assign)
	}
	if len(fresh) > 0 {
		starts, err := c.startOffsets(ctx, fresh, first)
		if err != nil {
			return err
		}
		perTopic := countTopics(fresh)
		for _, t := range slices.Sorted(maps.Keys(perTopic)) {
			l.event(EventTopic, fmt.Sprintf("replicating %d new partition(s) of %s to %s", perTopic[t], t, l.destination(t)))
		}
		c.startPartitions(fresh, starts, assign)
	}
	if len(assign) > 0 {
		c.consumer.AddConsumePartitions(assign)
	}
	l.update(func(s *Status) { s.Partitions = len(c.committed) })
	return nil
}

// recreated tells whether k's checkpoint was written for an earlier source
// topic of the same name.
func (c *copier) recreated(k tp) bool {
	was, now := c.topicIDs[k], c.l.srcTopicIDs[k.Topic]
	return was != "" && now != "" && was != now
}

// startPartitions starts replicating partitions without a (valid)
// checkpoint at the given offsets.
func (c *copier) startPartitions(parts []tp, starts map[tp]int64, assign map[string]map[int32]kgo.Offset) {
	for _, k := range parts {
		off := starts[k]
		c.committed[k] = -1 // known, not yet checkpointed
		c.dirty[k] = off
		c.topicIDs[k] = c.l.srcTopicIDs[k.Topic]
		if assign[k.Topic] == nil {
			assign[k.Topic] = make(map[int32]kgo.Offset)
		}
		assign[k.Topic][k.Partition] = kgo.NewOffset().At(off)
		c.assigned[k] = struct{}{}
		c.l.logger.Info("replicating partition", "topic", k.Topic, "partition", k.Partition, "from", off)
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
func (c *copier) startOffsets(ctx context.Context, parts []tp, first bool) (map[tp]int64, error) {
	topics := make([]string, 0, len(parts))
	seen := map[string]bool{}
	for _, k := range parts {
		if !seen[k.Topic] {
			seen[k.Topic] = true
			topics = append(topics, k.Topic)
		}
	}
	list := c.l.srcAdm.ListStartOffsets
	if first && c.l.cfg.Start == config.StartLatest {
		list = c.l.srcAdm.ListEndOffsets
	}
	offs, err := list(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list source offsets: %w", err)
	}
	out := make(map[tp]int64, len(parts))
	for _, k := range parts {
		o, ok := offs.Lookup(k.Topic, k.Partition)
		if !ok || o.Err != nil {
			return nil, fmt.Errorf("list offsets of %s: %w", k, o.Err)
		}
		out[k] = o.Offset
	}
	return out, nil
}

// backlogInterval is how often a link measures its backlog.
const backlogInterval = time.Second

// measureBacklog compares the committed positions with the source's last
// stable offsets and sets the link's backlog figures and its state:
// catching-up while there is a backlog, live when there is none.
func (c *copier) measureBacklog(ctx context.Context) error {
	l := c.l
	ctx, cancel := context.WithTimeout(ctx, c.tune.adminTimeout())
	defer cancel()
	c.nextBacklog = time.Now().Add(backlogInterval)
	l.followBandwidthSchedule()
	topics := make([]string, 0, len(c.committed))
	seen := make(map[string]bool)
	for k := range c.committed {
		if !seen[k.Topic] {
			seen[k.Topic] = true
			topics = append(topics, k.Topic)
		}
	}
	var backlog int64
	var oldest time.Time
	perTopic := make(map[string]*TopicStatus, len(topics))
	for _, t := range topics {
		n := c.done[t]
		perTopic[t] = &TopicStatus{Source: t, Destination: l.destination(t), Priority: l.cfg.PriorityOf(t), Records: n.records, Bytes: n.bytes}
	}
	for k := range c.committed {
		perTopic[k.Topic].Partitions++
	}
	if len(topics) > 0 {
		ends, err := l.srcAdm.ListCommittedOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("measure backlog: %w", err)
		}
		for k := range c.committed {
			pos, ok := c.position(k)
			end, found := ends.Lookup(k.Topic, k.Partition)
			if !ok || !found || end.Err != nil || end.Offset <= pos {
				continue
			}
			backlog += end.Offset - pos
			perTopic[k.Topic].BacklogRecords += end.Offset - pos
			if ts, ok := c.lastTS[k]; ok && (oldest.IsZero() || ts.Before(oldest)) {
				oldest = ts
			}
		}
	}
	now := time.Now()
	l.update(func(s *Status) {
		s.BacklogRecords, s.BacklogAt = backlog, now
		s.Topics = s.Topics[:0:0]
		for _, t := range slices.Sorted(maps.Keys(perTopic)) {
			s.Topics = append(s.Topics, *perTopic[t])
		}
		s.BacklogBytes, s.BacklogAge, s.DrainETA = 0, 0, 0
		if backlog == 0 {
			return
		}
		if s.Records > 0 {
			s.BacklogBytes = backlog * (s.Bytes / s.Records)
		}
		if !oldest.IsZero() {
			s.BacklogAge = now.Sub(oldest)
		}
		if c.rate > 1 {
			s.DrainETA = time.Duration(float64(backlog) / c.rate * float64(time.Second))
		}
	})
	// Under steady load there is always a little backlog (the records of the
	// open transaction): a link is live while what is left would drain
	// within liveWithin at the recent rate.
	state := StateLive
	if backlog > 0 && (c.rate < 1 || float64(backlog)/c.rate > liveWithin.Seconds()) {
		state = StateCatchingUp
	}
	l.setState(state, nil)
	return nil
}

// liveWithin is the drain time under which a link with a backlog counts as live.
const liveWithin = 2 * time.Second

// run polls the source and copies records in transactions until ctx ends or
// an error does.
func (c *copier) run(ctx context.Context) error {
	// wctx is the session's work; watchReach ends it when the destination
	// stops answering, ctx when the link stops.
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go c.watchReach(wctx, cancel)
	for {
		deadline := c.nextDiscovery
		if c.nextBacklog.Before(deadline) {
			deadline = c.nextBacklog
		}
		if !c.started.IsZero() {
			deadline = c.started.Add(c.l.opts.CommitInterval)
		} else if len(c.dirty) > 0 {
			deadline = time.Now() // new assignments to checkpoint
		}
		var fs kgo.Fetches
		if c.sched.len() > 0 {
			fs = c.consumer.PollFetches(nil) //nolint:staticcheck // a nil context returns what is buffered without waiting (documented by franz-go)
		} else {
			pctx, cancel := context.WithDeadline(wctx, deadline)
			fs = c.consumer.PollFetches(pctx)
			cancel()
		}
		if ctx.Err() != nil {
			return c.shutdown()
		}
		if wctx.Err() != nil {
			return context.Cause(wctx)
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue
			}
			return fmt.Errorf("fetch %s[%d] from source: %w", fe.Topic, fe.Partition, fe.Err)
		}
		c.enqueue(fs)
		limit := c.txLimit()
		if err := c.drain(wctx, limit); err != nil {
			return ended(wctx, err)
		}
		due := !c.started.IsZero() && (time.Since(c.started) >= c.l.opts.CommitInterval || c.txBytes >= limit)
		if due || (c.started.IsZero() && len(c.dirty) > 0) {
			if err := c.commit(wctx); err != nil {
				return ended(wctx, err)
			}
		}
		if time.Now().After(c.nextDiscovery) {
			if err := c.discover(wctx, false); err != nil {
				return ended(wctx, err)
			}
		}
		if time.Now().After(c.nextBacklog) {
			if err := c.measureBacklog(wctx); err != nil {
				return ended(wctx, err)
			}
		}
	}
}

// ended returns why the session's work was cut short, when it was (see
// watchReach), rather than the error that caused in the step under way.
func ended(wctx context.Context, err error) error {
	if cause := context.Cause(wctx); wctx.Err() != nil && errors.Is(cause, errUnreachable) {
		return cause
	}
	return err
}

// enqueue hands fetched records to the scheduler and stops fetching the
// partitions that now have records waiting.
func (c *copier) enqueue(fs kgo.Fetches) {
	var pause map[string][]int32
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		k := tp{p.Topic, p.Partition}
		if c.sched.add(k, c.l.cfg.PriorityOf(p.Topic), p.Records) {
			if pause == nil {
				pause = make(map[string][]int32)
			}
			pause[k.Topic] = append(pause[k.Topic], k.Partition)
		}
	})
	c.sched.polled()
	if pause != nil {
		c.consumer.PauseFetchPartitions(pause)
	}
}

// pendingCap bounds the memory of fetched records waiting to be copied
// (scheduler.mem): past it, a partition whose records are all copied is
// fetched again only if records of a lower priority wait. With
// fetchMaxBytes and the producer's buffer (the profile's) it bounds a
// link's memory whatever its backlog or partition count.
const pendingCap = 8 << 20

// fetchMaxBytes is the most one fetch from the source returns.
const fetchMaxBytes = 8 << 20

// drain copies waiting records, in the scheduler's order, into the open
// transaction until it holds limit bytes or nothing waits, and fetches
// again the partitions it emptied.
func (c *copier) drain(ctx context.Context, limit int) error {
	for c.txBytes < limit {
		k, recs, emptied, ok := c.sched.next()
		if !ok {
			break
		}
		if err := c.copyRecords(ctx, k, recs); err != nil {
			return err
		}
		if emptied {
			c.held[k] = c.l.cfg.PriorityOf(k.Topic)
		}
	}
	if len(c.held) == 0 {
		return nil
	}
	// Beyond pendingCap only partitions of a higher priority than some
	// waiting records are fetched again: the lower ones drain later, so an
	// alert is not kept out by raw telemetry holding the memory.
	low := c.sched.minWeight()
	resume := make(map[string][]int32)
	for k, w := range c.held {
		if c.sched.mem < pendingCap || w > low {
			resume[k.Topic] = append(resume[k.Topic], k.Partition)
			delete(c.held, k)
		}
	}
	if len(resume) > 0 {
		c.consumer.ResumeFetchPartitions(resume)
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
func (c *copier) txLimit() int {
	if c.txSize == 0 {
		c.txSize = initialTxBytes
		if c.l.limit != nil && c.l.limit.Rate() > 0 {
			c.txSize = float64(c.l.limit.Rate()) * c.tune.txTime.Seconds()
		}
	}
	c.txSize = min(max(c.txSize, minTxBytes), float64(c.l.opts.MaxTransactionBytes))
	return int(c.txSize)
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
func (c *copier) sizeTransactions(total, rtt time.Duration) {
	target := c.tune.txTime
	switch {
	case 2*rtt > total/4:
		c.txSize *= 2
	case total > 2*target:
		c.txSize *= 0.7
	case total < target/2:
		c.txSize *= 1.5
	}
	c.txSize = min(max(c.txSize, minTxBytes), float64(c.l.opts.MaxTransactionBytes))
}

// copyRecords produces records of one partition, in order, into the open
// transaction, opening one when needed. It is the hot path: the source
// records themselves are produced (re-addressed to the mirror topic), their
// headers and provenance values come from one allocation each per call, and
// the bookkeeping is done once per call.
func (c *copier) copyRecords(ctx context.Context, k tp, recs []*kgo.Record) error {
	l := c.l
	dst := l.destination(k.Topic)
	if _, ok := c.srcOf[dst]; !ok {
		c.srcOf[dst] = k.Topic
	}
	skip := l.skip[k]
	nh := 0
	for _, r := range recs {
		nh += len(r.Headers) + 1
	}
	headers := make([]kgo.RecordHeader, 0, nh)
	origins := make([]byte, 0, len(recs)*c.origin.MaxLen())
	next, known := c.position(k)
	var (
		n, size int64
		lastTS  time.Time
	)
	defer func() {
		if known {
			c.advance(k, next)
		}
		if n > 0 {
			c.txBytes += int(size)
			c.txRecs += int(n)
			c.txTopics[k.Topic] = c.txTopics[k.Topic].add(n, size)
			c.lastTS[k] = lastTS
		}
	}()
	for _, r := range recs {
		if known && r.Offset < next {
			continue // already replicated (a re-fetch after a reset)
		}
		if known && r.Offset > next {
			c.checkLost(ctx, k, next, r.Offset)
		}
		next, known = r.Offset+1, true
		if r.Attrs.IsControl() {
			continue
		}
		if len(r.Headers) > 0 {
			if o, found, _ := provenance.Find(r); found && o.ClusterID == l.dstID {
				l.update(func(s *Status) { s.SkippedLoops++ })
				continue
			}
		}
		if err := c.begin(); err != nil {
			next = r.Offset
			return err
		}
		if reason, ok := skip[r.Offset]; ok {
			c.recordSkipped(ctx, k, r, reason)
			continue
		}
		from := len(headers)
		headers = append(headers, r.Headers...)
		at := len(origins)
		origins = c.origin.Append(origins, r.Partition, r.Offset)
		headers = append(headers, kgo.RecordHeader{Key: provenance.Key, Value: origins[at:len(origins):len(origins)]})
		r.Topic = dst
		r.Headers = headers[from:len(headers):len(headers)]
		n++
		size += int64(len(r.Key) + len(r.Value))
		lastTS = r.Timestamp
		c.producer.Produce(ctx, r, c.produced)
	}
	return nil
}

// produced is the callback of every mirrored record; it runs on the
// producer's goroutines. The record's last header is its provenance.
func (c *copier) produced(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	var offset int64 = -1
	if n := len(r.Headers); n > 0 {
		if o, derr := provenance.Decode(r.Headers[n-1].Value); derr == nil {
			offset = o.Offset
		}
	}
	if recordError(err) {
		c.errMu.Lock()
		c.refused = append(c.refused, refusal{tp{r.Topic, r.Partition}, offset, err})
		c.errMu.Unlock()
		return
	}
	c.fail(fmt.Errorf("produce source offset %d to %s[%d]: %w", offset, r.Topic, r.Partition, err))
}

// recordSkipped writes what is known of a refused record to SkippedTopic, in
// the open transaction, instead of the record itself.
func (c *copier) recordSkipped(ctx context.Context, k tp, r *kgo.Record, reason string) {
	l := c.l
	l.logger.Error("record refused by the destination: skipped and recorded",
		"topic", k.Topic, "partition", k.Partition, "offset", r.Offset, "reason", reason, "recorded_in", SkippedTopic)
	v, _ := json.Marshal(skippedRecord{
		Link: l.cfg.Name, Topic: k.Topic, Partition: k.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UnixMilli(), KeyBytes: len(r.Key), ValueBytes: len(r.Value), Headers: len(r.Headers),
		Reason: reason,
	})
	rec := &kgo.Record{
		Topic: SkippedTopic, Key: checkpointKey(l.cfg.Name, k), Value: v,
		Headers: []kgo.RecordHeader{provenance.Origin{ClusterID: l.srcID, Site: l.site, Partition: r.Partition, Offset: r.Offset}.Header()},
	}
	c.producer.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			c.fail(fmt.Errorf("record skipped %s offset %d: %w", k, r.Offset, err))
		}
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.SkippedRecords++
	l.eventLocked(EventSkipped, fmt.Sprintf("%s offset %d refused by the destination (%s); recorded in %s", k, r.Offset, reason, SkippedTopic))
}

// counts are records and payload bytes.
type counts struct{ records, bytes int64 }

func (n counts) add(records, bytes int64) counts {
	return counts{n.records + records, n.bytes + bytes}
}

// skippedRecord is the value of a SkippedTopic record.
type skippedRecord struct {
	Link       string `json:"link"`
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Timestamp  int64  `json:"timestamp_ms"`
	KeyBytes   int    `json:"key_bytes"`
	ValueBytes int    `json:"value_bytes"`
	Headers    int    `json:"headers"`
	Reason     string `json:"reason"`
}

func (c *copier) position(k tp) (int64, bool) {
	if v, ok := c.dirty[k]; ok {
		return v, true
	}
	v, ok := c.committed[k]
	return v, ok && v >= 0
}

func (c *copier) advance(k tp, next int64) { c.dirty[k] = next }

// checkLost reports source records deleted before they were replicated: a
// gap in offsets is loss when the source's log now starts after its first
// missing offset. Other gaps (aborted transactions, compaction) are normal.
func (c *copier) checkLost(ctx context.Context, k tp, expected, got int64) {
	if t := c.lastLostCheck[k]; time.Since(t) < time.Second {
		return
	}
	c.lastLostCheck[k] = time.Now()
	offs, err := c.l.srcAdm.ListStartOffsets(ctx, k.Topic)
	if err != nil {
		c.l.logger.Warn("check for records lost to retention", "partition", k.String(), "err", err)
		return
	}
	o, ok := offs.Lookup(k.Topic, k.Partition)
	if !ok || o.Err != nil || o.Offset <= expected {
		return
	}
	end := min(o.Offset, got)
	c.l.logger.Error("source records deleted before they were replicated",
		"topic", k.Topic, "partition", k.Partition, "from", expected, "to", end-1, "count", end-expected)
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.status.LostRecords += end - expected
	c.l.status.LastError = fmt.Sprintf("records %d..%d of %s were deleted at the source before replication", expected, end-1, k)
	c.l.eventLocked(EventLost, c.l.status.LastError)
}

// begin opens a transaction (a batch, in at-least-once mode) if none is open.
func (c *copier) begin() error {
	if !c.started.IsZero() {
		return nil
	}
	if c.eos {
		if err := c.producer.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", classify(err))
		}
	}
	c.started = time.Now()
	return nil
}

// commit writes the checkpoints of the open transaction and commits it. In
// at-least-once mode it waits for the records' acknowledgements and only then
// writes the checkpoints: a crash in between replicates them again.
func (c *copier) commit(ctx context.Context) error {
	if err := c.begin(); err != nil {
		return err
	}
	if !c.eos {
		if err := c.flush(ctx); err != nil {
			return err
		}
	}
	// At least once, the checkpoints' flush is one round trip; exactly
	// once, the transaction's end is.
	c.lastStep = time.Now()
	c.writeCheckpoints(ctx)
	err := c.flush(ctx)
	switch {
	case !c.eos && err != nil:
		return err
	case errors.Is(err, errUnreachable):
		// Nothing can be aborted without the destination; the next
		// session's producer settles the open transaction.
		return err
	case err != nil:
		// Drop what could not be sent so that the abort can proceed.
		// The abort is a courtesy (the next session's producer settles the
		// transaction anyway), so it is bounded tightly.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = c.producer.AbortBufferedRecords(actx)
		cancel()
		actx, cancel = context.WithTimeout(ctx, c.tune.dialTimeout)
		_ = c.producer.EndTransaction(actx, kgo.TryAbort)
		cancel()
		return classify(err)
	case c.eos:
		c.lastStep = time.Now()
		if err := c.watch(ctx, func(ctx context.Context) error { return c.producer.EndTransaction(ctx, kgo.TryCommit) }); err != nil {
			return fmt.Errorf("commit transaction: %w", classify(err))
		}
	}
	c.markCommitted()
	return nil
}

// flush waits, within the transaction timeout, for every produced record to
// be acknowledged, and returns the first failure of any of them.
func (c *copier) flush(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, c.l.opts.TransactionTimeout)
	defer cancel()
	flushErr := c.watch(fctx, c.producer.Flush)
	if errors.Is(flushErr, errUnreachable) {
		return flushErr
	}
	if err := c.takeErr(); err != nil {
		return err // a record's own failure says more than the flush's
	}
	if flushErr != nil {
		return fmt.Errorf("wait for acknowledgements: %w", flushErr)
	}
	return nil
}

// watch runs a call to the destination producer that franz-go would retry
// for as long as ctx allows; when watchReach ended ctx because the
// destination stopped answering (an outage), it returns that reason.
func (c *copier) watch(ctx context.Context, call func(context.Context) error) error {
	return ended(ctx, call(ctx))
}

// watchReach cancels the session's work with errUnreachable once the
// destination has not answered for the dial timeout: a Produce blocked on a
// full producer buffer, a flush or a transaction's end would otherwise wait
// for it forever (franz-go retries without end).
func (c *copier) watchReach(ctx context.Context, cancel context.CancelCauseFunc) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := c.reach.down(c.tune.dialTimeout); err != nil {
				cancel(err)
				return
			}
		}
	}
}

func (c *copier) writeCheckpoints(ctx context.Context) {
	l := c.l
	for k, next := range c.dirty {
		if id := l.srcTopicIDs[k.Topic]; id != "" && c.topicIDs[k] == "" {
			c.topicIDs[k] = id // a checkpoint from before ids were recorded
		}
		rec := checkpointRecord(l.cfg.CheckpointTopic, l.cfg.Name, k, checkpoint{Next: next, Source: l.srcID, TopicID: c.topicIDs[k]})
		c.producer.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				c.fail(fmt.Errorf("write checkpoint of %s: %w", k, err))
			}
		})
	}
}

// markCommitted records a successful commit of the open transaction.
func (c *copier) markCommitted() {
	l := c.l
	for k, next := range c.dirty {
		c.committed[k] = next
	}
	recs, bytes := c.txRecs, c.txBytes
	if bytes >= c.txLimit() && !c.started.IsZero() {
		c.sizeTransactions(time.Since(c.started), time.Since(c.lastStep))
	}
	for t, n := range c.txTopics {
		c.done[t] = c.done[t].add(n.records, n.bytes)
	}
	if dt := time.Since(c.rateAt).Seconds(); dt > 0 {
		// An exponentially weighted rate with a time constant of ~10 s.
		w := min(dt/10, 1)
		c.rate = (1-w)*c.rate + w*float64(recs)/dt
		c.rateAt = time.Now()
	}
	l.update(func(s *Status) {
		s.Records += int64(recs)
		s.Bytes += int64(bytes)
		s.Transactions++
		s.Topics = slices.Clone(s.Topics) // snapshots share the old array
		for i := range s.Topics {
			if n, ok := c.txTopics[s.Topics[i].Source]; ok {
				s.Topics[i].Records += n.records
				s.Topics[i].Bytes += n.bytes
			}
		}
	})
	clear(c.txTopics)
	clear(c.dirty)
	c.started, c.txBytes, c.txRecs = time.Time{}, 0, 0
}

// shutdown finishes the open transaction within a few seconds, or leaves it
// to be aborted by the next instance (or the transaction timeout).
func (c *copier) shutdown() error {
	if c.started.IsZero() && len(c.dirty) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.commit(ctx); err != nil {
		c.l.logger.Warn("last transaction not committed; it will be replicated again by the next run", "err", err)
		actx, acancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer acancel()
		_ = c.producer.AbortBufferedRecords(actx)
		if c.eos {
			_ = c.producer.EndTransaction(actx, kgo.TryAbort)
		}
	}
	return nil
}
