package diode

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBatchRoundTripKeepsNilAndEmpty(t *testing.T) {
	ts := time.UnixMilli(1_700_000_000_123)
	in := &Batch{
		Topic: "plant.sensors", Partition: 7, From: 100, To: 110,
		Records: []Record{
			{Offset: 100, Timestamp: ts, Key: nil, Value: nil},
			{Offset: 101, Timestamp: ts, Key: []byte{}, Value: []byte{}},
			{Offset: 103, Timestamp: ts.Add(time.Millisecond), Key: []byte("k"), Value: nil, Headers: []Header{
				{Key: "a", Value: nil}, {Key: "", Value: []byte{}}, {Key: "b", Value: []byte("v")},
			}},
			{Offset: 109, Value: []byte("zero time")},
		},
	}
	out, err := decodeBatch(appendBatch(nil, in)[1:])
	require.NoError(t, err)
	require.Equal(t, in.Topic, out.Topic)
	require.Equal(t, in.Partition, out.Partition)
	require.Equal(t, in.From, out.From)
	require.Equal(t, in.To, out.To)
	require.Len(t, out.Records, len(in.Records))
	for i, r := range in.Records {
		got := out.Records[i]
		require.Equal(t, r.Offset, got.Offset)
		require.True(t, r.Timestamp.Equal(got.Timestamp), "timestamp %d: %v != %v", i, r.Timestamp, got.Timestamp)
		require.Equal(t, r.Key == nil, got.Key == nil, "key %d nil", i)
		require.Equal(t, r.Value == nil, got.Value == nil, "value %d nil", i)
		require.Equal(t, string(r.Key), string(got.Key))
		require.Equal(t, string(r.Value), string(got.Value))
		require.Len(t, got.Headers, len(r.Headers))
		for j, h := range r.Headers {
			require.Equal(t, h.Key, got.Headers[j].Key)
			require.Equal(t, h.Value == nil, got.Headers[j].Value == nil, "header %d/%d nil", i, j)
			require.Equal(t, string(h.Value), string(got.Headers[j].Value))
		}
	}
	require.True(t, out.Records[3].Timestamp.IsZero())
}

func TestEmptyBatchRoundTrip(t *testing.T) {
	in := &Batch{Topic: "t", Partition: 0, From: 5, To: 9}
	out, err := decodeBatch(appendBatch(nil, in)[1:])
	require.NoError(t, err)
	require.Equal(t, in, out)
}

func TestCheckBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Batch
	}{
		{"no topic", Batch{From: 0, To: 1}},
		{"to before from", Batch{Topic: "t", From: 5, To: 4}},
		{"negative", Batch{Topic: "t", From: -1, To: 4}},
		{"offset below from", Batch{Topic: "t", From: 5, To: 9, Records: []Record{{Offset: 4}}}},
		{"offset at to", Batch{Topic: "t", From: 5, To: 9, Records: []Record{{Offset: 9}}}},
		{"offsets out of order", Batch{Topic: "t", From: 5, To: 9, Records: []Record{{Offset: 7}, {Offset: 6}}}},
		{"offset twice", Batch{Topic: "t", From: 5, To: 9, Records: []Record{{Offset: 7}, {Offset: 7}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, checkBatch(&tc.b), ErrInvalidBatch)
		})
	}
	require.NoError(t, checkBatch(&Batch{Topic: "t", From: 5, To: 5}))
}

func TestHeartbeatRoundTrip(t *testing.T) {
	in := &Heartbeat{
		SourceCluster: "src-1", Site: "plant-a", Link: "ot",
		Topics: []Topic{
			{Name: "a", ID: "id-a", Partitions: 3, Config: map[string]string{"retention.ms": "1000", "cleanup.policy": "delete"}},
			{Name: "b", ID: "id-b", Partitions: 1},
		},
		Positions:   map[TopicPartition]int64{{Topic: "a", Partition: 2}: 42, {Topic: "b", Partition: 0}: 7},
		Origins:     map[TopicPartition]int64{{Topic: "a", Partition: 2}: 3}, // b's is unknown
		Sent:        time.Unix(1_700_000_000, 123456789),
		SenderStart: time.Unix(1_699_999_000, 5),
		Repeat:      RedundancyInfo{Data: 16, Parity: 4, Repeat: []time.Duration{2 * time.Second, 20 * time.Second}, Lag: 1500 * time.Millisecond},
	}
	out, err := decodeHeartbeat(appendHeartbeat(nil, in)[1:])
	require.NoError(t, err)
	require.True(t, in.Sent.Equal(out.Sent))
	require.True(t, in.SenderStart.Equal(out.SenderStart))
	out.Sent, out.SenderStart = in.Sent, in.SenderStart
	require.Equal(t, in, out)
}

func TestWindow(t *testing.T) {
	var w window
	require.False(t, w.has(0))
	w.mark(5000)
	require.True(t, w.has(5000))
	require.False(t, w.has(4999), "ids below the first one seen are not done")
	require.False(t, w.has(5001))
	w.mark(4000)
	require.True(t, w.has(4000))
	w.mark(5000 + windowBits)
	require.True(t, w.has(5000+windowBits))
	require.False(t, w.has(5001+windowBits/2))
	require.True(t, w.has(10), "older than the window counts as done")
	w.mark(5000 + 3*windowBits) // a jump clears everything
	require.False(t, w.has(5000+3*windowBits-1))
	require.True(t, w.has(5000+3*windowBits))
}

func TestRepeatsScheduleAndBuffer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := newRepeats([]time.Duration{time.Second, 3 * time.Second}, 300)
	for i := range 3 {
		r.push(make([]byte, 100), t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	due, ok := r.next()
	require.True(t, ok)
	require.Equal(t, t0.Add(time.Second), due)
	_, ok = r.pop(t0.Add(999 * time.Millisecond))
	require.False(t, ok)
	n := 0
	for {
		if _, ok := r.pop(t0.Add(1500 * time.Millisecond)); !ok {
			break
		}
		n++
	}
	require.Equal(t, 3, n, "first repetition of all three")
	due, _ = r.next()
	require.Equal(t, t0.Add(3*time.Second), due)
	// A fourth datagram pushes the first out before its second repetition.
	r.push(make([]byte, 100), t0.Add(2*time.Second))
	require.Equal(t, int64(1), r.skipped)
	n = 0
	for {
		if _, ok := r.pop(t0.Add(10 * time.Second)); !ok {
			break
		}
		n++
	}
	require.Equal(t, 2+2, n, "second repetition of two, both of the fourth")
	require.Empty(t, r.q)
	require.Zero(t, r.bytes)
}

func TestParityFor(t *testing.T) {
	require.Equal(t, 4, parityFor(16, 16, 4))
	require.Equal(t, 1, parityFor(1, 16, 4))
	require.Equal(t, 2, parityFor(8, 16, 4))
	require.Equal(t, 3, parityFor(9, 16, 4))
}
