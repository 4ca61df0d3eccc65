// Package bandwidth enforces a byte-rate budget on network connections: every
// connection wrapped by one Limiter shares its budget, so a link's traffic to
// a cluster stays within, for example, 2 Mbit/s whatever the number of broker
// connections.
package bandwidth

import (
	"net"
	"sync"
	"time"
)

// Limiter is a token bucket shared by the connections it wraps.
type Limiter struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

// New returns a limiter of bytesPerSecond. The burst, the most that may pass
// at once after a quiet spell, is a twentieth of a second's worth (at least
// 4 KiB), which keeps the rate accurate over any window of a second or more.
// A rate of 0 means unlimited.
func New(bytesPerSecond int64) *Limiter {
	l := &Limiter{last: time.Now()}
	l.SetRate(bytesPerSecond)
	l.tokens = l.burst
	return l
}

// SetRate changes the budget to bytesPerSecond from now on; 0 (or less)
// means unlimited.
func (l *Limiter) SetRate(bytesPerSecond int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := float64(max(bytesPerSecond, 0))
	l.rate, l.burst = r, max(r/20, 4096)
	l.tokens = min(l.tokens, l.burst)
}

// Rate returns the limiter's bytes per second; 0 is unlimited.
func (l *Limiter) Rate() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(l.rate)
}

// reserve takes up to n bytes of budget and returns how many it took and how
// long the caller must wait before sending them.
func (l *Limiter) reserve(n int) (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.rate == 0 {
		l.last = now
		return n, 0
	}
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	take := min(float64(n), l.burst)
	l.tokens -= take
	if l.tokens >= 0 {
		return int(take), 0
	}
	return int(take), time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// Wrap returns conn with its writes paced by the limiter. Reads are not
// limited: the budget is on what is sent.
func (l *Limiter) Wrap(conn net.Conn) net.Conn { return &pacedConn{Conn: conn, l: l} }

type pacedConn struct {
	net.Conn
	l *Limiter
}

// Write sends p in pieces no larger than the burst, each when the budget allows.
func (c *pacedConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, wait := c.l.reserve(len(p) - written)
		if wait > 0 {
			time.Sleep(wait)
		}
		m, err := c.Conn.Write(p[written : written+n])
		written += m
		if err != nil {
			return written, err
		}
	}
	return written, nil
}
