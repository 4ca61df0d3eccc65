package provenance

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

const clusterID = "MkU3OEVBNTcwNTJENDM2Qg" // a Kafka cluster id's length

// hops returns n distinct cluster ids.
func hops(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("cluster-%02d-%s", i, clusterID[:10])
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, o := range []Origin{
		{ClusterID: clusterID, Site: "plant-berlin", Partition: 5, Offset: 123456789},
		{},
		{ClusterID: "x", Partition: 1<<31 - 1, Offset: 1<<63 - 1},
		{ClusterID: clusterID, Site: "cloud", Partition: 2, Offset: 7, Hops: []string{"edge-a"}},
		{ClusterID: clusterID, Partition: 0, Offset: 0, Hops: []string{"", "b"}},
		{ClusterID: "last", Site: "s", Partition: 11, Offset: 1 << 40, Hops: hops(MaxHops)},
	} {
		h := o.Header()
		require.Equal(t, Key, h.Key)
		require.Len(t, h.Value, o.encodedLen(), "Header sizes its value exactly")
		got, err := Decode(h.Value)
		require.NoError(t, err)
		require.Equal(t, o, got)
		require.True(t, Valid(h))
		if len(o.Hops) == 0 {
			require.EqualValues(t, 1, h.Value[0], "no earlier hops: version 1")
		} else {
			require.EqualValues(t, 2, h.Value[0], "earlier hops: version 2")
		}
	}
	require.LessOrEqual(t, len(Origin{ClusterID: clusterID, Site: "plant-berlin", Partition: 11, Offset: 1 << 40}.Header().Value), 45)
	// Each earlier hop costs its id and a length byte.
	one := Origin{ClusterID: clusterID, Site: "plant-berlin", Partition: 11, Offset: 1 << 40, Hops: []string{clusterID}}
	require.LessOrEqual(t, len(one.Header().Value), 45+1+23)
}

// TestVersion1 decodes a value as earlier releases wrote it, byte for
// byte, and encodes a record without earlier hops the same way.
func TestVersion1(t *testing.T) {
	v1 := []byte{1, 2, 'c', '1', 1, 's', 3, 0xac, 0x02} // cluster c1, site s, partition 3, offset 300
	got, err := Decode(v1)
	require.NoError(t, err)
	require.Equal(t, Origin{ClusterID: "c1", Site: "s", Partition: 3, Offset: 300}, got)
	require.Nil(t, got.Hops)
	require.Equal(t, "c1", got.First())
	require.Equal(t, v1, NewEncoder("c1", "s").Append(nil, 3, 300))
	require.Equal(t, v1, got.Append(nil))
	chained, err := NewEncoder("c1", "s").AppendChained(nil, 3, 300, []kgo.RecordHeader{{Key: "other", Value: []byte{2}}})
	require.NoError(t, err)
	require.Equal(t, v1, chained, "a record without provenance gets a version 1 value")
	// A later version may add fields: bytes after the last one are ignored.
	got, err = Decode(append(slices.Clone(v1), 0xff, 0xff))
	require.NoError(t, err)
	require.EqualValues(t, 300, got.Offset)
}

func TestEncoderAppendsOneBufferPerChunk(t *testing.T) {
	e := NewEncoder(clusterID, "plant-berlin")
	var buf []byte
	var ends []int
	for off := int64(1<<40 - 3); off < 1<<40; off++ {
		buf = e.Append(buf, 11, off)
		ends = append(ends, len(buf))
	}
	start := 0
	for i, end := range ends {
		require.LessOrEqual(t, end-start, e.MaxLen())
		got, err := Decode(buf[start:end])
		require.NoError(t, err)
		require.Equal(t, Origin{ClusterID: clusterID, Site: "plant-berlin", Partition: 11, Offset: 1<<40 - 3 + int64(i)}, got)
		start = end
	}
}

