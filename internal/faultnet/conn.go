package faultnet

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn is one connection through the network: the real connection rc to
// the server, and inner, the network's end of the pipe whose other end the
// client holds. Four goroutines owned by the network pump its bytes.
type conn struct {
	net   *Network
	rc    net.Conn
	inner net.Conn

	once    sync.Once
	done    chan struct{}
	reset   atomic.Bool
	stalled atomic.Bool
}

// teardown closes both sides and stops the pumps; it is idempotent.
func (c *conn) teardown() {
	c.once.Do(func() {
		close(c.done)
		_ = c.rc.Close()
		_ = c.inner.Close()
		n := c.net
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
		n.active.Add(-1)
	})
}

// stall makes the connection stop delivering for good (half-open peer).
func (c *conn) stall() { c.stalled.Store(true) }

// read accepts bytes from src into q, stamped with their release time,
// until src fails; it then queues the end so the writer can flush first.
func (c *conn) read(src net.Conn, q *queue) {
	var last time.Time
	buf := make([]byte, readSize)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			release := time.Now().Add(c.net.delay())
			if release.Before(last) {
				release = last // keep byte order under jitter
			}
			last = release
			if !q.push(chunk{data: append([]byte(nil), buf[:k]...), release: release}, c.done) {
				return
			}
		}
		if err != nil {
			q.push(chunk{eof: true}, c.done)
			return
		}
	}
}

// write delivers chunks from q to dst once released, within the bandwidth
// of lim and while the link is not cut, counting delivered bytes in n.
func (c *conn) write(dst net.Conn, q *queue, lim *limiter, n *atomic.Int64) {
	defer c.teardown()
	for {
		ch, ok := q.pop(c.done)
		if !ok || ch.eof {
			return
		}
		if !sleepUntil(ch.release, c.done) {
			return
		}
		for data := ch.data; len(data) > 0; {
			piece := data[:min(len(data), lim.pieceSize())]
			data = data[len(piece):]
			if !sleepUntil(lim.reserve(len(piece)), c.done) {
				return
			}
			if !c.waitOpen() {
				return
			}
			n.Add(int64(len(piece))) // before the write, so the count is never behind the peer
			if _, err := dst.Write(piece); err != nil {
				return
			}
		}
	}
}

// waitOpen blocks while the link is cut or the connection stalled; it
// returns false when the connection ends first.
func (c *conn) waitOpen() bool {
	for {
		blocked, changed := c.net.blocked(c)
		if !blocked {
			return true
		}
		select {
		case <-changed:
		case <-c.done:
			return false
		}
	}
}

// sleepUntil waits until t; it returns false when done is closed first.
func sleepUntil(t time.Time, done <-chan struct{}) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-done:
		return false
	}
}

// chunk is bytes read at once, or the end of the stream.
type chunk struct {
	data    []byte
	release time.Time
	eof     bool
}

// queue is a FIFO of chunks holding at most limit bytes.
type queue struct {
	limit  int
	mu     sync.Mutex
	chunks []chunk
	bytes  int
	ready  chan struct{} // signalled when a chunk is pushed
	space  chan struct{} // signalled when a chunk is popped
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push appends ch, waiting for room; it returns false when done closes.
func (q *queue) push(ch chunk, done <-chan struct{}) bool {
	for {
		q.mu.Lock()
		if q.bytes == 0 || q.bytes+len(ch.data) <= q.limit {
			q.chunks = append(q.chunks, ch)
			q.bytes += len(ch.data)
			q.mu.Unlock()
			signal(q.ready)
			return true
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-done:
			return false
		}
	}
}

// pop removes the oldest chunk, waiting for one; it returns false when
// done closes.
func (q *queue) pop(done <-chan struct{}) (chunk, bool) {
	for {
		q.mu.Lock()
		if len(q.chunks) > 0 {
			ch := q.chunks[0]
			q.chunks[0] = chunk{}
			q.chunks = q.chunks[1:]
			q.bytes -= len(ch.data)
			q.mu.Unlock()
			signal(q.space)
			return ch, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-done:
			return chunk{}, false
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// limiter spreads bytes over time at a rate shared by its users, like a
// serial line: each reservation starts when the previous one ends.
type limiter struct {
	mu   sync.Mutex
	rate int64 // bytes per second; 0 is unlimited
	next time.Time
}

func (l *limiter) setRate(rate int64) {
	l.mu.Lock()
	l.rate = rate
	l.mu.Unlock()
}

// pieceSize is how many bytes to send at once: about 10ms of the rate.
func (l *limiter) pieceSize() int {
	l.mu.Lock()
	rate := l.rate
	l.mu.Unlock()
	if rate <= 0 {
		return readSize
	}
	return int(min(max(rate/100, 512), readSize))
}

// reserve books k bytes on the line and returns when they have passed.
func (l *limiter) reserve(k int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.rate <= 0 {
		return now
	}
	start := l.next
	if earliest := now.Add(-burst); start.Before(earliest) {
		start = earliest
	}
	l.next = start.Add(time.Duration(int64(k) * int64(time.Second) / l.rate))
	return l.next
}

// clientConn is the client's end of a connection: a pipe that behaves like
// a TCP socket towards its user. It reports the real connection's
// addresses, fails with ECONNRESET after a reset, and accepts deadlines
// after the peer closed.
type clientConn struct {
	net.Conn
	c      *conn
	closed atomic.Bool
}

func (cc *clientConn) Close() error {
	cc.closed.Store(true)
	return cc.Conn.Close()
}

// A pipe refuses deadlines once either end is closed; a socket only once
// it is closed itself. Reads and writes fail at once after the peer
// closed, so the deadline does not matter then.
func (cc *clientConn) SetDeadline(t time.Time) error {
	return cc.deadlineErr(cc.Conn.SetDeadline(t))
}

func (cc *clientConn) SetReadDeadline(t time.Time) error {
	return cc.deadlineErr(cc.Conn.SetReadDeadline(t))
}

func (cc *clientConn) SetWriteDeadline(t time.Time) error {
	return cc.deadlineErr(cc.Conn.SetWriteDeadline(t))
}

func (cc *clientConn) deadlineErr(err error) error {
	if err != nil && !cc.closed.Load() {
		return nil
	}
	return err
}

func (cc *clientConn) Read(b []byte) (int, error) {
	k, err := cc.Conn.Read(b)
	return k, cc.mapErr("read", err)
}

func (cc *clientConn) Write(b []byte) (int, error) {
	k, err := cc.Conn.Write(b)
	return k, cc.mapErr("write", err)
}

func (cc *clientConn) LocalAddr() net.Addr  { return cc.c.rc.LocalAddr() }
func (cc *clientConn) RemoteAddr() net.Addr { return cc.c.rc.RemoteAddr() }

func (cc *clientConn) mapErr(op string, err error) error {
	if err == nil || !cc.c.reset.Load() {
		return err
	}
	return &net.OpError{
		Op: op, Net: "tcp", Source: cc.LocalAddr(), Addr: cc.RemoteAddr(),
		Err: os.NewSyscallError(op, syscall.ECONNRESET),
	}
}
