package status_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/status/statustest"
	"github.com/edgelink/edgelink/internal/testbed"
)

func logger(*testing.T) *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

var fastOpts = link.Options{CommitInterval: 30 * time.Millisecond, DiscoveryInterval: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}

func produce(t *testing.T, seeds []string, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	require.NoError(t, err)
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "m%d", i%5), Value: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
}

// runModel runs m until the test ends.
func runModel(t *testing.T, m *status.Model) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { m.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestLinksComeAndGo: the model shows the links that exist now. A link
// that goes leaves the snapshot and the model's per-link work (its source
// watch, its samples); a link that comes is shown, followed, and counted by
// Ready from its start.
func TestLinksComeAndGo(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp", "alerts"))
	dst := testbed.StartFake(t)
	cfg := statustest.TwoLinks(t, src.ListenAddrs(), dst.ListenAddrs(), "plant-1")
	up := link.New(cfg, cfg.Links[0], fastOpts, logger(t))
	source := &statustest.Links{}
	source.Set(cfg, up)
	m := status.New(status.Options{Links: source, Logger: logger(t), SampleInterval: 100 * time.Millisecond})
	runModel(t, m)
	upRun := statustest.RunLinks(t, up)
	produce(t, src.ListenAddrs(), "sensors.temp", 10)
	produce(t, src.ListenAddrs(), "alerts", 5)

	testbed.Eventually(t, 30*time.Second, func() error {
		if ok, reason := m.Ready(); !ok {
			return fmt.Errorf("not ready: %s", reason)
		}
		if w := status.Watched(m); len(w) != 1 || w[0] != "up" {
			return fmt.Errorf("watched %v", w)
		}
		return nil
	})
	snap := m.Snapshot()
	require.Len(t, snap.Links, 1)
	require.Equal(t, "up", snap.Links[0].Name)

	// up goes, alerts-up comes (with another site).
	next := statustest.TwoLinks(t, src.ListenAddrs(), dst.ListenAddrs(), "plant-2")
	upRun.Stop()
	alerts := link.New(next, next.Links[1], fastOpts, logger(t))
	source.Set(next, alerts)
	testbed.Eventually(t, 10*time.Second, func() error {
		if w := status.Watched(m); len(w) != 1 || w[0] != "alerts-up" {
			return fmt.Errorf("watched %v", w)
		}
		return nil
	})
	snap = m.Snapshot()
	require.Equal(t, "plant-2", snap.Site)
	require.Len(t, snap.Links, 1)
	require.Equal(t, "alerts-up", snap.Links[0].Name)
	require.Equal(t, "edge", snap.Links[0].From)
	ok, reason := m.Ready()
	require.False(t, ok, "a new link counts from its start")
	require.Contains(t, reason, "link alerts-up has not connected yet")

	statustest.RunLinks(t, alerts)
	testbed.Eventually(t, 30*time.Second, func() error {
		if ok, reason := m.Ready(); !ok {
			return fmt.Errorf("not ready: %s", reason)
		}
		if r := m.Snapshot().Links[0].Records; r != 5 {
			return fmt.Errorf("alerts-up records %v", r)
		}
		if s := status.Sampled(m); len(s) != 1 || s[0] != alerts {
			return fmt.Errorf("%d links sampled", len(s))
		}
		return nil
	})

	// Every link gone: nothing followed, and ready.
	source.Set(next)
	testbed.Eventually(t, 10*time.Second, func() error {
		if w := status.Watched(m); len(w) != 0 {
			return fmt.Errorf("watched %v", w)
		}
		return nil
	})
	ok, _ = m.Ready()
	require.True(t, ok)
	require.Empty(t, m.Snapshot().Links)
}

// TestReadiness: a model without links is ready, until it is stopping:
// Stopping, or the end of Run.
func TestReadiness(t *testing.T) {
	m := status.New(status.Options{Version: "v1.2.3"})
	ok, reason := m.Ready()
	require.True(t, ok, reason)
	snap := m.Snapshot()
	require.True(t, snap.Ready)
	require.Equal(t, "v1.2.3", snap.Version)
	require.NotNil(t, snap.Links, "links is [] in JSON, never null")
	require.Empty(t, snap.Links)
	m.Stopping()
	ok, reason = m.Ready()
	require.False(t, ok)
	require.Equal(t, "stopping", reason)

	m = status.New(status.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m.Run(ctx)
	ok, reason = m.Ready()
	require.False(t, ok)
	require.Equal(t, "stopping", reason)
}

// TestDataLossDuringOutageFake: the snapshot reports each topic's
// retention and backlog age; while the link is down (here: stopped) and the
// source gains records, the estimated backlog ages and the time until data
// loss shrinks by the time since the link's last measurement.
func TestDataLossDuringOutageFake(t *testing.T) {
	src := testbed.StartFake(t)
	dst := testbed.StartFake(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(src.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	resp, err := kadm.NewClient(cl).CreateTopic(t.Context(), 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "sensors.temp")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	cfg := statustest.TwoLinks(t, src.ListenAddrs(), dst.ListenAddrs(), "plant-1")
	up := link.New(cfg, cfg.Links[0], fastOpts, logger(t))
	m := status.New(status.Options{Links: status.Static(cfg, up), Logger: logger(t), SampleInterval: 100 * time.Millisecond})
	runModel(t, m)
	run := statustest.RunLinks(t, up)
	produce(t, src.ListenAddrs(), "sensors.temp", 10)

	testbed.Eventually(t, 30*time.Second, func() error {
		ls := m.Snapshot().Links[0]
		if len(ls.Topics) != 1 || ls.Topics[0].Records != 10 || ls.Backlog.Records != 0 {
			return fmt.Errorf("topics %+v, backlog %d", ls.Topics, ls.Backlog.Records)
		}
		return nil
	})
	ls := m.Snapshot().Links[0]
	require.NotNil(t, ls.Topics[0].RetentionSeconds)
	require.Equal(t, 3600.0, *ls.Topics[0].RetentionSeconds)
	require.Zero(t, ls.Topics[0].BacklogAgeSeconds)
	require.Nil(t, ls.Backlog.DataLossInSeconds, "no backlog, no data loss ahead")

	run.Stop()
	// Once the link's last measurement is stale, the model estimates the
	// backlog from what the source gains.
	testbed.Eventually(t, 10*time.Second, func() error {
		if b := m.Snapshot().Links[0].Backlog; !b.Estimated {
			return fmt.Errorf("backlog %+v", b)
		}
		return nil
	})
	produce(t, src.ListenAddrs(), "sensors.temp", 5)
	testbed.Eventually(t, 10*time.Second, func() error {
		if b := m.Snapshot().Links[0].Backlog; !b.Estimated || b.Records != 5 {
			return fmt.Errorf("backlog %+v", b)
		}
		return nil
	})
	first := m.Snapshot()
	ls = first.Links[0]
	// The new records came after the last measurement: they are at most
	// that old, and retention deletes them an hour after.
	since := first.Time.Sub(*ls.Backlog.MeasuredAt).Round(time.Millisecond).Seconds()
	require.GreaterOrEqual(t, since, 3.0, "estimated once the measurement is stale")
	require.InDelta(t, since, ls.Topics[0].BacklogAgeSeconds, 0.002)
	require.NotNil(t, ls.Backlog.DataLossInSeconds)
	require.InDelta(t, 3600-since, *ls.Backlog.DataLossInSeconds, 0.002)

	testbed.Eventually(t, 5*time.Second, func() error {
		if in := *m.Snapshot().Links[0].Backlog.DataLossInSeconds; in > *ls.Backlog.DataLossInSeconds-0.5 {
			return fmt.Errorf("data loss in %vs, was %vs", in, *ls.Backlog.DataLossInSeconds)
		}
		return nil
	})
}
