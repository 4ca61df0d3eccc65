package provenance

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRoundTrip(t *testing.T) {
	for _, o := range []Origin{
		{ClusterID: "MkU3OEVBNTcwNTJENDM2Qg", Site: "plant-berlin", Partition: 5, Offset: 123456789},
		{},
		{ClusterID: "x", Partition: 1<<31 - 1, Offset: 1<<63 - 1},
	} {
		h := o.Header()
		require.Equal(t, Key, h.Key)
		got, err := Decode(h.Value)
		require.NoError(t, err)
		require.Equal(t, o, got)
	}
	require.LessOrEqual(t, len(Origin{ClusterID: "MkU3OEVBNTcwNTJENDM2Qg", Site: "plant-berlin", Partition: 11, Offset: 1 << 40}.Header().Value), 45)
}

func TestEncoderAppendsOneBufferPerChunk(t *testing.T) {
	e := NewEncoder("MkU3OEVBNTcwNTJENDM2Qg", "plant-berlin")
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
		require.Equal(t, Origin{ClusterID: "MkU3OEVBNTcwNTJENDM2Qg", Site: "plant-berlin", Partition: 11, Offset: 1<<40 - 3 + int64(i)}, got)
		start = end
	}
}

func TestFindKeepsFirstOrigin(t *testing.T) {
	first := Origin{ClusterID: "a", Offset: 1}
	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "other"}, first.Header(), Origin{ClusterID: "b", Offset: 2}.Header()}}
	got, ok, err := Find(r)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, first, got)
	_, ok, err = Find(&kgo.Record{})
	require.NoError(t, err)
	require.False(t, ok)
}

func FuzzDecode(f *testing.F) {
	f.Add(Origin{ClusterID: "c", Site: "s", Partition: 3, Offset: 9}.Append(nil))
	f.Add([]byte{1, 200, 200, 200})
	f.Fuzz(func(t *testing.T, v []byte) {
		o, err := Decode(v)
		if err == nil {
			got, err := Decode(o.Append(nil))
			require.NoError(t, err)
			require.Equal(t, o, got)
		}
	})
}
