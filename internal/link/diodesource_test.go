package link

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/diode"
)

// offsetsOf lists the offsets a fetch hands out for one partition, with
// the position-only records marked by a minus sign.
func offsetsOf(fs kgo.Fetches) []int64 {
	var out []int64
	fs.EachRecord(func(r *kgo.Record) {
		if r.Context == advanced {
			out = append(out, -r.Offset)
			return
		}
		out = append(out, r.Offset)
	})
	return out
}

// pollNow takes what a fetcher holds without waiting, as the intake does.
func pollNow(f fetcher) kgo.Fetches {
	return f.PollFetches(nil) //nolint:staticcheck // a nil context does not wait, as with franz-go's consumer
}

// TestDiodeSourceServesAgainWhatWasNotCommitted: what the receiver heard is
// handed to a session in offset order, from the checkpoint; a batch ending
// in offsets the sender did not carry ends in a record that only moves the
// position; what a session took and did not commit is handed again to the
// next session (a rewind), and what was committed is not.
func TestDiodeSourceServesAgainWhatWasNotCommitted(t *testing.T) {
	d := newDiodeSource(nil)
	now := time.Now()
	batch := func(from, to int64, offsets ...int64) *diode.Batch {
		b := &diode.Batch{Topic: "t", Partition: 0, From: from, To: to}
		for _, o := range offsets {
			b.Records = append(b.Records, diode.Record{Offset: o, Value: []byte("v")})
		}
		return b
	}
	add := func(b *diode.Batch) {
		d.mu.Lock()
		d.asm.Add(b, now)
		d.release()
		d.mu.Unlock()
	}
	k := tp{"t", 0}
	// Heard out of order, before any session: nothing is released yet.
	add(batch(13, 20, 13, 14))
	add(batch(10, 13, 10, 11, 12))

	f1, err := d.fetcher()
	require.NoError(t, err)
	f1.AddConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().At(11)}})
	require.Equal(t, []int64{11, 12, 13, 14, -19}, offsetsOf(pollNow(f1)), "from the checkpoint on, in order; 15..19 were not carried")
	require.Empty(t, offsetsOf(pollNow(f1)))

	// The session committed up to 13 and then rewound.
	d.committed(map[tp]int64{k: 13})
	f1.Close()
	add(batch(20, 22, 20, 21))
	f2, err := d.fetcher()
	require.NoError(t, err)
	f2.AddConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().At(13)}})
	require.Equal(t, []int64{13, 14, -19, 20, 21}, offsetsOf(pollNow(f2)), "what was not committed comes again, then what is new")

	// A paused partition is not served until resumed.
	add(batch(22, 23, 22))
	f2.PauseFetchPartitions(map[string][]int32{"t": {0}})
	require.Empty(t, offsetsOf(pollNow(f2)))
	f2.ResumeFetchPartitions(map[string][]int32{"t": {0}})
	require.Equal(t, []int64{22}, offsetsOf(pollNow(f2)))
	d.committed(map[tp]int64{k: 23})
	require.Empty(t, d.retained[k], "everything written is forgotten")
}
