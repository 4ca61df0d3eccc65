package link_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"

	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestFailoverFake: failing over fences the running link (it stops for
// good at its next write), syncs the groups a last time, and reports per partition what the
// destination holds; what the source took afterwards is reported as left
// behind, counted and dated, by a dry run that fences nothing.
func TestFailoverFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.temp"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	cfg := linkConfig(t, seeds, dseeds, `    rename: "{site}.{topic}"
    groups: {include: ["app-.*"], interval: 1h}`)
	lc := cfg.Links[0]
	recs := produce(t, seeds, "sensors.temp", 3, 50, "a")
	l, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dseeds, "plant-1.sensors.temp", len(recs)), "plant-1.sensors.temp")
	commitAt(t, seeds, "app-1", "sensors.temp", map[int32]int64{0: 20, 1: 50})

	rep, err := link.Failover(t.Context(), cfg, lc, link.FailoverOptions{Logger: testLogger(t)})
	require.NoError(t, err)
	require.True(t, rep.Fenced)
	require.True(t, rep.SourceReachable)
	require.Zero(t, rep.LeftBehind)
	require.Len(t, rep.Partitions, 3)
	for _, p := range rep.Partitions {
		require.Equal(t, int64(50), p.Replicated, "%+v", p)
		require.Equal(t, int64(50), p.SourceEnd)
		require.Zero(t, p.LeftBehind)
		require.Equal(t, "plant-1.sensors.temp", p.Mirror)
		require.Greater(t, p.MirrorEnd, p.Replicated, "the mirror's end counts transaction markers")
	}
	require.NotNil(t, rep.Groups)
	require.Equal(t, 1, rep.Groups.Synced)
	got := committedAt(t, dseeds, "app-1", "plant-1.sensors.temp")
	require.Len(t, got, 2)
	// The source takes more: the running link, fenced, cannot write it
	// and stops for good; it is left behind.
	more := produce(t, seeds, "sensors.temp", 3, 7, "b")
	require.ErrorIs(t, stopWhenFailed(t, l, stop), link.ErrFenced, "the running link was fenced")
	rep, err = link.Failover(t.Context(), cfg, lc, link.FailoverOptions{DryRun: true})
	require.NoError(t, err)
	require.False(t, rep.Fenced)
	require.Equal(t, int64(len(more)), rep.LeftBehind, "%+v", rep.Partitions)
	for _, p := range rep.Partitions {
		require.Equal(t, int64(7), p.LeftBehind)
		require.NotNil(t, p.FirstLeft)
		require.False(t, p.LastLeft.Before(*p.FirstLeft))
		require.Equal(t, time.UnixMilli(1700000000000).UTC(), p.FirstLeft.UTC())
	}
	require.Nil(t, rep.Groups, "a dry run syncs nothing")
}

// TestFailbackFake: after a failover, the link does not start again (an
// agent restarted waits); the destination takes writes of its own and its
// consumers move on. Failback quarantines what was left behind at the
// source, copies the destination's writes back after it exactly once,
// returns the group to the source with exact offsets, and the waiting link
// resumes from there without copying anything twice or back. Run again, it
// says there is nothing to fail back.
func TestFailbackFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.temp"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	const mirror = "plant-1.sensors.temp"
	cfg := linkConfig(t, seeds, dseeds, `    rename: "{site}.{topic}"
    groups: {include: ["app-.*"], interval: 1h}`)
	lc := cfg.Links[0]
	recs := produce(t, seeds, "sensors.temp", 3, 50, "a")
	l, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dseeds, mirror, len(recs)), mirror)
	require.NoError(t, stop())
	_ = l

	rep, err := link.Failover(t.Context(), cfg, lc, link.FailoverOptions{Logger: testLogger(t)})
	require.NoError(t, err)
	mirrorEnd := make(map[int32]int64)
	for _, p := range rep.Partitions {
		mirrorEnd[p.Partition] = p.MirrorEnd
	}
	// Failed over, the link waits: started again, it copies nothing.
	left := produce(t, seeds, "sensors.temp", 3, 7, "left")
	l, stop = runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 10*time.Second, func() error {
		if s := l.Status(); s.State != link.StateFailedOver || !strings.Contains(s.LastError, "failed over") {
			return fmt.Errorf("state %s, last error %q", s.State, s.LastError)
		}
		return nil
	})
	require.Zero(t, l.Status().Records)
	again, err := link.Failover(t.Context(), cfg, lc, link.FailoverOptions{Logger: testLogger(t)})
	require.NoError(t, err)
	require.True(t, again.Already)
	require.Equal(t, rep.At, again.At, "a second failover reports the first")

	// The cloud takes writes of its own; its consumer moves on.
	cloudRecs := produce(t, dseeds, mirror, 3, 10, "cloud")
	commitAt(t, dseeds, "app-1", mirror, map[int32]int64{
		0: mirrorEnd[0] + 4,  // among the cloud's own records
		1: 20,                // among what the link copied: offset 20 of the mirror
		2: mirrorEnd[2] + 10, // at the end
	})
	mirrored := readAll(t, dseeds, mirror, len(recs)+len(cloudRecs))
	var sourceOf20 int64 = -1
	for _, r := range mirrored {
		if r.Partition == 1 && r.Offset >= 20 && sourceOf20 < 0 {
			o, found, err := provenance.Find(r)
			require.NoError(t, err)
			require.True(t, found)
			sourceOf20 = o.Offset
		}
	}

	fb, err := link.Failback(t.Context(), cfg, lc, link.FailbackOptions{Link: fastOpts, Logger: testLogger(t)})
	require.NoError(t, err)
	require.Equal(t, int64(len(left)), fb.Quarantined)
	require.Equal(t, int64(len(cloudRecs)), fb.CopiedBack)
	require.Len(t, fb.Partitions, 3)
	resume := make(map[int32]int64)
	for _, p := range fb.Partitions {
		require.Equal(t, int64(50), p.Replicated)
		require.Equal(t, int64(57), p.ResumeAt)
		require.Equal(t, int64(7), p.Quarantined)
		require.Equal(t, link.QuarantineTopic("up", "sensors.temp"), p.Quarantine)
		require.Equal(t, mirrorEnd[p.Partition], p.MirrorEnd)
		require.Greater(t, p.CopiedTo, p.MirrorEnd)
		resume[p.Partition] = p.ResumeAt
	}

	// Quarantined: the records left behind, each in its partition.
	q := readAll(t, seeds, link.QuarantineTopic("up", "sensors.temp"), len(left))
	requireMirrored(t, left, q, link.QuarantineTopic("up", "sensors.temp"))
	// Copied back: the cloud's records, in order, after the quarantined.
	all := readAll(t, seeds, "sensors.temp", len(recs)+len(left)+len(cloudRecs))
	back := make(map[int32][]*kgo.Record)
	for _, r := range all {
		if r.Offset >= resume[r.Partition] {
			back[r.Partition] = append(back[r.Partition], r)
		}
	}
	wantBack := make(map[int32][]srcRec)
	for _, r := range cloudRecs {
		wantBack[r.partition] = append(wantBack[r.partition], r)
	}
	for p, rs := range back {
		require.Len(t, rs, 10, "partition %d", p)
		for i, r := range rs {
			w := wantBack[p][i]
			require.Equal(t, w.value, r.Value, "partition %d, copy %d", p, i)
			require.Equal(t, w.key, r.Key, "partition %d, copy %d", p, i)
			require.Equal(t, w.ts, r.Timestamp.UnixMilli())
			o, found, err := provenance.Find(r)
			require.NoError(t, err)
			require.True(t, found, "a copy carries provenance")
			require.Equal(t, w.offset, o.Offset, "partition %d, copy %d: its offset at the cloud", p, i)
		}
	}
	// The group returned: where it stood at the cloud, at the source.
	got := committedAt(t, seeds, "app-1", "sensors.temp")
	require.Len(t, got, 3)
	require.Equal(t, back[0][4].Offset, got[0], "partition 0: the copy of the first record not consumed at the cloud")
	require.Equal(t, sourceOf20, got[1], "partition 1: the source record of the mirror's offset 20")
	// Partition 2: at the end, after the last copy and its commit marker.
	require.Equal(t, back[2][9].Offset+2, got[2], "partition 2: at the end")

	// The waiting link resumes: new records cross, the copies do not.
	more := produce(t, seeds, "sensors.temp", 3, 5, "new")
	after := readAll(t, dseeds, mirror, len(recs)+len(cloudRecs)+len(more))
	tail := make(map[int32][]string)
	for _, r := range after {
		if r.Offset >= mirrorEnd[r.Partition] {
			tail[r.Partition] = append(tail[r.Partition], string(r.Value))
		}
	}
	for p := range int32(3) {
		require.Len(t, tail[p], 15, "partition %d: the cloud's 10 and 5 new, nothing echoed", p)
		require.Equal(t, fmt.Sprintf("new-%d-0", p), tail[p][10], "partition %d", p)
	}
	require.NoError(t, stop())

	_, err = link.Failback(t.Context(), cfg, lc, link.FailbackOptions{Link: fastOpts, Logger: testLogger(t)})
	require.ErrorContains(t, err, "has not failed over")
}

// TestFailbackInterruptedFake: a failback interrupted before it copies
// back, and one interrupted after, leave nothing twice when run again: the
// quarantine and the copies back hold each record once, and the link
// resumes where the first run fixed.
func TestFailbackInterruptedFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "sensors.temp"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	const mirror = "plant-1.sensors.temp"
	cfg := linkConfig(t, seeds, dseeds, `    rename: "{site}.{topic}"`)
	lc := cfg.Links[0]
	recs := produce(t, seeds, "sensors.temp", 2, 30, "a")
	_, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dseeds, mirror, len(recs)), mirror)
	require.NoError(t, stop())
	_, err := link.Failover(t.Context(), cfg, lc, link.FailoverOptions{Logger: testLogger(t)})
	require.NoError(t, err)
	left := produce(t, seeds, "sensors.temp", 2, 4, "left")
	cloudRecs := produce(t, dseeds, mirror, 2, 6, "cloud")

	interrupted := func(at string) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		_, err := link.Failback(ctx, cfg, lc, link.FailbackOptions{Link: fastOpts, Logger: testLogger(t), Progress: func(step string, _ link.Status) {
			if strings.HasPrefix(step, at) {
				cancel()
			}
		}})
		require.Error(t, err, "interrupted at %q", at)
	}
	interrupted("copying back")
	produce(t, seeds, "sensors.temp", 2, 3, "later") // after the resume position was fixed: not quarantined
	interrupted("moving the link's checkpoints")
	fb, err := link.Failback(t.Context(), cfg, lc, link.FailbackOptions{Link: fastOpts, Logger: testLogger(t)})
	require.NoError(t, err)
	require.Equal(t, int64(len(left)), fb.Quarantined)
	require.Zero(t, fb.CopiedBack, "copied back by the run interrupted after it")
	for _, p := range fb.Partitions {
		require.Equal(t, int64(34), p.ResumeAt, "fixed by the first run")
	}
	q := readAll(t, seeds, link.QuarantineTopic("up", "sensors.temp"), len(left))
	requireMirrored(t, left, q, link.QuarantineTopic("up", "sensors.temp"))
	all := readAll(t, seeds, "sensors.temp", len(recs)+len(left)+6+len(cloudRecs))
	copies := 0
	for _, r := range all {
		if _, found, _ := provenance.Find(r); found {
			copies++
		}
	}
	require.Equal(t, len(cloudRecs), copies, "each record the cloud wrote copied back once")
}
