package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// errNoChromium says that the first paint was not measured.
var errNoChromium = errors.New("no Chromium found (run scripts/setup, or set EDGELINK_CHROMIUM)")

// chromiumVersion is what the browser at exe says it is.
func chromiumVersion(ctx context.Context, exe string) string {
	out, err := exec.CommandContext(ctx, exe, "--version").Output()
	if err != nil {
		return filepath.Base(exe)
	}
	return strings.TrimSpace(string(out))
}

// chromium finds the browser as the page tests do (testbed/browser, whose
// helpers take a *testing.T): $EDGELINK_CHROMIUM, else Debian's chromium or
// another Chrome on the PATH.
func chromium() (string, error) {
	if p := os.Getenv("EDGELINK_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errNoChromium
}

// firstPaints loads the fleet page at url loads times in one headless
// Chromium tab (1280×720, as the page tests) and returns each load's first
// paint: the time from navigation start until the table's rows are
// painted, as the page itself records it in window.__fleetFirstPaint once
// it painted its first rows. Every load must show rows sites. It also
// returns the browser's version.
func firstPaints(ctx context.Context, url string, rows, loads int) ([]time.Duration, string, error) {
	exe, err := chromium()
	if err != nil {
		return nil, "", err
	}
	browser := chromiumVersion(ctx, exe)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // as root in a container; the page is our own
		chromedp.WindowSize(1280, 720),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("force-device-scale-factor", "1"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	out := make([]time.Duration, 0, loads)
	for i := range loads {
		if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
			return out, browser, fmt.Errorf("load %d of the fleet page: %w", i+1, err)
		}
		var n int
		err := waitUntil(tctx, 10*time.Second, "the rows", func() (bool, error) {
			var err error
			n, err = chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("#sites tbody tr[data-site]").length`))
			return n == rows, err
		})
		if err != nil {
			return out, browser, fmt.Errorf("load %d of the fleet page: %d rows, want %d: %w", i+1, n, rows, err)
		}
		var ms float64
		err = waitUntil(tctx, 5*time.Second, "the first paint", func() (bool, error) {
			var err error
			ms, err = chromedp.Run(tctx, chromedp.Evaluate[float64](`window.__fleetFirstPaint || -1`))
			return ms >= 0, err
		})
		if err != nil {
			return out, browser, fmt.Errorf("load %d of the fleet page: window.__fleetFirstPaint: %w", i+1, err)
		}
		out = append(out, time.Duration(ms*float64(time.Millisecond)))
	}
	return out, browser, nil
}
