package link_test

import (
	"context"
	"errors"
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
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// TestLinkSurvivesWANFaultsFake: the destination is reached through a
// faulty network (latency, two black holes, a reset of every connection)
// while the source keeps receiving records; the checker finds every record
// exactly once.
func TestLinkSurvivesWANFaultsFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.temp"))
	dst := testbed.StartFake(t)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	wan.SetDialTimeout(2 * time.Second)
	wan.SetLatency(20*time.Millisecond, 5*time.Millisecond)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	opts := fastOpts
	opts.DestinationDialer = wan.Dialer()
	l, stop := runLink(t, cfg, opts)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // the edge keeps writing throughout
		cl, err := kgo.NewClient(kgo.SeedBrokers(src.ListenAddrs()...))
		if err != nil {
			return err
		}
		defer cl.Close()
		for i := range 60 {
			recs := make([]*kgo.Record, 50)
			for j := range recs {
				recs[j] = &kgo.Record{Topic: "sensors.temp", Key: fmt.Appendf(nil, "m%d", j%9), Value: fmt.Appendf(nil, "%d-%d", i, j)}
			}
			if err := cl.ProduceSync(gctx, recs...).FirstErr(); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	wan.Cut()
	time.Sleep(2 * time.Second)
	wan.Restore()
	time.Sleep(500 * time.Millisecond)
	wan.Reset()
	time.Sleep(500 * time.Millisecond)
	wan.Cut()
	time.Sleep(1500 * time.Millisecond)
	wan.Restore()
	require.NoError(t, g.Wait())

	sc, dc := mustClient(t, src.ListenAddrs()), mustClient(t, dst.ListenAddrs())
	var rep *verify.Report
	testbed.Eventually(t, 90*time.Second, func() error {
		var err error
		rep, err = verify.Check(ctx, verify.Options{Source: sc, Destination: dc, Topics: []verify.Pair{{Source: "sensors.temp", Destination: "sensors.temp"}}})
		if err != nil {
			return err
		}
		if !rep.OK() {
			return fmt.Errorf("%s", rep.Discrepancies())
		}
		return nil
	})
	require.EqualValues(t, 3000, rep.SourceRecords)
	require.EqualValues(t, 3000, rep.DestinationRecords)
	require.Positive(t, wan.Stats().Up)
	testbed.Eventually(t, 10*time.Second, func() error { return isLive(l) })
	require.NoError(t, stop())
	require.Equal(t, link.StateStopped, l.Status().State)
}

// TestBandwidthBudgetFake: bytes sent to the destination, measured on the
// network, stay within 15% of the link's budget while it drains a backlog.
func TestBandwidthBudgetFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.raw"))
	dst := testbed.StartFake(t)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	// 1.6 Mbit/s = 200,000 B/s.
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    bandwidth: 1.6Mbit/s\n    compression: none")
	require.EqualValues(t, 200_000, cfg.Links[0].Bandwidth)
	cl := mustClient(t, src.ListenAddrs())
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []*kgo.Record
	for range 1500 { // 1.5 MB of incompressible values
		v := make([]byte, 1000)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		recs = append(recs, &kgo.Record{Topic: "sensors.raw", Value: v})
	}
	require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
	opts := fastOpts
	opts.DestinationDialer = wan.Dialer()
	opts.MaxTransactionBytes = 50_000 // commits every quarter second at this budget
	l, stop := runLink(t, cfg, opts)
	defer func() { require.NoError(t, stop()) }()
	// Measure over a 3 s window once the link is draining.
	testbed.Eventually(t, 10*time.Second, func() error {
		if l.Status().Records == 0 {
			return fmt.Errorf("nothing copied yet")
		}
		return nil
	})
	before, began := wan.Stats().Up, time.Now()
	time.Sleep(3 * time.Second)
	rate := float64(wan.Stats().Up-before) / time.Since(began).Seconds()
	t.Logf("measured %.0f B/s to the destination, budget 200000 B/s", rate)
	require.InEpsilon(t, 200_000, rate, 0.15, "measured %.0f B/s to the destination", rate)
	require.Positive(t, l.Status().BacklogRecords, "still draining at the end of the window")
}

// outage is a first instance of a link that lost its destination.
type outage struct {
	src, dst  []string
	wan       *faultnet.Network
	cfg       *config.Config
	first     *link.Link
	stopFirst func() error
	recs      []srcRec
}

