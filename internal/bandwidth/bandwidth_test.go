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
