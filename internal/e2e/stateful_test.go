package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/transform"
)

// The stateful scenarios: a link with an aggregate or a dedupe, whose
// state lives in memory only and is rebuilt after each crash by replaying
// the source from the rebuild position of its checkpoints, is killed with
// SIGKILL again and again while it copies. The mirror must hold, record by
// record, what an uninterrupted run writes: what the transform package
// computes over the source partitions in offset order.

// fastTakeover lets a restarted agent get its link's slots about 2 s after
// it joins: by default the group waits for the killed agent, which never
// rejoins, for the 10 s rebalance timeout.
const fastTakeover = "    membership: {session_timeout: 6s, heartbeat_interval: 500ms, rebalance_timeout: 2s}\n"

// aggregateLinkYAML rolls sensors.temp up into 1-minute windows per machine.
// The short timeouts make a cut WAN noticed within seconds.
const aggregateLinkYAML = `  - name: up
    from: edge
    to: cloud
    topics: {include: ['sensors\.temp']}
    rename: "{site}.{topic}"
    tuning: {dial_timeout: 3s, request_timeout: 3s, produce_timeout: 4s}
` + fastTakeover + `    transforms:
      - aggregate:
          window: 1m
          grace: 5s
          key: json.machine
          values: {temp: json.temp, rpm: json.rpm}
          functions: [min, max, mean, count]
`

// aggregateSpec is aggregateLinkYAML's aggregate.
var aggregateSpec = transform.AggregateSpec{
	Window: time.Minute, Grace: 5 * time.Second, Key: "json.machine",
	Values:    map[string]string{"temp": "json.temp", "rpm": "json.rpm"},
	Functions: []string{"min", "max", "mean", "count"},
}