// startOutage runs a first instance of a shared link holding every slot
// through a faulty network, mirrors some records, then refuses its
// destination connections and waits until it reports disconnected, while
// more records reach the source.
func startOutage(t *testing.T) *outage {
	t.Helper()
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	o := &outage{src: src.ListenAddrs(), dst: dst.ListenAddrs(), wan: faultnet.New(nil)}
	t.Cleanup(func() { _ = o.wan.Close() })
	o.wan.SetDialTimeout(time.Second)
	o.cfg = linkConfig(t, o.src, o.dst, "")
	opts := fastOpts
	opts.DestinationDialer = o.wan.Dialer()
	opts.Shared = true
	o.first = link.New(o.cfg, o.cfg.Links[0], opts, testLogger(t))
	o.first.Assign(allSlots(o.first)...)
	o.stopFirst = start(t, o.first)
	o.mirror(t, "a", 50)

	o.wan.Refuse(true)
	o.wan.Reset()
	o.recs = append(o.recs, produce(t, o.src, "alerts", 2, 20, "b")...)
	waitState(t, o.first, link.StateDisconnected)
	return o
}

// mirror produces n records per partition tagged tag and waits until the
// destination holds every record produced so far.
func (o *outage) mirror(t *testing.T, tag string, n int) {
	t.Helper()
	o.recs = append(o.recs, produce(t, o.src, "alerts", 2, n, tag)...)
	requireMirrored(t, o.recs, readAll(t, o.dst, "alerts", len(o.recs)), "alerts")
}

// allSlots lists every slot of l.
func allSlots(l *link.Link) []int {
	out := make([]int, l.SlotCount())
	for i := range out {
		out[i] = i
	}
	return out
}

// TestSlotsHandedOverDuringAnOutageFake: the group moves every slot of an
// agent cut off from the destination to another agent; when its network
// returns it holds nothing and fences nobody, and the other agent's copy
// stays exact. (A zombie that was never told is fenced by the other's
// producers instead: see TestZombieSlotIsFencedFake.)
func TestSlotsHandedOverDuringAnOutageFake(t *testing.T) {
	o := startOutage(t)
	require.NoError(t, o.first.Release(t.Context(), allSlots(o.first)...), "no session: released at once")
	opts := fastOpts
	opts.Shared = true
	second := link.New(o.cfg, o.cfg.Links[0], opts, testLogger(t))
	second.Assign(allSlots(second)...)
	stopSecond := start(t, second)
	o.mirror(t, "c", 20)

	o.wan.Refuse(false)
	waitState(t, o.first, link.StateLive)
	require.Empty(t, o.first.Held())
	o.mirror(t, "d", 20)
	require.Len(t, second.Held(), second.SlotCount())
	for _, e := range second.Events() {
		require.NotContains(t, e.Message, "fenced")
	}
	require.NoError(t, stopSecond())
	require.NoError(t, o.stopFirst())
}

// TestZombieSlotIsFencedFake: an agent that still holds a slot the group
// gave to another (it has not noticed yet) is fenced by the other's
// producer: its commits fail, it drops the slot without opening it again,
// and every record arrives once.
func TestZombieSlotIsFencedFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	opts := fastOpts
	opts.Shared = true
	zombie := link.New(cfg, cfg.Links[0], opts, testLogger(t))
	zombie.Assign(allSlots(zombie)...)
	stopZombie := start(t, zombie)
	recs := produce(t, src.ListenAddrs(), "alerts", 2, 30, "a")
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")

	owner := link.New(cfg, cfg.Links[0], opts, testLogger(t))
	owner.Assign(allSlots(owner)...)
	stopOwner := start(t, owner)
	testbed.Eventually(t, 30*time.Second, func() error {
		if n := len(owner.Held()); n != owner.SlotCount() {
			return fmt.Errorf("the new owner holds %d slots", n)
		}
		return nil
	})
	recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 2, 30, "b")...)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	// The zombie meets the fence on its next commit of the partitions
	// that received records, and drops those slots.
	testbed.Eventually(t, 30*time.Second, func() error {
		if held := zombie.Held(); len(held) == zombie.SlotCount() {
			return fmt.Errorf("the zombie still holds every slot")
		}
		return nil
	})
	require.NotEqual(t, link.StateFailed, zombie.Status().State, "a shared link is not stopped by a fence")
	recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 2, 30, "c")...)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stopOwner())
	require.NoError(t, stopZombie())
}

