package demo_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// EnvBrowser names the variable that controls the browser test: "required"
// makes it fail when no Chromium is found; unset skips it then (unless
// $CI is set). `make test` sets it.
const EnvBrowser = "EDGELINK_BROWSER"

// EnvArtifacts names a directory for test artifacts such as screenshots;
// the test's temporary directory when unset.
const EnvArtifacts = "EDGELINK_ARTIFACTS"

var updateScreenshot = flag.Bool("update-screenshot", false, "also write the status page's screenshot to docs/status-page.png")

// chromium finds the browser: $EDGELINK_CHROMIUM, else Debian's chromium
// or another Chrome on the PATH. Without one the test skips, or fails when
// the browser is required.
func chromium(t *testing.T) string {
	t.Helper()
	required := false
	switch v := os.Getenv(EnvBrowser); v {
	case "required":
		required = true
	case "":
		required = os.Getenv("CI") != ""
	default:
		t.Fatalf("%s=%q: want \"required\" or unset", EnvBrowser, v)
	}
	if p := os.Getenv("EDGELINK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if required {
		t.Fatalf("no Chromium found, and %s=required or $CI is set: run scripts/setup (installs Debian's chromium) or set EDGELINK_CHROMIUM", EnvBrowser)
	}
	t.Skipf("browser test skipped: no Chromium found (run scripts/setup, or set %s=required to make this a failure)", EnvBrowser)
	return ""
}

// artifacts is where the test saves what it produces.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		return t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o750))
	return dir
}

// page drives one browser tab.
type page struct {
	t   *testing.T
	ctx context.Context
}

