package demo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/testbed/browser"
)

// TestStatusPageBrowser opens the demo's status page in headless Chromium:
// the link appears, its replicated counter rises, "Cut link" turns it
// disconnected while the lag grows, and "Restore link" brings the lag back
// to zero. "Kill agent" kills the second agent: the agents panel shows
// this one taking all the slots over; "Start agent" brings the second one
// back. The page's screenshot is saved as an artifact.
func TestStatusPageBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := browser.Open(t, ctx)
	bctx := p.Ctx
	d := startDemo(t, t.TempDir(), 300)

	const card = `article.link[data-link="telemetry-up"] `
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(d.URL()),
		chromedp.WaitVisible(chromedp.CSS(card+`[data-field="records"]`)),
	))
	require.Equal(t, "edge → cloud", p.Text(card+".route"))

	// The replicated counter rises.
	var first int64
	p.WaitFor("records replicated", 30*time.Second, func() error {
		if first = p.Count(card + `[data-field="records"]`); first <= 0 {
			return fmt.Errorf("replicated %q", p.Text(card+`[data-field="records"]`))
		}
		return nil
	})
	p.WaitFor("the replicated counter rises", 15*time.Second, func() error {
		if n := p.Count(card + `[data-field="records"]`); n <= first {
			return fmt.Errorf("replicated %d, was %d", n, first)
		}
		return nil
	})
	p.WaitFor("state live", 15*time.Second, func() error {
		if s := p.Text(card + `[data-field="state"]`); s != "live" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	require.NotEmpty(t, p.Text(card+`[data-field="topics"] tr[data-topic="sensors.temp"]`))

	// Cut: the link disconnects and the lag grows.
	cutAt := time.Now()
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="cut"]`))))
	p.WaitFor("the note says the link is cut", 5*time.Second, func() error {
		if !strings.Contains(p.Text(card+`[data-field="note"]`), "is cut") {
			return fmt.Errorf("note %q", p.Text(card+`[data-field="note"]`))
		}
		return nil
	})
	p.WaitFor("state disconnected", 45*time.Second, func() error {
		if s := p.Text(card + `[data-field="state"]`); s != "disconnected" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	t.Logf("disconnected %s after the click", time.Since(cutAt).Round(time.Millisecond))
	var lag int64
	p.WaitFor("a lag", 10*time.Second, func() error {
		if lag = p.Count(card + `[data-field="backlog"]`); lag <= 0 {
			return fmt.Errorf("lag %q", p.Text(card+`[data-field="backlog"]`))
		}
		return nil
	})
	p.WaitFor("the lag grows", 15*time.Second, func() error {
		if n := p.Count(card + `[data-field="backlog"]`); n < lag+300 {
			return fmt.Errorf("lag %d, was %d", n, lag)
		}
		return nil
	})
	require.Contains(t, p.Text(card+`[data-field="events"]`), "→ disconnected")

	// Restore: the lag drains to zero and the link is live again.
	restoreAt := time.Now()
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="restore"]`))))
	p.WaitFor("the lag back to zero", 60*time.Second, func() error {
		s, n := p.Text(card+`[data-field="state"]`), p.Count(card+`[data-field="backlog"]`)
		if s != "live" || n != 0 {
			return fmt.Errorf("state %q, lag %d", s, n)
		}
		return nil
	})
	t.Logf("lag back to zero %s after the click", time.Since(restoreAt).Round(time.Millisecond))
	require.Empty(t, p.Text(card+`[data-field="note"]`))
	require.Contains(t, p.Text(card+`[data-field="events"]`), "→ live")

	// Kill agent: once the killed agent's session times out, this agent
	// holds every slot.
	const agents = card + `[data-field="agents"] `
	p.WaitFor("two agents share the link", 15*time.Second, func() error {
		if rows := p.Rows(agents + `tr[data-agent]`); rows != 2 {
			return fmt.Errorf("%d agents: %q", rows, p.Text(agents))
		}
		return nil
	})
	self := agents + `tr[data-self="true"] [data-field="agent-slots"]`
	require.NotEqual(t, "0,1,2,3,4,5", p.Text(self))
	killAt := time.Now()
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="kill-agent"]`))))
	p.WaitFor("the note says the agent is killed", 10*time.Second, func() error {
		if !strings.Contains(p.Text(card+`[data-field="note"]`), "agent is killed") {
			return fmt.Errorf("note %q", p.Text(card+`[data-field="note"]`))
		}
		return nil
	})
	p.WaitFor("this agent holds every slot", 20*time.Second, func() error {
		if s, rows := p.Text(self), p.Rows(agents+`tr[data-agent]`); s != "0,1,2,3,4,5" || rows != 1 {
			return fmt.Errorf("%d agents, this one with slots %q", rows, s)
		}
		return nil
	})
	t.Logf("all slots taken over %s after the click", time.Since(killAt).Round(time.Millisecond))
	require.Contains(t, p.Text(card+`[data-field="events"]`), "taken over")
	require.Equal(t, "7", p.Text(agents+`tr[data-self="true"] [data-field="agent-partitions"]`))

	// Start agent: the second agent rejoins.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="start-agent"]`))))
	p.WaitFor("two agents share the link again", 20*time.Second, func() error {
		if rows := p.Rows(agents + `tr[data-agent]`); rows != 2 || p.Text(self) == "0,1,2,3,4,5" {
			return fmt.Errorf("%d agents, this one with slots %q", rows, p.Text(self))
		}
		return nil
	})
	require.Empty(t, p.Text(card+`[data-field="note"]`))
	require.Equal(t, "Kill agent", p.Text(card+`button[data-action="kill-agent"]:not([hidden])`))

	p.Screenshot("status-page.png")
}
