package bundle

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var frameTopics = []Topic{{Name: "a", Partitions: 4}, {Name: "b", Partitions: 2}}

// encodeFrames encodes recs as one chunk's stream.
func encodeFrames(recs []Record) []byte {
	var out, buf []byte
	var st frameState
	for i := range recs {
		var frame []byte
		topic := 0
		if recs[i].Topic == "b" {
			topic = 1
		}
		buf, frame = encodeFrame(buf, &st, topic, &recs[i])
		out = append(out, frame...)
	}
	return out
}

// decodeFrames decodes a chunk's stream, copying the records.
func decodeFrames(data []byte) ([]Record, error) {
	fr := frameReader{topics: frameTopics}
	fr.reset(bufio.NewReader(bytes.NewReader(data)))
	var recs []Record
	for {
		_, err := fr.next()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		r := fr.rec
		r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		r.Headers = append([]Header(nil), r.Headers...)
		for i := range r.Headers {
			r.Headers[i].Value = bytes.Clone(r.Headers[i].Value)
		}
		recs = append(recs, r)
	}
}

func seedRecords() []Record {
	ts := time.UnixMilli(1_772_000_000_000).UTC()
	return []Record{
		{Topic: "a", Partition: 0, Offset: 0, Timestamp: ts, Key: []byte("k"), Value: []byte("v")},
		{Topic: "a", Partition: 0, Offset: 5, Timestamp: ts.Add(-time.Hour), Key: nil, Value: nil},
		{
			Topic: "b", Partition: 1, Offset: math.MaxInt64 - 1, Timestamp: time.UnixMilli(-1).UTC(), Key: []byte{}, Value: []byte{},
			Headers: []Header{{Key: "h", Value: nil}, {Key: "h", Value: []byte{}}, {Key: "", Value: []byte("x")}},
		},
		{Topic: "a", Partition: 3, Offset: 7, Timestamp: time.Time{}, Value: bytes.Repeat([]byte("z"), 300)},
	}
}

func TestFramesRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	recs := seedRecords()
	next := map[[2]int]int64{}
	some := func(n int) []byte {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		b := make([]byte, rng.IntN(n))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for range 2000 {
		t, p := rng.IntN(2), rng.IntN(2)
		k := [2]int{t, p}
		next[k] += int64(rng.IntN(3))
		r := Record{
			Topic: frameTopics[t].Name, Partition: int32(p), Offset: next[k],
			Timestamp: time.UnixMilli(rng.Int64N(1<<42) - 1<<41).UTC(), Key: some(20), Value: some(300),
		}
		next[k]++
		for range rng.IntN(3) {
			r.Headers = append(r.Headers, Header{Key: string(some(5)), Value: some(5)})
		}
		recs = append(recs, r)
	}
	got, err := decodeFrames(encodeFrames(recs))
	require.NoError(t, err)
	require.Equal(t, recs, got)
}

func TestFramesMalformed(t *testing.T) {
	good := encodeFrames(seedRecords())
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-1], "chunk ends in the middle of a record"},
		{"truncated length", []byte{0x80}, "chunk ends in the middle of a record"},
		{"empty frame", []byte{0}, "record of 0 bytes"},
		{"huge frame", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, "record of 4294967295 bytes"},
		{"unknown flags", []byte{1, 2}, "record flags 0x2"},
		{"same partition first", []byte{2, 1, 0}, "first record of a chunk refers to a record before it"},
		{"unknown topic", []byte{8, 0, 2, 0, 0, 0, 0, 0, 0}, "record of topic 2"},
		{"trailing bytes", []byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 7}, "1 bytes after a record"},
		{"short value", []byte{8, 0, 0, 0, 0, 0, 0, 9, 0}, "record cut short"},
		{"headers", []byte{8, 0, 0, 0, 0, 0, 0, 0, 9}, "record with 9 headers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeFrames(tc.data)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// FuzzFrames feeds the frame decoder arbitrary streams: it must return
// records or an error, never panic, and what it decodes must encode back to
// the same records.
func FuzzFrames(f *testing.F) {
	good := encodeFrames(seedRecords())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := decodeFrames(data)
		if err != nil {
			return
		}
		again, err := decodeFrames(encodeFrames(recs))
		require.NoError(t, err)
		require.Equal(t, recs, again)
	})
}
