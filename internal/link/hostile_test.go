package link_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

// produceRecords writes recs to seeds, in order, and returns them as the
// source holds them.
func produceRecords(t *testing.T, seeds []string, recs ...*kgo.Record) []srcRec {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(8<<20), kgo.MaxBufferedBytes(64<<20))
	require.NoError(t, err)
	defer cl.Close()
	var out []srcRec
	for _, r := range recs {
		res := cl.ProduceSync(t.Context(), r) // one batch each: the source accepts what the destination may not
		require.NoError(t, res.FirstErr())
		p := res[0].Record
		out = append(out, srcRec{p.Topic, p.Partition, p.Offset, p.Key, p.Value, p.Headers, p.Timestamp.UnixMilli()})
	}
	return out
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestHostileRecordsAreMirroredIntactFake: records that are legal but
// unusual arrive exactly as they were: null and empty keys and values,
// thousands of headers, a header of 300 KB, headers with empty or repeated
// keys and null values, binary keys, extreme timestamps.
func TestHostileRecordsAreMirroredIntactFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	many := make([]kgo.RecordHeader, 3000)
	for i := range many {
		many[i] = kgo.RecordHeader{Key: fmt.Sprintf("h%d", i%10), Value: []byte{byte(i)}}
	}
	recs := produceRecords(t, src.ListenAddrs(),
		&kgo.Record{Topic: "alerts", Key: nil, Value: nil},
		&kgo.Record{Topic: "alerts", Key: []byte{}, Value: []byte{}},
		&kgo.Record{Topic: "alerts", Key: nil, Value: []byte("null key")},
		&kgo.Record{Topic: "alerts", Key: []byte("tombstone"), Value: nil},
		&kgo.Record{Topic: "alerts", Key: []byte{0, 0xff, 0xfe, '\n'}, Value: []byte("binary key")},
		&kgo.Record{Topic: "alerts", Value: []byte("3000 headers"), Headers: many},
		&kgo.Record{Topic: "alerts", Value: []byte("huge header"), Headers: []kgo.RecordHeader{{Key: "blob", Value: random(300 << 10)}}},
		&kgo.Record{Topic: "alerts", Value: []byte("odd headers"), Headers: []kgo.RecordHeader{{Key: "", Value: nil}, {Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}}},
		&kgo.Record{Topic: "alerts", Value: []byte("epoch"), Timestamp: time.UnixMilli(0)},
		&kgo.Record{Topic: "alerts", Value: []byte("far future"), Timestamp: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)},
	)
	_, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stop())
}

// TestRecordsOverDestinationLimitFake: the destination's mirror topic takes
// at most 64 KiB per batch (max.message.bytes); the source holds records
// above it: a 100 KB value, and 80 KB of headers. With on_error: stop the
// link stops at the first one, names it, and mirrors nothing after it; with
// skip-and-record both are recorded in the skipped-records topic, counted,
// and replication goes on: nothing is dropped silently.
func TestRecordsOverDestinationLimitFake(t *testing.T) {
	var heavy []kgo.RecordHeader
	for i := range 80 {
		heavy = append(heavy, kgo.RecordHeader{Key: fmt.Sprintf("h%d", i), Value: random(1 << 10)})
	}
	for _, policy := range []config.OnError{config.OnErrorStop, config.OnErrorSkip} {
		t.Run(string(policy), func(t *testing.T) {
			src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
			dst := testbed.StartFake(t)
			dadm := kadm.NewClient(mustClient(t, dst.ListenAddrs()))
			resp, err := dadm.CreateTopic(t.Context(), 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("65536")}, "alerts")
			require.NoError(t, err)
			require.NoError(t, resp.Err)
			cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    on_error: "+string(policy))
			seeds := src.ListenAddrs()

			if policy == config.OnErrorStop {
				first := produceRecords(t, seeds, &kgo.Record{Topic: "alerts", Value: []byte("small-1")}, &kgo.Record{Topic: "alerts", Value: []byte("small-2")})
				l, stop := runLink(t, cfg, fastOpts)
				requireMirrored(t, first, readAll(t, dst.ListenAddrs(), "alerts", len(first)), "alerts")
				big := produceRecords(t, seeds, &kgo.Record{Topic: "alerts", Key: []byte("big"), Value: random(100_000)})
				produceRecords(t, seeds, &kgo.Record{Topic: "alerts", Value: []byte("small-3")})
				testbed.Eventually(t, 20*time.Second, func() error {
					if s := l.Status(); s.State != link.StateFailed {
						return fmt.Errorf("state %s, last error %q", s.State, s.LastError)
					}
					return nil
				})
				err := stop()
				require.ErrorIs(t, err, link.ErrRefused)
				require.ErrorContains(t, err, fmt.Sprintf("alerts[0] offset %d", big[0].offset))
				require.ErrorContains(t, err, "MESSAGE_TOO_LARGE")
				require.Contains(t, l.Status().LastError, "on_error: skip-and-record")
				// Order is kept: nothing after the refused record is mirrored.
				requireMirrored(t, first, readAll(t, dst.ListenAddrs(), "alerts", len(first)), "alerts")
				return
			}
			refused := produceRecords(t, seeds,
				&kgo.Record{Topic: "alerts", Key: []byte("big"), Value: random(100_000)},
				&kgo.Record{Topic: "alerts", Value: []byte("heavy"), Headers: heavy})
			l, stop := runLink(t, cfg, fastOpts)
			testbed.Eventually(t, 20*time.Second, func() error {
				if s := l.Status(); s.SkippedRecords != 2 {
					return fmt.Errorf("%d skipped, state %s, last error %q", s.SkippedRecords, s.State, s.LastError)
				}
				return nil
			})
			later := produceRecords(t, seeds, &kgo.Record{Topic: "alerts", Value: []byte("small-1")}, &kgo.Record{Topic: "alerts", Key: nil, Value: []byte("small-2")})
			requireMirrored(t, later, readAll(t, dst.ListenAddrs(), "alerts", len(later)), "alerts")
			skipped := readAll(t, dst.ListenAddrs(), link.SkippedTopic, 2)
			require.Len(t, skipped, 2)
			for i, r := range skipped {
				var e map[string]any
				require.NoError(t, json.Unmarshal(r.Value, &e))
				require.Contains(t, e["reason"], "MESSAGE_TOO_LARGE")
				require.Equal(t, "alerts", e["topic"])
				require.EqualValues(t, refused[i].offset, e["offset"])
				if i == 0 {
					require.EqualValues(t, 100_000, e["value_bytes"])
				} else {
					require.EqualValues(t, 80, e["headers"])
				}
			}
			require.Contains(t, l.Status().LastError, "MESSAGE_TOO_LARGE")
			require.NoError(t, stop())
		})
	}
}

