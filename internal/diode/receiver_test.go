package diode

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// capture returns the datagrams a sender with o writes for what f does.
func capture(t *testing.T, o SenderOptions, f func(s *Sender)) [][]byte {
	t.Helper()
	c := &captureConn{}
	s, err := NewSender(c, o)
	require.NoError(t, err)
	f(s)
	require.NoError(t, s.Close())
	return c.datagrams()
}

func TestReceiverBoundsWhatItHolds(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	tp := TopicPartition{"bound", 0}
	var ds [][]byte
	const messages = 10
	for i := range messages {
		ds = append(ds, capture(t, SenderOptions{Key: key}, func(s *Sender) {
			b := batchOf(tp, int64(i), int64(i+1))
			b.Records[0].Value = bytes.Repeat([]byte{1}, 20<<10) // about 16 datagrams
			require.NoError(t, s.Send(t.Context(), b))
		})...)
	}
	require.Len(t, ds, 16*messages)
	const limit = 64 << 10
	r := NewReceiver(nil, ReceiverOptions{Key: key, MaxBuffered: limit})
	t0 := time.Unix(1000, 0)
	kept := 0
	for i, d := range ds {
		if i%16 == 15 {
			continue // every message misses a fragment
		}
		kept++
		require.Empty(t, r.handle(d, t0.Add(time.Duration(i)*time.Millisecond)))
		require.LessOrEqual(t, r.buffered, int64(limit))
	}
	st := r.Stats()
	require.Positive(t, st.Evicted, "the oldest incomplete messages went")
	require.Equal(t, int64(kept), st.Datagrams)
	require.Equal(t, int64(messages), st.Evicted+int64(len(r.sessionsMsgs())))

	// What is left expires after the horizon.
	r.sweep(t0.Add(minHorizon - time.Millisecond))
	require.Zero(t, r.Stats().Expired)
	r.sweep(t0.Add(minHorizon + time.Second))
	require.Equal(t, int64(messages)-st.Evicted, r.Stats().Expired)
	require.Zero(t, r.buffered)
}

// sessionsMsgs returns the incomplete messages of every session.
func (r *Receiver) sessionsMsgs() []*partial {
	var out []*partial
	for _, s := range r.sessions {
		for _, p := range s.msgs {
			out = append(out, p)
		}
	}
	return out
}

func TestReceiverDeliversLatestHeartbeat(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	ds := capture(t, SenderOptions{Key: key}, func(s *Sender) {
		for _, site := range []string{"first", "second", "third"} {
			require.NoError(t, s.Heartbeat(t.Context(), &Heartbeat{Site: site}))
		}
	})
	require.Len(t, ds, 3)
	r := NewReceiver(nil, ReceiverOptions{Key: key})
	deliver := func(d []byte) {
		for _, m := range r.handle(append([]byte(nil), d...), time.Now()) { // opened in place
			require.True(t, r.deliver(t.Context(), m))
		}
	}
	deliver(ds[1])
	deliver(ds[0]) // older: dropped
	h := <-r.Heartbeats()
	require.Equal(t, "second", h.Site)
	require.False(t, h.Session.IsZero())
	deliver(ds[0])
	select {
	case h := <-r.Heartbeats():
		t.Fatalf("an older heartbeat came: %s", h.Site)
	default:
	}
	deliver(ds[2])
	deliver(ds[2]) // a copy: a duplicate
	h = <-r.Heartbeats()
	require.Equal(t, "third", h.Site)
	st := r.Stats()
	require.Equal(t, int64(2), st.Heartbeats)
	require.Equal(t, int64(2), st.Duplicates, "the older one again, the copy")
}

func TestReceiverFollowsSessions(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	tp := TopicPartition{"s", 0}
	r := NewReceiver(nil, ReceiverOptions{Key: key})
	// Two senders (a sender started again) whose ids coincide: each is
	// its own stream.
	for range 2 {
		ds := capture(t, SenderOptions{Key: key, Redundancy: DefaultRedundancy()}, func(s *Sender) {
			require.NoError(t, s.Send(t.Context(), batchOf(tp, 0, 10)))
		})
		var got int
		for _, d := range ds {
			got += len(r.handle(d, time.Now()))
		}
		require.Equal(t, 1, got)
	}
	require.Len(t, r.sessions, 2)
	require.Zero(t, r.Stats().Duplicates)
}

func TestReceiverOnASocketUsedBefore(t *testing.T) {
	key, err := GenerateKey()
	require.NoError(t, err)
	pc, err := (&net.ListenConfig{}).ListenPacket(t.Context(), "udp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "udp", pc.LocalAddr().String())
	require.NoError(t, err)
	s, err := NewSender(conn, SenderOptions{Key: key})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	tp := TopicPartition{"again", 0}
	for i := range 2 {
		r := NewReceiver(pc, ReceiverOptions{Key: key})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		require.NoError(t, s.Send(t.Context(), batchOf(tp, int64(i), int64(i+1))))
		select {
		case b := <-r.Batches():
			require.Equal(t, int64(i), b.From)
		case <-time.After(5 * time.Second):
			t.Fatalf("run %d: no batch", i)
		}
		cancel()
		require.NoError(t, <-done)
		_, open := <-r.Batches()
		require.False(t, open, "closed when Run returned")
	}
}