// TestRealKafkaAggregateThroughKills: 200 machines send a reading a second
// for 2 hours of event time (1.44M records over 6 partitions, a little out
// of order, one in a thousand 3 minutes late), produced a minute of event
// time at a time, much faster than real time, while a link rolls them up
// into 1-minute windows per machine (min, max, mean and count of temp and
// rpm). The agent is killed with SIGKILL 20 times, each time 1 to 4 s or
// more after its start, at a moment its link has windows written in an open
// transaction, and started again at once. In the middle the WAN is cut
// while 30 minutes of event time are produced, then restored: the backfill
// goes through kills too. The mirror must then hold exactly the windows an
// uninterrupted run writes: per partition the same keys, value bytes,
// timestamps and closing source offsets, in the same order, none missing,
// none twice.
func TestRealKafkaAggregateThroughKills(t *testing.T) {
	const (
		machines   = 200
		partitions = 6
		minutes    = 120 // of event time, one chunk each
		cutFrom    = 45  // the chunks [cutFrom, cutTo) are produced while the WAN is cut
		cutTo      = 75
		kills      = 20
		reserve    = 5 // chunks held back until the last kill, to be copied while it comes
		pace       = 900 * time.Millisecond
		topic      = "sensors.temp"
		mirror     = "plant-1." + topic
	)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	edge, cloud := wanClusters(t, wan)
	createTopics(t, edge, partitions, nil, topic)
	cfg := writeWANConfig(t, edge, cloud, aggregateLinkYAML)

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	began := time.Now()
	base := time.Now().Truncate(time.Minute).Add(-3 * time.Hour)
	pcl, err := edge.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))
	require.NoError(t, err)
	defer pcl.Close()
	p := &pacedProducer{chunks: minutes, produce: func(ctx context.Context, chunk int) (int, error) {
		recs := readingsMinute(machines, partitions, base, chunk, 1)
		return len(recs), pcl.ProduceSync(ctx, recs...).FirstErr()
	}}
	p.pace.Store(int64(pace))
	p.limit.Store(cutFrom)
	var g errgroup.Group
	g.Go(func() error { return p.run(ctx) })
	d := newKillDriver(ctx, t, cfg, cloud, mirror, p)
	d.start()

	// Before the cut: half the kills (fewer if the link copies all of the
	// first 45 minutes before).
	for d.kills < kills/2 {
		if !d.killWhileCopying(cutFrom) {
			break // the rest after the cut
		}
	}
	p.waitFor(ctx, t, cutFrom, time.Minute)

	// The cut: 30 minutes of event time pile up at the edge.
	disconnected := len(d.a.stateChanges("disconnected"))
	wan.Cut()
	cutAt := time.Now()
	t.Logf("WAN cut after %d chunks (%d records produced), %d kills", p.next.Load(), p.records.Load(), d.kills)
	p.pace.Store(int64(250 * time.Millisecond))
	p.limit.Store(cutTo)
	p.waitFor(ctx, t, cutTo, time.Minute)
	testbed.Eventually(t, 30*time.Second, func() error {
		requireRunning(t, d.a)
		if len(d.a.stateChanges("disconnected")) > disconnected {
			return nil
		}
		return fmt.Errorf("agent %s has not reported the outage", d.a.name)
	})
	wan.Restore()
	t.Logf("WAN restored after %s and %d chunks (%d records produced); the backfill starts",
		time.Since(cutAt).Round(time.Millisecond), p.next.Load(), p.records.Load())

	// After the cut: the other kills, the first ones during the backfill.
	p.pace.Store(int64(pace))
	p.limit.Store(minutes - reserve)
	for d.kills < kills {
		require.True(t, d.killWhileCopying(minutes), "kill #%d: the link copied everything first", d.kills+1)
	}
	p.limit.Store(minutes)
	require.NoError(t, g.Wait())
	t.Logf("production done: %d records in %d chunks, %s after the start; %d kills, the killed agents ran %s (%s in all), %d chunks let through early to keep the link copying",
		p.records.Load(), p.next.Load(), time.Since(began).Round(time.Millisecond), d.kills, d.lifeSummary(), d.totalLife().Round(time.Millisecond), d.nudges)

	// What an uninterrupted run writes, computed over the source as it is.
	op, err := transform.NewAggregate(aggregateSpec)
	require.NoError(t, err)
	computed := time.Now()
	want, src := uninterrupted(ctx, t, edge, topic, op)
	require.Equal(t, p.records.Load(), src.records, "records read back from the source")
	require.Positive(t, src.late, "late readings")
	t.Logf("expected windows computed in %s: %d source records (%d late), %d windows", time.Since(computed).Round(time.Millisecond), src.records, src.late, src.emitted)
	require.Greater(t, src.emitted, machines*(minutes-2))

	got := readMirror(ctx, t, cloud, mirror, src.emitted, 3*time.Minute)
	problems := diffMirror(want, got, windowIdent)
	outBytes := int64(0)
	for _, ws := range got {
		for _, r := range ws {
			outBytes += int64(len(r.Key) + len(r.Value))
		}
	}
	final, err := linkSnapshotOf(ctx, d.a)
	require.NoError(t, err)
	t.Logf("totals: %d source records, %.1f MB (keys and values) into the link; %d windows, %.2f MB out of it (%.0fx fewer records, %.1fx fewer bytes); %.1f MB crossed the WAN towards the cloud",
		src.records, float64(src.bytes)/1e6, src.emitted, float64(outBytes)/1e6,
		float64(src.records)/float64(max(src.emitted, 1)), float64(src.bytes)/float64(max(outBytes, 1)), float64(wan.Stats().Up)/1e6)
	t.Logf("status of the last agent: %d source records (%d bytes) in, %d windows (%d bytes) out, %d late; of the killed ones, at their last poll: %d records (%d bytes) in, %d windows (%d bytes) out, %d late",
		final.RecordsIn, final.BytesIn, final.Records, final.Bytes, final.LateRecords, d.sum.RecordsIn, d.sum.BytesIn, d.sum.Records, d.sum.Bytes, d.sum.LateRecords)
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
	requireNoProblems(t, problems)
	requireRunning(t, d.a)
	code, _ := d.a.stop()
	require.Equal(t, 0, code)
}

