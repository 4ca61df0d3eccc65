package diode

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/faultnet"
)

func TestLoopbackLossAndReorderArriveExactlyOnce(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{
		relay: true, seed: 1,
		sender: SenderOptions{
			Rate:           8 << 20,
			Redundancy:     Redundancy{Data: 16, Parity: 4, Repeat: []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond}},
			HeartbeatEvery: 200 * time.Millisecond,
		},
		assembler: AssemblerOptions{RepairWindow: 5 * time.Second},
	})
	r.relay.SetFaults(faultnet.UDPFaults{Loss: 0.05, Reorder: 0.01})
	tps := []TopicPartition{{"a", 0}, {"a", 1}, {"b", 0}}
	for _, tp := range tps {
		r.expect(tp, 0)
	}
	r.heartbeat(tps...)
	const n = 3000
	for o := int64(0); o < n; o += 50 {
		for _, tp := range tps {
			r.send(tp, o, o+50, 50)
		}
	}
	for _, tp := range tps {
		r.waitDelivered(20*time.Second, tp, n)
	}
	eventually(t, 10*time.Second, func() error {
		ss := r.sender.Stats()
		r.mu.Lock()
		defer r.mu.Unlock()
		if ss.Repeats+ss.RepeatsSkipped < 2*(ss.Datagrams-ss.Heartbeats) || r.lastHB.Positions[TopicPartition{"b", 0}] != n {
			return fmt.Errorf("sender %+v, last heartbeat %v", ss, r.lastHB.Positions)
		}
		return nil
	})
	r.settle()
	open, final := r.gaps()
	require.Empty(t, open)
	require.Empty(t, final)
	rs, ss, fs := r.current.stats(), r.sender.Stats(), r.relay.Stats()
	t.Logf("sender %+v", ss)
	t.Logf("relay %+v", fs)
	t.Logf("receiver %+v", rs)
	require.Positive(t, fs.Dropped)
	require.Positive(t, fs.Reordered)
	require.Positive(t, rs.Recovered, "FEC rebuilt lost datagrams")
	require.Positive(t, rs.Duplicates, "repetitions were dropped")
	require.Zero(t, rs.Forged)
	require.Zero(t, rs.Malformed)
	require.Equal(t, int64(3*n/50), ss.Batches)
	r.mu.Lock()
	require.Positive(t, r.hbs)
	require.Equal(t, "plant", r.lastHB.Site)
	require.Equal(t, r.sender.Session(), r.lastHB.Session)
	r.mu.Unlock()
}

func TestLoopbackBurstHealedByRepeats(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{
		relay: true, seed: 2,
		sender: SenderOptions{
			Rate:           500 << 10,
			Redundancy:     Redundancy{Data: 16, Parity: 4, Repeat: []time.Duration{3 * time.Second}},
			HeartbeatEvery: 200 * time.Millisecond,
		},
		assembler: AssemblerOptions{RepairWindow: 6 * time.Second},
	})
	tp := TopicPartition{"burst", 0}
	r.expect(tp, 0)
	r.heartbeat(tp)
	r.relay.Burst(100*time.Millisecond, 2*time.Second, 0.3)
	// About 2.5 s of sending at the rate: the burst falls inside.
	const n = 7000
	start := time.Now()
	sent := make(chan error, 1)
	go func() {
		var err error
		for o := int64(0); o < n && err == nil; o += 100 {
			err = r.sender.Send(r.ctx, batchOf(tp, o, o+100))
		}
		sent <- err
	}()
	// The burst leaves holes FEC cannot fill: they stay open until the
	// repetitions come 3 s later.
	var oldest time.Duration
	var sentIn time.Duration
	for sentIn == 0 || time.Since(start) < sentIn+time.Second {
		select {
		case err := <-sent:
			require.NoError(t, err)
			sentIn = time.Since(start)
		case <-time.After(20 * time.Millisecond):
		}
		open, _ := r.gaps()
		for _, g := range open {
			oldest = max(oldest, time.Since(g.Since))
		}
	}
	require.Greater(t, sentIn, 2100*time.Millisecond, "the sending outlasts the burst")
	require.Greater(t, oldest, time.Second, "a gap waited for the repetitions")
	r.waitDelivered(15*time.Second, tp, n)
	open, final := r.gaps()
	require.Empty(t, open)
	require.Empty(t, final)
	rs, fs := r.current.stats(), r.relay.Stats()
	t.Logf("sent in %s; relay %+v; receiver %+v; sender %+v; a gap stayed open %s", sentIn, fs, rs, r.sender.Stats(), oldest)
	require.Greater(t, fs.Dropped, int64(150), "about 30%% of 2 s at 375 datagrams a second were lost")
	require.Positive(t, rs.Unrecoverable+rs.Recovered)
}

