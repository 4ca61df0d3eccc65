package link_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/transform"
	"github.com/edgelink/edgelink/internal/verify"
)

// machineReadings returns n readings a second of machines over dur of event
// time from base, spread over partitions by machine, with some jitter in
// the timestamps (out of order within a few seconds), and a few late ones.
func machineReadings(machines, partitions int, base time.Time, dur time.Duration, seed uint64) []*kgo.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out []*kgo.Record
	for s := range int(dur / time.Second) {
		for m := range machines {
			ts := base.Add(time.Duration(s) * time.Second).Add(time.Duration(rng.IntN(3000)-1500) * time.Millisecond)
			if rng.IntN(500) == 0 {
				ts = ts.Add(-3 * time.Minute) // late
			}
			v := fmt.Sprintf(`{"machine":"m%02d","temp":%d.%d,"rpm":%d}`, m, 20+rng.IntN(60), rng.IntN(10), 1000+rng.IntN(2000))
			out = append(out, &kgo.Record{
				Topic: "sensors.temp", Partition: int32(m % partitions),
				Key: fmt.Appendf(nil, "m%02d", m), Value: []byte(v), Timestamp: ts,
			})
		}
	}
	return out
}

// expectedWindows runs the aggregate over each partition's records in
// order, as an uninterrupted link would, and returns what it emits.
func expectedWindows(t *testing.T, spec transform.AggregateSpec, recs []*kgo.Record) (map[int32][]transform.Output, int) {
	t.Helper()
	op, err := transform.NewAggregate(spec)
	require.NoError(t, err)
	states := make(map[int32]transform.PartitionState)
	offsets := make(map[int32]int64)
	out := make(map[int32][]transform.Output)
	late := 0
	for _, r := range recs {
		st := states[r.Partition]
		if st == nil {
			st = op.Partition(r.Partition)
			st.Restore(transform.Position{Watermark: transform.NoWatermark})
			states[r.Partition] = st
		}
		res, err := st.Process(&transform.Record{Key: r.Key, Value: r.Value, Topic: r.Topic, Partition: r.Partition, Offset: offsets[r.Partition], Timestamp: r.Timestamp})
		require.NoError(t, err)
		offsets[r.Partition]++
		if res.Late {
			late++
		}
		out[r.Partition] = append(out[r.Partition], res.Emit...)
	}
	return out, late
}