// TestRealKafkaDedupeThroughKills: a stream of events in which about one
// record in five is a re-sent duplicate of an event of the last 3 minutes
// (half with the original's timestamp, half with the time it was sent
// again) goes through a 10-minute dedupe while the agent is killed with
// SIGKILL 5 times, each time at a moment its link has records written in an
// open transaction. The mirror holds each event id exactly once, and
// exactly the records an uninterrupted run keeps: per partition the same
// source offsets, keys, values and timestamps, in order.
func TestRealKafkaDedupeThroughKills(t *testing.T) {
	const (
		partitions = 3
		minutes    = 15 // of event time, one chunk each
		perSecond  = 100
		kills      = 5
		reserve    = 3
		topic      = "events.raw"
		mirror     = "plant-1." + topic
	)
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge"}, testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	createTopics(t, edge, partitions, nil, topic)
	cfg := writeConfig(t, edge, cloud, `  - name: up
    from: edge
    to: cloud
    topics: {include: ['events\.raw']}
    rename: "{site}.{topic}"
`+fastTakeover+`    transforms:
      - dedupe: {key: json.id, horizon: 10m}
`)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	pcl, err := edge.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	require.NoError(t, err)
	defer pcl.Close()
	gen := newEventStream(time.Now().Truncate(time.Minute).Add(-time.Hour), perSecond, partitions, 3)
	p := &pacedProducer{chunks: minutes, produce: func(ctx context.Context, chunk int) (int, error) {
		recs := gen.minute(chunk)
		return len(recs), pcl.ProduceSync(ctx, recs...).FirstErr()
	}}
	p.pace.Store(int64(1200 * time.Millisecond))
	p.limit.Store(minutes - reserve)
	var g errgroup.Group
	g.Go(func() error { return p.run(ctx) })
	d := newKillDriver(ctx, t, cfg, cloud, mirror, p)
	d.start()
	for d.kills < kills {
		require.True(t, d.killWhileCopying(minutes), "kill #%d: the link copied everything first", d.kills+1)
	}
	p.limit.Store(minutes)
	require.NoError(t, g.Wait())
	t.Logf("production done: %d records (%d of them duplicates) in %d chunks, %s after the start; %d kills, the killed agents ran %s, %d chunks let through early to keep the link copying",
		p.records.Load(), gen.duplicates, p.next.Load(), time.Since(began).Round(time.Millisecond), d.kills, d.lifeSummary(), d.nudges)

	op, err := transform.NewDedupe("json.id", 10*time.Minute)
	require.NoError(t, err)
	want, src := uninterrupted(ctx, t, edge, topic, op)
	require.Equal(t, p.records.Load(), src.records, "records read back from the source")
	require.Equal(t, gen.originals, src.kept, "an uninterrupted run keeps each event once")
	got := readMirror(ctx, t, cloud, mirror, src.kept, 2*time.Minute)
	problems := diffMirror(want, got, eventIdent)
	// Each id once over the whole mirror, whatever the partition.
	seen := make(map[string]int)
	mirrored := 0
	for _, rs := range got {
		for _, r := range rs {
			seen[eventIdent(r.Key, r.Value)]++
			mirrored++
		}
	}
	dups := 0
	for id, n := range seen {
		if n > 1 {
			dups += n - 1
			if dups <= 10 {
				problems = append(problems, fmt.Sprintf("id %s mirrored %d times", id, n))
			}
		}
	}
	t.Logf("totals: %d source records (%.1f MB), %d distinct ids, %d kept by an uninterrupted run, %d mirrored, %d duplicates in the mirror; whole test %s",
		src.records, float64(src.bytes)/1e6, len(seen), src.kept, mirrored, dups, time.Since(began).Round(time.Millisecond))
	require.Zero(t, dups, "duplicated ids in the mirror")
	requireNoProblems(t, problems)
	requireRunning(t, d.a)
	code, _ := d.a.stop()
	require.Equal(t, 0, code)
}