// text returns the text of the first element matching a CSS selector, or
// "" when there is none.
func (p *page) text(sel string) string {
	p.t.Helper()
	q, err := json.Marshal(sel)
	require.NoError(p.t, err)
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(document.querySelector(`+string(q)+`) || {}).textContent || ""`))
	require.NoError(p.t, err)
	return strings.TrimSpace(s)
}

// count is text as a number ("12,345" is 12345); -1 when it is none.
func (p *page) count(sel string) int64 {
	p.t.Helper()
	n, err := strconv.ParseInt(strings.ReplaceAll(p.text(sel), ",", ""), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// rows counts the elements matching a CSS selector.
func (p *page) rows(sel string) int {
	p.t.Helper()
	q, err := json.Marshal(sel)
	require.NoError(p.t, err)
	n, err := chromedp.Run(p.ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+string(q)+`).length`))
	require.NoError(p.t, err)
	return n
}

// waitFor polls cond until it returns nil or timeout passes.
func (p *page) waitFor(what string, timeout time.Duration, cond func() error) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStatusPageBrowser opens the demo's status page in headless Chromium:
// the link appears, its replicated counter rises, "Cut link" turns it
// disconnected while the lag grows, and "Restore link" brings the lag back
// to zero. "Kill agent" kills the second agent: the agents panel shows
// this one taking all the slots over; "Start agent" brings the second one
// back. The page's screenshot is saved as an artifact.
func TestStatusPageBrowser(t *testing.T) {
	browser := chromium(t)
	d := startDemo(t, t.TempDir(), 300)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // as root in a container; the page is our own
		chromedp.WindowSize(1280, 720),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("force-device-scale-factor", "1"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelTab()
	p := &page{t: t, ctx: bctx}

	const card = `article.link[data-link="telemetry-up"] `
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(d.URL()),
		chromedp.WaitVisible(chromedp.CSS(card+`[data-field="records"]`)),
	))
	require.Equal(t, "edge → cloud", p.text(card+".route"))

	// The replicated counter rises.
	var first int64
	p.waitFor("records replicated", 30*time.Second, func() error {
		if first = p.count(card + `[data-field="records"]`); first <= 0 {
			return fmt.Errorf("replicated %q", p.text(card+`[data-field="records"]`))
		}
		return nil
	})
	p.waitFor("the replicated counter rises", 15*time.Second, func() error {
		if n := p.count(card + `[data-field="records"]`); n <= first {
			return fmt.Errorf("replicated %d, was %d", n, first)
		}
		return nil
	})
	p.waitFor("state live", 15*time.Second, func() error {
		if s := p.text(card + `[data-field="state"]`); s != "live" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	require.NotEmpty(t, p.text(card+`[data-field="topics"] tr[data-topic="sensors.temp"]`))

	// Cut: the link disconnects and the lag grows.
	cutAt := time.Now()
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="cut"]`))))
	p.waitFor("the note says the link is cut", 5*time.Second, func() error {
		if !strings.Contains(p.text(card+`[data-field="note"]`), "is cut") {
			return fmt.Errorf("note %q", p.text(card+`[data-field="note"]`))
		}
		return nil
	})
	p.waitFor("state disconnected", 45*time.Second, func() error {
		if s := p.text(card + `[data-field="state"]`); s != "disconnected" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	t.Logf("disconnected %s after the click", time.Since(cutAt).Round(time.Millisecond))
	var lag int64
	p.waitFor("a lag", 10*time.Second, func() error {
		if lag = p.count(card + `[data-field="backlog"]`); lag <= 0 {
			return fmt.Errorf("lag %q", p.text(card+`[data-field="backlog"]`))
		}
		return nil
	})
	p.waitFor("the lag grows", 15*time.Second, func() error {
		if n := p.count(card + `[data-field="backlog"]`); n < lag+300 {
			return fmt.Errorf("lag %d, was %d", n, lag)
		}
		return nil
	})
	require.Contains(t, p.text(card+`[data-field="events"]`), "→ disconnected")

	// Restore: the lag drains to zero and the link is live again.
	restoreAt := time.Now()
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="restore"]`))))
	p.waitFor("the lag back to zero", 60*time.Second, func() error {
		s, n := p.text(card+`[data-field="state"]`), p.count(card+`[data-field="backlog"]`)
		if s != "live" || n != 0 {
			return fmt.Errorf("state %q, lag %d", s, n)
		}
		return nil
	})
	t.Logf("lag back to zero %s after the click", time.Since(restoreAt).Round(time.Millisecond))
	require.Empty(t, p.text(card+`[data-field="note"]`))
	require.Contains(t, p.text(card+`[data-field="events"]`), "→ live")

	// Kill agent: once the killed agent's session times out, this agent
	// holds every slot.
	const agents = card + `[data-field="agents"] `
	p.waitFor("two agents share the link", 15*time.Second, func() error {
		if rows := p.rows(agents + `tr[data-agent]`); rows != 2 {
			return fmt.Errorf("%d agents: %q", rows, p.text(agents))
		}
		return nil
	})
	self := agents + `tr[data-self="true"] [data-field="agent-slots"]`
	require.NotEqual(t, "0,1,2,3,4,5", p.text(self))
	killAt := time.Now()
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="kill-agent"]`))))
	p.waitFor("the note says the agent is killed", 10*time.Second, func() error {
		if !strings.Contains(p.text(card+`[data-field="note"]`), "agent is killed") {
			return fmt.Errorf("note %q", p.text(card+`[data-field="note"]`))
		}
		return nil
	})
	p.waitFor("this agent holds every slot", 20*time.Second, func() error {
		if s, rows := p.text(self), p.rows(agents+`tr[data-agent]`); s != "0,1,2,3,4,5" || rows != 1 {
			return fmt.Errorf("%d agents, this one with slots %q", rows, s)
		}
		return nil
	})
	t.Logf("all slots taken over %s after the click", time.Since(killAt).Round(time.Millisecond))
	require.Contains(t, p.text(card+`[data-field="events"]`), "taken over")
	require.Equal(t, "7", p.text(agents+`tr[data-self="true"] [data-field="agent-partitions"]`))

	// Start agent: the second agent rejoins.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(card+`button[data-action="start-agent"]`))))
	p.waitFor("two agents share the link again", 20*time.Second, func() error {
		if rows := p.rows(agents + `tr[data-agent]`); rows != 2 || p.text(self) == "0,1,2,3,4,5" {
			return fmt.Errorf("%d agents, this one with slots %q", rows, p.text(self))
		}
		return nil
	})
	require.Empty(t, p.text(card+`[data-field="note"]`))
	require.Equal(t, "Kill agent", p.text(card+`button[data-action="kill-agent"]:not([hidden])`))

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.Greater(t, len(png), 10_000)
	shot := filepath.Join(artifacts(t), "status-page.png")
	require.NoError(t, os.WriteFile(shot, png, 0o600))
	t.Logf("screenshot: %s", shot)
	if *updateScreenshot {
		require.NoError(t, os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o600))
	}
}
