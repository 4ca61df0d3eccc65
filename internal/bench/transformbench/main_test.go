package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/bench/mdreport"
	"github.com/edgelink/edgelink/internal/config"
)

func TestTelemetry(t *testing.T) {
	start := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	tel := newTelemetry(200, 1_000_000, start, 1)
	var (
		n, hot int
		last   reading
	)
	require.NoError(t, tel.readings(func(i int, r reading) error {
		if i == 17 {
			var v struct {
				Machine string  `json:"machine"`
				Time    string  `json:"time"`
				Celsius float64 `json:"celsius"`
			}
			require.NoError(t, json.Unmarshal(r.value(), &v))
			require.Equal(t, "m017", v.Machine)
			require.Equal(t, "2026-11-29T10:00:00Z", v.Time)
			require.Equal(t, r.celsius, v.Celsius)
		}
		if r.celsius > 79.0 {
			hot++
		}
		n++
		last = r
		return nil
	}))
	require.Equal(t, 1_000_000, n)
	require.Equal(t, start.Add(4999*time.Second), last.at, "200 machines at 1 Hz")
	require.InDelta(t, 0.01, float64(hot)/float64(n), 0.001, "the default filter keeps about 1%")

	again := 0
	require.NoError(t, tel.readings(func(i int, r reading) error {
		if r.celsius > 79.0 {
			again++
		}
		return nil
	}))
	require.Equal(t, hot, again, "the same readings every time")
}

func TestClosedWindows(t *testing.T) {
	const minute = int64(60_000)
	starts := map[string][]int64{"a": {0, minute, 2 * minute}, "b": {0, minute}, "c": {0}}
	last := map[string]int64{"a": 2*minute + 30_000, "b": minute + 5_000, "c": 59_000}
	partOf := map[string]int32{"a": 0, "b": 0, "c": 1}
	// Partition 0 reaches 2m30s: windows ending at 1m and 2m (plus 10 s of
	// grace) of a and b close; partition 1 reaches 59 s: none.
	require.Equal(t, 4, closedWindows(starts, last, partOf, minute, 10_000))
	require.Equal(t, 2, closedWindows(starts, last, partOf, minute, 31_000))
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/edgelink/edgelink/internal/transform
BenchmarkAggregate100kKeys-2    	       3	 964402435 ns/op	  16297168 heap-bytes	       163.0 heap-bytes/key	      9644 ns/record	  16500160 state-bytes	       165.0 state-bytes/key
BenchmarkDedupe100kKeys-2       	       3	 429017557 ns/op	   7898800 heap-bytes	        78.99 heap-bytes/key	      4290 ns/record	   7700000 state-bytes	        77.00 state-bytes/key
PASS
ok  	github.com/edgelink/edgelink/internal/transform	6.235s
`
	rs := parseBench(out)
	require.Len(t, rs, 2)
	require.Equal(t, "Aggregate100kKeys", rs[0].name)
	require.InDelta(t, 165.0, rs[0].metrics["state-bytes/key"], 1e-9)
	require.InDelta(t, 16297168, rs[0].metrics["heap-bytes"], 1e-9)
	require.Equal(t, "Dedupe100kKeys", rs[1].name)
	require.InDelta(t, 4290, rs[1].metrics["ns/record"], 1e-9)
}

func TestVariantsParse(t *testing.T) {
	for _, v := range variants(79.0) {
		y := `clusters:
  edge: {bootstrap: ["127.0.0.1:9092"]}
  cloud: {bootstrap: ["127.0.0.1:9093"]}
links:
  - name: tb-` + v.name + `
    from: edge
    to: cloud
    topics: {include: [telemetry]}
` + v.transforms
		cfg, err := config.Parse("bench.yaml", []byte(y))
		require.NoError(t, err, v.name)
		ts := cfg.Links[0].Transforms
		switch v.name {
		case "plain":
			require.Empty(t, ts)
		case "filter":
			require.Len(t, ts, 1)
			require.Equal(t, "json.celsius > 79.0", ts[0].Filter)
		case "aggregate":
			require.Len(t, ts, 1)
			a := ts[0].Aggregate
			require.NotNil(t, a)
			require.Equal(t, aggWindow, a.Window)
			require.Equal(t, aggGrace, a.Grace)
			require.Equal(t, map[string]string{"celsius": "json.celsius"}, a.Values)
		}
	}
}

func TestFormatting(t *testing.T) {
	require.InDelta(t, 2.0, mdreport.Median([]float64{3, 1, 2}), 1e-9)
	require.InDelta(t, 2.5, mdreport.Median([]float64{4, 1, 2, 3}), 1e-9)
	require.Equal(t, "0.50", ratio(0.5))
	require.Equal(t, "1/40", ratio(0.025))
	require.Equal(t, "1m", shortDuration(time.Minute))
	require.Equal(t, "10s", shortDuration(10*time.Second))
	require.Equal(t, "1.5s", shortDuration(1500*time.Millisecond))
	require.Equal(t, "go test -run '^$' -bench 100kKeys", strings.Join(quoteArgs([]string{"go", "test", "-run", "^$", "-bench", "100kKeys"}), " "))
}
