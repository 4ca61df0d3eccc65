// Package statustest helps test what reads the status model: a link source
// the test changes, links run for the test, a two-link configuration.
package statustest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
)

// Links is a status.LinkSource whose configuration and links a test
// replaces with Set; the zero value has none.
type Links struct {
	mu      sync.Mutex
	cfg     *config.Config
	links   []*link.Link
	changed chan struct{}
}

// Current implements status.LinkSource.
func (c *Links) Current() (*config.Config, []*link.Link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg, c.links
}

// Changed implements status.LinkSource.
func (c *Links) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Set replaces the configuration and the links, and signals the change.
func (c *Links) Set(cfg *config.Config, links ...*link.Link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg, c.links = cfg, links
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// Running is links running until the test ends or Stop is called.
type Running struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// RunLinks runs links until the test ends or Stop is called.
func RunLinks(t *testing.T, links ...*link.Link) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel}
	for _, l := range links {
		r.wg.Go(func() { _ = l.Run(ctx) })
	}
	t.Cleanup(r.Stop)
	return r
}

// Stop stops the links and waits for them.
func (r *Running) Stop() { r.cancel(); r.wg.Wait() }

// TwoLinks is a configuration of site with two links from edge (src) to
// cloud (dst): up (sensors.*) and alerts-up (alerts).
func TwoLinks(t *testing.T, src, dst []string, site string) *config.Config {
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
