package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil)
	require.NoError(t, err)
	require.Equal(t, 12, o.partitions)
	require.Equal(t, 200_000, o.records)
	require.Equal(t, 10_000, o.groups)
	require.Equal(t, 3, o.runs)
	require.Equal(t, 10*time.Second, o.interval)
	require.Equal(t, 15*time.Minute, o.timeout)
	require.Equal(t, 4*time.Minute, o.mm2Max)
	require.True(t, o.mm2)
	require.Empty(t, o.edgelink)
	require.Equal(t, "go run ./internal/bench/groupbench", o.command)

	args := []string{"-edgelink", "bin/edgelink", "-groups", "500", "-runs", "1", "-interval", "2s", "-mm2=false", "-write", "BENCHMARKS.md"}
	o, err = parseFlags(args)
	require.NoError(t, err)
	require.Equal(t, 500, o.groups)
	require.Equal(t, 1, o.runs)
	require.Equal(t, 2*time.Second, o.interval)
	require.False(t, o.mm2)
	require.Equal(t, "bin/edgelink", o.edgelink)
	require.Equal(t, "BENCHMARKS.md", o.write)
	require.Equal(t, "go run ./internal/bench/groupbench "+strings.Join(args, " "), o.command)

	for _, tc := range []struct{ args, err string }{
		{"-groups 0", "at least 1"},
		{"-groups 100000", "at most 99999"},
		{"-runs 0", "at least 1"},
		{"-end-share 1.5", "-end-share"},
		{"-abort-share 1", "-abort-share"},
		{"-max-txn 0", "at least 1"},
		{"-interval 10ms", "-interval"},
		{"-timeout 0s", "positive"},
		{"extra", "unexpected arguments"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			_, err := parseFlags(strings.Fields(tc.args))
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// testMap is a mirror partition of source offsets 0..9 where 2, 3 and 6
// were aborted records or markers, copied by a transactional writer whose
// markers sit at mirror offsets 3 and 7: source 0 1 4 5 7 8 9 at mirror 0
// 1 2 4 5 6 8; the mirror ends at 10 (a last marker at 9).
func testMap(t *testing.T) partitionMap {
	var m partitionMap
	for _, c := range [][2]int64{{0, 0}, {1, 1}, {4, 2}, {5, 4}, {7, 5}, {8, 6}, {9, 8}} {
		require.True(t, m.add(c[0], c[1]))
	}
	require.False(t, m.add(9, 9), "a repeat is left out")
	m.end = 10
	return m
}

func TestExpected(t *testing.T) {
	m := testMap(t)
	for s, want := range map[int64]int64{0: 0, 1: 1, 2: 2, 3: 2, 4: 2, 5: 4, 6: 5, 7: 5, 9: 8, 10: 10, 11: 10} {
		require.Equal(t, want, m.expected(s), "source offset %d", s)
	}
	require.Equal(t, int64(0), m.distance(3, 4), "the marker at 3 comes before the same record as 4")
	require.Equal(t, int64(2), m.distance(5, 2), "5 skips the records at 2 and 4")
	require.Equal(t, int64(-1), m.distance(8, 10), "8 reads the record at 8 again")
	require.Equal(t, int64(0), m.distance(9, 10), "the last marker is the end")
}

func TestTally(t *testing.T) {
	maps := []partitionMap{testMap(t), testMap(t)}
	var tl tally
	tl.addGroup(maps, []int64{3, 10}, map[int32]int64{0: 2, 1: 10}) // exact
	tl.addGroup(maps, []int64{3, 10}, map[int32]int64{0: 2, 1: 9})  // exact, 9 the last marker
	tl.addGroup(maps, []int64{5, 0}, map[int32]int64{0: 5, 1: 0})   // ahead 1
	tl.addGroup(maps, []int64{9, 1}, map[int32]int64{0: 4, 1: 1})   // behind 3
	tl.addGroup(maps, []int64{0, 0}, map[int32]int64{1: 0})         // partial
	tl.addGroup(maps, []int64{0, 0}, nil)                           // none
	require.Equal(t, 6, tl.groups)
	require.Equal(t, 4, tl.complete)
	require.Equal(t, 1, tl.partial)
	require.Equal(t, 1, tl.none)
	require.Equal(t, 5, tl.translated())
	require.Equal(t, 2, tl.exact)
	require.Equal(t, 2, tl.off)
	require.Equal(t, 12, tl.parts)
	require.Equal(t, 9, tl.present)
	require.Equal(t, 7, tl.exactParts)
	require.Equal(t, 6, tl.sameOffset)
	require.Equal(t, 1, tl.ahead)
	require.Equal(t, 1, tl.behind)
	require.Equal(t, int64(1), tl.maxAhead)
	require.Equal(t, int64(3), tl.maxBehind)
	require.Equal(t, int64(3), tl.maxOff())
	require.InDelta(t, 2.0, tl.medianOff(), 1e-9)
}

func TestGroupSet(t *testing.T) {
	ends := []int64{100, 0, 7}
	a := newGroupSet("bench-r1-", 1, 1, 1000, ends, 0.1)
	again := newGroupSet("bench-mm2-", 1, 1, 1000, ends, 0.1)
	other := newGroupSet("bench-r2-", 1, 2, 1000, ends, 0.1)
	require.Equal(t, "bench-r1-00000", a.ids[0])
	require.Equal(t, "bench-mm2-00999", again.ids[999])
	require.Equal(t, a.offsets, again.offsets, "the same set, the same offsets")
	require.NotEqual(t, a.offsets, other.offsets)
	require.Equal(t, a.end, again.end)
	require.InDelta(t, 100, a.atEnd, 40)
	atEnd := 0
	for _, offs := range a.offsets {
		require.Len(t, offs, len(ends))
		for p, o := range offs {
			require.GreaterOrEqual(t, o, int64(0))
			require.LessOrEqual(t, o, ends[p])
		}
		if offs[0] == 100 && offs[2] == 7 {
			atEnd++
		}
	}
	require.GreaterOrEqual(t, atEnd, a.atEnd)
	n := 0
	for i, e := range a.end {
		if e {
			n++
			require.Equal(t, ends, a.offsets[i])
		}
	}
	require.Equal(t, a.atEnd, n)
}

func TestConfigParses(t *testing.T) {
	l := linkSpec{name: "g1", topic: sourceTopic, groups: "bench-r1-.*", interval: 10 * time.Second}
	y := configYAML([]string{"127.0.0.1:9092"}, []string{"127.0.0.1:9093"}, l, "127.0.0.1:9644")
	cfg, err := config.Parse("bench.yaml", []byte(y))
	require.NoError(t, err, y)
	require.Len(t, cfg.Links, 1)
	lk := cfg.Links[0]
	require.NotNil(t, lk.Groups)
	require.Equal(t, 10*time.Second, lk.Groups.Interval)
	require.True(t, lk.Groups.IDs.Match("bench-r1-00042"))
	require.False(t, lk.Groups.IDs.Match("bench-r2-00042"))
	require.Equal(t, "g1.orders", l.mirror())
}

func TestMarkdown(t *testing.T) {
	o, err := parseFlags([]string{"-groups", "4", "-runs", "2", "-partitions", "2"})
	require.NoError(t, err)
	maps := []partitionMap{testMap(t), testMap(t)}
	run := func(n int, full bool) *elRun {
		set := newGroupSet("bench-r1-", 1, uint64(n), 4, []int64{10, 10}, 0.25)
		got := make([]map[int32]int64, 4)
		for i, offs := range set.offsets {
			got[i] = map[int32]int64{0: maps[0].expected(offs[0]), 1: maps[1].expected(offs[1])}
		}
		r := &elRun{
			run: n, set: set, fullRound: -1, caughtUp: 2 * time.Second, commitTook: time.Second,
			rounds: []round{{took: time.Millisecond, selected: 0}, {took: 1500 * time.Millisecond, selected: 4, synced: 4, committed: 8}},
		}
		if full {
			r.rounds = append(r.rounds, round{took: 500 * time.Millisecond, selected: 4, synced: 4})
		}
		if full {
			r.fullRound, r.endToEnd, r.fromStart, r.cpu = 1, 7*time.Second, 9*time.Second, 2*time.Second
		}
		r.check = set.check(maps, got)
		return r
	}
	mm2set := newGroupSet(mm2Groups, 1, 1, 4, []int64{10, 10}, 0)
	mm2 := &mm2Run{
		set: mm2set, mirror: "edge.orders", caughtUp: 20 * time.Second, first: 25 * time.Second, settled: 40 * time.Second,
		stoppedBy: "no change for 30s", version: "4.3.1", props: "groups = bench-mm2-.*\n",
	}
	mm2.check = mm2set.check(maps, []map[int32]int64{{0: 0, 1: 0}, {0: 9}, nil, nil})
	rep := &report{
		o: o, began: time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC), took: 5 * time.Minute, machine: "test machine",
		version: "edgelink dev", data: &dataset{topic: sourceTopic, partitions: 2, committed: 14, aborted: 4, markers: 2, txCommitted: 3, txAborted: 2, example: "p00-000000001"},
		runs: []*elRun{run(1, true), run(2, false)}, mm2: mm2,
		config: configYAML([]string{"127.0.0.1:9092"}, []string{"127.0.0.1:9093"}, linkSpec{name: "g2", topic: sourceTopic, groups: "bench-r2-.*", interval: 10 * time.Second}, "127.0.0.1:40000"),
	}
	md := rep.markdown()
	require.True(t, strings.HasPrefix(md, beginMarker+"\n## Consumer groups: offset sync (`make bench-groups`)\n"), md)
	require.True(t, strings.HasSuffix(md, endMarker+"\n"))
	require.Contains(t, md, "| 1 | 2.00 | 2 | 1.50 | 8 | 7.00 | 2.00 | 0.50 | 4 | 4 | 0 | 0 / 0 | 0 |")
	require.Contains(t, md, "| 2 | 2.00 | none of 2 | none | – | – | – | – | 4 | 4 | 0 | 0 / 0 | 0 |")
	require.Contains(t, md, "| median | 2.00 | – | 1.50 | – | 7.00 | 2.00 | 0.50 | 4 | 4 | 0 | – | – |")
	flat := strings.Join(strings.Fields(md), " ") // the paragraphs unwrapped
	require.Contains(t, flat, "interval: 10s}` (edgelink's default interval; the configuration is below)")
	require.Contains(t, flat, "Run 2 had no full round within 2m0s of catch-up")
	require.Contains(t, flat, "In 2 of 2 runs the agent's first round ran as it started")
	require.Contains(t, md, "| 4 | 2 | 1 |", "MirrorMaker 2: 4 groups, 2 translated, 1 complete")
	require.Contains(t, md, "bootstrap: [\"<address>\"]")
	require.NotContains(t, md, "127.0.0.1")
	require.Contains(t, md, "groups = bench-mm2-.*")
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") && !strings.HasPrefix(line, "<!--") && !strings.Contains(line, "go run") {
			require.LessOrEqual(t, len([]rune(line)), 110, line)
		}
	}

	rep.o.interval = time.Second
	flat = strings.Join(strings.Fields(rep.markdown()), " ")
	require.Contains(t, flat, "The first full round took longer than the interval (1s) in 1 of 1 runs")
	require.Contains(t, flat, "A round with nothing to commit took 0.50 s (median).")
	require.NotContains(t, flat, "edgelink's default interval")

	text, err := section.Replace("# Benchmarks\n\n## Other\n\ntext\n", md)
	require.NoError(t, err)
	again, err := section.Replace(text, md)
	require.NoError(t, err)
	require.Equal(t, text, again, "rewriting the section changes nothing else")
	require.True(t, strings.HasPrefix(text, "# Benchmarks\n\n## Other\n\ntext\n\n"+beginMarker))
}
