package link_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

// commitAt commits offsets for group at the cluster of seeds, as a consumer
// that stopped there would have.
func commitAt(t *testing.T, seeds []string, group, topic string, at map[int32]int64) {
	t.Helper()
	adm := kadm.NewClient(mustClient(t, seeds))
	o := make(kadm.Offsets)
	for p, off := range at {
		o.Add(kadm.Offset{Topic: topic, Partition: p, At: off, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(t.Context(), group, o)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
}

// committedAt returns group's committed offsets of topic at the cluster of
// seeds.
func committedAt(t *testing.T, seeds []string, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(mustClient(t, seeds))
	got, err := adm.FetchOffsets(t.Context(), group)
	out := make(map[int32]int64)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out
	}
	require.NoError(t, err)
	got.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// TestGroupSyncFake: a group's committed source offsets reach the
// destination translated exactly (markers and aborted records shift the
// mirror's offsets), a quiet partition's to the mirror's end, an offset
// past what the link replicated only once it is; offsets never move
// backwards; a group consuming at the destination and a group not
// selected are left alone.
func TestGroupSyncFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.temp"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	cfg := linkConfig(t, seeds, dseeds, `    rename: "{site}.{topic}"
    groups: {include: ["app-.*"], exclude: ["app-skip"], interval: 100ms}`)
	recs := produce(t, seeds, "sensors.temp", 3, 40, "a")
	abortedTxn(t, seeds, "sensors.temp", 0, 9)
	recs = append(recs, produce(t, seeds, "sensors.temp", 3, 40, "b")...)
	const mirror = "plant-1.sensors.temp"

	// app-1 stopped at offset 55 of partition 0 (past the aborted records),
	// 3 of partition 1 and at the end of partition 2; app-skip is excluded.
	ends := map[int32]int64{}
	for _, r := range recs {
		ends[r.partition] = max(ends[r.partition], r.offset+1)
	}
	commitAt(t, seeds, "app-1", "sensors.temp", map[int32]int64{0: 55, 1: 3, 2: ends[2]})
	commitAt(t, seeds, "app-skip", "sensors.temp", map[int32]int64{0: 5})
	// app-busy consumes the mirror at the destination: it is not touched.
	commitAt(t, seeds, "app-busy", "sensors.temp", map[int32]int64{0: 70})

	_, err := kadm.NewClient(mustClient(t, dseeds)).CreateTopic(t.Context(), 3, 1, nil, mirror)
	require.NoError(t, err)
	busy, err := kgo.NewClient(kgo.SeedBrokers(dseeds...), kgo.ConsumerGroup("app-busy"), kgo.ConsumeTopics(mirror), kgo.DisableAutoCommit())
	require.NoError(t, err)
	defer busy.Close()
	testbed.Eventually(t, 10*time.Second, func() error {
		d, err := kadm.NewClient(mustClient(t, dseeds)).DescribeGroups(t.Context(), "app-busy")
		if err != nil {
			return err
		}
		if g := d["app-busy"]; len(g.Members) == 0 {
			return fmt.Errorf("app-busy has no member yet: %s", g.State)
		}
		return nil
	})

	l, stop := runLink(t, cfg, fastOpts)
	mirrored := readAll(t, dseeds, mirror, len(recs))
	requireMirrored(t, recs, mirrored, mirror)

	// want is the mirror offset where a consumer stopped at source offset
	// s of partition p continues.
	want := func(p int32, s int64) int64 {
		var last int64
		for _, r := range mirrored {
			if r.Partition != p {
				continue
			}
			last = r.Offset
			if o, _, _ := provenance.Find(r); o.Offset >= s {
				return r.Offset
			}
		}
		end, err := kadm.NewClient(mustClient(t, dseeds)).ListCommittedOffsets(t.Context(), mirror)
		require.NoError(t, err)
		o, _ := end.Lookup(mirror, p)
		require.Greater(t, o.Offset, last)
		return o.Offset
	}
	expect := map[int32]int64{0: want(0, 55), 1: want(1, 3), 2: want(2, ends[2])}
	require.NotEqual(t, int64(55), expect[0], "markers and aborted records shift the mirror")
	testbed.Eventually(t, 10*time.Second, func() error {
		if got := committedAt(t, dseeds, "app-1", mirror); fmt.Sprint(got) != fmt.Sprint(expect) {
			return fmt.Errorf("app-1 at the destination: %v, want %v", got, expect)
		}
		return nil
	})
	// Consumed past what was replicated: synced once it is.
	more := produce(t, seeds, "sensors.temp", 3, 10, "c")
	var end1 int64
	for _, r := range more {
		if r.partition == 1 {
			end1 = r.offset + 1
		}
	}
	commitAt(t, seeds, "app-1", "sensors.temp", map[int32]int64{1: end1})
	testbed.Eventually(t, 10*time.Second, func() error {
		mirrored = readAll(t, dseeds, mirror, len(recs)+len(more))
		w := want(1, end1)
		if got := committedAt(t, dseeds, "app-1", mirror)[1]; got != w {
			return fmt.Errorf("app-1 partition 1 at the destination: %d, want %d", got, w)
		}
		return nil
	})
	// Never backwards.
	commitAt(t, seeds, "app-1", "sensors.temp", map[int32]int64{0: 2})
	before := committedAt(t, dseeds, "app-1", mirror)
	time.Sleep(500 * time.Millisecond) // several rounds
	require.Equal(t, before, committedAt(t, dseeds, "app-1", mirror))

	require.Empty(t, committedAt(t, dseeds, "app-skip", mirror), "not selected")
	require.NotContains(t, committedAt(t, dseeds, "app-busy", mirror), int32(0), "consuming at the destination: untouched")
	st := l.Status().Groups
	require.NotNil(t, st)
	require.GreaterOrEqual(t, st.Active, 1)
	require.Empty(t, st.LastError)
	require.NoError(t, stop())
}