func TestLoopbackUnhealableLossIsAnExactFinalGap(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{
		relay: true, seed: 3,
		sender: SenderOptions{
			Redundancy:     Redundancy{Data: 4, Parity: 1, Repeat: []time.Duration{300 * time.Millisecond}},
			HeartbeatEvery: time.Hour, // heartbeats only when the test gives one
		},
		assembler: AssemblerOptions{RepairWindow: time.Second},
	})
	tp := TopicPartition{"gap", 3}
	r.expect(tp, 0)
	// lose sends [from, to) while the relay drops everything, and waits
	// until its every datagram, parity and repetitions included, was lost.
	lose := func(from, to int64) {
		r.settle()
		r.relay.SetFaults(faultnet.UDPFaults{Loss: 1})
		r.send(tp, from, to, 10)
		eventually(t, 5*time.Second, func() error {
			ss, fs := r.sender.Stats(), r.relay.Stats()
			if ss.Repeats != ss.Datagrams-ss.Heartbeats || fs.Received != ss.Datagrams+ss.Repeats {
				return fmt.Errorf("sender %+v, relay %+v", ss, fs)
			}
			return nil
		})
		r.relay.SetFaults(faultnet.UDPFaults{})
	}
	r.send(tp, 0, 10, 10)
	r.waitDelivered(5*time.Second, tp, 10)
	lose(10, 20)
	r.send(tp, 20, 30, 10)
	lose(30, 40)
	r.heartbeat(tp) // tells that the sender sent up to 40

	want := []Gap{{Topic: "gap", Partition: 3, From: 10, To: 20}, {Topic: "gap", Partition: 3, From: 30, To: 40}}
	eventually(t, 5*time.Second, func() error {
		open, final := r.gaps()
		if len(open) != 0 || len(final) != 2 {
			return fmt.Errorf("open %v, final %v", open, final)
		}
		return nil
	})
	_, final := r.gaps()
	require.Equal(t, want, ranges(final))
	for _, g := range final {
		require.False(t, g.Since.IsZero())
	}
	r.mu.Lock()
	for _, g := range final {
		r.asm.Skip(g)
	}
	r.takeReady()
	next := r.asm.parts[tp].next
	r.mu.Unlock()
	require.Equal(t, int64(40), next)
	var want2 []int64
	for o := int64(0); o < 10; o++ {
		want2 = append(want2, o)
	}
	for o := int64(20); o < 30; o++ {
		want2 = append(want2, o)
	}
	require.Equal(t, want2, r.offsets(tp))
	open, final := r.gaps()
	require.Empty(t, open)
	require.Empty(t, final)
}