func TestAppendChained(t *testing.T) {
	hdr := func(o Origin) kgo.RecordHeader { return o.Header() }
	other := kgo.RecordHeader{Key: "seq", Value: []byte("7")}
	forged := kgo.RecordHeader{Key: Key, Value: []byte("not ours")}
	for _, tc := range []struct {
		name    string
		headers []kgo.RecordHeader
		hops    []string
	}{
		{name: "no headers"},
		{name: "no provenance", headers: []kgo.RecordHeader{other}},
		{name: "only a header that is not ours", headers: []kgo.RecordHeader{forged, other}},
		{name: "first hop", headers: []kgo.RecordHeader{other, hdr(Origin{ClusterID: "edge-a", Site: "a", Partition: 1, Offset: 9})}, hops: []string{"edge-a"}},
		{
			name:    "second hop",
			headers: []kgo.RecordHeader{hdr(Origin{ClusterID: "cloud", Partition: 1, Offset: 9, Hops: []string{"edge-a"}}), other},
			hops:    []string{"edge-a", "cloud"},
		},
		{
			// An earlier release appended one version 1 header per hop.
			name:    "headers of an earlier release",
			headers: []kgo.RecordHeader{hdr(Origin{ClusterID: "edge-a"}), other, hdr(Origin{ClusterID: "cloud"})},
			hops:    []string{"edge-a", "cloud"},
		},
		{
			name:    "a release of each kind",
			headers: []kgo.RecordHeader{hdr(Origin{ClusterID: "cloud", Hops: []string{"edge-a"}}), forged, hdr(Origin{ClusterID: "edge-b"})},
			hops:    []string{"edge-a", "cloud", "edge-b"},
		},
		{name: "longest chain", headers: []kgo.RecordHeader{hdr(Origin{ClusterID: hops(MaxHops)[MaxHops-1], Hops: hops(MaxHops - 1)})}, hops: hops(MaxHops)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEncoder("edge-b-id", "plant-b")
			prefix := []byte("earlier values")
			v, err := e.AppendChained(slices.Clone(prefix), 4, 1234, tc.headers)
			require.NoError(t, err)
			require.Equal(t, prefix, v[:len(prefix)], "appends")
			got, err := Decode(v[len(prefix):])
			require.NoError(t, err)
			require.Equal(t, Origin{ClusterID: "edge-b-id", Site: "plant-b", Partition: 4, Offset: 1234, Hops: tc.hops}, got)
			require.Equal(t, tc.hops, nilIfEmpty(Chain(tc.headers)))
			for _, h := range tc.hops {
				require.True(t, Visited(tc.headers, h), "visited %s", h)
			}
			require.False(t, Visited(tc.headers, "edge-b-id"))
			require.False(t, Visited(tc.headers, "nowhere"))
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestAppendChainedRefusesTooManyHops(t *testing.T) {
	e := NewEncoder("next", "")
	// MaxHops earlier hops and the header's own cluster: MaxHops+1.
	full := Origin{ClusterID: "last", Hops: hops(MaxHops)}.Header()
	dst := []byte("kept")
	got, err := e.AppendChained(dst, 0, 1, []kgo.RecordHeader{full})
	require.ErrorIs(t, err, ErrTooManyHops)
	require.ErrorContains(t, err, "been in 17 clusters")
	require.ErrorContains(t, err, hops(1)[0]+", ")
	require.Equal(t, []byte("kept"), got, "dst unchanged")
	// Earlier releases' headers count the same.
	var legacy []kgo.RecordHeader
	for _, c := range hops(MaxHops + 1) {
		legacy = append(legacy, Origin{ClusterID: c}.Header())
	}
	_, err = e.AppendChained(nil, 0, 1, legacy)
	require.ErrorIs(t, err, ErrTooManyHops)
	_, err = e.AppendChained(nil, 0, 1, legacy[:MaxHops])
	require.NoError(t, err)
	// A value listing more than MaxHops hops is not ours.
	over := Origin{ClusterID: "x", Hops: hops(MaxHops + 1)}.Append(nil)
	_, err = Decode(over)
	require.ErrorIs(t, err, ErrMalformed)
	require.ErrorContains(t, err, "number of hops")
}

func TestVisitedOrigin(t *testing.T) {
	o := Origin{ClusterID: "cloud", Hops: []string{"edge-a", "edge-b"}}
	for _, id := range []string{"cloud", "edge-a", "edge-b"} {
		require.True(t, o.Visited(id))
	}
	require.False(t, o.Visited("edge-c"))
	require.False(t, o.Visited(""))
	require.Equal(t, "edge-a", o.First())
	require.Equal(t, "cloud", Origin{ClusterID: "cloud"}.First())
}

func TestDecodeMalformed(t *testing.T) {
	long := strings.Repeat("x", 300)
	good := Origin{ClusterID: "c", Site: "s", Partition: 1, Offset: 2, Hops: []string{"a", "b"}}.Append(nil)
	for _, tc := range []struct {
		name, field string
		v           []byte
	}{
		{"empty", "unknown version", nil},
		{"version 0", "unknown version", []byte{0, 1, 'c', 0, 0, 0}},
		{"version 3", "unknown version", []byte{3, 1, 'c', 0, 0, 0}},
		{"text", "unknown version", []byte("not ours")},
		{"no cluster id", "cluster id", []byte{1}},
		{"cluster id longer than the value", "cluster id", append([]byte{1, 0xac, 0x02}, long[:299]...)},
		{"cluster id length overflows", "cluster id", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"cluster id length never ends", "cluster id", []byte{1, 0x80, 0x80}},
		{"no site", "site", []byte{1, 1, 'c'}},
		{"no partition", "partition", []byte{1, 1, 'c', 0}},
		{"partition above int32", "partition", []byte{1, 1, 'c', 0, 0x80, 0x80, 0x80, 0x80, 0x08, 0}},
		{"no offset", "offset", []byte{1, 1, 'c', 0, 3}},
		{"offset above int64", "offset", []byte{1, 1, 'c', 0, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"version 2 without hops", "number of hops", []byte{2, 1, 'c', 0, 3, 4}},
		{"more hops than allowed", "number of hops", []byte{2, 1, 'c', 0, 3, 4, MaxHops + 1}},
		{"fewer hops than counted", "hop", good[:len(good)-2]},
		{"hop cut short", "hop", good[:len(good)-1]},
		{"hop longer than the value", "hop", []byte{2, 1, 'c', 0, 3, 4, 1, 5, 'a'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.v)
			require.ErrorIs(t, err, ErrMalformed)
			require.ErrorContains(t, err, ": "+tc.field)
			h := kgo.RecordHeader{Key: Key, Value: tc.v}
			require.False(t, Valid(h))
			hs := []kgo.RecordHeader{h}
			require.False(t, Visited(hs, "c"))
			require.False(t, Visited(hs, "a"))
			require.Empty(t, Chain(hs))
			v, err := NewEncoder("d", "").AppendChained(nil, 0, 0, hs)
			require.NoError(t, err)
			require.Equal(t, NewEncoder("d", "").Append(nil, 0, 0), v, "a header that is not ours adds no hop")
		})
	}
}

func TestFindReturnsTheLatestHop(t *testing.T) {
	first := Origin{ClusterID: "a", Offset: 1}
	latest := Origin{ClusterID: "b", Offset: 2}
	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "other"}, first.Header(), latest.Header(), {Key: "after"}}}
	got, ok, err := Find(r)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, latest, got)
	_, ok, err = Find(&kgo.Record{})
	require.NoError(t, err)
	require.False(t, ok)
	_, ok, err = Find(&kgo.Record{Headers: []kgo.RecordHeader{first.Header(), {Key: Key, Value: []byte{9}}}})
	require.True(t, ok)
	require.ErrorIs(t, err, ErrMalformed)
}

