package link

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/diode"
)

// silentAfter is how long a receiver waits for a heartbeat before it says
// the sender is silent.
const silentAfter = 5 * time.Second

// diodeSource serves what a diode receiver hears to a link's sessions as
// their source: the sender's heartbeats stand for the source cluster (its
// id, topics, configs, how far each partition was sent), the assembler's
// contiguous batches for its records. It outlives sessions: a session that
// ends (a destination lost, a transaction aborted) does not lose what was
// heard. Records handed to a session are retained until a commit writes
// them, so that a rewind reads them again; what a receiver that restarted
// never heard comes back only with the sender's repeats.
type diodeSource struct {
	l   *Link
	rcv *diode.Receiver

	mu  sync.Mutex
	asm *diode.Assembler
	hb  *diode.Heartbeat
	// heard is when the last heartbeat came; silent is set once the sender
	// missed heartbeats (and said once).
	heard  time.Time
	silent bool
	// expected holds the partitions given to the assembler, with the next
	// offset it releases; queue the batches it released and no session
	// took yet; retained those a session took and did not commit yet.
	expected map[tp]int64
	queue    map[tp][]*diode.Batch
	retained map[tp][]*diode.Batch
	// open holds the gaps reported (as open), lost those given up.
	open     map[diode.Gap]bool
	gaps     []diode.Gap
	gapsLost int64
	notify   chan struct{}
}

func newDiodeSource(rcv *diode.Receiver) *diodeSource {
	return &diodeSource{
		rcv: rcv, asm: diode.NewAssembler(diode.AssemblerOptions{}),
		expected: make(map[tp]int64), queue: make(map[tp][]*diode.Batch), retained: make(map[tp][]*diode.Batch),
		open: make(map[diode.Gap]bool), notify: make(chan struct{}, 1),
	}
}

// run feeds the assembler from the receiver until ctx ends, and every half
// second reports gaps and a silent sender.
func (d *diodeSource) run(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case b, ok := <-d.rcv.Batches():
			if !ok {
				return
			}
			d.mu.Lock()
			d.asm.Add(b, time.Now())
			d.release()
			d.mu.Unlock()
		case h, ok := <-d.rcv.Heartbeats():
			if !ok {
				return
			}
			d.mu.Lock()
			d.asm.Heartbeat(h, time.Now())
			d.hb, d.heard = h, time.Now()
			if d.silent {
				d.silent = false
				d.l.event(EventState, "the diode's sender is heard again (session "+h.Session.String()+")")
			}
			d.release()
			d.mu.Unlock()
		case now := <-tick.C:
			d.mu.Lock()
			d.check(now)
			d.mu.Unlock()
		}
	}
}

// release moves what the assembler can release into the queue. Called
// with mu held.
func (d *diodeSource) release() {
	ready := d.asm.Ready()
	for _, b := range ready {
		k := tp{b.Topic, b.Partition}
		d.queue[k] = append(d.queue[k], b)
		d.expected[k] = b.To
	}
	if len(ready) > 0 {
		select {
		case d.notify <- struct{}{}:
		default:
		}
	}
}

