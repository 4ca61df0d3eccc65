// Package faultnet is an in-process, fault-injecting network for tests.
//
// A [Network] stands for one simulated link, such as the WAN between an edge
// site and the cloud. Every connection dialed through [Network.Dialer] is a
// real TCP connection whose bytes are pumped by the Network in both
// directions, so that latency, bandwidth limits, black holes, resets,
// refusals and half-open peers can be switched on and off while a test runs.
// No listening proxy and no kernel traffic shaping are needed:
//
//	n := faultnet.New(logger)
//	defer n.Close()
//	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.Dialer(n.Dialer()))
//	n.SetLatency(50*time.Millisecond, 5*time.Millisecond)
//	n.Cut()
//
// Each direction of a connection is a reader that accepts bytes into a
// bounded queue (the stand-in for the kernel's socket buffers, [BufferSize]
// bytes) and a writer that delivers them once their latency has passed, the
// shared bandwidth allows it, and the link is not cut. Bytes arriving
// "up" (client to server) and "down" (server to client) are counted in
// [Stats].
package faultnet

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// BufferSize is how many bytes each direction of a connection accepts before
// the sender blocks while they are not delivered (cut link, half-open peer,
// slow bandwidth).
const BufferSize = 1 << 20

// readSize is the largest chunk read from either side at once.
const readSize = 32 << 10

// DefaultDialTimeout bounds dials, including those hanging on a cut link,
// like kgo's default dial timeout (which kgo does not apply to a custom
// dialer such as [Network.Dialer]).
const DefaultDialTimeout = 10 * time.Second

// burst is how much idle link time the bandwidth limiter lets a sender
// catch up on, so that timer slack does not lower the measured rate.
const burst = 20 * time.Millisecond

// Stats counts what passed through a Network.
type Stats struct {
	// Up and Down are the bytes delivered client→server and server→client.
	Up, Down int64
	// Opened counts connections established; Active those still open.
	Opened, Active int64
}

// Network is one simulated link whose faults apply to every connection
// dialed through it. Its methods are safe for concurrent use; faults can be
// changed at any time.
type Network struct {
	logger *slog.Logger
	dialer net.Dialer

	mu      sync.Mutex
	closed  bool
	cut     bool
	refuse  bool
	latency time.Duration
	jitter  time.Duration
	timeout time.Duration // of dials; 0 is none
	buffer  int           // per direction of a connection
	conns   map[*conn]struct{}
	changed chan struct{} // closed and replaced on every change of cut
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup

	up, down       limiter
	upN, downN     atomic.Int64
	opened, active atomic.Int64
}

// New returns a Network with no faults. A nil logger discards logs.
func New(logger *slog.Logger) *Network {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Network{
		logger:  logger.With("component", "faultnet"),
		timeout: DefaultDialTimeout,
		buffer:  BufferSize,
		conns:   make(map[*conn]struct{}),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Dialer returns a dial function for kgo.Dialer (and anything else that
// dials with a context) that connects to host through the network's faults.
// Each dial is bounded by the dial timeout as well as by its context.
func (n *Network) Dialer() func(ctx context.Context, network, host string) (net.Conn, error) {
	return n.dial
}

// SetDialTimeout bounds every later dial by d; 0 leaves only the caller's
// context. The default is [DefaultDialTimeout].
func (n *Network) SetDialTimeout(d time.Duration) {
	n.mu.Lock()
	n.timeout = max(d, 0)
	n.mu.Unlock()
}

// SetBuffer sets how many bytes each direction of a connection opened from
// now on queues before its sender blocks; the default is [BufferSize]. A
// link simulated with a long latency needs at least its bandwidth-delay
// product (bandwidth × one-way latency) to be filled.
func (n *Network) SetBuffer(bytes int) {
	n.mu.Lock()
	n.buffer = max(bytes, readSize)
	n.mu.Unlock()
}

func (n *Network) dial(ctx context.Context, network, host string) (net.Conn, error) {
	n.mu.Lock()
	timeout := n.timeout
	n.mu.Unlock()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for {
		n.mu.Lock()
		closed, cut, refuse, changed := n.closed, n.cut, n.refuse, n.changed
		n.mu.Unlock()
		switch {
		case closed:
			return nil, &net.OpError{Op: "dial", Net: network, Err: net.ErrClosed}
		case cut:
			// A black hole answers nothing: wait for the caller to give up,
			// or for the link to come back as a retransmitted SYN would.
			select {
			case <-ctx.Done():
				return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("dial %s through cut link: %w", host, ctx.Err())}
			case <-n.done:
			case <-changed:
			}
			continue
		case refuse:
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		}
		break
	}
	rc, err := n.dialer.DialContext(ctx, network, host)
	if err != nil {
		return nil, fmt.Errorf("faultnet: %w", err)
	}
	client, inner := net.Pipe()
	c := &conn{net: n, rc: rc, inner: inner, done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = rc.Close()
		_ = inner.Close()
		_ = client.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.ErrClosed}
	}
	n.conns[c] = struct{}{}
	n.opened.Add(1)
	n.active.Add(1)
	upQ, downQ := newQueue(n.buffer), newQueue(n.buffer)
	n.wg.Add(4)
	go func() { defer n.wg.Done(); c.read(inner, upQ) }()
	go func() { defer n.wg.Done(); c.write(rc, upQ, &n.up, &n.upN) }()
	go func() { defer n.wg.Done(); c.read(rc, downQ) }()
	go func() { defer n.wg.Done(); c.write(inner, downQ, &n.down, &n.downN) }()
	n.mu.Unlock()
	return &clientConn{Conn: client, c: c}, nil
}

// Close closes every connection and waits for all goroutines of the
// network. Later dials fail. Close is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	conns := n.snapshotLocked()
	n.mu.Unlock()
	for _, c := range conns {
		c.teardown()
	}
	n.wg.Wait()
	return nil
}