// readingsMinute returns minute m (from base) of the readings of machines
// sending one a second, in the order they are sent: each second's, of every
// machine, with a timestamp jittered by up to ±1.5 s, one in a thousand 3
// minutes late; partitioned by machine. The same arguments give the same
// records.
func readingsMinute(machines, partitions int, base time.Time, m int, seed uint64) []*kgo.Record {
	rng := rand.New(rand.NewPCG(seed, uint64(m)))
	out := make([]*kgo.Record, 0, 60*machines)
	for s := m * 60; s < (m+1)*60; s++ {
		for i := range machines {
			ts := base.Add(time.Duration(s)*time.Second + time.Duration(rng.IntN(3001)-1500)*time.Millisecond)
			if rng.IntN(1000) == 0 {
				ts = ts.Add(-3 * time.Minute) // late
			}
			machine := fmt.Sprintf("m%03d", i)
			out = append(out, &kgo.Record{
				Topic: "sensors.temp", Partition: int32(i % partitions), Key: []byte(machine), Timestamp: ts,
				Value: fmt.Appendf(nil, `{"machine":%q,"temp":%d.%d,"rpm":%d}`, machine, 20+rng.IntN(60), rng.IntN(10), 1000+rng.IntN(2000)),
			})
		}
	}
	return out
}

// eventStream generates events of devices, perSecond a second, with about
// one record in five a duplicate of an event sent in the last 3 minutes of
// event time: the same id, device and reading, sent again (sent differs),
// half of them with the original's timestamp and half with the time they
// are sent again. An event goes to the partition of its id.
type eventStream struct {
	base       time.Time
	perSecond  int
	partitions int
	rng        *rand.Rand
	events     []event
	sent       int
	// originals and duplicates count the records generated so far.
	originals, duplicates int
}

type event struct {
	n   int
	dev string
	v   int
	ts  time.Time
}

func newEventStream(base time.Time, perSecond, partitions int, seed uint64) *eventStream {
	return &eventStream{base: base, perSecond: perSecond, partitions: partitions, rng: rand.New(rand.NewPCG(seed, 11))}
}

// minute returns minute m's records; minutes must be asked for in order.
func (g *eventStream) minute(m int) []*kgo.Record {
	var out []*kgo.Record
	emit := func(e event, ts time.Time) {
		g.sent++
		out = append(out, &kgo.Record{
			Topic: "events.raw", Partition: int32(e.n % g.partitions), Key: []byte(e.dev), Timestamp: ts,
			Value: fmt.Appendf(nil, `{"id":"e%07d","dev":%q,"v":%d,"sent":%d}`, e.n, e.dev, e.v, g.sent),
		})
	}
	for s := m * 60; s < (m+1)*60; s++ {
		for i := range g.perSecond {
			now := g.base.Add(time.Duration(s)*time.Second + time.Duration(i*1000/g.perSecond)*time.Millisecond)
			e := event{n: len(g.events), dev: fmt.Sprintf("d%02d", g.rng.IntN(40)), v: g.rng.IntN(1000), ts: now}
			g.events = append(g.events, e)
			emit(e, e.ts)
			g.originals++
			if g.rng.IntN(4) == 0 { // a duplicate for every 4 originals: 20% of the records
				recent := min(len(g.events), 3*60*g.perSecond)
				d := g.events[len(g.events)-1-g.rng.IntN(recent)]
				ts := d.ts
				if g.rng.IntN(2) == 0 {
					ts = now
				}
				emit(d, ts)
				g.duplicates++
			}
		}
	}
	return out
}