// check reports gaps (open ones once, final ones as lost) and a silent
// sender, and updates the link's diode status. Called with mu held.
func (d *diodeSource) check(now time.Time) {
	l := d.l
	open, final := d.asm.Gaps(now)
	window := time.Duration(0)
	if d.hb != nil {
		window = d.hb.Repeat.RepairWindow()
	}
	for _, g := range final {
		d.asm.Skip(g)
		d.gapsLost++
		msg := fmt.Sprintf("records %d..%d of %s[%d] were lost in the diode: the sender's redundancy did not recover them within %s",
			g.From, g.To-1, g.Topic, g.Partition, window.Round(time.Second))
		l.logger.Error(msg, "topic", g.Topic, "partition", g.Partition, "from", g.From, "to", g.To-1, "count", g.To-g.From)
		l.mu.Lock()
		l.status.LostRecords += g.To - g.From
		l.status.LastError = msg
		l.eventLocked(EventLost, msg)
		l.mu.Unlock()
		delete(d.open, key(g))
	}
	if len(final) > 0 {
		d.release()
	}
	for _, g := range open {
		// A range missing for a moment is normal (reordering, parity on
		// its way): one missing for a second is reported, once.
		if !d.open[key(g)] && now.Sub(g.Since) >= time.Second {
			d.open[key(g)] = true
			msg := fmt.Sprintf("records %d..%d of %s[%d] missing: waiting up to %s for the sender's repeats",
				g.From, g.To-1, g.Topic, g.Partition, window.Round(time.Second))
			l.logger.Warn(msg, "topic", g.Topic, "partition", g.Partition, "from", g.From, "to", g.To-1)
			l.event(EventLost, msg)
		}
	}
	d.gaps = open
	if d.hb != nil && !d.silent && now.Sub(d.heard) > silentAfter {
		d.silent = true
		msg := fmt.Sprintf("the diode's sender is silent: no heartbeat since %s", d.heard.UTC().Format(time.RFC3339))
		l.logger.Warn(msg)
		l.event(EventState, msg)
	}
	st := d.rcv.Stats()
	ds := &DiodeStatus{
		Role: "receiver", Receiver: &st, LastHeartbeat: d.heard, Silent: d.silent || d.hb == nil,
		Gaps: slices.Clone(open), GapsLost: d.gapsLost, RepairWindow: window,
	}
	if d.hb != nil {
		ds.Session = d.hb.Session.String()
	}
	l.update(func(s *Status) { s.Diode = ds })
}

// key is where a gap begins, to say it once however it grows.
func key(g diode.Gap) diode.Gap {
	return diode.Gap{Topic: g.Topic, Partition: g.Partition, From: g.From}
}

// heartbeat waits for the sender's first heartbeat, until ctx ends.
func (d *diodeSource) heartbeat(ctx context.Context) (*diode.Heartbeat, error) {
	for {
		d.mu.Lock()
		h := d.hb
		d.mu.Unlock()
		if h != nil {
			return h, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("the diode's sender is silent: no heartbeat heard yet")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *diodeSource) clusterID(ctx context.Context) (string, error) {
	h, err := d.heartbeat(ctx)
	if err != nil {
		return "", err
	}
	return h.SourceCluster, nil
}

func (d *diodeSource) topics(ctx context.Context) ([]sourceTopic, error) {
	h, err := d.heartbeat(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sourceTopic, 0, len(h.Topics))
	for _, t := range h.Topics {
		out = append(out, sourceTopic{name: t.Name, id: t.ID, partitions: t.Partitions})
	}
	return out, nil
}

func (d *diodeSource) configs(ctx context.Context, topics ...string) (map[string]topicConfig, error) {
	h, err := d.heartbeat(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]topicConfig, len(topics))
	for _, t := range h.Topics {
		if !slices.Contains(topics, t.Name) {
			continue
		}
		tc := topicConfig{set: make(map[string]string, len(t.Config))}
		for k, v := range t.Config {
			if !excludedConfig(k) {
				tc.set[k] = v
			}
			if k == "max.message.bytes" {
				tc.maxMessage, _ = strconv.Atoi(v)
			}
		}
		out[t.Name] = tc
	}
	return out, nil
}

// offsets: a partition starts where the sender started it (its origin);
// it ends where the sender says it sent up to. Losses are the receiver's
// to report (see check), so the start is never past what a session
// expects.
func (d *diodeSource) offsets(ctx context.Context, kind offsetKind, topics ...string) (map[tp]int64, error) {
	h, err := d.heartbeat(ctx)
	if err != nil {
		return nil, err
	}
	from := h.Positions
	if kind == startOffset {
		from = h.Origins
	}
	out := make(map[tp]int64)
	for _, t := range h.Topics {
		if !slices.Contains(topics, t.Name) {
			continue
		}
		for p := range t.Partitions {
			out[tp{t.Name, p}] = from[diode.TopicPartition{Topic: t.Name, Partition: p}]
		}
	}
	return out, nil
}

func (d *diodeSource) fetcher() (fetcher, error) {
	return &diodeFetcher{src: d, partitionsRead: newPartitionsRead()}, nil
}

// close does nothing: the receiver outlives sessions.
func (d *diodeSource) close() {}

// committed forgets the retained batches a commit wrote.
func (d *diodeSource) committed(pos map[tp]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, at := range pos {
		bs := d.retained[k]
		n := 0
		for n < len(bs) && bs[n].To <= at {
			n++
		}
		if n > 0 {
			clear(bs[:n])
			d.retained[k] = bs[n:]
		}
	}
}

// assign starts serving partitions from a session's checkpoints: what was
// handed out and not committed is served again; a partition the assembler
// does not follow yet starts there.
func (d *diodeSource) assign(at map[tp]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, next := range at {
		again := append(d.retained[k], d.queue[k]...)
		d.retained[k] = nil
		n := 0
		for n < len(again) && again[n].To <= next {
			n++
		}
		d.queue[k] = again[n:]
		if released, ok := d.expected[k]; !ok || next > released {
			d.asm.Expect(k.Topic, k.Partition, next)
			d.expected[k] = next
		}
	}
	d.release()
}

// take hands out up to max bytes of queued batches of partitions that are
// assigned and not paused, retaining them.
func (d *diodeSource) take(ok func(tp) bool, limit int) []*diode.Batch {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*diode.Batch
	size := 0
	for k, bs := range d.queue {
		if !ok(k) || len(bs) == 0 {
			continue
		}
		i := 0
		for i < len(bs) && size < limit {
			size += int(bs[i].To - bs[i].From + 64)
			for _, r := range bs[i].Records {
				size += len(r.Key) + len(r.Value)
			}
			i++
		}
		out = append(out, bs[:i]...)
		d.retained[k] = append(d.retained[k], bs[:i]...)
		d.queue[k] = bs[i:]
		if size >= limit {
			break
		}
	}
	return out
}

// diodeFetcher hands a session the batches the diode source released.
type diodeFetcher struct {
	src *diodeSource
	partitionsRead
}

func (f *diodeFetcher) AddConsumePartitions(add map[string]map[int32]kgo.Offset) {
	f.partitionsRead.AddConsumePartitions(add)
	at := make(map[tp]int64)
	for t, ps := range add {
		for p, o := range ps {
			at[tp{t, p}] = o.EpochOffset().Offset
		}
	}
	f.src.assign(at)
}

func (f *diodeFetcher) PollFetches(ctx context.Context) kgo.Fetches {
	for {
		if bs := f.src.take(f.reading, pollBytes); len(bs) > 0 {
			return diodeFetches(bs)
		}
		if ctx == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.src.notify:
		}
	}
}