// TestAggregateExactlyOnceThroughCrashesFake: 20 machines at 1 Hz over 40
// minutes of event time, rolled up into 1-minute windows per machine,
// while the link is crashed (nothing committed on the way out) and
// restarted again and again: the mirror holds exactly the windows an
// uninterrupted run emits, byte for byte, in order, once.
func TestAggregateExactlyOnceThroughCrashesFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    slots: 2
    transforms:
      - aggregate:
          window: 1m
          grace: 5s
          key: json.machine
          values: {temp: json.temp, rpm: json.rpm}
          functions: [min, max, mean, count, first, last]`)
	spec := transform.AggregateSpec{
		Window: time.Minute, Grace: 5 * time.Second, Key: "json.machine",
		Values: map[string]string{"temp": "json.temp", "rpm": "json.rpm"}, Functions: []string{"min", "max", "mean", "count", "first", "last"},
	}
	recs := machineReadings(20, 2, time.UnixMilli(1_780_000_000_000), 40*time.Minute, 1)
	want, late := expectedWindows(t, spec, recs)
	total := 0
	for _, w := range want {
		total += len(w)
	}
	require.Greater(t, total, 700)
	require.Positive(t, late)

	pcl, err := kgo.NewClient(kgo.SeedBrokers(src.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer pcl.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	const chunks = 8
	per := (len(recs) + chunks - 1) / chunks
	for c := range chunks {
		part := recs[c*per : min((c+1)*per, len(recs))]
		require.NoError(t, pcl.ProduceSync(t.Context(), part...).FirstErr())
		_, crash := runCrashable(t, cfg)
		// Crash at a random point of the copy.
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		crash()
	}
	l, stop := runLink(t, cfg, fastOpts)
	got := make(map[int32][]*kgo.Record)
	testbed.Eventually(t, time.Minute, func() error {
		n := 0
		clear(got)
		for _, r := range readAll(t, dst.ListenAddrs(), "sensors.temp", total) {
			got[r.Partition] = append(got[r.Partition], r)
			n++
		}
		if n < total {
			return fmt.Errorf("%d of %d windows mirrored; link %+v", n, total, l.Status().LastError)
		}
		return nil
	})
	for p, ws := range want {
		require.Len(t, got[p], len(ws), "partition %d: every window once", p)
		for i, w := range ws {
			r := got[p][i]
			require.Equal(t, string(w.Key), string(r.Key), "partition %d window %d", p, i)
			require.Equal(t, string(w.Value), string(r.Value), "partition %d window %d", p, i)
			require.Equal(t, w.Timestamp.UnixMilli(), r.Timestamp.UnixMilli(), "partition %d window %d", p, i)
		}
	}
	require.NoError(t, stop())

	// The checker recomputes the windows from the source: all there, once.
	derive, err := link.RecordDeriver(cfg.Links[0])
	require.NoError(t, err)
	scl, dcl := mustClient(t, src.ListenAddrs()), mustClient(t, dst.ListenAddrs())
	check := func() *verify.Report {
		rep, err := verify.Check(t.Context(), verify.Options{
			Source: scl, Destination: dcl, Derive: derive,
			Topics: []verify.Pair{{Source: "sensors.temp", Destination: "sensors.temp"}},
		})
		require.NoError(t, err)
		return rep
	}
	rep := check()
	require.True(t, rep.OK(), "%s", rep)
	require.EqualValues(t, total, rep.DestinationRecords)
	require.EqualValues(t, total, rep.SourceRecords, "the windows expected")
	// A window written twice is a duplicate.
	again := got[0][3]
	dup := &kgo.Record{Topic: again.Topic, Partition: again.Partition, Key: again.Key, Value: again.Value, Headers: again.Headers, Timestamp: again.Timestamp}
	require.NoError(t, kgoProduceTo(t, dst.ListenAddrs(), dup))
	rep = check()
	require.EqualValues(t, 1, rep.Duplicated, "%s", rep)
	require.Zero(t, rep.Lost+rep.Corrupted+rep.Phantom, "%s", rep)
}

// kgoProduceTo writes records to a cluster as they are (partition included).
func kgoProduceTo(t *testing.T, seeds []string, recs ...*kgo.Record) error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	return cl.ProduceSync(t.Context(), recs...).FirstErr()
}

// runCrashable runs a link whose crash stops it as a killed process would
// stop: nothing more is committed.
func runCrashable(t *testing.T, cfg *config.Config) (*link.Link, func()) {
	t.Helper()
	l := link.New(cfg, cfg.Links[0], fastOpts, testLogger(t))
	ctx, cancel := context.WithCancelCause(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Run(ctx) })
	var once sync.Once
	crash := func() { once.Do(func() { cancel(link.ErrCrash); wg.Wait() }) }
	t.Cleanup(crash)
	return l, crash
}

// TestDedupeAndLateThroughCrashesFake: a 10-minute dedupe over readings
// of which one in five is sent again a little later (a retrying device):
// through crashes, the mirror holds every id once, exactly the records an
// uninterrupted run keeps; late records are counted, not replicated.
func TestDedupeAndLateThroughCrashesFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    transforms:
      - dedupe: {key: json.id, horizon: 10m}`)
	base := time.UnixMilli(1_780_000_000_000)
	rng := rand.New(rand.NewPCG(3, 3))
	var recs []*kgo.Record
	add := func(id int, ts time.Time) {
		recs = append(recs, &kgo.Record{Topic: "sensors.temp", Partition: 0, Value: fmt.Appendf(nil, `{"id":%d,"temp":%d}`, id, id%90), Timestamp: ts})
	}
	for i := range 6000 {
		ts := base.Add(time.Duration(i) * 500 * time.Millisecond)
		add(i, ts)
		if rng.IntN(5) == 0 {
			add(max(i-rng.IntN(50), 0), ts.Add(time.Duration(rng.IntN(3000))*time.Millisecond)) // sent again
		}
	}
	add(7, base) // far behind by then: late
	op, err := transform.NewDedupe("json.id", 10*time.Minute)
	require.NoError(t, err)
	st := op.Partition(0)
	st.Restore(transform.Position{Watermark: transform.NoWatermark})
	var want []string
	late := 0
	for i, r := range recs {
		res, err := st.Process(&transform.Record{Value: r.Value, Topic: r.Topic, Offset: int64(i), Timestamp: r.Timestamp})
		require.NoError(t, err)
		if res.Keep {
			want = append(want, string(r.Value))
		}
		if res.Late {
			late++
		}
	}
	require.Equal(t, 1, late)
	require.Equal(t, 6000, len(want), "each id once")

	pcl, err := kgo.NewClient(kgo.SeedBrokers(src.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer pcl.Close()
	const chunks = 5
	per := (len(recs) + chunks - 1) / chunks
	for c := range chunks {
		require.NoError(t, pcl.ProduceSync(t.Context(), recs[c*per:min((c+1)*per, len(recs))]...).FirstErr())
		_, crash := runCrashable(t, cfg)
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		crash()
	}
	l, stop := runLink(t, cfg, fastOpts)
	var got []*kgo.Record
	testbed.Eventually(t, time.Minute, func() error {
		got = readAll(t, dst.ListenAddrs(), "sensors.temp", len(want))
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d mirrored; %s", len(got), len(want), l.Status().LastError)
		}
		return nil
	})
	require.Equal(t, len(want), len(got), "no duplicates")
	for i, r := range got {
		require.Equal(t, want[i], string(r.Value), "record %d", i)
	}
	require.NoError(t, stop())
}

