package status

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/link"
)

// TestExtrapolate: once a link's own backlog measurement is stale, the
// backlog is that measurement, less what the link committed since, plus
// what the source gained since; while it is fresh, it stands as is.
func TestExtrapolate(t *testing.T) {
	t0 := time.Now().Add(-time.Minute)
	base := endSample{at: t0, ends: map[string]int64{"a": 100}, records: 50, topicRecords: map[string]int64{"a": 50}}
	w := &sourceWatch{
		samples: []endSample{base, {at: t0.Add(10 * time.Second), ends: map[string]int64{"a": 180}}},
		base:    &base, baseAt: t0,
	}
	st := link.Status{
		BacklogAt: t0, BacklogRecords: 20, BacklogAge: 2 * time.Second, DrainETA: 5 * time.Second,
		Records: 60, Bytes: 600,
		Topics: []link.TopicStatus{{Source: "a", Records: 60, BacklogRecords: 20}},
	}

	got, ok := w.extrapolate(st, t0.Add(time.Second))
	require.False(t, ok, "a fresh measurement stands")
	require.Equal(t, st, got)

	got, ok = w.extrapolate(st, t0.Add(10*time.Second))
	require.True(t, ok)
	require.Equal(t, int64(20+80-10), got.BacklogRecords)
	require.Equal(t, int64(90), got.Topics[0].BacklogRecords)
	require.Equal(t, int64(900), got.BacklogBytes)
	require.Equal(t, 12*time.Second, got.BacklogAge)
	require.Zero(t, got.DrainETA, "unknown until the link measures again")
	require.Equal(t, int64(20), st.Topics[0].BacklogRecords, "the link's own status is not changed")
}