// The copy loop's calls allocate nothing of their own.
func TestHotPathAllocations(t *testing.T) {
	e := NewEncoder(clusterID, "plant-berlin")
	headers := []kgo.RecordHeader{{Key: "seq", Value: []byte("1")}, Origin{ClusterID: "cloud-id", Site: "cloud", Offset: 5, Hops: []string{"edge-a-id"}}.Header()}
	buf := make([]byte, 0, 1024)
	require.Zero(t, testing.AllocsPerRun(100, func() { buf = e.Append(buf[:0], 3, 1<<40) }))
	require.Zero(t, testing.AllocsPerRun(100, func() {
		var err error
		if buf, err = e.AppendChained(buf[:0], 3, 1<<40, headers); err != nil {
			panic(err)
		}
	}))
	require.Zero(t, testing.AllocsPerRun(100, func() {
		if !Visited(headers, "edge-a-id") || Visited(headers, "edge-b-id") {
			panic("visited")
		}
	}))
	require.Zero(t, testing.AllocsPerRun(100, func() {
		if !Valid(headers[1]) {
			panic("valid")
		}
	}))
}

func FuzzDecode(f *testing.F) {
	f.Add(Origin{ClusterID: "c", Site: "s", Partition: 3, Offset: 9}.Append(nil))
	f.Add(Origin{ClusterID: "c", Site: "s", Partition: 3, Offset: 9, Hops: []string{"a", "b"}}.Append(nil))
	f.Add([]byte{1, 200, 200, 200})
	f.Add([]byte{2, 1, 'c', 0, 3, 4, 2, 1, 'a'})
	f.Fuzz(func(t *testing.T, v []byte) {
		o, err := Decode(v)
		h := []kgo.RecordHeader{{Key: Key, Value: v}}
		require.Equal(t, err == nil, Valid(h[0]))
		if err != nil {
			require.Empty(t, Chain(h))
			return
		}
		require.LessOrEqual(t, len(o.Hops), MaxHops)
		got, err := Decode(o.Append(nil))
		require.NoError(t, err)
		require.Equal(t, o, got)
		require.Equal(t, append(slices.Clone(o.Hops), o.ClusterID), Chain(h))
		require.True(t, Visited(h, o.ClusterID))
		for _, c := range o.Hops {
			require.True(t, Visited(h, c))
		}
		// The next hop's header lists this one's clusters.
		next, err := NewEncoder("next", "").AppendChained(nil, 1, 2, h)
		if len(o.Hops) == MaxHops {
			require.ErrorIs(t, err, ErrTooManyHops)
			return
		}
		require.NoError(t, err)
		n, err := Decode(next)
		require.NoError(t, err)
		require.Equal(t, Chain(h), n.Hops)
	})
}