// TestStateLimitStopsTheLinkFake: an aggregate over more keys than
// max_state holds stops the link with ErrStateLimit, naming the limit,
// rather than dropping anything.
func TestStateLimitStopsTheLinkFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    max_state: 1MiB
    transforms:
      - aggregate: {window: 1h, key: json.id, values: {v: json.v}}`)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(src.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer pcl.Close()
	var recs []*kgo.Record
	for i := range 20000 {
		recs = append(recs, &kgo.Record{Topic: "sensors.temp", Value: fmt.Appendf(nil, `{"id":"device-%06d","v":%d}`, i, i)})
	}
	require.NoError(t, pcl.ProduceSync(t.Context(), recs...).FirstErr())
	l, stop := runLink(t, cfg, fastOpts)
	err = stopWhenFailed(t, l, stop)
	require.ErrorIs(t, err, link.ErrStateLimit)
	require.ErrorContains(t, err, "max_state: 1 MiB")
	require.Zero(t, len(readAll(t, dst.ListenAddrs(), "sensors.temp", 0)), "nothing emitted (no window closed)")
}

// TestAggregateToOwnTopicFake: an aggregate with to and late topics: the
// windows go to the to topic, the late records to the late topic, and
// every raw record on to the mirror, through a crash.
func TestAggregateToOwnTopicFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    transforms:
      - aggregate:
          window: 1m
          grace: 5s
          key: json.machine
          values: {temp: json.temp}
          functions: [max, count]
          to: "{topic}.1m"
          late: "{topic}.late"`)
	spec := transform.AggregateSpec{Window: time.Minute, Grace: 5 * time.Second, Key: "json.machine", Values: map[string]string{"temp": "json.temp"}, Functions: []string{"max", "count"}}
	recs := machineReadings(10, 2, time.UnixMilli(1_780_000_000_000), 20*time.Minute, 5)
	want, late := expectedWindows(t, spec, recs)
	total := 0
	for _, w := range want {
		total += len(w)
	}
	require.Positive(t, late)
	half := len(recs) / 2
	require.NoError(t, kgoProduceTo(t, src.ListenAddrs(), recs[:half]...))
	first, crash := runCrashable(t, cfg)
	time.Sleep(300 * time.Millisecond)
	crash()
	require.NoError(t, kgoProduceTo(t, src.ListenAddrs(), recs[half:]...))
	l, stop := runLink(t, cfg, fastOpts)
	got := readAll(t, dst.ListenAddrs(), "sensors.temp.1m", total)
	require.Equal(t, total, len(got), "every window once")
	byPart := make(map[int32][]*kgo.Record)
	for _, r := range got {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	for p, ws := range want {
		for i, w := range ws {
			require.Equal(t, string(w.Value), string(byPart[p][i].Value), "partition %d window %d", p, i)
		}
	}
	require.Equal(t, late, len(readAll(t, dst.ListenAddrs(), "sensors.temp.late", late)), "the late records")
	require.Equal(t, len(recs), len(readAll(t, dst.ListenAddrs(), "sensors.temp", len(recs))), "the raw stream, whole")
	// Late records count with the commit that accounts for them: never
	// twice across the crash (a crashed run's last commits may land
	// without its status learning of them).
	time.Sleep(200 * time.Millisecond)
	require.LessOrEqual(t, first.Status().LateRecords+l.Status().LateRecords, int64(late))
	require.NoError(t, stop())
}

// TestRebuildAfterRetentionIsReportedFake: when retention deleted source
// records a restarted aggregate needs to rebuild its open windows, the
// link says so (an event naming the offsets) and goes on.
func TestRebuildAfterRetentionIsReportedFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    transforms:
      - aggregate: {window: 1h, key: json.machine, values: {temp: json.temp}}`)
	recs := machineReadings(2, 1, time.UnixMilli(1_780_000_000_000), 2*time.Minute, 9) // all in one open window
	require.NoError(t, kgoProduceTo(t, src.ListenAddrs(), recs...))
	l, stop := runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 20*time.Second, func() error {
		if n := l.Status().RecordsIn; n != int64(len(recs)) {
			return fmt.Errorf("%d of %d records in", n, len(recs))
		}
		return nil
	})
	require.NoError(t, stop())
	// Retention deletes the first half: the open window's first records.
	adm := kadm.NewClient(mustClient(t, src.ListenAddrs()))
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: "sensors.temp", Partition: 0, At: int64(len(recs) / 2)})
	_, err := adm.DeleteRecords(t.Context(), del)
	require.NoError(t, err)
	l, stop = runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 20*time.Second, func() error {
		for _, e := range l.Events() {
			if strings.Contains(e.Message, fmt.Sprintf("records 0..%d of sensors.temp[0], needed to rebuild the transform's state, were deleted", len(recs)/2-1)) {
				return nil
			}
		}
		return fmt.Errorf("no event about the rebuild: %+v", l.Events())
	})
	require.NoError(t, stop())
}
