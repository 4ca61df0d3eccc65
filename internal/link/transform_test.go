package link_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

// produceReadings writes n JSON readings to topic's partition 0: machine
// i%100, temperature i%100 (so i%100 == 99 is the one hot reading in a
// hundred), a debug field to project away.
func produceReadings(t *testing.T, seeds []string, topic string, from, n int) {
	t.Helper()
	cl := mustClient(t, seeds)
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for j := range n {
		i := from + j
		v := fmt.Sprintf(`{"machine": "m%d", "temp": %d, "seq": %d, "debug": "%0100d"}`, i%100, i%100, i, i)
		recs[j] = &kgo.Record{Topic: topic, Partition: 0, Key: fmt.Appendf(nil, "m%d", i%100), Value: []byte(v)}
	}
	require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
}

// TestTransformsFake: a filter keeping one record in a hundred and a
// projection: the mirror holds exactly the kept records, projected, with
// their provenance; the filtered ones count, and the checkpoint moves past
// them, so a restarted link reads nothing again.
func TestTransformsFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    transforms:
      - filter: json.temp >= 99.0 && topic == "sensors.temp"
      - project: {keep: [machine, temp, seq]}`)
	produceReadings(t, src.ListenAddrs(), "sensors.temp", 0, 5000)
	l, stop := runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 30*time.Second, func() error {
		s := l.Status()
		if s.FilteredRecords != 4950 || s.Records != 50 {
			return fmt.Errorf("filtered %d, replicated %d", s.FilteredRecords, s.Records)
		}
		return nil
	})
	st := l.Status()
	require.EqualValues(t, 5000, st.RecordsIn, "every source record went in")
	require.Less(t, st.Bytes*100, st.BytesIn, "the filter and projection cut the payload a hundredfold")
	got := readAll(t, dst.ListenAddrs(), "sensors.temp", 50)
	require.Len(t, got, 50)
	for i, r := range got {
		var v map[string]any
		require.NoError(t, json.Unmarshal(r.Value, &v))
		require.Equal(t, map[string]any{"machine": "m99", "temp": 99.0, "seq": float64(i*100 + 99)}, v)
		o, found, err := provenance.Find(r)
		require.NoError(t, err)
		require.True(t, found)
		require.EqualValues(t, i*100+99, o.Offset, "the provenance names the source offset")
	}
	require.NoError(t, stop())

	// Only filtered records arrive: the checkpoint still follows them.
	produceReadings(t, src.ListenAddrs(), "sensors.temp", 5000, 98) // temps 0..97
	l, stop = runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 30*time.Second, func() error {
		if s := l.Status(); s.FilteredRecords != 98 || s.State != link.StateLive {
			return fmt.Errorf("filtered %d, state %s", s.FilteredRecords, s.State)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // a commit interval or two
	require.NoError(t, stop())
	l, stop = runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 30*time.Second, func() error { return isLive(l) })
	time.Sleep(300 * time.Millisecond)
	require.Zero(t, l.Status().FilteredRecords, "a restart reads nothing again")
	require.NoError(t, stop())
	require.Len(t, readAll(t, dst.ListenAddrs(), "sensors.temp", 50), 50)
}

// TestTransformErrorPolicyFake: a value that is not JSON where the filter
// reads json stops the link under on_error: stop, and is recorded in the
// skipped-records topic under skip-and-record, the other records flowing.
func TestTransformErrorPolicyFake(t *testing.T) {
	for _, policy := range []config.OnError{config.OnErrorStop, config.OnErrorSkip} {
		t.Run(string(policy), func(t *testing.T) {
			src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
			dst := testbed.StartFake(t)
			cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    on_error: "+string(policy)+`
    transforms:
      - filter: json.temp >= 0.0`)
			produceReadings(t, src.ListenAddrs(), "sensors.temp", 0, 10)
			cl := mustClient(t, src.ListenAddrs())
			res := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "sensors.temp", Value: []byte("not json")})
			require.NoError(t, res.FirstErr())
			bad := res[0].Record.Offset
			cl.Close()
			produceReadings(t, src.ListenAddrs(), "sensors.temp", 10, 10)

			l, stop := runLink(t, cfg, fastOpts)
			if policy == config.OnErrorStop {
				err := stopWhenFailed(t, l, stop)
				require.ErrorIs(t, err, link.ErrTransform)
				require.ErrorContains(t, err, fmt.Sprintf("sensors.temp[0] offset %d", bad))
				require.ErrorContains(t, err, "value is not JSON")
				require.LessOrEqual(t, len(readAll(t, dst.ListenAddrs(), "sensors.temp", 0)), 10, "nothing after it is replicated")
				return
			}
			require.Len(t, readAll(t, dst.ListenAddrs(), "sensors.temp", 20), 20)
			skipped := readAll(t, dst.ListenAddrs(), link.SkippedTopic, 1)
			require.Len(t, skipped, 1)
			require.Contains(t, string(skipped[0].Value), fmt.Sprintf(`"offset":%d`, bad))
			require.Contains(t, string(skipped[0].Value), "transform: value is not JSON")
			require.EqualValues(t, 1, l.Status().SkippedRecords)
			require.NoError(t, stop())
		})
	}
}