func TestLoopbackForgedDatagramsDropped(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{
		relay: true, seed: 4,
		sender: SenderOptions{
			Rate:           8 << 20,
			Redundancy:     DefaultRedundancy(),
			HeartbeatEvery: 100 * time.Millisecond,
		},
		assembler: AssemblerOptions{RepairWindow: 5 * time.Second},
	})
	r.relay.SetFaults(faultnet.UDPFaults{Garbage: 0.1, Flip: 0.1})
	tp := TopicPartition{"forged", 0}
	r.expect(tp, 0)
	r.heartbeat(tp)
	const n = 2000
	r.send(tp, 0, n, 40)
	r.waitDelivered(10*time.Second, tp, n)
	eventually(t, 5*time.Second, func() error {
		fs, rs := r.relay.Stats(), r.current.stats()
		if rs.Datagrams != fs.Forwarded || rs.Forged != fs.Garbage+fs.Flipped {
			return fmt.Errorf("relay %+v, receiver %+v", fs, rs)
		}
		return nil
	})
	fs, rs := r.relay.Stats(), r.current.stats()
	t.Logf("relay %+v; receiver %+v", fs, rs)
	require.Positive(t, fs.Garbage)
	require.Positive(t, fs.Flipped)
	require.Zero(t, rs.Malformed)
	require.Equal(t, rs.Recovered, rs.Duplicates, "nothing repeated, nothing lost: the only duplicates are originals that came after FEC rebuilt them (readers race)")
	r.mu.Lock()
	require.Equal(t, int64(n/40), r.batches, "each batch delivered once, nothing else")
	r.mu.Unlock()
}

func TestLoopbackWrongKeyDeliversNothing(t *testing.T) {
	t.Parallel()
	other, err := GenerateKey()
	require.NoError(t, err)
	r := newRig(t, rigOptions{
		receiverKey: &other,
		sender:      SenderOptions{Redundancy: DefaultRedundancy(), HeartbeatEvery: 50 * time.Millisecond},
	})
	tp := TopicPartition{"secret", 0}
	r.expect(tp, 0)
	r.heartbeat(tp)
	r.send(tp, 0, 500, 50)
	eventually(t, 5*time.Second, func() error {
		ss, rs := r.sender.Stats(), r.current.stats()
		if ss.Datagrams < 20 || rs.Forged != ss.Datagrams {
			return fmt.Errorf("sender %+v, receiver %+v", ss, rs)
		}
		return nil
	})
	rs := r.current.stats()
	require.Equal(t, rs.Datagrams, rs.Forged, "every datagram failed authentication")
	require.Zero(t, rs.Batches)
	require.Zero(t, rs.Heartbeats)
	require.True(t, rs.Session.IsZero(), "no session was heard")
	r.mu.Lock()
	require.Zero(t, r.batches)
	require.Zero(t, r.hbs)
	r.mu.Unlock()
	require.Empty(t, r.offsets(tp))
}

func TestLoopbackReceiverRestartLosesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{
		sender: SenderOptions{
			Redundancy:     Redundancy{Data: 16, Parity: 4, Repeat: []time.Duration{time.Second}},
			HeartbeatEvery: 100 * time.Millisecond,
		},
		assembler: AssemblerOptions{RepairWindow: 3 * time.Second},
	})
	tp := TopicPartition{"restart", 0}
	r.expect(tp, 0)
	r.heartbeat(tp)
	const n, per = 4000, 40
	start := time.Now()
	for o := int64(0); o < n; o += per {
		if o == n/4 {
			// The receiver stops mid-stream; what is sent meanwhile gets
			// nowhere (the sender's socket may even see the port
			// unreachable); it comes back on its port knowing only the
			// destination's positions.
			addr := r.addr
			r.stopReceiver()
			r.send(tp, o, o+n/4, per)
			o += n / 4
			r.startReceiver(addr)
		}
		r.send(tp, o, o+per, per)
	}
	r.waitDelivered(10*time.Second, tp, n)
	t.Logf("sent in %s; sender %+v; receiver after restart %+v", time.Since(start), r.sender.Stats(), r.current.stats())
	rs := r.current.stats()
	require.Positive(t, rs.Duplicates, "the repetitions reached the new receiver")
	open, final := r.gaps()
	require.Empty(t, open)
	require.Empty(t, final)
}

