// Package link is edgelink's replication engine. A Link copies the records of
// the source topics it selects to mirror topics at the destination, in
// source order per partition, with key, value, headers and timestamp intact.
//
// Records flow one way through a session of the link:
//
//	intake (fetch, pause/resume, weighted-fair scheduler)
//	  → stages (loop prevention, rename and provenance, refused-record skips)
//	  → sink (transactional or acknowledged produce)
//	  → positions (checkpoints in the link's own partition of the checkpoint topic)
//
// With exactly-once delivery every batch of records is written in one
// destination transaction together with the link's checkpoint (the next
// source offset of each partition it touched). A link that restarts, crashes
// or loses its connection resumes from the checkpoint the destination holds,
// so nothing is lost or written twice. A link is identified by its site and
// name (Identity); a second instance of the same link fences the first
// through the shared transactional id.
//
// What to do about an error (retry the session, adjust within it, skip a
// record, stop the link) is decided in one place, decide in policy.go.
package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/edgelink/edgelink/internal/bandwidth"
	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
)

// Options tune a link; the zero value of a field takes its default.
type Options struct {
	// CommitInterval is how long a transaction collects records before it
	// commits, default 100ms.
	CommitInterval time.Duration
	// MaxTransactionBytes caps a transaction's payload, default 64 MiB.
	// Below the cap, transactions are sized to what the link sent in the
	// profile's transaction time (see session.txLimit).
	MaxTransactionBytes int
	// DiscoveryInterval is how often source topics are listed to find new
	// topics and partitions, default 10s.
	DiscoveryInterval time.Duration
	// TransactionTimeout is the destination transaction timeout, default 60s.
	TransactionTimeout time.Duration
	// MinBackoff and MaxBackoff bound the capped exponential backoff
	// between sessions after an error, defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Shared: the agents running the link share its slots, and the link
	// opens only those given to it with Assign (see internal/agent). When
	// false the link opens every slot, and stops when another instance
	// fences one (ErrFenced).
	Shared bool
	// Instance describes this agent in the markers its slots write to
	// the checkpoint topic; default "<host>/<pid>".
	Instance string
	// FirstAssignment bounds how long a starting session of a shared link
	// waits for the link's first assignment of slots before it goes on
	// without slots (they open in the background when assigned); default
	// 5s: above the 3 s a new group waits for more members by default
	// (group.initial.rebalance.delay.ms), below the session timeout a
	// restarted agent waits for its killed predecessor to expire.
	FirstAssignment time.Duration
	// LostRetry is how long a shared link leaves a slot that another
	// agent fenced before it opens it again, if it still owns it then;
	// default 30s.
	LostRetry time.Duration
	// SourceDialer and DestinationDialer, when set, open the raw TCP
	// connections to the source and destination brokers (tests route them
	// through a fault-injecting network); TLS and the profile's dial
	// timeout are applied on top.
	SourceDialer, DestinationDialer kafka.DialFunc

	// source, when set, opens what sessions read instead of the source
	// cluster (an import's bundles, a diode's receiver).
	source func() (source, error)
	// admit, when set, sees the checkpoints of every partition a session
	// holds before it writes anything, and may refuse them (an import
	// checks that its bundles follow them).
	admit func(checkpoints map[tp]int64) error
	// rename, when set, names the mirror topic of each source topic
	// instead of the link's rename template (failback maps the mirror
	// topics back to the topics they mirror).
	rename func(topic string) string
	// ownConfigs leaves the mirror topics' configs alone: none of the
	// source topics' is copied (failback writes to topics that are not
	// mirrors).
	ownConfigs bool
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
	if o.FirstAssignment <= 0 {
		o.FirstAssignment = 5 * time.Second
	}
	if o.LostRetry <= 0 {
		o.LostRetry = 30 * time.Second
	}
	if o.Instance == "" {
		host, _ := os.Hostname()
		o.Instance = host + "/" + strconv.Itoa(os.Getpid())
	}
}

