package faultnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// UDPFaults are the faults a UDPRelay applies to each datagram it
// forwards. Probabilities are in [0, 1].
type UDPFaults struct {
	// Loss drops a datagram.
	Loss float64
	// Reorder holds a datagram back until 1 to ReorderDepth later ones
	// (default 3) went ahead of it, or at most ReorderHold (default 20 ms).
	Reorder      float64
	ReorderDepth int
	ReorderHold  time.Duration
	// Duplicate sends a datagram twice.
	Duplicate float64
	// Garbage sends, after a datagram, a datagram of random bytes of a
	// random length up to its own.
	Garbage float64
	// Flip sends, after a datagram, a copy of it with one random bit
	// flipped.
	Flip float64
}

// UDPStats count what a UDPRelay did.
type UDPStats struct {
	// Received datagrams from the sender; Forwarded to the target (the
	// copies and injections included).
	Received, Forwarded int64
	// Dropped by Loss or a burst; Reordered held back; Duplicated sent
	// twice.
	Dropped, Reordered, Duplicated int64
	// Garbage and Flipped datagrams injected.
	Garbage, Flipped int64
}

// UDPRelay forwards the datagrams sent to its address to a target UDP
// address, one way, with faults: loss, reordering, duplication, bursts of
// loss, garbage and bit-flipped copies. Its faults can be changed while it
// runs; its random choices come from a seeded generator. Its methods are
// safe for concurrent use.
type UDPRelay struct {
	in, out *net.UDPConn
	done    chan struct{}
	wg      sync.WaitGroup

	mu         sync.Mutex
	closed     bool
	faults     UDPFaults
	burstStart time.Time
	burstEnd   time.Time
	burstLoss  float64
	rng        *rand.Rand
	held       []heldDatagram
	stats      UDPStats
}

type heldDatagram struct {
	b     []byte
	after int       // datagrams still to go ahead of it
	until time.Time // when it goes anyway
}

// udpBuffer is the socket buffer asked for both sides of a relay, so that
// the relay itself loses nothing at test rates.
const udpBuffer = 8 << 20

// ListenUDP starts a relay on a free 127.0.0.1 port forwarding to target
// (host:port), its random choices seeded by seed.
func ListenUDP(target string, seed uint64) (*UDPRelay, error) {
	ctx := context.Background()
	lc := net.ListenConfig{}
	pc, err := lc.ListenPacket(ctx, "udp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultnet: udp relay for %s: %w", target, err)
	}
	in := pc.(*net.UDPConn)
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "udp", target)
	if err != nil {
		_ = in.Close()
		return nil, fmt.Errorf("faultnet: udp relay to %s: %w", target, err)
	}
	out := c.(*net.UDPConn)
	_ = in.SetReadBuffer(udpBuffer)
	_ = out.SetWriteBuffer(udpBuffer)
	r := &UDPRelay{
		in:   in,
		out:  out,
		done: make(chan struct{}),
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.pump() }()
	return r, nil
}

// Addr is the relay's address, host:port: where the sender sends.
func (r *UDPRelay) Addr() string { return r.in.LocalAddr().String() }

// SetFaults replaces the relay's faults.
func (r *UDPRelay) SetFaults(f UDPFaults) {
	r.mu.Lock()
	r.faults = f
	r.mu.Unlock()
}

// Faults returns the relay's faults.
func (r *UDPRelay) Faults() UDPFaults {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults
}

// Burst schedules a burst of loss: from after from now, for duration, each
// datagram is also dropped with probability loss. It replaces a burst
// scheduled before.
func (r *UDPRelay) Burst(after, duration time.Duration, loss float64) {
	r.mu.Lock()
	r.burstStart = time.Now().Add(after)
	r.burstEnd = r.burstStart.Add(duration)
	r.burstLoss = loss
	r.mu.Unlock()
}

// Stats returns the relay's counters.
func (r *UDPRelay) Stats() UDPStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Close stops the relay; datagrams held back are dropped.
func (r *UDPRelay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.done)
	r.mu.Unlock()
	err := r.in.Close()
	r.wg.Wait()
	_ = r.out.Close()
	return err
}

// pump reads and forwards until the relay is closed.
func (r *UDPRelay) pump() {
	buf := make([]byte, 1<<16)
	for {
		r.mu.Lock()
		var deadline time.Time
		for _, h := range r.held {
			if deadline.IsZero() || h.until.Before(deadline) {
				deadline = h.until
			}
		}
		r.mu.Unlock()
		_ = r.in.SetReadDeadline(deadline)
		n, err := r.in.Read(buf)
		if err != nil {
			select {
			case <-r.done:
				return
			default:
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				r.release(time.Now(), false)
				continue
			}
			// A transient error of an unconnected socket: go on.
			continue
		}
		r.forward(buf[:n], time.Now())
	}
}

// forward applies the faults to one datagram.
func (r *UDPRelay) forward(d []byte, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Received++
	f := r.faults
	loss := f.Loss
	if !now.Before(r.burstStart) && now.Before(r.burstEnd) {
		loss = 1 - (1-loss)*(1-r.burstLoss)
	}
	var hold *heldDatagram
	switch {
	case r.chance(loss):
		r.stats.Dropped++
	case r.chance(f.Reorder):
		depth := f.ReorderDepth
		if depth <= 0 {
			depth = 3
		}
		wait := f.ReorderHold
		if wait <= 0 {
			wait = 20 * time.Millisecond
		}
		hold = &heldDatagram{b: append([]byte(nil), d...), after: 1 + r.rng.IntN(depth), until: now.Add(wait)}
		r.stats.Reordered++
	default:
		r.send(d)
		if r.chance(f.Duplicate) && r.send(d) {
			r.stats.Duplicated++
		}
	}
	// Datagrams held back go once enough others went ahead of them.
	r.releaseLocked(now, true)
	if hold != nil {
		r.held = append(r.held, *hold)
	}
	if r.chance(f.Garbage) {
		g := make([]byte, 1+r.rng.IntN(max(len(d), 1)))
		for i := range g {
			g[i] = byte(r.rng.Uint32())
		}
		if r.send(g) {
			r.stats.Garbage++
		}
	}
	if r.chance(f.Flip) && len(d) > 0 {
		c := append([]byte(nil), d...)
		bit := r.rng.IntN(8 * len(c))
		c[bit/8] ^= 1 << (bit % 8)
		if r.send(c) {
			r.stats.Flipped++
		}
	}
}

func (r *UDPRelay) release(now time.Time, counted bool) {
	r.mu.Lock()
	r.releaseLocked(now, counted)
	r.mu.Unlock()
}

// releaseLocked sends the held datagrams whose turn came: counted says a
// new datagram arrived (and goes after them). r.mu is held.
func (r *UDPRelay) releaseLocked(now time.Time, counted bool) {
	n := 0
	for _, h := range r.held {
		if counted {
			h.after--
		}
		if h.after <= 0 || !now.Before(h.until) {
			r.send(h.b)
			continue
		}
		r.held[n] = h
		n++
	}
	clear(r.held[n:])
	r.held = r.held[:n]
}

func (r *UDPRelay) chance(p float64) bool { return p > 0 && r.rng.Float64() < p }

// send writes one datagram to the target; the relay is one way, so a
// refusal from the target (nothing listens) is a loss like any other.
func (r *UDPRelay) send(d []byte) bool {
	if _, err := r.out.Write(d); err != nil {
		return false
	}
	r.stats.Forwarded++
	return true
}