// pacedProducer produces a stream chunk by chunk in the background, a chunk
// every pace at most, never the chunk limit or later.
type pacedProducer struct {
	chunks  int
	produce func(ctx context.Context, chunk int) (records int, err error)
	// pace is in nanoseconds; next is the next chunk to produce and
	// records counts the records produced.
	pace, limit, next, records atomic.Int64
}

func (p *pacedProducer) run(ctx context.Context) error {
	for c := range int64(p.chunks) {
		for c >= p.limit.Load() {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
		began := time.Now()
		n, err := p.produce(ctx, int(c))
		if err != nil {
			return fmt.Errorf("produce chunk %d: %w", c, err)
		}
		p.records.Add(int64(n))
		p.next.Store(c + 1)
		sleepCtx(ctx, time.Duration(p.pace.Load())-time.Since(began))
	}
	return nil
}

// waiting reports whether the producer is held back by its limit (or done).
func (p *pacedProducer) waiting() bool { return p.next.Load() >= p.limit.Load() }

// waitFor waits until chunks chunks were produced.
func (p *pacedProducer) waitFor(ctx context.Context, t *testing.T, chunks int, bound time.Duration) {
	t.Helper()
	testbed.Eventually(t, bound, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n := p.next.Load(); n < int64(chunks) {
			return fmt.Errorf("%d of %d chunks produced", n, chunks)
		}
		return nil
	})
}

// killDriver kills the running agent with SIGKILL while its link copies
// and starts the next one at once.
type killDriver struct {
	t      *testing.T
	ctx    context.Context
	cfg    string
	rng    *rand.Rand
	admin  *kadm.Client // of the destination
	mirror string
	p      *pacedProducer

	a       *agent
	agents  int
	started time.Time
	kills   int
	lives   []time.Duration // how long each killed agent ran
	// nudges counts the chunks let through beyond the producer's limit
	// for a kill to land on a copying link.
	nudges int
	// sum adds up the killed agents' status at their last poll.
	sum linkSnapshot
}

func newKillDriver(ctx context.Context, t *testing.T, cfg string, cloud *testbed.Cluster, mirror string, p *pacedProducer) *killDriver {
	t.Helper()
	cl, err := cloud.Client()
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill schedule seed %d", seed)
	return &killDriver{t: t, ctx: ctx, cfg: cfg, rng: rand.New(rand.NewPCG(seed, 5)), admin: kadm.NewClient(cl), mirror: mirror, p: p}
}

func (d *killDriver) start() {
	d.a = startAgent(d.t, fmt.Sprintf("agent-%d", d.agents), d.cfg)
	d.agents++
	d.started = time.Now()
}

// killWhileCopying kills the running agent, a random 1 to 4 s after its
// start or later, at the first moment its link has committed source records
// (so it has fenced its predecessor and rebuilt its state) and has records
// written to the mirror in an open transaction (it is copying); then it
// starts the next agent. While the producer waits at its limit with no such
// moment for 2 s, the limit moves a chunk further, up to upTo; past that it
// gives up after 5 s and reports false.
func (d *killDriver) killWhileCopying(upTo int) bool {
	d.t.Helper()
	due := d.started.Add(time.Second + time.Duration(d.rng.Int64N(int64(3*time.Second))))
	deadline := time.Now().Add(90 * time.Second)
	stuck := time.Now() // since when the producer waits at its limit
	var (
		st      linkSnapshot
		lastErr error
	)
	for {
		requireRunning(d.t, d.a)
		if time.Now().After(due) {
			st, lastErr = linkSnapshotOf(d.ctx, d.a)
			if lastErr == nil && st.RecordsIn > 0 {
				var open map[int32]int64
				open, lastErr = d.openTransactions()
				if lastErr == nil && len(open) > 0 {
					d.a.kill()
					life := time.Since(d.started)
					d.lives = append(d.lives, life)
					d.kills++
					d.sum.add(st)
					d.t.Logf("kill -9 #%d of %s after %.1fs, its transactions open with %s; it had taken in %d source records (%d late) and written %d; %d chunks (%d records) produced",
						d.kills, d.a.name, life.Seconds(), openSummary(open), st.RecordsIn, st.LateRecords, st.Records, d.p.next.Load(), d.p.records.Load())
					d.start()
					return true
				}
			}
		}
		switch lim := d.p.limit.Load(); {
		case !d.p.waiting():
			stuck = time.Now()
		case time.Since(stuck) > 2*time.Second && lim < int64(upTo):
			d.p.limit.Store(lim + 1)
			d.nudges++
			stuck = time.Now()
		case time.Since(stuck) > 5*time.Second:
			d.t.Logf("no kill #%d: %s copied the %d chunks produced (last status %+v, %v)", d.kills+1, d.a.name, d.p.next.Load(), st, lastErr)
			return false
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("agent %s: its link not seen copying within 90 s (last status %+v, %v)", d.a.name, st, lastErr)
		}
		sleepCtx(d.ctx, 10*time.Millisecond)
		require.NoError(d.t, d.ctx.Err())
	}
}

