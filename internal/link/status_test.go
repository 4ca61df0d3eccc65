package link_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestDataLossIn: the time until data loss is the least retention less
// backlog age over the topics with a backlog, a retention and a known age,
// floored at zero.
func TestDataLossIn(t *testing.T) {
	hour := time.Hour
	for _, tc := range []struct {
		name   string
		topics []link.TopicStatus
		want   time.Duration
		known  bool
	}{
		{name: "no topics"},
		{
			name:   "no backlog",
			topics: []link.TopicStatus{{Retention: hour, BacklogAge: 50 * time.Minute}},
		},
		{
			name:   "infinite retention",
			topics: []link.TopicStatus{{BacklogRecords: 5, BacklogAge: 3 * hour}},
		},
		{
			name:   "unknown age",
			topics: []link.TopicStatus{{BacklogRecords: 5, Retention: hour}},
		},
		{
			name:   "one topic",
			topics: []link.TopicStatus{{BacklogRecords: 5, Retention: hour, BacklogAge: 50 * time.Minute}},
			want:   10 * time.Minute, known: true,
		},
		{
			name: "least of several",
			topics: []link.TopicStatus{
				{BacklogRecords: 5, Retention: 24 * hour, BacklogAge: 20 * hour},
				{BacklogRecords: 5, Retention: hour, BacklogAge: 30 * time.Minute},
				{BacklogRecords: 5, BacklogAge: 30 * hour},
				{Retention: time.Minute, BacklogAge: 30 * hour},
			},
			want: 30 * time.Minute, known: true,
		},
		{
			name:   "deleting now",
			topics: []link.TopicStatus{{BacklogRecords: 5, Retention: hour, BacklogAge: 2 * hour}},
			want:   0, known: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, known := link.DataLossIn(tc.topics)
			require.Equal(t, tc.known, known)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestTimeUntilDataLossFake: a link with a backlog reports, per topic, the
// source retention (whatever sets it) and the backlog's age, and the time
// until the source deletes unreplicated records: the retention of the topic
// closest to it less its backlog's age. Topics that do not delete records
// by age do not count.
func TestTimeUntilDataLossFake(t *testing.T) {
	src := testbed.StartFake(t)
	dst := testbed.StartFake(t)
	sadm := kadm.NewClient(mustClient(t, src.ListenAddrs()))
	topics := []struct {
		name    string
		configs map[string]*string
		age     time.Duration // of the records written
		want    time.Duration // retention reported
	}{
		{"alerts", map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, 50 * time.Minute, time.Hour},
		{"sensors.default", nil, 6 * 24 * time.Hour, 7 * 24 * time.Hour}, // kfake's default retention.ms
		{"sensors.forever", map[string]*string{"retention.ms": kadm.StringPtr("-1")}, 3 * time.Hour, 0},
		{"sensors.compact", map[string]*string{"cleanup.policy": kadm.StringPtr("compact"), "retention.ms": kadm.StringPtr("60000")}, 2 * time.Hour, 0},
	}
	cl := mustClient(t, src.ListenAddrs())
	began := time.Now()
	for _, tp := range topics {
		resp, err := sadm.CreateTopic(t.Context(), 1, 1, tp.configs, tp.name)
		require.NoError(t, err)
		require.NoError(t, resp.Err)
		var recs []*kgo.Record
		for i := range 300 {
			recs = append(recs, &kgo.Record{
				Topic: tp.name, Timestamp: began.Add(-tp.age),
				Key: fmt.Appendf(nil, "k%d", i), Value: []byte(strings.Repeat("v", 1000)),
			})
		}
		require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
	}
	// 100 kB/s and a small producer buffer: the backlog drains for about
	// 12 s, long enough to be measured on a busy machine.
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    bandwidth: 800kbit/s\n    compression: none")
	l := link.New(cfg, cfg.Links[0], fastOpts, testLogger(t))
	link.SetProduceBuffer(l, 16<<10)
	stop := start(t, l)

	// Every topic has a backlog of known age (records were replicated from it).
	var st link.Status
	testbed.Eventually(t, 20*time.Second, func() error {
		st = l.Status()
		if len(st.Topics) != len(topics) {
			return fmt.Errorf("%d topics", len(st.Topics))
		}
		for _, ts := range st.Topics {
			if ts.BacklogRecords == 0 || ts.BacklogAge == 0 {
				return fmt.Errorf("%s: backlog %d, age %s", ts.Source, ts.BacklogRecords, ts.BacklogAge)
			}
		}
		return nil
	})
	// The backlog's age is that of the records, measured up to now.
	slack := time.Since(began) + time.Millisecond // timestamps are whole milliseconds
	byName := make(map[string]link.TopicStatus)
	for _, ts := range st.Topics {
		byName[ts.Source] = ts
	}
	for _, tp := range topics {
		ts := byName[tp.name]
		require.Equal(t, tp.want, ts.Retention, "%s retention", tp.name)
		require.GreaterOrEqual(t, ts.BacklogAge, tp.age, "%s backlog age", tp.name)
		require.LessOrEqual(t, ts.BacklogAge, tp.age+slack, "%s backlog age", tp.name)
	}
	require.True(t, st.DataLossKnown)
	// alerts: 1h retention, records 50 min old. sensors.default is a day
	// from loss; the others never lose records to age.
	require.LessOrEqual(t, st.DataLossIn, 10*time.Minute)
	require.GreaterOrEqual(t, st.DataLossIn, 10*time.Minute-slack)
	require.Equal(t, time.Hour-byName["alerts"].BacklogAge, st.DataLossIn)
	require.GreaterOrEqual(t, st.BacklogAge, 6*24*time.Hour, "the link's backlog age is its oldest topic's")

	// Once drained, no data loss is ahead.
	testbed.Eventually(t, 60*time.Second, func() error { return isLive(l) })
	st = l.Status()
	require.False(t, st.DataLossKnown)
	require.Zero(t, st.DataLossIn)
	for _, ts := range st.Topics {
		require.Zero(t, ts.BacklogAge, ts.Source)
		require.Equal(t, byName[ts.Source].Retention, ts.Retention, ts.Source)
	}
	require.NoError(t, stop())
}
