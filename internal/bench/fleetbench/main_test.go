package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWriteMarkdown: the section is appended once, then replaced in place,
// and the text around it is kept.
func TestWriteMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	require.NoError(t, os.WriteFile(path, []byte("# Benchmarks\n\nintro\n"), 0o644))
	rep := &report{o: options{sites: 1000, interval: 10 * time.Second, viewers: 5, command: "go run ./internal/bench/fleetbench"}, machine: "test machine"}
	rep.routes = []routeStats{{route: routeFull, requests: 10, p50: 30 * time.Millisecond, p95: 50 * time.Millisecond}}
	require.NoError(t, rep.writeMarkdown(path))
	first, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(first), "# Benchmarks\n\nintro\n\n"+beginMarker+"\n## Fleet service\n"), "%s", first)
	require.True(t, strings.HasSuffix(string(first), endMarker+"\n"))
	require.Contains(t, string(first), "| GET /api/v1/fleet | 10 | 0.0 | 0 | 30.0 | 50.0 |")

	// Text after the section stays; a second write replaces the section.
	require.NoError(t, os.WriteFile(path, append(first, "\n## Later\n"...), 0o644))
	rep.machine = "another machine"
	require.NoError(t, rep.writeMarkdown(path))
	second, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(second), beginMarker))
	require.Contains(t, string(second), "another machine")
	require.NotContains(t, string(second), "test machine")
	require.True(t, strings.HasSuffix(string(second), endMarker+"\n\n## Later\n"), "%s", second)
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, quantile(d, 0.5))
	require.Equal(t, 95*time.Millisecond, quantile(d, 0.95))
	require.Equal(t, 7*time.Millisecond, quantile([]time.Duration{7 * time.Millisecond}, 0.95))
}

// TestUsage: CPU over a window and its busiest 10 s, from samples.
func TestUsage(t *testing.T) {
	s := &sampler{}
	t0 := time.Now()
	for i := range 31 {
		cpu := time.Duration(i) * 100 * time.Millisecond // 10% of a core
		if i > 20 {
			cpu = 2*time.Second + time.Duration(i-20)*500*time.Millisecond // then 50%
		}
		s.all = append(s.all, sample{at: t0.Add(time.Duration(i) * time.Second), cpu: cpu, rss: int64(i) << 20})
	}
	u := s.between(s.all[0], s.all[30])
	require.Equal(t, 30*time.Second, u.window)
	require.InDelta(t, 100*7.0/30, u.cpuPct, 0.01)
	require.InDelta(t, 50, u.cpuMaxPct, 0.01)
	require.Equal(t, int64(30)<<20, u.rssPeak)
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		require.Equal(t, want, count(n))
	}
}
