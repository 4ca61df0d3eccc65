package observe_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/status/statustest"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestLinksComeAndGo: the server shows the links that exist now. A link
// that goes leaves the status, /metrics and translate; a link that comes
// is shown and counted by /readyz from its start. (The model's own
// per-link work is tested in package status.)
func TestLinksComeAndGo(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp", "alerts"))
	dst := testbed.StartFake(t)
	cfg := statustest.TwoLinks(t, src.ListenAddrs(), dst.ListenAddrs(), "plant-1")
	up := link.New(cfg, cfg.Links[0], fastOpts, logger(t))
	source := &statustest.Links{}
	source.Set(cfg, up)
	m := status.New(status.Options{Links: source, Logger: logger(t), SampleInterval: 100 * time.Millisecond})
	srv, err := observe.Listen(t.Context(), observe.Options{HTTP: cfg.HTTP, Status: m, Logger: logger(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	done := make(chan error, 1)
	wg.Go(func() { m.Run(ctx) })
	wg.Go(func() { done <- srv.Run(ctx) })
	defer func() { cancel(); wg.Wait(); require.NoError(t, <-done) }()
	f := &fixture{srv: srv, client: http.DefaultClient}
	upRun := statustest.RunLinks(t, up)
	produce(t, src.ListenAddrs(), "sensors.temp", 10)
	produce(t, src.ListenAddrs(), "alerts", 5)

	testbed.Eventually(t, 30*time.Second, func() error {
		if code, body := f.get(t, "/readyz", false); code != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", code, body)
		}
		return nil
	})
	_, scrape := f.get(t, "/metrics", true)
	require.Contains(t, scrape, `edgelink_link_records_total{link="up"}`)
	require.NotContains(t, scrape, `edgelink_link_agents{link="up"}`, "not shared yet")

	// A link its agent shares: who owns which slots, in the status and
	// the metrics.
	self, other := link.Agent{Instance: "a1", Host: "edge-1", PID: 7}, link.Agent{Instance: "b2", Host: "edge-2", PID: 9}
	up.SetSharing(link.Sharing{
		Generation: 4, Self: self, Agents: []link.Agent{self, other},
		Owners: []link.Agent{self, other, self, other, self, other},
	}, "")
	_, scrape = f.get(t, "/metrics", true)
	require.Equal(t, 4.0, metricValue(t, scrape, `edgelink_link_group_generation{link="up"}`))
	require.Equal(t, 2.0, metricValue(t, scrape, `edgelink_link_agents{link="up"}`))
	require.Equal(t, 6.0, metricValue(t, scrape, `edgelink_link_slots{link="up"}`))
	sh := f.status(t).Links[0].Sharing
	require.NotNil(t, sh)
	require.Equal(t, "edgelink-plant-1:up", sh.Group)
	require.Len(t, sh.Agents, 2)
	require.True(t, sh.Agents[0].Self)
	require.Equal(t, []int{0, 2, 4}, sh.Agents[0].Slots)
	require.Equal(t, "b2", sh.Slots[1].Owner)

	// up goes, alerts-up comes (with another site).
	next := statustest.TwoLinks(t, src.ListenAddrs(), dst.ListenAddrs(), "plant-2")
	upRun.Stop()
	alerts := link.New(next, next.Links[1], fastOpts, logger(t))
	source.Set(next, alerts)
	st := f.status(t)
	require.Equal(t, "plant-2", st.Site)
	require.Len(t, st.Links, 1)
	require.Equal(t, "alerts-up", st.Links[0].Name)
	require.Equal(t, "edge", st.Links[0].From)
	code, body := f.get(t, "/readyz", false)
	require.Equal(t, http.StatusServiceUnavailable, code, "a new link counts from its start")
	require.Contains(t, body, "link alerts-up has not connected yet")
	_, scrape = f.get(t, "/metrics", true)
	require.NotContains(t, scrape, `link="up"`, "no series of a removed link")
	code, _ = f.get(t, "/api/v1/links/up/translate?topic=sensors.temp&partition=0&offset=0", true)
	require.Equal(t, http.StatusNotFound, code)

	statustest.RunLinks(t, alerts)
	testbed.Eventually(t, 30*time.Second, func() error {
		if code, body := f.get(t, "/readyz", false); code != http.StatusOK {
			return fmt.Errorf("readyz %d: %s", code, body)
		}
		_, scrape := f.get(t, "/metrics", true)
		if v := metricValue(t, scrape, `edgelink_link_records_total{link="alerts-up"}`); v != 5 {
			return fmt.Errorf("alerts-up records %v", v)
		}
		return nil
	})
	_, scrape = f.get(t, "/metrics", true)
	require.NotContains(t, scrape, `link="up"`)

	// Every link gone: ready, and nothing shown.
	source.Set(next)
	code, _ = f.get(t, "/readyz", false)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, f.status(t).Links)
}