// Link replicates one configured link. Run it with Run; read its progress
// with Status from any goroutine. A Link outlives its sessions: what it
// holds is what must survive a reconnection.
type Link struct {
	cfg      *config.Link
	id       Identity
	src, dst *config.Cluster
	opts     Options
	logger   *slog.Logger

	// limit enforces the link's bandwidth budget on everything it sends to
	// the destination; nil when unlimited. It outlives sessions.
	limit *bandwidth.Limiter

	// skip holds source records refused by the destination that the link
	// records instead of replicating (on_error: skip-and-record). It is
	// owned by the goroutine running Run.
	skip map[tp]map[int64]string

	// slots holds which slots the link should run and which a session
	// holds (see slots.go).
	slots slotTable
	// buffer, when set, replaces the profile's producer buffer (tests make
	// it small).
	buffer int
	// lastTS is the timestamp of the last record copied per partition, so
	// that the backlog's age is known again as soon as a session
	// reconnects; done counts records and bytes per source topic since
	// start. Both are owned by the goroutine running Run.
	lastTS map[tp]time.Time
	done   map[string]counts
	// doneIn counts, per source topic, the source records (and payload)
	// that went into the stages, for links with transforms.
	doneIn map[string]counts
	// batchCap, when set, caps the producer's batches below the
	// profile's: the smallest max.message.bytes of the mirror topics.
	batchCap int

	// held is what the consumer group sync knows of the slots held.
	held heldPositions

	mu     sync.Mutex
	status Status
	events []Event
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
		id:     Identity{Site: cfg.Site, Link: lc.Name},
		src:    cfg.Clusters[lc.From],
		dst:    cfg.Clusters[lc.To],
		opts:   opts,
		logger: logger.With("component", "link", "link", lc.Name),
		status: Status{Name: lc.Name, State: StateStarting, StateSince: time.Now()},
		skip:   make(map[tp]map[int64]string),
		lastTS: make(map[tp]time.Time),
		done:   make(map[string]counts),
		doneIn: make(map[string]counts),
	}
	l.slots.init(lc.Slots, !opts.Shared, opts.LostRetry)
	if lc.Bandwidth > 0 || len(lc.BandwidthSchedule) > 0 {
		l.limit = bandwidth.New(lc.BandwidthAt(time.Now()))
	}
	return l
}

// Name returns the link's name.
func (l *Link) Name() string { return l.cfg.Name }

// Identity returns the link's identity in shared clusters.
func (l *Link) Identity() Identity { return l.id }

// destination returns the mirror topic of a source topic.
func (l *Link) destination(topic string) string {
	if l.opts.rename != nil {
		return l.opts.rename(topic)
	}
	return l.cfg.DestinationTopic(l.id.Site, topic)
}

// Run replicates until ctx is cancelled, then finishes or aborts the open
// transaction and returns nil. It retries errors with capped exponential
// backoff and returns an error only when the link cannot continue (see
// decide).
func (l *Link) Run(ctx context.Context) error {
	if l.cfg.Bundle != nil && l.opts.source == nil {
		return l.watchBundles(ctx)
	}
	if l.cfg.Diode != nil && l.opts.source == nil {
		return l.runDiodeSender(ctx)
	}
	return l.retry(ctx, l.runSession, func(err error) bool { return decide(err, l.cfg.OnError) == stop }, l.dst)
}

// retry runs sessions of the link until ctx is cancelled (nil), a session
// finishes (a finite source drained: nil), or one fails for good (fatal:
// the error). Other errors are retried with capped exponential backoff,
// the link disconnected meanwhile; clusters explain them.
func (l *Link) retry(ctx context.Context, session func(context.Context) error, fatal func(error) bool, clusters ...*config.Cluster) error {
	backoff := l.opts.MinBackoff
	for {
		began := time.Now()
		err := session(ctx)
		if errors.Is(err, errFinished) || ctx.Err() != nil {
			l.setState(StateStopped, nil)
			return nil
		}
		if fatal(err) {
			l.logger.Error(stopMessage(err), "err", err)
			l.setState(StateFailed, err)
			return fmt.Errorf("link %s: %w", l.cfg.Name, err)
		}
		if time.Since(began) > time.Minute {
			backoff = l.opts.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter
		if errors.Is(err, ErrFailedOver) {
			if l.Status().State != StateFailedOver {
				l.logger.Warn("link failed over: waiting for edgelink failback", "err", err)
			}
			l.setState(StateFailedOver, err)
		} else {
			err = kafka.Explain(err, append([]*config.Cluster{l.src}, clusters...)...)
			l.setState(StateDisconnected, err)
			l.logger.Warn("link interrupted; retrying", "err", err, "in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			l.setState(StateStopped, nil)
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, l.opts.MaxBackoff)
	}
}

// stopMessage says why a link stopped for good, for the log.
func stopMessage(err error) string {
	switch {
	case errors.Is(err, ErrFenced):
		return "link stopped: another instance of this link, not sharing it, took over (fenced)"
	case errors.Is(err, ErrSourceChanged):
		return "link stopped: its checkpoints were written for another source cluster"
	case errors.Is(err, ErrRefused):
		return "link stopped: the destination refused a record (on_error: stop)"
	case errors.Is(err, ErrTransform):
		return "link stopped: a transform could not handle a record (on_error: stop)"
	case errors.Is(err, ErrStateLimit):
		return "link stopped: its transform's state outgrew max_state"
	case errorsIsAny(err, bundle.ErrTampered, bundle.ErrFormat, bundle.ErrDecrypt):
		return "import stopped: a bundle cannot be read as it was verified"
	}
	return "link stopped"
}

// runSession runs one session: connected, until an error or ctx ends it.
func (l *Link) runSession(ctx context.Context) error {
	s, err := openSession(ctx, l)
	if s != nil {
		defer s.close()
	}
	if err != nil {
		return err
	}
	return s.run(ctx)
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

// counts are records and payload bytes.
type counts struct{ records, bytes int64 }

func (n counts) add(records, bytes int64) counts {
	return counts{n.records + records, n.bytes + bytes}
}

// errorsIsAny reports whether err is any of targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
