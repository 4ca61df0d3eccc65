// Package browser drives headless Chromium (through chromedp) for the tests
// of edgelink's pages: it finds the browser and decides whether its absence
// skips or fails a test, opens a tab, reads the page, and saves
// screenshots.
//
// A plain `go test ./...` skips the browser tests when no Chromium is
// installed; EDGELINK_BROWSER=required (set by `make test`) or $CI turns
// that into a failure.
package browser

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/edgelink/edgelink/internal/testbed"
)

// EnvBrowser names the variable that controls the browser tests: "required"
// makes them fail when no Chromium is found; unset skips them then (unless
// $CI is set). `make test` sets it.
const EnvBrowser = "EDGELINK_BROWSER"

// EnvArtifacts names a directory for test artifacts such as screenshots;
// the test's temporary directory when unset.
const EnvArtifacts = "EDGELINK_ARTIFACTS"

var updateScreenshots = flag.Bool("update-screenshot", false, "also write the pages' screenshots into docs/")

// Chromium finds the browser: $EDGELINK_CHROMIUM, else Debian's chromium
// or another Chrome on the PATH. Without one the test skips, or fails when
// the browser is required.
func Chromium(t testing.TB) string {
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

// Artifacts is where the test saves what it produces.
func Artifacts(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		return t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o750))
	return dir
}

// Page drives one browser tab.
type Page struct {
	t testing.TB
	// Ctx is the tab's context, for chromedp actions.
	Ctx context.Context
}

// Open starts headless Chromium (see Chromium: it may skip the test) with a
// window of 1280×720 and opens a tab; both close when ctx ends or the
// test does.
func Open(t testing.TB, ctx context.Context) *Page {
	t.Helper()
	exe := Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // as root in a container; the pages are our own
		chromedp.WindowSize(1280, 720),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("force-device-scale-factor", "1"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	return &Page{t: t, Ctx: tctx}
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](p *Page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.Ctx, chromedp.Evaluate[T](expr))
	require.NoError(p.t, err, "evaluate %s", expr)
	return v
}

// quote writes a CSS selector as a JavaScript string.
func (p *Page) quote(sel string) string {
	p.t.Helper()
	q, err := json.Marshal(sel)
	require.NoError(p.t, err)
	return string(q)
}

// Text returns the text of the first element matching a CSS selector, or
// "" when there is none.
func (p *Page) Text(sel string) string {
	p.t.Helper()
	return strings.TrimSpace(Eval[string](p, `(document.querySelector(`+p.quote(sel)+`) || {}).textContent || ""`))
}

// Count is Text as a number ("12,345" is 12345); -1 when it is none.
func (p *Page) Count(sel string) int64 {
	p.t.Helper()
	n, err := strconv.ParseInt(strings.ReplaceAll(p.Text(sel), ",", ""), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Rows counts the elements matching a CSS selector.
func (p *Page) Rows(sel string) int {
	p.t.Helper()
	return Eval[int](p, `document.querySelectorAll(`+p.quote(sel)+`).length`)
}

// WaitFor polls cond until it returns nil, failing the test with what and
// cond's last error when timeout passes first.
func (p *Page) WaitFor(what string, timeout time.Duration, cond func() error) {
	p.t.Helper()
	testbed.Eventually(p.t, timeout, func() error {
		if err := cond(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// Screenshot saves a full-page screenshot as name (a PNG) among the
// artifacts and, with -update-screenshot, into the repository's docs/.
func (p *Page) Screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.Ctx, chromedp.FullScreenshot(100))
	require.NoError(p.t, err)
	require.Greater(p.t, len(png), 10_000, "a screenshot of a blank page")
	shot := filepath.Join(Artifacts(p.t), name)
	require.NoError(p.t, os.WriteFile(shot, png, 0o600))
	p.t.Logf("screenshot: %s", shot)
	if *updateScreenshots {
		docs := filepath.Join(moduleRoot(p.t), "docs", name)
		require.NoError(p.t, os.WriteFile(docs, png, 0o600))
		p.t.Logf("screenshot updated: %s", docs)
	}
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("find go.mod: %v", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory")
		}
		dir = parent
	}
}
