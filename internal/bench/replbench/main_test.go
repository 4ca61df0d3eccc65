package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/testbed"
)

// TestMain lets the test binary serve as the raw stages' child process, as
// the bench binary does.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		childMain(role, os.Args[1:])
	}
	os.Exit(m.Run())
}

// TestRealKafkaBench runs the whole bench on a few MB per profile, one run:
// two real Kafka clusters, every stage (raw consumer and producer, the
// edgelink binary in both delivery modes, alone and as two agents sharing
// the link, MirrorMaker 2), latency, the
// record-by-record check of every copy, and the BENCHMARKS.md section. It
// checks that every stage measured something sane, not how fast it was.
func TestRealKafkaBench(t *testing.T) {
	testbed.RequireKafka(t)
	began := time.Now()
	bin, err := buildEdgelink(t.Context(), t.TempDir())
	require.NoError(t, err)
	var profs []profile
	profs = append(profs, profiles...)
	agents := []int{1, 2}
	stages := expandStages(allStages, agents, false)
	o := options{
		profiles: profs, volume: 2e6, runs: 1, partitions: 12, stages: stages, agents: agents,
		edgelink: bin,
		latency:  latencyPlan{rate: 200, warmup: time.Second, duration: 2 * time.Second},
		verify:   true, stageTimeout: 3 * time.Minute, brokerHeap: "512m", quickJIT: true,
		discovery: time.Second,
		command:   "go run ./internal/bench/replbench -volume 2MB -runs 1",
		progress:  testWriter{t},
		logger:    slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	rep, err := run(t.Context(), o)
	require.NoError(t, err)
	require.Len(t, rep.datasets, len(profiles))
	require.Len(t, rep.results, len(profiles)*len(stages))
	for _, r := range rep.results {
		name := r.Profile + "/" + r.Stage
		st, n := splitStage(r.Stage)
		var d dataset
		for _, ds := range rep.datasets {
			if ds.profile.name == r.Profile {
				d = ds
			}
		}
		require.Positive(t, d.records, name)
		require.Equal(t, d.records, r.Records, "%s: records copied", name)
		require.Equal(t, d.bytes(), r.Bytes, "%s: bytes copied", name)
		require.Positive(t, r.mbps(), "%s: throughput", name)
		require.Positive(t, r.Copy, "%s: copy window", name)
		require.Positive(t, r.Startup, "%s: start-up", name)
		require.Positive(t, r.CPUTotal, "%s: CPU time", name)
		require.Greater(t, r.PeakRSS, int64(4<<20), "%s: peak RSS", name)
		if r.Stage != stageRawConsume {
			require.NotNil(t, r.Check, "%s: verified", name)
			require.Zero(t, r.Check.lost, "%s: %s", name, r.Check)
			require.Zero(t, r.Check.reordered, "%s: %s", name, r.Check)
			require.Equal(t, "snappy", r.Codec, "%s: destination batches are snappy (for MirrorMaker 2: its producer settings apply)", name)
		}
		if st == stageEOS || st == stageRawProduce {
			require.Zero(t, r.Check.dups, "%s: %s", name, r.Check)
			require.Equal(t, d.records, r.Check.records, name)
		}
		if isEdgelink(st) {
			require.Len(t, r.Held, n, "%s: slots held per agent", name)
		} else {
			require.Empty(t, r.Held, name)
		}
		switch st {
		case stageEOS, stageALO, stageMM2:
			require.NotNil(t, r.Latency, "%s: latency", name)
			require.Positive(t, r.Latency.sent, name)
			require.Zero(t, r.Latency.missing, "%s: latency records lost", name)
			require.Positive(t, r.Latency.p50, name)
			require.GreaterOrEqual(t, r.Latency.p99, r.Latency.p50, name)
		default:
			require.Nil(t, r.Latency, name)
		}
	}
	require.Contains(t, rep.mm2Props, "tasks.max = 12")
	require.Contains(t, rep.mm2Props, "cloud.producer.compression.type = snappy")

	// The BENCHMARKS.md section replaces itself and leaves the rest alone.
	md := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	require.NoError(t, os.WriteFile(md, []byte("# Benchmarks\n\n## Another section\n\nkept\n"), 0o644))
	require.NoError(t, rep.writeMarkdown(md))
	require.NoError(t, rep.writeMarkdown(md))
	text, err := os.ReadFile(md)
	require.NoError(t, err)
	s := string(text)
	require.Equal(t, 1, strings.Count(s, beginMarker), s)
	require.Contains(t, s, "## Another section\n\nkept\n")
	for _, want := range []string{"| 1kb | edgelink-eos |", "| 1kb | edgelink-eos ×2 |", "| zstd | mm2 |", "| 100b |", "make bench   # = go run", "tasks.max = 12"} {
		require.Contains(t, s, want)
	}
	var table strings.Builder
	rep.printTable(&table)
	t.Log(table.String())
	t.Logf("whole bench took %s", time.Since(began).Round(time.Second))
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"2GB": 2e9, "500MB": 500e6, "1.5GiB": 3 << 29, "4096": 4096, "64 KiB": 64 << 10, "10B": 10,
	} {
		got, err := parseBytes(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "GB", "-1GB", "1TB", "lots"} {
		_, err := parseBytes(bad)
		require.Error(t, err, bad)
	}
}

func TestAgentStages(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stages   []string
		agents   []int
		baseline bool
		want     []string
	}{
		{"one agent", allStages, []int{1}, false, allStages},
		{
			"several",
			[]string{stageRawConsume, stageEOS, stageMM2},
			[]int{1, 2, 3},
			false,
			[]string{stageRawConsume, stageEOS, "edgelink-eos ×2", "edgelink-eos ×3", stageMM2},
		},
		{
			"baseline beside",
			[]string{stageEOS, stageALO},
			[]int{2},
			true,
			[]string{"edgelink-eos ×2", "baseline-eos ×2", "edgelink-alo ×2", "baseline-alo ×2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := expandStages(tc.stages, tc.agents, tc.baseline)
			require.Equal(t, tc.want, got)
			for _, name := range got {
				st, n := splitStage(name)
				require.Contains(t, append(allStages, stageBaseEOS, stageBaseALO), st, name)
				require.Equal(t, name, agentStage(st, n))
			}
		})
	}
}