// openTransactions returns, per partition of the mirror, how many offsets
// past its last stable offset were written: records (and markers) of
// transactions not finished yet.
func (d *killDriver) openTransactions() (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	hw, err := d.admin.ListEndOffsets(ctx, d.mirror)
	if err != nil {
		return nil, err
	}
	lso, err := d.admin.ListCommittedOffsets(ctx, d.mirror)
	if err != nil {
		return nil, err
	}
	open := make(map[int32]int64)
	hw.Each(func(o kadm.ListedOffset) {
		if c, ok := lso.Lookup(o.Topic, o.Partition); ok && o.Err == nil && c.Err == nil && o.Offset > c.Offset {
			open[o.Partition] = o.Offset - c.Offset
		}
	})
	return open, nil
}

func openSummary(open map[int32]int64) string {
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(open)) {
		parts = append(parts, fmt.Sprintf("%d records uncommitted in partition %d", open[p], p))
	}
	return strings.Join(parts, ", ")
}

// lifeSummary describes how long the killed agents ran.
func (d *killDriver) lifeSummary() string {
	if len(d.lives) == 0 {
		return "none"
	}
	s := slices.Sorted(slices.Values(d.lives))
	return fmt.Sprintf("%.1f to %.1f s (median %.1f s)", s[0].Seconds(), s[len(s)-1].Seconds(), s[len(s)/2].Seconds())
}

