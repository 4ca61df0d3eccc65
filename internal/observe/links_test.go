package observe_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
)

// changingLinks is a LinkSource whose links the test replaces.
type changingLinks struct {
	mu      sync.Mutex
	cfg     *config.Config
	links   []*link.Link
	changed chan struct{}
}

func (c *changingLinks) Current() (*config.Config, []*link.Link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg, c.links
}

func (c *changingLinks) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *changingLinks) set(cfg *config.Config, links ...*link.Link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg, c.links = cfg, links
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// running runs links until the test ends or stop is called.
type running struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func runLinks(t *testing.T, links ...*link.Link) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel}
	for _, l := range links {
		r.wg.Go(func() { _ = l.Run(ctx) })
	}
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() { r.cancel(); r.wg.Wait() }

func twoLinks(t *testing.T, src, dst []string, site string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`site: %s
clusters:
  edge: {bootstrap: [%q]}
  cloud: {bootstrap: [%q]}
links:
  - name: up
    from: edge
    to: cloud
    topics: {include: ['sensors\..*']}
  - name: alerts-up
    from: edge
    to: cloud
    topics: {include: [alerts]}
http:
  listen: "127.0.0.1:0"
`, site, strings.Join(src, ","), strings.Join(dst, ","))
	cfg, err := config.Parse("test.yaml", []byte(y))
	require.NoError(t, err)
	return cfg
}

// TestLinksComeAndGo: the server shows the links that exist now. A link
// that goes leaves the status, /metrics and translate; a link that comes
// is shown and counted by /readyz from its start. (The model's own
// per-link work is tested in package status.)
func TestLinksComeAndGo(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp", "alerts"))
	dst := testbed.StartFake(t)
	cfg := twoLinks(t, src.ListenAddrs(), dst.ListenAddrs(), "plant-1")
	up := link.New(cfg, cfg.Links[0], fastOpts, logger(t))
	source := &changingLinks{}
	source.set(cfg, up)
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
	upRun := runLinks(t, up)
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

	// up goes, alerts-up comes (with another site).
	next := twoLinks(t, src.ListenAddrs(), dst.ListenAddrs(), "plant-2")
	upRun.stop()
	alerts := link.New(next, next.Links[1], fastOpts, logger(t))
	source.set(next, alerts)
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

	runLinks(t, alerts)
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
	source.set(next)
	code, _ = f.get(t, "/readyz", false)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, f.status(t).Links)
}
