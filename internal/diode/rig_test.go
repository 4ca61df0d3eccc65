package diode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/faultnet"
)

// eventually polls f until it returns nil or d passed, then fails with
// f's last error.
func eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// socketBuffer is asked for the test sockets: loopback bursts must not
// overflow them.
const socketBuffer = 8 << 20

// rig is a sender and a receiver on loopback, optionally through a
// faultnet relay, with an assembler fed by the receiver, as the engine
// would run them.
type rig struct {
	t      testing.TB
	ctx    context.Context
	sender *Sender
	relay  *faultnet.UDPRelay
	addr   string // the receiver's
	ropts  ReceiverOptions
	aopts  AssemblerOptions

	wg      sync.WaitGroup // the sender's and receivers' goroutines
	errMu   sync.Mutex
	errs    []error
	current *receiverRun

	mu      sync.Mutex
	asm     *Assembler
	got     map[TopicPartition][]Record
	bad     []string // what broke the order or content
	hbs     int
	lastHB  *Heartbeat
	batches int64 // delivered by receivers, repetitions included
}

type receiverRun struct {
	conn   net.PacketConn
	recv   *Receiver
	cancel context.CancelFunc
	done   chan struct{}
}

type rigOptions struct {
	sender      SenderOptions
	receiverKey *Key // another key than the sender's
	relay       bool
	seed        uint64
	assembler   AssemblerOptions
}

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, ctx: ctx, got: make(map[TopicPartition][]Record), aopts: o.assembler}
	if o.sender.Key == (Key{}) {
		k, err := GenerateKey()
		require.NoError(t, err)
		o.sender.Key = k
	}
	r.ropts = ReceiverOptions{Key: o.sender.Key}
	if o.receiverKey != nil {
		r.ropts.Key = *o.receiverKey
	}
	r.startReceiver("127.0.0.1:0")
	target := r.addr
	if o.relay {
		relay, err := faultnet.ListenUDP(r.addr, o.seed)
		require.NoError(t, err)
		r.relay = relay
		target = relay.Addr()
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "udp", target)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.UDPConn).SetWriteBuffer(socketBuffer))
	s, err := NewSender(conn, o.sender)
	require.NoError(t, err)
	r.sender = s
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.fail(s.Run(ctx))
	}()
	t.Cleanup(func() {
		cancel()
		r.stopReceiver()
		r.wg.Wait()
		_ = s.Close()
		if r.relay != nil {
			_ = r.relay.Close()
		}
		r.errMu.Lock()
		defer r.errMu.Unlock()
		for _, err := range r.errs {
			t.Errorf("rig: %v", err)
		}
	})
	return r
}

func (r *rig) fail(err error) {
	if err == nil {
		return
	}
	r.errMu.Lock()
	r.errs = append(r.errs, err)
	r.errMu.Unlock()
}

// startReceiver starts a receiver on addr, with a new assembler that
// expects every partition where the last one stopped: the destination's
// checkpoints.
func (r *rig) startReceiver(addr string) {
	t := r.t
	conn, err := (&net.ListenConfig{}).ListenPacket(r.ctx, "udp", addr)
	require.NoError(t, err)
	require.NoError(t, conn.(*net.UDPConn).SetReadBuffer(socketBuffer))
	r.addr = conn.LocalAddr().String()
	recv := NewReceiver(conn, r.ropts)
	ctx, cancel := context.WithCancel(r.ctx)
	run := &receiverRun{conn: conn, recv: recv, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	old := r.asm
	r.asm = NewAssembler(r.aopts)
	if old != nil {
		for tp, p := range old.parts {
			if p.expected {
				r.asm.Expect(tp.Topic, tp.Partition, p.next)
			}
		}
	}
	r.mu.Unlock()
	r.current = run
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		defer close(run.done)
		r.fail(recv.Run(ctx))
	}()
	go func() {
		defer r.wg.Done()
		r.collect(recv)
	}()
}

// stopReceiver stops the current receiver and closes its socket.
func (r *rig) stopReceiver() {
	run := r.current
	if run == nil {
		return
	}
	r.current = nil
	run.cancel()
	<-run.done
	_ = run.conn.Close()
}

// collect feeds the assembler from recv until its channels close.
func (r *rig) collect(recv *Receiver) {
	batches, hbs := recv.Batches(), recv.Heartbeats()
	for batches != nil || hbs != nil {
		select {
		case b, ok := <-batches:
			if !ok {
				batches = nil
				continue
			}
			r.mu.Lock()
			r.batches++
			r.asm.Add(b, time.Now())
			r.takeReady()
			r.mu.Unlock()
		case h, ok := <-hbs:
			if !ok {
				hbs = nil
				continue
			}
			r.mu.Lock()
			r.hbs++
			r.lastHB = h
			r.asm.Heartbeat(h, time.Now())
			r.mu.Unlock()
		}
	}
}

// takeReady moves what the assembler released into got, checking order
// and content. r.mu is held.
func (r *rig) takeReady() {
	for _, b := range r.asm.Ready() {
		tp := TopicPartition{Topic: b.Topic, Partition: b.Partition}
		recs := r.got[tp]
		for _, rec := range b.Records {
			if n := len(recs); n > 0 && rec.Offset <= recs[n-1].Offset {
				r.bad = append(r.bad, fmt.Sprintf("%v: offset %d after %d", tp, rec.Offset, recs[n-1].Offset))
			}
			if want := record(tp, rec.Offset); tp.Topic != bigTopic && !sameRecord(want, rec) {
				r.bad = append(r.bad, fmt.Sprintf("%v: record %d differs", tp, rec.Offset))
			}
			recs = append(recs, rec)
		}
		r.got[tp] = recs
	}
}

