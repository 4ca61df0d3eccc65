package link_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

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