func waitState(t *testing.T, l *link.Link, want link.State) {
	t.Helper()
	testbed.Eventually(t, 30*time.Second, func() error {
		if s := l.Status(); s.State != want {
			return fmt.Errorf("link is %s, want %s", s.State, want)
		}
		return nil
	})
}

// TestBlackHoleWhileProducerBufferFullFake: the destination goes silent
// while the producer's buffer is full, so that Produce itself waits; the
// link still notices the outage within its dial timeout, and replicates
// every record exactly once when the network returns.
func TestBlackHoleWhileProducerBufferFullFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "sensors.raw"))
	dst := testbed.StartFake(t)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	wan.SetDialTimeout(time.Second)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    tuning: {dial_timeout: 1s, request_timeout: 1s, produce_timeout: 1s}")
	opts := fastOpts
	opts.DestinationDialer = wan.Dialer()
	l := link.New(cfg, cfg.Links[0], opts, testLogger(t))
	link.SetProduceBuffer(l, 16<<10)
	stop := start(t, l)
	recs := produce(t, src.ListenAddrs(), "sensors.raw", 2, 10, "a")
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "sensors.raw", len(recs)), "sensors.raw")

	wan.Cut()
	// About 240 KB: far more than the buffer, less than one transaction.
	recs = append(recs, produce(t, src.ListenAddrs(), "sensors.raw", 2, 2000, "b")...)
	waitState(t, l, link.StateDisconnected)
	wan.Restore()
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "sensors.raw", len(recs)), "sensors.raw")
	require.NoError(t, stop())
}

// TestHalfOpenConnectionsFake: every connection to the destination stays
// open but stops answering (a peer that vanished without a reset); the link
// gives up on them within its request timeouts, reconnects and replicates
// every record exactly once.
func TestHalfOpenConnectionsFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    tuning: {dial_timeout: 2s, request_timeout: 2s, produce_timeout: 2s}")
	opts := fastOpts
	opts.DestinationDialer = wan.Dialer()
	_, stop := runLink(t, cfg, opts)
	recs := produce(t, src.ListenAddrs(), "alerts", 2, 50, "a")
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")

	wan.HalfOpen()
	began := time.Now()
	recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 2, 50, "b")...)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	t.Logf("replicating again %s after the connections went half-open", time.Since(began).Round(100*time.Millisecond))
	require.NoError(t, stop())
}

// TestUnresolvableDestinationFake: a destination whose name does not
// resolve is an outage like any other: the link reports it as disconnected
// with the resolver's error within its timeouts, keeps retrying, and stops
// cleanly.
func TestUnresolvableDestinationFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	cfg := linkConfig(t, src.ListenAddrs(), []string{"cloud.invalid:9092"}, "    tuning: {dial_timeout: 2s, request_timeout: 2s}")
	l, stop := runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 15*time.Second, func() error {
		s := l.Status()
		if s.State != link.StateDisconnected || !strings.Contains(s.LastError, "cloud.invalid") {
			return fmt.Errorf("state %s, last error %q", s.State, s.LastError)
		}
		return nil
	})
	require.NoError(t, stop())
	require.Equal(t, link.StateStopped, l.Status().State)
}

