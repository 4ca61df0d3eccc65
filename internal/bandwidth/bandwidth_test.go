package bandwidth

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRateIsKeptAcrossConnections sends as fast as possible over three
// connections sharing one 400 KB/s limiter and measures what arrives.
func TestRateIsKeptAcrossConnections(t *testing.T) {
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	var received int64
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				n, _ := io.Copy(io.Discard, c)
				mu.Lock()
				received += n
				mu.Unlock()
			}()
		}
	}()
	const rate = 400_000
	lim := New(rate)
	began := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		wc := lim.Wrap(c)
		wg.Go(func() {
			defer func() { _ = c.Close() }()
			buf := make([]byte, 64<<10)
			for time.Since(began) < 2*time.Second {
				if _, err := wc.Write(buf); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began).Seconds()
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	got := float64(received) / elapsed
	mu.Unlock()
	require.InEpsilon(t, rate, got, 0.10, "measured %.0f B/s", got)
}

// TestSetRate changes the budget while a sender runs: unlimited, then
// 200 KB/s, measured on bytes written.
func TestSetRate(t *testing.T) {
	var sink countingConn
	lim := New(0)
	c := lim.Wrap(&sink)
	buf := make([]byte, 32<<10)
	start := time.Now()
	for range 100 {
		_, err := c.Write(buf)
		require.NoError(t, err)
	}
	require.Less(t, time.Since(start), 500*time.Millisecond, "a zero rate is unlimited")
	require.Equal(t, int64(0), lim.Rate())

	lim.SetRate(200_000)
	require.Equal(t, int64(200_000), lim.Rate())
	sink.n = 0
	start = time.Now()
	for time.Since(start) < time.Second {
		_, err := c.Write(buf[:4096])
		require.NoError(t, err)
	}
	got := float64(sink.n) / time.Since(start).Seconds()
	require.InEpsilon(t, 200_000, got, 0.15, "measured %.0f B/s", got)
}

// countingConn is a net.Conn that counts and discards what is written.
type countingConn struct {
	net.Conn
	n int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
