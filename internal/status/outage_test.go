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

// TestExtrapolateDataLoss: during an outage each topic's backlog ages by
// the time since the link's measurement (a topic without a backlog then
// gains one at most that old; an unknown age stays unknown), and the time
// until data loss shrinks with it, to zero once retention deletes
// unreplicated records.
func TestExtrapolateDataLoss(t *testing.T) {
	t0 := time.Now().Add(-time.Hour)
	base := endSample{
		at: t0, ends: map[string]int64{"a": 100, "b": 50, "c": 10, "d": 30},
		records: 50, topicRecords: map[string]int64{"a": 50},
	}
	w := &sourceWatch{
		samples: []endSample{base, {at: t0.Add(10 * time.Second), ends: map[string]int64{"a": 180, "b": 55, "c": 17, "d": 30}}},
		base:    &base, baseAt: t0,
	}
	st := link.Status{
		BacklogAt: t0, BacklogRecords: 28, BacklogAge: 3 * time.Hour, Records: 60, Bytes: 600,
		DataLossIn: 10 * time.Minute, DataLossKnown: true,
		Topics: []link.TopicStatus{
			{Source: "a", Records: 60, BacklogRecords: 20, BacklogAge: 50 * time.Minute, Retention: time.Hour},
			{Source: "b", BacklogRecords: 5, BacklogAge: 3 * time.Hour}, // retention.ms -1
			{Source: "c", Retention: 5 * time.Minute},                   // no backlog when measured
			{Source: "d", BacklogRecords: 3, Retention: time.Minute},    // age unknown
		},
	}

	got, ok := w.extrapolate(st, t0.Add(10*time.Second))
	require.True(t, ok)
	ages := make(map[string]time.Duration)
	for _, tp := range got.Topics {
		ages[tp.Source] = tp.BacklogAge
	}
	require.Equal(t, map[string]time.Duration{
		"a": 50*time.Minute + 10*time.Second, "b": 3*time.Hour + 10*time.Second, "c": 10 * time.Second, "d": 0,
	}, ages)
	require.Equal(t, []int64{90, 10, 7, 3}, []int64{got.Topics[0].BacklogRecords, got.Topics[1].BacklogRecords, got.Topics[2].BacklogRecords, got.Topics[3].BacklogRecords})
	require.True(t, got.DataLossKnown)
	require.Equal(t, 5*time.Minute-10*time.Second, got.DataLossIn, "c's new backlog is closest to its retention")
	require.Equal(t, 10*time.Minute, st.DataLossIn, "the link's own status is not changed")

	got, ok = w.extrapolate(st, t0.Add(9*time.Minute))
	require.True(t, ok)
	require.True(t, got.DataLossKnown)
	require.Zero(t, got.DataLossIn, "c's oldest record may be past its retention: data is being lost")

	// Without c, a's retention is the nearest.
	st.Topics = st.Topics[:2]
	got, ok = w.extrapolate(st, t0.Add(10*time.Second))
	require.True(t, ok)
	require.True(t, got.DataLossKnown)
	require.Equal(t, 10*time.Minute-10*time.Second, got.DataLossIn)

	// Only topics that never lose records to age, or of unknown age: unknown.
	st.Topics = []link.TopicStatus{st.Topics[1], {Source: "d", BacklogRecords: 3, Retention: time.Minute}}
	got, ok = w.extrapolate(st, t0.Add(10*time.Second))
	require.True(t, ok)
	require.False(t, got.DataLossKnown)
	require.Zero(t, got.DataLossIn)
}