func (d *killDriver) totalLife() time.Duration {
	var sum time.Duration
	for _, l := range d.lives {
		sum += l
	}
	return sum
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// stateChanges returns the agent's "link state changed" logs to state to.
func (a *agent) stateChanges(to string) []map[string]any {
	var out []map[string]any
	for _, m := range a.logsWith("link state changed") {
		if m["to"] == to {
			out = append(out, m)
		}
	}
	return out
}

// linkSnapshot is the part of a link's /api/v1/status these tests read.
type linkSnapshot struct {
	State       string `json:"state"`
	Records     int64  `json:"records"`
	Bytes       int64  `json:"bytes"`
	RecordsIn   int64  `json:"records_in"`
	BytesIn     int64  `json:"bytes_in"`
	LateRecords int64  `json:"late_records"`
	Backlog     struct {
		Records int64 `json:"records"`
	} `json:"backlog"`
}

func (s *linkSnapshot) add(o linkSnapshot) {
	s.Records += o.Records
	s.Bytes += o.Bytes
	s.RecordsIn += o.RecordsIn
	s.BytesIn += o.BytesIn
	s.LateRecords += o.LateRecords
}

// linkSnapshotOf returns the status of the agent's only link.
func linkSnapshotOf(ctx context.Context, a *agent) (linkSnapshot, error) {
	txt, err := statusText(ctx, a)
	if err != nil {
		return linkSnapshot{}, err
	}
	var st struct {
		Links []linkSnapshot `json:"links"`
	}
	if err := json.Unmarshal([]byte(txt), &st); err != nil {
		return linkSnapshot{}, err
	}
	if len(st.Links) != 1 {
		return linkSnapshot{}, fmt.Errorf("%d links in the status", len(st.Links))
	}
	return st.Links[0], nil
}

// mirrored is a record the link writes: its key, value and timestamp, and
// the source offset its provenance header names (of the record itself for
// a dedupe, of the record that closed the window for an aggregate).
type mirrored struct {
	key, value []byte
	ts         int64 // ms
	offset     int64
}

// sourceTotals is what uninterrupted read and computed.
type sourceTotals struct {
	records, bytes      int64
	late, kept, emitted int
}

// uninterrupted reads every partition of topic at c from the start to its
// current end, read_committed, and feeds its records in offset order to a
// new state of op per partition, as an uninterrupted link does; it returns,
// per partition, what those states keep and emit, in order.
func uninterrupted(ctx context.Context, t *testing.T, c *testbed.Cluster, topic string, op transform.Stateful) (map[int32][]mirrored, sourceTotals) {
	t.Helper()
	admin, err := c.Client()
	require.NoError(t, err)
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topic)
	admin.Close()
	require.NoError(t, err)
	require.NoError(t, ends.Error())
	from := make(map[int32]kgo.Offset)
	left := make(map[int32]int64) // the end offset of each partition not read to its end yet
	ends.Each(func(o kadm.ListedOffset) {
		from[o.Partition] = kgo.NewOffset().AtStart()
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := c.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer cl.Close()
	states := make(map[int32]transform.PartitionState)
	out := make(map[int32][]mirrored)
	var tot sourceTotals
	var in transform.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "reading %s back: %d partitions not read to their end", topic, len(left))
		fs.EachError(func(_ string, p int32, err error) { t.Logf("reading %s[%d] back: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			st := states[r.Partition]
			if st == nil {
				st = op.Partition(r.Partition)
				st.Restore(transform.Position{Watermark: transform.NoWatermark})
				states[r.Partition] = st
			}
			in = transform.Record{Key: r.Key, Value: r.Value, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
			res, err := st.Process(&in)
			require.NoError(t, err, "%s[%d] offset %d", topic, r.Partition, r.Offset)
			tot.records++
			tot.bytes += int64(len(r.Key) + len(r.Value))
			if res.Late {
				tot.late++
			}
			if res.Keep {
				out[r.Partition] = append(out[r.Partition], mirrored{key: r.Key, value: r.Value, ts: r.Timestamp.UnixMilli(), offset: r.Offset})
				tot.kept++
			}
			for _, o := range res.Emit {
				out[r.Partition] = append(out[r.Partition], mirrored{key: o.Key, value: o.Value, ts: o.Timestamp.UnixMilli(), offset: r.Offset})
				tot.emitted++
			}
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
		})
	}
	return out, tot
}

// readMirror reads topic at c from the start, read_committed, until it has
// want records or bound passes, then 2 s more to see any extra ones, and
// returns them by partition in offset order.
func readMirror(ctx context.Context, t *testing.T, c *testbed.Cluster, topic string, want int, bound time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	cl, err := c.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer cl.Close()
	out := make(map[int32][]*kgo.Record)
	n := 0
	began := time.Now()
	deadline, logAt := began.Add(bound), began.Add(10*time.Second)
	var enough time.Time // when want records were there
	for {
		now := time.Now()
		if now.After(deadline) || (!enough.IsZero() && now.Sub(enough) > 2*time.Second) {
			break
		}
		if now.After(logAt) {
			t.Logf("%s: %d of %d records mirrored after %s", topic, n, want, now.Sub(began).Round(time.Second))
			logAt = now.Add(10 * time.Second)
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], r)
			n++
		})
		if n >= want && enough.IsZero() {
			enough = time.Now()
			t.Logf("%s: %d of %d records mirrored after %s", topic, n, want, enough.Sub(began).Round(time.Millisecond))
		}
	}
	return out
}

