package e2e_test

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/testbed"
)

// wanClusters starts an edge cluster and a cloud cluster whose brokers the
// agent reaches only through faultnet proxies on wan (see
// testbed.Options.Proxy); the test's own clients reach both directly.
func wanClusters(t *testing.T, wan *faultnet.Network) (edge, cloud *testbed.Cluster) {
	t.Helper()
	proxy := func(target string) (string, error) {
		p, err := wan.Listen(target)
		if err != nil {
			return "", err
		}
		t.Cleanup(func() { _ = p.Close() })
		return p.Addr(), nil
	}
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge"}, testbed.Options{Name: "cloud", Proxy: proxy})
	return cs[0], cs[1]
}

// writeWANConfig is writeConfig with the cloud reached through the WAN.
func writeWANConfig(t *testing.T, edge, cloud *testbed.Cluster, linkYAML string) string {
	t.Helper()
	return writeConfigFor(t, edge.Bootstrap(), cloud.WANBootstrap(), linkYAML)
}

// TestRealKafkaChaosOverBadLink: the cloud is reached through a faulty WAN
// while producers at the edge keep writing. The link flaps every few
// seconds, goes into one long black hole, has every connection reset, the
// agent is killed with SIGKILL twice and the cloud's broker is restarted
// once. The checker must then find every committed record exactly once, in
// order, intact.
func TestRealKafkaChaosOverBadLink(t *testing.T) {
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	wan.SetLatency(5*time.Millisecond, 2*time.Millisecond)
	edge, cloud := wanClusters(t, wan)
	topics := []string{"sensors.temp", "events"}
	createTopics(t, edge, 4, nil, topics...)
	// Shorter timeouts than the lan profile's, so that each black hole is
	// noticed within a few seconds and the test stays short.
	cfg := writeWANConfig(t, edge, cloud, upLink+`    tuning: {dial_timeout: 3s, request_timeout: 3s, produce_timeout: 4s}
`)

	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	var l load
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { // plain records, a batch every 200 ms, until told to stop
		for seed := uint64(100); producing.Err() == nil; seed++ {
			if err := l.produce(gctx, t, edge, topics[:1], 800, seed); err != nil {
				return err
			}
			select {
			case <-producing.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		return nil
	})
	g.Go(func() error { // transactions, every fourth aborted
		for seed := uint64(1000); producing.Err() == nil; seed++ {
			if err := l.transact(gctx, edge, "events", 4, 100, seed); err != nil {
				return err
			}
			select {
			case <-producing.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
		return nil
	})

	step := func(format string, args ...any) {
		t.Logf("chaos: "+format+" (%d records produced)", append(args, l.records.Load()+l.committed.Load())...)
	}
	flap := func(n int, up, down time.Duration) {
		for range n {
			time.Sleep(up)
			wan.Cut()
			time.Sleep(down)
			wan.Restore()
		}
	}
	a := startAgent(t, "agent-0", cfg)
	step("flapping: 5 x (3s up, 2s black hole)")
	flap(5, 3*time.Second, 2*time.Second)

	step("kill -9 #1")
	requireRunning(t, a)
	a.kill()
	a = startAgent(t, "agent-1", cfg)
	time.Sleep(3 * time.Second)

	step("long black hole: 25s")
	wan.Cut()
	testbed.Eventually(t, 20*time.Second, func() error {
		for _, m := range a.logsWith("link state changed") {
			if m["to"] == "disconnected" {
				return nil
			}
		}
		return fmt.Errorf("agent has not reported the outage")
	})
	time.Sleep(10 * time.Second)
	wan.Restore()
	time.Sleep(3 * time.Second)
	step("reset of every connection")
	wan.Reset()
	time.Sleep(2 * time.Second)

	step("cloud broker restart")
	b := cloud.Brokers[0]
	b.Stop(10 * time.Second)
	time.Sleep(2 * time.Second)
	require.NoError(t, b.Start())
	rctx, rcancel := context.WithTimeout(ctx, 90*time.Second)
	require.NoError(t, cloud.WaitReady(rctx))
	rcancel()
	time.Sleep(2 * time.Second)

	step("kill -9 #2")
	requireRunning(t, a)
	a.kill()
	a = startAgent(t, "agent-2", cfg)
	step("flapping: 3 x (2s up, 1s black hole)")
	flap(3, 2*time.Second, time.Second)

	stopProducing()
	require.NoError(t, g.Wait(), "load")
	step("load stopped; %d aborted transactional records", l.aborted.Load())

	rep := checkUntilClean(t, edge, cloud, pairsFor(topics...), 3*time.Minute, nil)
	requireClean(t, rep)
	require.EqualValues(t, l.records.Load()+l.committed.Load(), rep.SourceRecords)
	require.EqualValues(t, rep.SourceRecords, rep.DestinationRecords)
	requireRunning(t, a)
	code, _ := a.stop()
	require.Equal(t, 0, code)
}

// requireRunning fails the test if the agent exited on its own.
func requireRunning(t *testing.T, a *agent) {
	t.Helper()
	select {
	case <-a.done:
		t.Fatalf("agent %s exited on its own: %v", a.name, a.err)
	default:
	}
}

// arrival is one record as a destination consumer received it.
type arrival struct {
	topic string
	at    time.Time
}

// TestRealKafkaPriorityBandwidthEdgeLatency: alerts (priority 10) and raw
// telemetry (default priority 1) accumulate at the edge while the WAN is
// cut; the edge's producers are not slowed meanwhile. After the link
// returns, the last alert arrives before most of the raw backlog, and the
// bytes sent to the cloud, measured at the WAN proxy, stay within 15% of the
// link's bandwidth budget.
func TestRealKafkaPriorityBandwidthEdgeLatency(t *testing.T) {
	const (
		budget   = 1_000_000 // bytes per second: 8Mbit/s
		rawBytes = 16 << 20
		alerts   = 200
	)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	edge, cloud := wanClusters(t, wan)
	createTopics(t, edge, 6, nil, "raw")
	createTopics(t, edge, 2, nil, "alerts")
	cfg := writeWANConfig(t, edge, cloud, `  - name: up
    from: edge
    to: cloud
    topics: {include: ['alerts', 'raw']}
    rename: "{site}.{topic}"
    priorities: [{match: alerts, priority: 10}]
    bandwidth: 8Mbit/s
    compression: none
    tuning: {dial_timeout: 3s, request_timeout: 3s, produce_timeout: 4s}
`)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cl, err := edge.Client(kgo.ProducerLinger(0))
	require.NoError(t, err)
	defer cl.Close()
	probe := func(n int) []time.Duration { // one acknowledged record every 20 ms
		out := make([]time.Duration, 0, n)
		for i := range n {
			began := time.Now()
			r := &kgo.Record{Topic: "raw", Key: []byte("probe"), Value: fmt.Appendf(nil, "probe-%d", i)}
			require.NoError(t, cl.ProduceSync(ctx, r).FirstErr())
			out = append(out, time.Since(began))
			time.Sleep(20 * time.Millisecond)
		}
		return out
	}
	baseline := probe(100)

	a := startAgent(t, "agent", cfg)
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "alerts", Value: []byte("first")}).FirstErr())
	dst, err := cloud.Client(
		kgo.ConsumeTopics("plant-1.alerts", "plant-1.raw"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	require.NoError(t, err)
	defer dst.Close()
	var (
		mu       sync.Mutex
		arrivals []arrival
	)
	consumed := make(chan struct{})
	go func() { // owns dst's polling until ctx ends
		defer close(consumed)
		for ctx.Err() == nil {
			fs := dst.PollFetches(ctx)
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) { arrivals = append(arrivals, arrival{r.Topic, now}) })
			mu.Unlock()
		}
	}()
	arrived := func() []arrival {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(arrivals)
	}
	testbed.Eventually(t, time.Minute, func() error {
		if len(arrived()) == 0 {
			return fmt.Errorf("the first alert has not arrived")
		}
		return nil
	})

	// The outage: raw telemetry and alerts pile up at the edge while the
	// edge's own producers keep their latency.
	wan.Cut()
	var during []time.Duration
	var g errgroup.Group
	g.Go(func() error { during = probe(150); return nil })
	rng := rand.New(rand.NewPCG(7, 7))
	raw, rawRecords := 0, 0
	for i := 0; raw < rawBytes; i++ {
		recs := make([]*kgo.Record, 0, 500)
		for range 500 {
			v := make([]byte, 1024)
			_, _ = crand.Read(v) // incompressible, so wire bytes follow payload
			recs = append(recs, &kgo.Record{Topic: "raw", Key: fmt.Appendf(nil, "m%d", rng.IntN(40)), Value: v})
			raw += len(v)
			rawRecords++
		}
		require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
		if i%4 == 0 {
			recs := make([]*kgo.Record, 10)
			for j := range recs {
				recs[j] = &kgo.Record{Topic: "alerts", Key: fmt.Appendf(nil, "m%d", j), Value: fmt.Appendf(nil, "alert-%d-%d", i, j)}
			}
			require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
		}
	}
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "alerts", Value: []byte("last")}).FirstErr())
	require.NoError(t, g.Wait())
	p99 := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)*99/100]
	}
	t.Logf("edge produce latency p99: %s before the agent ran, %s during the outage", p99(baseline), p99(during))
	require.Less(t, p99(during), 750*time.Millisecond, "edge producers slowed during the outage")
	time.Sleep(3 * time.Second) // the agent has noticed the black hole by now

	before := len(arrived())
	wan.Restore()
	// The drain: wait for the first raw record of the backlog, then measure
	// what crosses the WAN towards the cloud.
	testbed.Eventually(t, time.Minute, func() error {
		for _, a := range arrived()[before:] {
			if a.topic == "plant-1.raw" {
				return nil
			}
		}
		return fmt.Errorf("the backlog has not started to drain")
	})
	time.Sleep(2 * time.Second)
	up0, t0 := wan.Stats().Up, time.Now()
	time.Sleep(6 * time.Second)
	up1, t1 := wan.Stats().Up, time.Now()
	rate := float64(up1-up0) / t1.Sub(t0).Seconds()
	t.Logf("bytes towards the cloud during the drain: %.0f B/s against a budget of %d B/s (%.1f%%)", rate, budget, 100*rate/budget)
	require.InDelta(t, budget, rate, 0.15*budget, "bandwidth at the proxy")

	// Every record of the outage arrives, the alerts first.
	wantRaw := 100 + 150 + rawRecords // probes before and during the outage, and the backlog
	testbed.Eventually(t, 2*time.Minute, func() error {
		n := 0
		for _, a := range arrived() {
			if a.topic == "plant-1.raw" {
				n++
			}
		}
		if n < wantRaw {
			return fmt.Errorf("%d of %d raw records arrived", n, wantRaw)
		}
		return nil
	})
	after := arrived()[before:]
	lastAlert, rawSeen, rawAtLastAlert := -1, 0, 0
	rawTotal := 0
	for _, a := range after {
		if a.topic == "plant-1.raw" {
			rawTotal++
		}
	}
	for i, a := range after {
		switch a.topic {
		case "plant-1.raw":
			rawSeen++
		case "plant-1.alerts":
			lastAlert, rawAtLastAlert = i, rawSeen
		}
	}
	require.GreaterOrEqual(t, lastAlert, 0, "no alert arrived after the outage")
	t.Logf("the last alert arrived after %d of %d raw records of the backlog (arrival %d of %d)", rawAtLastAlert, rawTotal, lastAlert+1, len(after))
	require.Less(t, rawAtLastAlert, rawTotal/2, "alerts should arrive before most of the raw backlog")

	cancel()
	<-consumed
	code, _ := a.stop()
	require.Equal(t, 0, code)
}