// TestSourceTopicDeletedWhileRunningFake: a source topic deleted while the
// link runs stops being replicated (its mirror stays as it is); the other
// topics carry on, and a topic of the same name created again later is
// replicated from its start.
func TestSourceTopicDeletedWhileRunningFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts", "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	l, stop := runLink(t, cfg, fastOpts)
	alerts := produce(t, src.ListenAddrs(), "alerts", 2, 20, "a")
	temp := produce(t, src.ListenAddrs(), "sensors.temp", 2, 20, "t")
	requireMirrored(t, alerts, readAll(t, dst.ListenAddrs(), "alerts", len(alerts)), "alerts")
	requireMirrored(t, temp, readAll(t, dst.ListenAddrs(), "sensors.temp", len(temp)), "sensors.temp")

	adm := kadm.NewClient(mustClient(t, src.ListenAddrs()))
	_, err := adm.DeleteTopics(t.Context(), "sensors.temp")
	require.NoError(t, err)
	time.Sleep(time.Second) // a few discovery passes
	alerts = append(alerts, produce(t, src.ListenAddrs(), "alerts", 2, 20, "b")...)
	requireMirrored(t, alerts, readAll(t, dst.ListenAddrs(), "alerts", len(alerts)), "alerts")
	require.NotEqual(t, link.StateFailed, l.Status().State)

	_, err = adm.CreateTopic(t.Context(), 2, 1, nil, "sensors.temp")
	require.NoError(t, err)
	again := produce(t, src.ListenAddrs(), "sensors.temp", 2, 10, "c")
	temp = append(temp, again...)
	// The mirror holds the old topic's records, then the new topic's, from
	// its offset 0 on (requireMirrored orders by offset, which repeats).
	got := readAll(t, dst.ListenAddrs(), "sensors.temp", len(temp))
	require.Len(t, got, len(temp))
	tail := map[int32][]*kgo.Record{}
	for _, r := range got {
		tail[r.Partition] = append(tail[r.Partition], r)
	}
	for p, rs := range tail {
		var want []srcRec
		for _, s := range again {
			if s.partition == p {
				want = append(want, s)
			}
		}
		rs = rs[len(rs)-len(want):]
		for i, s := range want {
			o, ok, err := provenance.Find(rs[i])
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, s.offset, o.Offset)
			require.Equal(t, string(s.value), string(rs[i].Value))
		}
	}
	require.NoError(t, stop())
}

// TestStopUnderLoadLosesNothingFake: stops arrive at random moments while
// records stream in over a slow destination link, often while a
// transaction commits. A stop drains: the transaction under way commits and
// nothing is checkpointed beyond what was committed, so the next run
// copies every record exactly once. (A stop that cut a commit short once
// aborted it and then wrote the advanced checkpoints alone: records lost.)
func TestStopUnderLoadLosesNothingFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	wan.SetLatency(20*time.Millisecond, 0)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	opts := fastOpts
	opts.DestinationDialer = wan.Dialer()

	ctx, cancel := context.WithCancel(t.Context())
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		recs []srcRec
	)
	cl := mustClient(t, src.ListenAddrs())
	var loadErr error
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			batch := make([]*kgo.Record, 10)
			for j := range batch {
				batch[j] = &kgo.Record{Topic: "alerts", Partition: int32(j % 2), Value: fmt.Appendf(nil, "load-%d-%d", i, j)}
			}
			if loadErr = cl.ProduceSync(ctx, batch...).FirstErr(); loadErr != nil {
				return
			}
			mu.Lock()
			for _, r := range batch {
				recs = append(recs, srcRec{r.Topic, r.Partition, r.Offset, r.Key, r.Value, r.Headers, r.Timestamp.UnixMilli()})
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	for i := range 10 {
		l, stop := runLink(t, cfg, opts)
		testbed.Eventually(t, 30*time.Second, func() error {
			if st := l.Status(); st.Transactions < 3 {
				return fmt.Errorf("%d transactions, state %s", st.Transactions, st.State)
			}
			return nil
		})
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		require.NoError(t, stop(), "stop %d", i)
	}
	cancel()
	wg.Wait()
	if !errors.Is(loadErr, context.Canceled) {
		require.NoError(t, loadErr)
	}
	_, stop := runLink(t, cfg, opts)
	got := readAll(t, dst.ListenAddrs(), "alerts", len(recs))
	require.Equal(t, len(recs), len(got), "records mirrored")
	requireMirrored(t, recs, got, "alerts")
	require.NoError(t, stop())
}

// TestRestartOverALongLinkResumesFake: over a destination 600 ms away a
// restarted link reads its checkpoints and copies only what is new (a
// reader that gave up after a few idle polls found nothing there, and the
// link copied everything again).
func TestRestartOverALongLinkResumesFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	wan.SetLatency(300*time.Millisecond, 0)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	opts := fastOpts
	opts.DestinationDialer = wan.Dialer()
	recs := produce(t, src.ListenAddrs(), "alerts", 2, 50, "a")
	_, stop := runLink(t, cfg, opts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stop())

	recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 2, 10, "b")...)
	l, stop := runLink(t, cfg, opts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stop())
	require.EqualValues(t, 20, l.Status().Records, "only the new records are copied")
}