// windowIdent names a window by its key and start.
func windowIdent(key, value []byte) string {
	var w struct {
		Start int64 `json:"window_start"`
	}
	_ = json.Unmarshal(value, &w)
	return fmt.Sprintf("%s@%d", key, w.Start)
}

// eventIdent names an event by its id.
func eventIdent(_, value []byte) string {
	var e struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(value, &e)
	return e.ID
}

// diffMirror compares, partition by partition, the mirror with what an
// uninterrupted run writes and describes every difference: records missing
// or extra, twice, or different (bytes, timestamp or provenance).
func diffMirror(want map[int32][]mirrored, got map[int32][]*kgo.Record, ident func(key, value []byte) string) []string {
	var problems []string
	parts := make(map[int32]bool)
	for p := range want {
		parts[p] = true
	}
	for p := range got {
		parts[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(parts)) {
		ws, gs := want[p], got[p]
		if len(ws) != len(gs) {
			problems = append(problems, fmt.Sprintf("partition %d: %d records mirrored, %d expected", p, len(gs), len(ws)))
		}
		wantIDs := make(map[string]int)
		for _, w := range ws {
			wantIDs[ident(w.key, w.value)]++
		}
		gotIDs := make(map[string][]int64) // ident -> destination offsets
		for _, r := range gs {
			id := ident(r.Key, r.Value)
			gotIDs[id] = append(gotIDs[id], r.Offset)
		}
		var twice, missing, extra []string
		for id, offs := range gotIDs {
			if len(offs) > 1 && len(offs) > wantIDs[id] {
				twice = append(twice, fmt.Sprintf("%s at destination offsets %v", id, offs))
			}
			if wantIDs[id] == 0 {
				extra = append(extra, fmt.Sprintf("%s at destination offsets %v", id, offs))
			}
		}
		for id := range wantIDs {
			if len(gotIDs[id]) == 0 {
				missing = append(missing, id)
			}
		}
		for _, l := range []struct {
			what string
			ids  []string
		}{{"twice", twice}, {"missing", missing}, {"not expected", extra}} {
			if len(l.ids) > 0 {
				problems = append(problems, fmt.Sprintf("partition %d: %d %s, e.g. %s", p, len(l.ids), l.what, strings.Join(l.ids[:min(len(l.ids), 5)], "; ")))
			}
		}
		for i := range min(len(ws), len(gs)) {
			w, r := ws[i], gs[i]
			o, ok, err := provenance.Find(r)
			var why []string
			if !bytes.Equal(w.key, r.Key) {
				why = append(why, "key")
			}
			if !bytes.Equal(w.value, r.Value) {
				why = append(why, "value")
			}
			if w.ts != r.Timestamp.UnixMilli() {
				why = append(why, "timestamp")
			}
			if !ok || err != nil || o.Partition != p || o.Offset != w.offset {
				why = append(why, fmt.Sprintf("provenance (%v %v %+v)", ok, err, o))
			}
			if len(why) > 0 {
				problems = append(problems, fmt.Sprintf("partition %d: the first difference is record %d (destination offset %d): %s differ(s):\n  want key %s ts %d source offset %d value %s\n  got  key %s ts %d value %s",
					p, i, r.Offset, strings.Join(why, ", "), w.key, w.ts, w.offset, w.value, r.Key, r.Timestamp.UnixMilli(), r.Value))
				break
			}
		}
	}
	return problems
}

func requireNoProblems(t *testing.T, problems []string) {
	t.Helper()
	if len(problems) > 0 {
		t.Fatalf("the mirror differs from an uninterrupted run:\n%s", strings.Join(problems, "\n"))
	}
}