// bigTopic is the topic of large records, checked by their test.
const bigTopic = "big"

// record is the test record at offset of tp: every fourth a tombstone
// with a nil key, every fourth after it with an empty key and value, the
// others with a key, a value and headers.
func record(tp TopicPartition, offset int64) Record {
	r := Record{Offset: offset, Timestamp: time.UnixMilli(1_700_000_000_000 + offset)}
	switch offset % 4 {
	case 0:
	case 1:
		r.Key, r.Value = []byte{}, []byte{}
	default:
		r.Key = fmt.Appendf(nil, "k%d", offset)
		r.Value = fmt.Appendf(nil, "%s/%d@%d:%s", tp.Topic, tp.Partition, offset, strings.Repeat("x", int(offset%400)))
		r.Headers = []Header{{Key: "h", Value: r.Key}, {Key: "nil"}}
	}
	return r
}

func sameRecord(a, b Record) bool {
	if a.Offset != b.Offset || !a.Timestamp.Equal(b.Timestamp) ||
		(a.Key == nil) != (b.Key == nil) || (a.Value == nil) != (b.Value == nil) ||
		!bytes.Equal(a.Key, b.Key) || !bytes.Equal(a.Value, b.Value) || len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i].Key != b.Headers[i].Key || (a.Headers[i].Value == nil) != (b.Headers[i].Value == nil) || !bytes.Equal(a.Headers[i].Value, b.Headers[i].Value) {
			return false
		}
	}
	return true
}

// batchOf returns the test batch [from, to) of tp.
func batchOf(tp TopicPartition, from, to int64) *Batch {
	b := &Batch{Topic: tp.Topic, Partition: tp.Partition, From: from, To: to}
	for o := from; o < to; o++ {
		b.Records = append(b.Records, record(tp, o))
	}
	return b
}

// expect makes the assembler expect tp from next.
func (r *rig) expect(tp TopicPartition, next int64) {
	r.mu.Lock()
	r.asm.Expect(tp.Topic, tp.Partition, next)
	r.takeReady()
	r.mu.Unlock()
}

// send sends [from, to) of tp in batches of n records.
func (r *rig) send(tp TopicPartition, from, to, n int64) {
	r.t.Helper()
	for o := from; o < to; o += n {
		require.NoError(r.t, r.sender.Send(r.ctx, batchOf(tp, o, min(o+n, to))))
	}
}

// heartbeat gives the sender a heartbeat naming tps.
func (r *rig) heartbeat(tps ...TopicPartition) {
	r.t.Helper()
	h := &Heartbeat{SourceCluster: "src", Site: "plant", Link: "ot"}
	for _, tp := range tps {
		h.Topics = append(h.Topics, Topic{Name: tp.Topic, ID: "id-" + tp.Topic, Partitions: tp.Partition + 1})
	}
	require.NoError(r.t, r.sender.Heartbeat(r.ctx, h))
}

// settle waits until the relay has taken every datagram the sender wrote,
// so that faults set next apply to what is sent next.
func (r *rig) settle() {
	r.t.Helper()
	eventually(r.t, 5*time.Second, func() error {
		ss, fs := r.sender.Stats(), r.relay.Stats()
		if fs.Received != ss.Datagrams+ss.Repeats {
			return fmt.Errorf("relay received %d of %d datagrams", fs.Received, ss.Datagrams+ss.Repeats)
		}
		return nil
	})
}

// offsets returns the offsets delivered for tp.
func (r *rig) offsets(tp TopicPartition) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int64, len(r.got[tp]))
	for i, rec := range r.got[tp] {
		out[i] = rec.Offset
	}
	return out
}

// waitDelivered waits until tp's records [0, to) were all delivered, then
// checks that nothing broke order or content.
func (r *rig) waitDelivered(d time.Duration, tp TopicPartition, to int64) {
	r.t.Helper()
	eventually(r.t, d, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if n := int64(len(r.got[tp])); n < to {
			return fmt.Errorf("%v: %d of %d records delivered; receiver %+v", tp, n, to, r.current.stats())
		}
		return nil
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(r.t, r.bad)
	want := make([]int64, to)
	for i := range want {
		want[i] = int64(i)
	}
	got := make([]int64, len(r.got[tp]))
	for i, rec := range r.got[tp] {
		got[i] = rec.Offset
	}
	require.Equal(r.t, want, got, "%v: every record exactly once, in order", tp)
}

func (run *receiverRun) stats() ReceiverStats {
	if run == nil {
		return ReceiverStats{}
	}
	return run.recv.Stats()
}

// gaps returns the assembler's gaps now.
func (r *rig) gaps() (open, final []Gap) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asm.Gaps(time.Now())
}

// ranges strips the times from gaps.
func ranges(gs []Gap) []Gap {
	out := slices.Clone(gs)
	for i := range out {
		out[i].Since = time.Time{}
	}
	return out
}

// captureConn is a net.Conn that keeps what is written to it.
type captureConn struct {
	mu   sync.Mutex
	sent [][]byte
}

func (c *captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.sent = append(c.sent, append([]byte(nil), b...))
	c.mu.Unlock()
	return len(b), nil
}

func (c *captureConn) datagrams() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

func (c *captureConn) Read([]byte) (int, error)         { return 0, errors.New("write only") }
func (c *captureConn) Close() error                     { return nil }
func (c *captureConn) LocalAddr() net.Addr              { return &net.UDPAddr{} }
func (c *captureConn) RemoteAddr() net.Addr             { return &net.UDPAddr{} }
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }
