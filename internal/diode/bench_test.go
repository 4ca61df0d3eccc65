package diode

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/faultnet"
)

// BenchmarkLoopbackGoodput sends 1 KiB records from a sender to a receiver
// on 127.0.0.1, and at 5% loss through a relay, until an assembler released
// them all (or the assembler gave up what could not be healed, counted in
// lost_records). goodput_MB/s is record payload (keys and values)
// delivered; overhead_% the bytes on the wire beyond the payload sent
// (framing, sealing, parity, repetitions). The sender is paced: on
// loopback an unpaced sender outruns the receiver's socket buffer.
func BenchmarkLoopbackGoodput(b *testing.B) {
	fec := DefaultRedundancy()
	healing := Redundancy{Data: 16, Parity: 4, Repeat: []time.Duration{100 * time.Millisecond}}
	for _, tc := range []struct {
		name string
		size int
		rate int64 // wire bytes per second
		loss float64
		red  Redundancy
	}{
		{"dgram=1400/loss=0/fec16+4", 1400, 150 << 20, 0, fec},
		{"dgram=8192/loss=0/fec16+4", 8192, 300 << 20, 0, fec},
		{"dgram=8192/loss=0/none", 8192, 200 << 20, 0, Redundancy{}},
		{"dgram=1400/loss=5%/fec16+4+repeat", 1400, 100 << 20, 0.05, healing},
		{"dgram=8192/loss=5%/fec16+4+repeat", 8192, 300 << 20, 0.05, healing},
	} {
		b.Run(tc.name, func(b *testing.B) {
			benchGoodput(b, tc.size, tc.loss, tc.red, tc.rate)
		})
	}
}

func benchGoodput(b *testing.B, size int, loss float64, red Redundancy, rate int64) {
	const recordSize, perBatch = 1024, 64
	key, err := GenerateKey()
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var closers []func() error
	defer func() {
		cancel()
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}()

	pc, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp", "127.0.0.1:0")
	require.NoError(b, err)
	closers = append(closers, pc.Close)
	require.NoError(b, pc.(*net.UDPConn).SetReadBuffer(socketBuffer))
	target := pc.LocalAddr().String()
	if loss > 0 {
		relay, err := faultnet.ListenUDP(target, 5)
		require.NoError(b, err)
		closers = append(closers, relay.Close)
		relay.SetFaults(faultnet.UDPFaults{Loss: loss})
		target = relay.Addr()
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "udp", target)
	require.NoError(b, err)
	require.NoError(b, conn.(*net.UDPConn).SetWriteBuffer(socketBuffer))
	s, err := NewSender(conn, SenderOptions{Key: key, Redundancy: red, DatagramSize: size, Rate: rate})
	require.NoError(b, err)
	closers = append(closers, s.Close)
	r := NewReceiver(pc, ReceiverOptions{Key: key})

	tp := TopicPartition{"bench", 0}
	batches := (b.N + perBatch - 1) / perBatch
	total := int64(batches * perBatch)
	var delivered, lost atomic.Int64
	wg.Add(3)
	go func() { defer wg.Done(); _ = s.Run(ctx) }()
	go func() { defer wg.Done(); _ = r.Run(ctx) }()
	go func() {
		// The engine's part: what cannot be healed is skipped, counted.
		defer wg.Done()
		a := NewAssembler(AssemblerOptions{RepairWindow: time.Second})
		a.Expect(tp.Topic, tp.Partition, 0)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		batches, hbs := r.Batches(), r.Heartbeats()
		for {
			select {
			case bt, ok := <-batches:
				if !ok {
					return
				}
				a.Add(bt, time.Now())
			case h, ok := <-hbs:
				if !ok {
					return
				}
				a.Heartbeat(h, time.Now())
			case <-tick.C:
				_, final := a.Gaps(time.Now())
				for _, g := range final {
					a.Skip(g)
					lost.Add(g.To - g.From)
				}
			}
			for _, rb := range a.Ready() {
				delivered.Add(int64(len(rb.Records)))
			}
		}
	}()
	require.NoError(b, s.Heartbeat(ctx, &Heartbeat{Topics: []Topic{{Name: tp.Topic, Partitions: 1}}}))

	// The batches are built before the clock starts: they are the engine's.
	value := make([]byte, recordSize-8)
	bs := make([]*Batch, batches)
	for i := range bs {
		from := int64(i * perBatch)
		bt := &Batch{Topic: tp.Topic, Partition: tp.Partition, From: from, To: from + perBatch, Records: make([]Record, perBatch)}
		for j := range bt.Records {
			bt.Records[j] = Record{Offset: from + int64(j), Key: []byte("key-0000"), Value: value}
		}
		bs[i] = bt
	}
	b.SetBytes(recordSize)
	b.ResetTimer()
	start := time.Now()
	for _, bt := range bs {
		if err := s.Send(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for delivered.Load()+lost.Load() < total {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d records delivered, %d lost; receiver %+v", delivered.Load(), total, lost.Load(), r.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(delivered.Load()*recordSize)/elapsed.Seconds()/1e6, "goodput_MB/s")
	b.ReportMetric(float64(lost.Load()), "lost_records")
	b.ReportMetric(100*(float64(st.Bytes)/float64(total*recordSize)-1), "overhead_%")
	rs := r.Stats()
	b.ReportMetric(float64(rs.Recovered)/float64(max(st.Datagrams-st.Parity, 1))*100, "rebuilt_%")
	if testing.Verbose() {
		b.Logf("%d records in %s; sender %+v; receiver %+v", total, elapsed, st, rs)
	}
}