func (f *diodeFetcher) Close() {}

// diodeFetches turns batches into a fetch, as the source cluster would
// have returned their records: a batch whose records end before its end
// (aborted transactions, markers, filtered records at the site) ends with
// a record that only moves the position (see advanced).
func diodeFetches(bs []*diode.Batch) kgo.Fetches {
	var fetch kgo.Fetch
	topics := make(map[string]int)
	parts := make(map[tp][2]int)
	for _, b := range bs {
		k := tp{b.Topic, b.Partition}
		ti, ok := topics[b.Topic]
		if !ok {
			ti = len(fetch.Topics)
			topics[b.Topic] = ti
			fetch.Topics = append(fetch.Topics, kgo.FetchTopic{Topic: b.Topic})
		}
		pi, ok := parts[k]
		if !ok {
			pi = [2]int{ti, len(fetch.Topics[ti].Partitions)}
			parts[k] = pi
			fetch.Topics[ti].Partitions = append(fetch.Topics[ti].Partitions, kgo.FetchPartition{Partition: b.Partition})
		}
		fp := &fetch.Topics[pi[0]].Partitions[pi[1]]
		last := b.From - 1
		for _, r := range b.Records {
			kr := &kgo.Record{
				Topic: b.Topic, Partition: b.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
				Key: r.Key, Value: r.Value,
			}
			if len(r.Headers) > 0 {
				kr.Headers = make([]kgo.RecordHeader, len(r.Headers), len(r.Headers)+1)
				for i, h := range r.Headers {
					kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
				}
			}
			fp.Records = append(fp.Records, kr)
			last = r.Offset
		}
		if last < b.To-1 {
			fp.Records = append(fp.Records, &kgo.Record{Topic: b.Topic, Partition: b.Partition, Offset: b.To - 1, Context: advanced})
		}
	}
	return kgo.Fetches{fetch}
}