// TestSmallRecordsBatchedWithAnOversizedOneFake: records that fit the
// destination must not be refused because they were batched with one that
// does not. The destination refuses a batch as a whole, so the engine caps
// its batches to the mirror topics' max.message.bytes.
func TestSmallRecordsBatchedWithAnOversizedOneFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	dst := testbed.StartFake(t)
	dadm := kadm.NewClient(mustClient(t, dst.ListenAddrs()))
	resp, err := dadm.CreateTopic(t.Context(), 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("65536")}, "alerts")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    on_error: skip-and-record")
	recs := produceRecords(t, src.ListenAddrs(),
		&kgo.Record{Topic: "alerts", Value: []byte("small-1")},
		&kgo.Record{Topic: "alerts", Value: random(100_000)},
		&kgo.Record{Topic: "alerts", Value: []byte("small-2")})
	l, stop := runLink(t, cfg, fastOpts)
	want := []srcRec{recs[0], recs[2]}
	requireMirrored(t, want, readAll(t, dst.ListenAddrs(), "alerts", len(want)), "alerts")
	require.EqualValues(t, 1, l.Status().SkippedRecords)
	require.NoError(t, stop())
}

// TestForeignProvenanceHeaderFake: a source record that carries a header
// named like edgelink's own, with a value that is not one, is mirrored with
// its headers intact; edgelink's header is appended after it.
func TestForeignProvenanceHeaderFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	produceRecords(t, src.ListenAddrs(), &kgo.Record{
		Topic: "alerts", Value: []byte("forged"),
		Headers: []kgo.RecordHeader{{Key: provenance.Key, Value: []byte("not ours")}},
	})
	_, stop := runLink(t, cfg, fastOpts)
	got := readAll(t, dst.ListenAddrs(), "alerts", 1)
	require.Len(t, got, 1)
	require.Equal(t, "forged", string(got[0].Value))
	require.Len(t, got[0].Headers, 2)
	require.Equal(t, "not ours", string(got[0].Headers[0].Value))
	o, err := provenance.Decode(got[0].Headers[1].Value)
	require.NoError(t, err)
	require.Equal(t, "plant-1", o.Site)
	require.NoError(t, stop())
}

// TestMirrorNameTooLongFake: a topic that is legal at the source but whose
// renamed mirror exceeds Kafka's 249 characters is reported (status, events)
// and left out; the other topics replicate.
func TestMirrorNameTooLongFake(t *testing.T) {
	long := "sensors." + strings.Repeat("y", 240) // 248 characters
	src := testbed.StartFake(t, kfake.SeedTopics(1, long, "sensors.ok"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    rename: "{site}.{topic}"`)
	recs := produceRecords(t, src.ListenAddrs(), &kgo.Record{Topic: "sensors.ok", Value: []byte("ok")})
	produceRecords(t, src.ListenAddrs(), &kgo.Record{Topic: long, Value: []byte("stays")})
	l, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "plant-1.sensors.ok", 1), "plant-1.sensors.ok")
	testbed.Eventually(t, 5*time.Second, func() error {
		if s := l.Status(); !strings.Contains(s.LastError, "is 256 characters long, Kafka allows 249") {
			return fmt.Errorf("last error %q", s.LastError)
		}
		return nil
	})
	_, err := link.MirrorTopic("plant-1", cfg.Links[0], long)
	require.ErrorContains(t, err, "is 256 characters long, Kafka allows 249")
	require.NoError(t, stop())
}
