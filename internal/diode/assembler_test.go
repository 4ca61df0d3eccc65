package diode

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// mkBatch returns a batch of topic/partition [from, to) with a record at
// every offset.
func mkBatch(topic string, partition int32, from, to int64) *Batch {
	b := &Batch{Topic: topic, Partition: partition, From: from, To: to}
	for o := from; o < to; o++ {
		b.Records = append(b.Records, Record{Offset: o, Value: []byte{byte(o)}})
	}
	return b
}

type span struct{ from, to int64 }

func spans(bs []*Batch) []span {
	out := make([]span, len(bs))
	for i, b := range bs {
		out[i] = span{b.From, b.To}
	}
	return out
}

func TestAssemblerOrdersAndDropsRepeats(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAssembler(AssemblerOptions{RepairWindow: 10 * time.Second})
	a.Add(mkBatch("t", 0, 10, 20), t0) // before Expect: held
	require.Empty(t, a.Ready(), "nothing before Expect")
	a.Expect("t", 0, 0)
	a.Add(mkBatch("t", 0, 20, 30), t0)
	require.Empty(t, a.Ready(), "[0, 10) missing")
	a.Add(mkBatch("t", 0, 0, 10), t0)
	a.Add(mkBatch("t", 0, 0, 10), t0) // a repeat while held
	require.Equal(t, []span{{0, 10}, {10, 20}, {20, 30}}, spans(a.Ready()))
	a.Add(mkBatch("t", 0, 10, 20), t0) // a repeat of what was written
	a.Add(mkBatch("t", 0, 30, 30), t0) // empty range
	require.Empty(t, a.Ready())
	require.Zero(t, a.Buffered())
	st := a.Stats()
	require.Equal(t, int64(3), st.Released)
	require.Equal(t, int64(2), st.Repeats)
	open, final := a.Gaps(t0.Add(time.Hour))
	require.Empty(t, open)
	require.Empty(t, final)
}

func TestAssemblerTrimsOverlap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAssembler(AssemblerOptions{RepairWindow: time.Second})
	a.Expect("t", 1, 15)
	a.Add(mkBatch("t", 1, 10, 20), t0) // a sender started again from an earlier offset
	a.Add(mkBatch("t", 1, 18, 25), t0) // and cut its batches elsewhere
	got := a.Ready()
	require.Equal(t, []span{{15, 20}, {20, 25}}, spans(got))
	require.Equal(t, int64(15), got[0].Records[0].Offset)
	require.Len(t, got[0].Records, 5)
	require.Equal(t, int64(20), got[1].Records[0].Offset)
	require.Len(t, got[1].Records, 5)
}

func TestAssemblerGapsOpenThenFinal(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAssembler(AssemblerOptions{RepairWindow: 5 * time.Second})
	a.Expect("t", 0, 0)
	a.Expect("t", 1, 100)
	a.Add(mkBatch("t", 0, 0, 10), t0)
	a.Add(mkBatch("t", 0, 30, 40), t0.Add(2*time.Second))
	a.Add(mkBatch("t", 0, 20, 30), t0.Add(time.Second))
	a.Add(mkBatch("t", 0, 50, 60), t0.Add(3*time.Second))
	a.Add(mkBatch("t", 1, 110, 120), t0.Add(4*time.Second))
	require.Equal(t, []span{{0, 10}}, spans(a.Ready()))

	open, final := a.Gaps(t0.Add(6500 * time.Millisecond))
	require.Equal(t, []Gap{{Topic: "t", Partition: 0, From: 40, To: 50, Since: t0.Add(3 * time.Second)}, {Topic: "t", Partition: 1, From: 100, To: 110, Since: t0.Add(4 * time.Second)}}, open)
	require.Equal(t, []Gap{{Topic: "t", Partition: 0, From: 10, To: 20, Since: t0.Add(time.Second)}}, final)

	// A repair of the second gap arrives; the first is accepted as lost.
	a.Add(mkBatch("t", 0, 40, 50), t0.Add(6*time.Second))
	a.Skip(final[0])
	got := a.Ready()
	require.Equal(t, []span{{20, 30}, {30, 40}, {40, 50}, {50, 60}}, spans(got))
	a.Add(mkBatch("t", 0, 10, 20), t0.Add(7*time.Second)) // too late: skipped
	require.Empty(t, a.Ready())
	open, final = a.Gaps(t0.Add(20 * time.Second))
	require.Empty(t, open)
	require.Equal(t, []Gap{{Topic: "t", Partition: 1, From: 100, To: 110, Since: t0.Add(4 * time.Second)}}, final)
}

