package status

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
)

// A link measures its backlog itself, about every second, but only while a
// session runs: during an outage (disconnected, or stuck on a black-holed
// network) its last measurement stands still while the edge keeps writing.
// The model therefore follows, every sample interval, the source's last
// stable offsets of each link's topics together with the link's committed
// record counts. Once the link's own measurement is stale, it reports that
// measurement, less what the link committed since, plus what the source
// gained since: a dead cloud is a growing, measured backlog. As soon as the
// link measures again, its own figures apply.

// staleAfter is the age past which a link's own backlog measurement no
// longer describes the present.
const staleAfter = 3 * time.Second

// keepSamples is how long end-offset samples are kept.
const keepSamples = 30 * time.Second

// listTimeout bounds one listing of the source's end offsets.
const listTimeout = 5 * time.Second

// endSample is, at one time, the sum per source topic of the partitions'
// last stable offsets, and the link's committed record counts.
type endSample struct {
	at   time.Time
	ends map[string]int64
	// records and topicRecords are the link's Records and each topic's.
	records      int64
	topicRecords map[string]int64
}

// sourceWatch follows one link's source end offsets; its loop is owned by
// Model.followLinks, and Model.view reads it from any goroutine.
type sourceWatch struct {
	link    *link.Link
	cluster *config.Cluster
	dial    kafka.DialFunc
	logger  *slog.Logger

	mu      sync.Mutex
	samples []endSample
	// base is the sample taken nearest to the link's last own backlog
	// measurement, which was taken at baseAt.
	base   *endSample
	baseAt time.Time
}

