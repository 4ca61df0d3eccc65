package faultnet_test

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProxyForwardsWithFaults(t *testing.T) {
	s := startServer(t, echo)
	n := newNetwork(t)
	p, err := n.Listen(s.addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.Equal(t, s.addr, p.Target())

	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.Less(t, roundTrip(t, c, "hello"), 500*time.Millisecond)

	n.SetLatency(100*time.Millisecond, 0)
	require.GreaterOrEqual(t, roundTrip(t, c, "slow"), 200*time.Millisecond, "latency applies in both directions")
	n.SetLatency(0, 0)
	require.Equal(t, int64(1), n.Stats().Opened)

	// A cut link is a black hole for the proxy's clients too.
	n.Cut()
	require.NoError(t, c.SetDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "no answer while cut: %v", err)
	n.Restore()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, 1)
	_, err = c.Read(got)
	require.NoError(t, err)
	require.Equal(t, "x", string(got), "queued bytes arrive after restore")

	// A reset closes the client's connection.
	n.Reset()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(got)
	require.Error(t, err)

	// New connections work again; refusing closes them at once.
	c2, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c2.Close() })
	roundTrip(t, c2, "again")
	n.Refuse(true)
	c3, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c3.Close() })
	require.NoError(t, c3.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = c3.Read(got)
	require.Error(t, err, "a refused dial closes the proxied connection")

	require.NoError(t, p.Close())
	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	require.Error(t, err, "closed proxy does not listen")
}

func TestSetBufferRaisesThroughputOverLatency(t *testing.T) {
	// One connection over a 100 ms one-way link moves at most its buffer per
	// 100 ms: 64 KiB gives ~640 KB/s, 1 MiB ~10 MB/s.
	n := newNetwork(t)
	n.SetBuffer(64 << 10)
	n.SetLatency(100*time.Millisecond, 0)
	sink := startServer(t, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
	rate := func() float64 {
		c := dial(t, n, sink.addr)
		buf := make([]byte, 32<<10)
		start := time.Now()
		sent := 0
		for time.Since(start) < 700*time.Millisecond {
			k, err := c.Write(buf)
			require.NoError(t, err)
			sent += k
		}
		return float64(sent) / time.Since(start).Seconds()
	}
	small := rate()
	n.SetBuffer(1 << 20)
	large := rate()
	t.Logf("64 KiB buffer: %.0f B/s; 1 MiB buffer: %.0f B/s", small, large)
	require.Greater(t, large, 4*small)
}