func TestAssemblerSkipAhead(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAssembler(AssemblerOptions{RepairWindow: time.Second})
	a.Expect("t", 0, 0)
	a.Add(mkBatch("t", 0, 10, 20), t0)
	a.Add(mkBatch("t", 0, 30, 40), t0)
	// The second gap is skipped before the first is settled.
	a.Skip(Gap{Topic: "t", Partition: 0, From: 20, To: 30})
	open, final := a.Gaps(t0.Add(2 * time.Second))
	require.Empty(t, open)
	require.Equal(t, []Gap{{Topic: "t", Partition: 0, From: 0, To: 10, Since: t0}}, final)
	a.Add(mkBatch("t", 0, 0, 10), t0.Add(2*time.Second))
	require.Equal(t, []span{{0, 10}, {10, 20}, {30, 40}}, spans(a.Ready()))
}

func TestAssemblerTailGapFromHeartbeat(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAssembler(AssemblerOptions{}) // window from heartbeats
	a.Expect("t", 0, 0)
	a.Expect("u", 0, 5)
	a.Add(mkBatch("t", 0, 0, 10), t0)
	require.Len(t, a.Ready(), 1)
	hb := &Heartbeat{
		Positions: map[TopicPartition]int64{{Topic: "t", Partition: 0}: 10, {Topic: "u", Partition: 0}: 5},
		Repeat:    RedundancyInfo{Repeat: []time.Duration{4 * time.Second}},
	}
	a.Heartbeat(hb, t0)
	open, final := a.Gaps(t0.Add(time.Hour))
	require.Empty(t, open, "the sender sent nothing beyond")
	require.Empty(t, final)

	hb.Positions[TopicPartition{Topic: "t", Partition: 0}] = 25
	a.Heartbeat(hb, t0.Add(time.Second))
	hb.Positions[TopicPartition{Topic: "t", Partition: 0}] = 30
	a.Heartbeat(hb, t0.Add(2*time.Second))
	open, final = a.Gaps(t0.Add(3 * time.Second))
	require.Equal(t, []Gap{{Topic: "t", Partition: 0, From: 10, To: 30, Since: t0.Add(2 * time.Second)}}, open)
	require.Empty(t, final)
	// A batch in the middle arrives: the tail splits around it.
	a.Add(mkBatch("t", 0, 15, 20), t0.Add(3*time.Second))
	require.Empty(t, a.Ready())
	window := hb.Repeat.RepairWindow() // 4s + 1s + 2s
	open, final = a.Gaps(t0.Add(time.Second + window))
	require.Equal(t, []Gap{{Topic: "t", Partition: 0, From: 20, To: 30, Since: t0.Add(2 * time.Second)}}, open)
	require.Equal(t, []Gap{{Topic: "t", Partition: 0, From: 10, To: 15, Since: t0.Add(time.Second)}}, final)
}

func TestAssemblerNoFinalGapBeforeHeartbeat(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAssembler(AssemblerOptions{})
	a.Expect("t", 0, 0)
	a.Add(mkBatch("t", 0, 10, 20), t0)
	open, final := a.Gaps(t0.Add(time.Hour))
	require.Len(t, open, 1)
	require.Empty(t, final, "the repair window is unknown until a heartbeat tells it")
}

func TestAssemblerMaxBuffered(t *testing.T) {
	t0 := time.Unix(1000, 0)
	one := mkBatch("t", 0, 0, 10).size()
	a := NewAssembler(AssemblerOptions{RepairWindow: time.Second, MaxBuffered: 3 * one})
	a.Expect("t", 0, 0)
	for i := int64(1); i <= 4; i++ {
		a.Add(mkBatch("t", 0, 10*i, 10*i+10), t0)
	}
	require.LessOrEqual(t, a.Buffered(), 3*one)
	st := a.Stats()
	require.Equal(t, int64(1), st.Evicted)
	require.Equal(t, 3, st.Pending)
	a.Add(mkBatch("t", 0, 0, 10), t0)
	require.Equal(t, []span{{0, 10}, {10, 20}, {20, 30}, {30, 40}}, spans(a.Ready()), "the batch furthest ahead went")
	open, _ := a.Gaps(t0)
	require.Empty(t, open)
}

func TestAssemblerExpectMovesNext(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := NewAssembler(AssemblerOptions{RepairWindow: time.Second})
	a.Add(mkBatch("t", 0, 0, 10), t0)
	a.Add(mkBatch("t", 0, 10, 20), t0)
	a.Expect("t", 0, 10) // the destination holds [0, 10) already
	require.Equal(t, []span{{10, 20}}, spans(a.Ready()))
	require.Zero(t, a.Buffered())
}