// run lists the source's end offsets every interval until ctx ends.
func (w *sourceWatch) run(ctx context.Context, interval time.Duration) {
	opts, err := kafka.ClientOptions(w.cluster, w.logger, kafka.Dial{Raw: w.dial, Timeout: listTimeout})
	if err != nil {
		w.logger.Warn("backlog during outages not followed: source client options", "err", err)
		return
	}
	cl, err := kgo.NewClient(append(opts, kgo.RequestTimeoutOverhead(listTimeout))...)
	if err != nil {
		w.logger.Warn("backlog during outages not followed: create source client", "err", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		if err := w.sample(ctx, adm); err != nil && ctx.Err() == nil {
			if !failing {
				w.logger.Warn("list source end offsets", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample lists the end offsets of the link's topics once and notes which
// sample matches the link's last measurement.
func (w *sourceWatch) sample(ctx context.Context, adm *kadm.Client) error {
	st := w.link.Status()
	topics := make([]string, 0, len(st.Topics))
	for _, t := range st.Topics {
		topics = append(topics, t.Source)
	}
	if len(topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	listed, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list end offsets of %d topics: %w", len(topics), err)
	}
	s := endSample{
		at: time.Now(), ends: make(map[string]int64, len(topics)),
		records: st.Records, topicRecords: make(map[string]int64, len(topics)),
	}
	for _, t := range st.Topics {
		s.topicRecords[t.Source] = t.Records
	}
	var lerr error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = fmt.Errorf("end offset of %s[%d]: %w", o.Topic, o.Partition, o.Err)
			return
		}
		s.ends[o.Topic] += o.Offset
	})
	if lerr != nil {
		return lerr
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples = append(w.samples, s)
	i := 0
	for i < len(w.samples)-1 && s.at.Sub(w.samples[i].at) > keepSamples {
		i++
	}
	w.samples = slices.Delete(w.samples, 0, i)
	if !st.BacklogAt.IsZero() && !st.BacklogAt.Equal(w.baseAt) {
		best := 0
		for j := range w.samples {
			if absDur(w.samples[j].at.Sub(st.BacklogAt)) < absDur(w.samples[best].at.Sub(st.BacklogAt)) {
				best = j
			}
		}
		base := w.samples[best]
		w.base, w.baseAt = &base, st.BacklogAt
	}
	return nil
}

// extrapolate returns st with its backlog brought up to date, and true,
// when the link's own measurement is stale: the measured backlog, less what
// the link committed since, plus what the source gained since, older by
// the time since, and so that much closer to data loss. Otherwise it
// returns st as is and false.
func (w *sourceWatch) extrapolate(st link.Status, now time.Time) (link.Status, bool) {
	if st.BacklogAt.IsZero() || now.Sub(st.BacklogAt) < staleAfter {
		return st, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.base == nil || !w.baseAt.Equal(st.BacklogAt) || len(w.samples) == 0 {
		return st, false
	}
	base, last := w.base, w.samples[len(w.samples)-1]
	if !last.at.After(base.at) {
		return st, false
	}
	elapsed := now.Sub(st.BacklogAt)
	st.Topics = slices.Clone(st.Topics)
	var total int64
	for i, t := range st.Topics {
		before, ok1 := base.ends[t.Source]
		after, ok2 := last.ends[t.Source]
		if ok1 && ok2 {
			committed := t.Records - base.topicRecords[t.Source]
			st.Topics[i].BacklogRecords = max(0, t.BacklogRecords+(after-before)-committed)
		}
		total += st.Topics[i].BacklogRecords
		// Like the link's: the topic's oldest unreplicated record is older
		// by the time since the measurement; without a backlog then, it
		// came since, and is at most that old. An unknown age stays so.
		switch {
		case st.Topics[i].BacklogRecords == 0:
			st.Topics[i].BacklogAge = 0
		case t.BacklogRecords == 0:
			st.Topics[i].BacklogAge = elapsed
		case t.BacklogAge > 0:
			st.Topics[i].BacklogAge += elapsed
		}
	}
	// And the time until data loss shrinks as the backlog ages.
	st.DataLossIn, st.DataLossKnown = link.DataLossIn(st.Topics)
	st.BacklogRecords = total
	if st.Records > 0 {
		st.BacklogBytes = st.BacklogRecords * (st.Bytes / st.Records)
	}
	if st.BacklogRecords > 0 {
		// The oldest unreplicated record is older by the time since the
		// measurement (or, without a backlog then, at most that old).
		st.BacklogAge += elapsed
	} else {
		st.BacklogAge = 0
	}
	st.DrainETA = 0 // unknown until the link measures again
	return st, true
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// view returns the link's status as the model reports it, with the
// backlog extrapolated during an outage, and whether it is (see
// sourceWatch).
func (m *Model) view(l *link.Link, now time.Time) (link.Status, bool) {
	st := l.Status()
	m.mu.Lock()
	w := m.watches[l]
	m.mu.Unlock()
	if w != nil {
		return w.extrapolate(st, now)
	}
	return st, false
}

// followLinks runs a sourceWatch for every current link until ctx ends:
// it starts one when a link appears (a reload added or restarted it) and
// stops it when the link goes. It owns the watches' goroutines and returns
// once they all returned.
func (m *Model) followLinks(ctx context.Context) {
	var wg sync.WaitGroup
	running := make(map[*link.Link]context.CancelFunc)
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	// The set is checked on every change, and every sample interval in
	// case a source does not report changes.
	t := time.NewTicker(m.opts.SampleInterval)
	defer t.Stop()
	for {
		var changed <-chan struct{}
		if m.opts.Links != nil {
			changed = m.opts.Links.Changed() // before Current, so that no change is missed
		}
		m.syncWatches(ctx, &wg, running)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// syncWatches starts a watch for each current link that has none and
// stops the watches of links that are gone.
func (m *Model) syncWatches(ctx context.Context, wg *sync.WaitGroup, running map[*link.Link]context.CancelFunc) {
	cfg, links := m.Current()
	present := make(map[*link.Link]bool, len(links))
	for _, l := range links {
		present[l] = true
		if running[l] != nil {
			continue
		}
		lc := cfg.Link(l.Name())
		if lc == nil || cfg.Clusters[lc.From] == nil {
			continue
		}
		w := &sourceWatch{link: l, cluster: cfg.Clusters[lc.From], logger: m.logger.With("link", l.Name())}
		wctx, cancel := context.WithCancel(ctx)
		running[l] = cancel
		m.mu.Lock()
		m.watches[l] = w
		m.mu.Unlock()
		wg.Go(func() { w.run(wctx, m.opts.SampleInterval) })
	}
	for l, cancel := range running {
		if present[l] {
			continue
		}
		cancel()
		delete(running, l)
		m.mu.Lock()
		delete(m.watches, l)
		m.mu.Unlock()
	}
}