func TestParseAgents(t *testing.T) {
	got, err := parseAgents("1, 2,3")
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3}, got)
	for _, bad := range []string{"", "0", "-1", "two", "1,1", "1,,2"} {
		_, err := parseAgents(bad)
		require.Error(t, err, bad)
	}
	err = cliMain([]string{"-agents", "0"})
	require.ErrorContains(t, err, "-agents")
}

// TestSamplerSums follows one process as if it were two: CPU time and the
// peak are the sums of both.
func TestSamplerSums(t *testing.T) {
	before, err := readUsage(os.Getpid())
	require.NoError(t, err)
	smp := startSampler([]int{os.Getpid(), os.Getpid()}, 10*time.Millisecond)
	require.GreaterOrEqual(t, smp.sample().cpu, 2*before.cpu)
	peak, err := smp.close()
	require.NoError(t, err)
	require.GreaterOrEqual(t, peak, 2*before.hwm)
}

func TestReadUsage(t *testing.T) {
	u, err := readUsage(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, u.rss)
	require.GreaterOrEqual(t, u.hwm, u.rss)
	_, err = readUsage(1 << 30)
	require.Error(t, err)
}

func TestMedianAndQuantile(t *testing.T) {
	require.InDelta(t, 2.0, median([]float64{3, 1, 2}), 0)
	require.InDelta(t, 2.5, median([]float64{4, 1, 3, 2}), 0)
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	require.Equal(t, time.Duration(5), quantile(ds, 0.5))
	require.Equal(t, time.Duration(10), quantile(ds, 0.99))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
