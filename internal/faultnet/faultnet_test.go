package faultnet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/testbed"
)

// server is a local TCP server running handle for each connection; it is
// stopped, and its goroutines waited for, when the test ends.
type server struct {
	addr string
	wg   sync.WaitGroup
}

func startServer(t *testing.T, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &server{addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			s.wg.Go(func() {
				defer func() { _ = c.Close() }()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func echo(c net.Conn) { _, _ = io.Copy(c, c) }

func newNetwork(t *testing.T) *faultnet.Network {
	t.Helper()
	n := faultnet.New(slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	t.Cleanup(func() { require.NoError(t, n.Close()) })
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func dial(t *testing.T, n *faultnet.Network, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := n.Dialer()(ctx, "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads the echo back, returning how long it took.
func roundTrip(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, msg, string(got))
	return time.Since(start)
}

func TestLatency(t *testing.T) {
	srv := startServer(t, echo)
	tests := []struct {
		name           string
		oneWay, jitter time.Duration
		min, max       time.Duration
	}{
		{"none", 0, 0, 0, 50 * time.Millisecond},
		{"50ms", 50 * time.Millisecond, 0, 100 * time.Millisecond, 300 * time.Millisecond},
		{"50ms jitter 20ms", 50 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond, 350 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNetwork(t)
			n.SetLatency(tt.oneWay, tt.jitter)
			c := dial(t, n, srv.addr)
			for i := range 5 {
				rtt := roundTrip(t, c, fmt.Sprintf("ping %d", i))
				require.GreaterOrEqual(t, rtt, tt.min)
				require.LessOrEqual(t, rtt, tt.max)
			}
		})
	}
}

// TestLatencyKeepsOrderAndThroughput sends many small writes under jittered
// latency: they must come back in order and not one per latency period.
func TestLatencyKeepsOrderAndThroughput(t *testing.T) {
	srv := startServer(t, echo)
	n := newNetwork(t)
	n.SetLatency(50*time.Millisecond, 30*time.Millisecond)
	c := dial(t, n, srv.addr)
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))

	var want bytes.Buffer
	for i := range 500 {
		fmt.Fprintf(&want, "message %04d;", i)
	}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		for msg := range bytes.SplitAfterSeq(want.Bytes(), []byte(";")) {
			if _, err := c.Write(msg); err != nil {
				return
			}
		}
	})
	got := make([]byte, want.Len())
	_, err := io.ReadFull(c, got)
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, want.String(), string(got))
	require.Less(t, time.Since(start), 2*time.Second, "500 writes must be pipelined, not one per round trip")
}

func TestBandwidth(t *testing.T) {
	const (
		rate  = 1 << 20 // bytes per second
		total = 3 * rate
	)
	tests := []struct {
		name  string
		up    bool
		conns int
	}{
		{"up one connection", true, 1},
		{"up shared by three connections", true, 3},
		{"down one connection", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			per := total / tt.conns
			handle := func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }
			if !tt.up {
				handle = func(c net.Conn) { _, _ = c.Write(make([]byte, per)) }
			}
			srv := startServer(t, handle)
			n := newNetwork(t)
			n.SetBandwidth(rate)

			start := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, tt.conns)
			for i := range tt.conns {
				c := dial(t, n, srv.addr)
				require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
				wg.Go(func() {
					if tt.up {
						_, errs[i] = c.Write(make([]byte, per))
						return
					}
					_, errs[i] = io.ReadFull(c, make([]byte, per))
				})
			}
			wg.Wait()
			require.NoError(t, errors.Join(errs...))
			testbed.Eventually(t, 10*time.Second, func() error {
				st := n.Stats()
				if got := st.Up + st.Down; got < int64(per*tt.conns) {
					return fmt.Errorf("delivered %d of %d bytes", got, per*tt.conns)
				}
				return nil
			})
			elapsed := time.Since(start)
			measured := float64(per*tt.conns) / elapsed.Seconds()
			t.Logf("set %d B/s, measured %.0f B/s (%+.1f%%) over %s", rate, measured, 100*(measured-rate)/rate, elapsed.Round(time.Millisecond))
			require.InEpsilon(t, float64(rate), measured, 0.10)
		})
	}
}