func TestLoopbackLargeRecordsFragmented(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{
		relay: true, seed: 7,
		sender: SenderOptions{
			Rate:           16 << 20,
			Redundancy:     Redundancy{Data: 16, Parity: 4, Repeat: []time.Duration{500 * time.Millisecond}},
			HeartbeatEvery: 100 * time.Millisecond,
		},
		assembler: AssemblerOptions{RepairWindow: 3 * time.Second},
	})
	r.relay.SetFaults(faultnet.UDPFaults{Loss: 0.02, Reorder: 0.01, Duplicate: 0.01})
	tp := TopicPartition{bigTopic, 0}
	r.expect(tp, 0)
	r.heartbeat(tp)
	rng := rand.New(rand.NewPCG(7, 7))
	values := make([][]byte, 12)
	for i := range values {
		values[i] = make([]byte, 200<<10+i)
		for j := range values[i] {
			values[i][j] = byte(rng.Uint32())
		}
	}
	for i := 0; i < len(values); i += 2 {
		b := &Batch{Topic: tp.Topic, Partition: tp.Partition, From: int64(i), To: int64(i + 2)}
		for j := i; j < i+2; j++ {
			b.Records = append(b.Records, Record{Offset: int64(j), Key: []byte{byte(j)}, Value: values[j]})
		}
		require.NoError(t, r.sender.Send(t.Context(), b))
	}
	r.waitDelivered(15*time.Second, tp, int64(len(values)))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, rec := range r.got[tp] {
		require.True(t, bytes.Equal(values[i], rec.Value), "record %d", i)
		require.Equal(t, []byte{byte(i)}, rec.Key)
	}
	ss := r.sender.Stats()
	require.Greater(t, ss.Datagrams, int64(12*150), "a 200 KB record takes about 150 datagrams of 1400 bytes")
}

func TestReceiverRebuildsFromParity(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	c := &captureConn{}
	s, err := NewSender(c, SenderOptions{Key: key, Redundancy: Redundancy{Data: 4, Parity: 2}})
	require.NoError(t, err)
	tp := TopicPartition{"fec", 1}
	b := batchOf(tp, 0, 200) // about 12 datagrams: 3 full groups
	for i := range b.Records {
		b.Records[i].Value = bytes.Repeat([]byte{byte(i)}, 50)
	}
	require.NoError(t, s.Send(t.Context(), b))
	require.NoError(t, s.Close())
	ds := c.datagrams()
	st := s.Stats()
	require.Equal(t, int64(len(ds)), st.Datagrams)
	data := st.Datagrams - st.Parity
	wantParity := data / 4 * 2
	if data%4 > 0 {
		wantParity += int64(parityFor(int(data%4), 4, 2))
	}
	require.Equal(t, wantParity, st.Parity, "2 parity per 4 data, the last group in proportion")

	// Lose as many data datagrams of every group as it has parity, the
	// most FEC can rebuild; deliver the rest backwards, each twice.
	aead := newAEAD(key)
	groupOf := func(d []byte) groupHeader {
		_, pt, err := open(aead, append([]byte(nil), d...))
		require.NoError(t, err)
		gh, _, ok := parseGroupHeader(pt)
		require.True(t, ok)
		return gh
	}
	parity := make(map[uint64]int)
	for _, d := range ds {
		if d[3] == kindParity {
			gh := groupOf(d)
			parity[gh.group] = int(gh.parity)
		}
	}
	r := NewReceiver(nil, ReceiverOptions{Key: key})
	var keep [][]byte
	lost, keptData, keptParity := 0, 0, 0
	for _, d := range ds {
		switch gh := groupOf(d); {
		case d[3] == kindParity:
			keptParity++
		case int(gh.index) < parity[gh.group]:
			lost++
			continue
		default:
			keptData++
		}
		keep = append(keep, d)
	}
	var msgs []message
	for i := len(keep) - 1; i >= 0; i-- {
		for range 2 {
			msgs = append(msgs, r.handle(append([]byte(nil), keep[i]...), time.Now())...)
		}
	}
	require.Len(t, msgs, 1)
	got, _, err := decodeMessage(msgs[0].b)
	require.NoError(t, err)
	require.Equal(t, b.Records, fixTimes(got.Records, b.Records))
	rs := r.Stats()
	require.Equal(t, int64(lost), rs.Recovered)
	require.Equal(t, int64(keptData), rs.Duplicates, "the second copy of every data datagram")
	require.Equal(t, int64(keptParity), rs.Spare, "the second copy of every parity datagram")
	require.Zero(t, rs.Forged)
	require.Zero(t, r.buffered, "nothing held once every group is settled")
}