// SetLatency delays every chunk of bytes, in each direction, by oneWay plus
// a uniformly random amount in [-jitter, +jitter]. Byte order is kept: a
// chunk is never released before the one ahead of it. The new values apply
// to bytes sent from now on.
func (n *Network) SetLatency(oneWay, jitter time.Duration) {
	n.mu.Lock()
	n.latency, n.jitter = max(oneWay, 0), max(jitter, 0)
	n.mu.Unlock()
	n.logger.Info("latency set", "one_way", oneWay, "jitter", jitter)
}

// SetBandwidth limits each direction to bytesPerSecond, shared by all
// connections of the network; 0 (or less) removes the limit.
func (n *Network) SetBandwidth(bytesPerSecond int64) {
	bytesPerSecond = max(bytesPerSecond, 0)
	n.up.setRate(bytesPerSecond)
	n.down.setRate(bytesPerSecond)
	n.logger.Info("bandwidth set", "bytes_per_second", bytesPerSecond)
}

// Cut turns the link into a black hole, like a pulled cable: new dials get
// no answer and hang until their context or the dial timeout ends, and
// existing connections stop delivering bytes in both directions (writes are
// accepted until [BufferSize] is queued, then block; reads block).
//
// Connections are not closed by Cut; after [Network.Restore] their queued
// bytes are delivered, as TCP retransmission would after a short outage.
// Use [Network.HalfOpen] for connections that must stay stuck.
func (n *Network) Cut() { n.setCut(true) }

// Restore undoes [Network.Cut]: new dials connect, hanging dials proceed,
// and existing connections resume delivering what they queued.
func (n *Network) Restore() { n.setCut(false) }

func (n *Network) setCut(cut bool) {
	n.mu.Lock()
	if n.cut == cut {
		n.mu.Unlock()
		return
	}
	n.cut = cut
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	if cut {
		n.logger.Info("link cut")
	} else {
		n.logger.Info("link restored")
	}
}

// Reset closes every current connection abruptly: queued bytes are dropped,
// the server sees a TCP RST, and the client's reads and writes fail with
// ECONNRESET. New dials are unaffected.
func (n *Network) Reset() {
	n.mu.Lock()
	conns := n.snapshotLocked()
	n.mu.Unlock()
	for _, c := range conns {
		c.reset.Store(true)
		if tc, ok := c.rc.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.teardown()
	}
	n.logger.Info("connections reset", "count", len(conns))
}

// Refuse makes new dials fail at once with ECONNREFUSED while refuse is
// true. Existing connections are unaffected.
func (n *Network) Refuse(refuse bool) {
	n.mu.Lock()
	n.refuse = refuse
	n.mu.Unlock()
	n.logger.Info("refusing connections", "refuse", refuse)
}

// HalfOpen makes the peer of every current connection stop reading and
// answering for good while the sockets stay open: nothing more is
// delivered in either direction, and writes block once [BufferSize] bytes
// are queued. New connections are unaffected.
func (n *Network) HalfOpen() {
	n.mu.Lock()
	conns := n.snapshotLocked()
	n.mu.Unlock()
	for _, c := range conns {
		c.stall()
	}
	n.logger.Info("connections half-open", "count", len(conns))
}

// Stats returns the bytes delivered and the connections seen so far.
func (n *Network) Stats() Stats {
	return Stats{
		Up:     n.upN.Load(),
		Down:   n.downN.Load(),
		Opened: n.opened.Load(),
		Active: n.active.Load(),
	}
}

func (n *Network) snapshotLocked() []*conn {
	out := make([]*conn, 0, len(n.conns))
	for c := range n.conns {
		out = append(out, c)
	}
	return out
}

// delay returns how long a chunk arriving now waits before delivery.
func (n *Network) delay() time.Duration {
	n.mu.Lock()
	lat, jit := n.latency, n.jitter
	n.mu.Unlock()
	if jit > 0 {
		lat += time.Duration(rand.Int64N(int64(2*jit)+1)) - jit
	}
	return max(lat, 0)
}

// blocked reports whether c may not deliver now, and a channel that is
// closed when the network's cut state changes.
func (n *Network) blocked(c *conn) (bool, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut || c.stalled.Load(), n.changed
}