func TestCut(t *testing.T) {
	srv := startServer(t, echo)
	n := newNetwork(t)
	c := dial(t, n, srv.addr)
	roundTrip(t, c, "before")

	n.Cut()

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := n.Dialer()(ctx, "tcp", srv.addr)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)

	// Writes are accepted, nothing comes back.
	require.NoError(t, c.SetDeadline(time.Now().Add(time.Second)))
	_, err = c.Write([]byte("during"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = c.Read(make([]byte, 16))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	up := n.Stats().Up

	n.Restore()

	// What was queued during the cut is delivered after it.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, len("during"))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.Equal(t, "during", string(got))
	require.Greater(t, n.Stats().Up, up)

	roundTrip(t, dial(t, n, srv.addr), "after")
}

func TestCutDialTimeout(t *testing.T) {
	srv := startServer(t, echo)
	n := newNetwork(t)
	n.SetDialTimeout(200 * time.Millisecond)
	n.Cut()
	start := time.Now()
	_, err := n.Dialer()(context.Background(), "tcp", srv.addr)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestCutDialEndsOnRestore(t *testing.T) {
	srv := startServer(t, echo)
	n := newNetwork(t)
	n.Cut()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c, err := n.Dialer()(ctx, "tcp", srv.addr)
		done <- result{c, err}
	})
	select {
	case r := <-done:
		t.Fatalf("dial through a cut link returned: %v", r.err)
	case <-time.After(200 * time.Millisecond):
	}
	n.Restore()
	r := <-done
	require.NoError(t, r.err)
	defer func() { _ = r.c.Close() }()
	roundTrip(t, r.c, "late")
}

func TestReset(t *testing.T) {
	srv := startServer(t, echo)
	n := newNetwork(t)
	conns := []net.Conn{dial(t, n, srv.addr), dial(t, n, srv.addr)}
	for _, c := range conns {
		roundTrip(t, c, "hello")
	}
	require.EqualValues(t, 2, n.Stats().Active)

	n.Reset()

	for _, c := range conns {
		require.NoError(t, c.SetDeadline(time.Now().Add(time.Second)))
		start := time.Now()
		_, err := c.Read(make([]byte, 1))
		require.ErrorIs(t, err, syscall.ECONNRESET)
		require.Less(t, time.Since(start), 500*time.Millisecond)
	}
	st := n.Stats()
	require.EqualValues(t, 0, st.Active)
	require.EqualValues(t, 2, st.Opened)
	roundTrip(t, dial(t, n, srv.addr), "again")
}

func TestRefuse(t *testing.T) {
	srv := startServer(t, echo)
	n := newNetwork(t)
	existing := dial(t, n, srv.addr)

	n.Refuse(true)
	start := time.Now()
	_, err := n.Dialer()(t.Context(), "tcp", srv.addr)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.Less(t, time.Since(start), 100*time.Millisecond)
	roundTrip(t, existing, "still up")

	n.Refuse(false)
	roundTrip(t, dial(t, n, srv.addr), "accepted")
}

func TestHalfOpen(t *testing.T) {
	srv := startServer(t, echo)
	n := newNetwork(t)
	c := dial(t, n, srv.addr)
	roundTrip(t, c, "hello")

	n.HalfOpen()
	up := n.Stats().Up

	// Writes are accepted until the buffer is full, then block.
	buf := make([]byte, 64<<10)
	var written int
	for {
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(200*time.Millisecond)))
		k, err := c.Write(buf)
		written += k
		if err != nil {
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			break
		}
		require.LessOrEqual(t, written, 2*faultnet.BufferSize, "writes never block")
	}
	require.GreaterOrEqual(t, written, faultnet.BufferSize/2)
	require.Equal(t, up, n.Stats().Up, "nothing delivered to the server")

	require.NoError(t, c.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, err := c.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	roundTrip(t, dial(t, n, srv.addr), "new connections work")
}

func TestClose(t *testing.T) {
	srv := startServer(t, echo)
	before := runtime.NumGoroutine()

	n := faultnet.New(nil)
	n.SetLatency(20*time.Millisecond, 0)
	n.SetBandwidth(64 << 10)
	var conns []net.Conn
	for range 4 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		c, err := n.Dialer()(ctx, "tcp", srv.addr)
		cancel()
		require.NoError(t, err)
		conns = append(conns, c)
	}
	// Leave bytes queued behind the bandwidth limit, a half-open peer and a cut.
	for _, c := range conns[:2] {
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
		_, _ = c.Write(make([]byte, 256<<10))
	}
	n.HalfOpen()
	n.Cut()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = n.Dialer()(t.Context(), "tcp", srv.addr) }) // hangs on the cut

	require.NoError(t, n.Close())
	wg.Wait()
	require.NoError(t, n.Close(), "close twice")

	for _, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
		_, err := c.Read(make([]byte, 1))
		require.ErrorIs(t, err, io.EOF)
		require.NoError(t, c.Close())
	}
	_, err := n.Dialer()(t.Context(), "tcp", srv.addr)
	require.ErrorIs(t, err, net.ErrClosed)
	require.EqualValues(t, 0, n.Stats().Active)

	testbed.Eventually(t, 5*time.Second, func() error {
		if now := runtime.NumGoroutine(); now > before+1 {
			return fmt.Errorf("%d goroutines, %d before", now, before)
		}
		return nil
	})
}