func BenchmarkEncoderAppend(b *testing.B) {
	e := NewEncoder(clusterID, "plant-berlin")
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if len(buf)+e.MaxLen() > cap(buf) {
			buf = buf[:0]
		}
		buf = e.Append(buf, 11, int64(1<<40+i))
	}
}

// BenchmarkEncoderAppendChained: the value for a record that crossed one
// link before (version 2, one earlier hop), among two other headers.
func BenchmarkEncoderAppendChained(b *testing.B) {
	e := NewEncoder(clusterID, "plant-berlin")
	headers := []kgo.RecordHeader{
		{Key: "seq", Value: []byte("p-1234")},
		{Key: "unit", Value: []byte("C")},
		Origin{ClusterID: "Q2xvdWRDbHVzdGVySWQwMQ", Site: "cloud", Partition: 11, Offset: 1 << 30}.Header(),
	}
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if len(buf)+2*e.MaxLen()+64 > cap(buf) {
			buf = buf[:0]
		}
		var err error
		if buf, err = e.AppendChained(buf, 11, int64(1<<40+i), headers); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVisited: the loop check of a record that crossed two links.
func BenchmarkVisited(b *testing.B) {
	headers := []kgo.RecordHeader{
		{Key: "seq", Value: []byte("p-1234")},
		Origin{ClusterID: "Q2xvdWRDbHVzdGVySWQwMQ", Site: "cloud", Partition: 11, Offset: 1 << 30, Hops: []string{clusterID}}.Header(),
	}
	b.ReportAllocs()
	for b.Loop() {
		if Visited(headers, "RWRnZUJDbHVzdGVySWQwMQ") {
			b.Fatal("visited")
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	v := Origin{ClusterID: "Q2xvdWRDbHVzdGVySWQwMQ", Site: "cloud", Partition: 11, Offset: 1 << 30, Hops: []string{clusterID}}.Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(v); err != nil {
			b.Fatal(err)
		}
	}
}