// fixTimes gives got the time values of want where they are equal, so
// that require.Equal compares the rest.
func fixTimes(got, want []Record) []Record {
	for i := range got {
		if i < len(want) && got[i].Timestamp.Equal(want[i].Timestamp) {
			got[i].Timestamp = want[i].Timestamp
		}
	}
	return got
}

func TestDatagramAuthentication(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	c := &captureConn{}
	s, err := NewSender(c, SenderOptions{Key: key, Redundancy: DefaultRedundancy()})
	require.NoError(t, err)
	require.NoError(t, s.Send(t.Context(), batchOf(TopicPartition{"t", 0}, 0, 3)))
	require.NoError(t, s.Close())
	d := c.datagrams()[0]
	aead := newAEAD(key)
	_, _, err = open(aead, append([]byte(nil), d...))
	require.NoError(t, err)
	for bit := range 8 * len(d) {
		f := append([]byte(nil), d...)
		f[bit/8] ^= 1 << (bit % 8)
		_, _, err := open(aead, f)
		require.ErrorIs(t, err, errAuth, "bit %d flipped", bit)
	}
	for n := range len(d) {
		_, _, err := open(aead, append([]byte(nil), d[:n]...))
		require.ErrorIs(t, err, errAuth, "truncated to %d", n)
	}
	other, err := GenerateKey()
	require.NoError(t, err)
	_, _, err = open(newAEAD(other), append([]byte(nil), d...))
	require.ErrorIs(t, err, errAuth, "another key")
}

func TestSenderOptions(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		o    SenderOptions
		err  string
	}{
		{"no key", SenderOptions{}, "no key"},
		{"small datagram", SenderOptions{Key: key, DatagramSize: 100}, "datagram size 100 is outside [256, 65000]"},
		{"large datagram", SenderOptions{Key: key, DatagramSize: 70000}, "outside"},
		{"bad redundancy", SenderOptions{Key: key, Redundancy: Redundancy{Data: 16}}, "parity must be at least 1"},
		{"negative rate", SenderOptions{Key: key, Rate: -1}, "rate -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSender(&captureConn{}, tc.o)
			require.ErrorContains(t, err, tc.err)
		})
	}
	s, err := NewSender(&captureConn{}, SenderOptions{Key: key})
	require.NoError(t, err)
	require.ErrorIs(t, s.Send(t.Context(), &Batch{Topic: "t", From: 3, To: 2}), ErrInvalidBatch)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Send(t.Context(), &Batch{Topic: "t", From: 0, To: 2}), ErrClosed)
	require.ErrorIs(t, s.Heartbeat(t.Context(), &Heartbeat{}), ErrClosed)
}

func TestSenderPacesToRate(t *testing.T) {
	t.Parallel()
	key, err := GenerateKey()
	require.NoError(t, err)
	c := &captureConn{}
	const rate = 1 << 20
	s, err := NewSender(c, SenderOptions{Key: key, Rate: rate, Redundancy: DefaultRedundancy()})
	require.NoError(t, err)
	start := time.Now()
	tp := TopicPartition{"pace", 0}
	for o := int64(0); o < 1000; o += 100 {
		b := batchOf(tp, o, o+100)
		for i := range b.Records {
			b.Records[i].Value = make([]byte, 500)
		}
		require.NoError(t, s.Send(t.Context(), b))
	}
	elapsed := time.Since(start)
	st := s.Stats()
	want := time.Duration(float64(st.Bytes) / rate * float64(time.Second))
	t.Logf("%d bytes in %s, %s at the rate", st.Bytes, elapsed, want)
	require.InDelta(t, want.Seconds(), elapsed.Seconds(), 0.1+want.Seconds()*0.1)
}
