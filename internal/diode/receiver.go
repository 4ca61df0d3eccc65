package diode

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Receiver limits.
const (
	// DefaultMaxBuffered bounds the bytes of incomplete messages and FEC
	// groups a receiver holds.
	DefaultMaxBuffered = 64 << 20
	// maxSessions is how many sender sessions a receiver follows at once;
	// the least recently heard leaves first.
	maxSessions = 8
	// minHorizon is the least time an incomplete message or FEC group is
	// kept waiting for its missing datagrams.
	minHorizon = 10 * time.Second
	// sweepEvery is how often incomplete messages and groups are expired.
	sweepEvery = time.Second
	// maxReaders bounds the goroutines reading the socket.
	maxReaders = 4
	// maxFragments bounds the fragments of one message.
	maxFragments = MaxMessage/(MinDatagramSize-dataOverhead) + 1
)

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Key opens every datagram; others are dropped as forged.
	Key Key
	// Logger receives the receiver's state changes; nil discards them.
	Logger *slog.Logger
	// MaxBuffered bounds the bytes held for incomplete messages and FEC
	// groups; 0 is DefaultMaxBuffered. Beyond it the oldest is dropped. A
	// batch larger than it cannot be received.
	MaxBuffered int64
}

// ReceiverStats count what a Receiver received.
type ReceiverStats struct {
	// Datagrams and Bytes received, forged ones included.
	Datagrams, Bytes int64
	// Forged datagrams failed authentication (a wrong key, a flipped bit,
	// garbage, truncation) and were dropped.
	Forged int64
	// Malformed datagrams or messages were authentic but could not be
	// decoded (a sender of another version).
	Malformed int64
	// Duplicates are data datagrams dropped as already had: repetitions,
	// duplicates, late originals of data rebuilt from parity.
	Duplicates int64
	// Spare are parity datagrams not needed: their group was complete, or
	// the same parity had come (repetitions).
	Spare int64
	// Recovered are data datagrams rebuilt from FEC parity.
	Recovered int64
	// Unrecoverable are FEC groups given up with data missing and too few
	// datagrams to rebuild it.
	Unrecoverable int64
	// Expired are incomplete messages given up after waiting for their
	// repetitions; Evicted those dropped to stay within MaxBuffered.
	Expired, Evicted int64
	// Batches and Heartbeats delivered.
	Batches, Heartbeats int64
	// LastDatagram is when the last authentic datagram arrived, of Session.
	LastDatagram time.Time
	Session      SessionID
}

// Receiver reads sealed datagrams from a UDP socket and delivers the
// complete, authentic batches and the latest heartbeats. It keeps nothing
// across restarts: it picks any sender's stream up mid-way.
type Receiver struct {
	conn        net.PacketConn
	aead        cipher.AEAD
	log         *slog.Logger
	maxBuffered int64
	batches     chan *Batch
	heartbeats  chan *Heartbeat

	datagrams, bytes, forged atomic.Int64

	hbMu sync.Mutex // serialises the coalescing of heartbeats

	mu       sync.Mutex
	sessions map[SessionID]*session
	buffered int64
	horizon  time.Duration
	codecs   codecs
	stats    ReceiverStats // counters other than the atomics
}

// session is what a receiver knows of one sender session.
type session struct {
	id     SessionID
	heard  time.Time
	groups map[uint64]*rgroup
	gdone  window
	msgs   map[uint64]*partial
	mdone  window
	lastHB uint64 // message id of the newest heartbeat delivered, plus one
}

// rgroup is an FEC group being received.
type rgroup struct {
	first        time.Time
	data, parity [][]byte // bodies by index
	haveData     int
	haveParity   int
	k, m         int // the group's shape, once a parity datagram told it
	bytes        int64
}

// message is a complete message of a session.
type message struct {
	session SessionID
	id      uint64 // grows with every message of a session
	b       []byte
}

// partial is a message being reassembled.
type partial struct {
	first time.Time
	frags [][]byte
	have  int
	bytes int64
}

// NewReceiver returns a receiver reading conn. Run it.
func NewReceiver(conn net.PacketConn, o ReceiverOptions) *Receiver {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	maxBuf := o.MaxBuffered
	if maxBuf <= 0 {
		maxBuf = DefaultMaxBuffered
	}
	return &Receiver{
		conn:        conn,
		aead:        newAEAD(o.Key),
		log:         logger.With("component", "diode-receiver"),
		maxBuffered: maxBuf,
		batches:     make(chan *Batch, 256),
		heartbeats:  make(chan *Heartbeat, 1),
		sessions:    make(map[SessionID]*session),
		horizon:     minHorizon,
		codecs:      make(codecs),
	}
}

// Batches delivers complete, authentic batches: possibly out of order, and
// possibly again (repetitions reaching a receiver that forgot them, or a
// sender started again). It is closed when Run returns.
func (r *Receiver) Batches() <-chan *Batch { return r.batches }

// Heartbeats delivers the latest heartbeat: one not taken in time is
// replaced by a newer one, and one older than a heartbeat already delivered
// from its session is dropped. It is closed when Run returns.
func (r *Receiver) Heartbeats() <-chan *Heartbeat { return r.heartbeats }

// Stats returns the receiver's counters.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	st := r.stats
	r.mu.Unlock()
	st.Datagrams, st.Bytes, st.Forged = r.datagrams.Load(), r.bytes.Load(), r.forged.Load()
	return st
}

// Run reads the socket until ctx ends, then returns nil (or the socket's
// error) and closes the channels. It does not close the socket. Run once.
func (r *Receiver) Run(ctx context.Context) error {
	defer close(r.heartbeats)
	defer close(r.batches)
	// A deadline in the past (an earlier Run on the same socket) would
	// make every read fail at once.
	if err := r.conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("diode receiver: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(gctx, func() { _ = r.conn.SetReadDeadline(time.Now()) })
	defer stop()
	readers := min(runtime.GOMAXPROCS(0), maxReaders)
	for range readers {
		g.Go(func() error { return r.read(gctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(sweepEvery)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case now := <-t.C:
				r.sweep(now)
			}
		}
	})
	r.log.Info("diode receiver started", "addr", r.conn.LocalAddr().String(), "readers", readers)
	err := g.Wait()
	r.log.Info("diode receiver stopped")
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// read is one reader: it reads, opens and handles datagrams.
func (r *Receiver) read(ctx context.Context) error {
	buf := make([]byte, 1<<16)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return fmt.Errorf("receive datagram: %w", err)
		}
		msgs := r.handle(buf[:n], time.Now())
		for _, m := range msgs {
			if !r.deliver(ctx, m) {
				return nil
			}
		}
	}
}

// handle takes one datagram and returns the messages it completed.
func (r *Receiver) handle(d []byte, now time.Time) []message {
	r.datagrams.Add(1)
	r.bytes.Add(int64(len(d)))
	h, pt, err := open(r.aead, d)
	if err != nil {
		r.forged.Add(1)
		return nil
	}
	gh, body, ok := parseGroupHeader(pt)
	if !ok {
		r.mu.Lock()
		r.stats.Malformed++
		r.mu.Unlock()
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.LastDatagram, r.stats.Session = now, h.session
	s := r.session(h.session, now)
	var out []message
	switch h.kind {
	case kindData, kindHeartbeat:
		out = r.dataLocked(s, gh, body, now, out)
	case kindParity:
		out = r.parityLocked(s, gh, body, now, out)
	default:
		r.stats.Malformed++
	}
	r.evictLocked()
	return out
}

// session returns the state of session id, creating it. r.mu is held.
func (r *Receiver) session(id SessionID, now time.Time) *session {
	s, ok := r.sessions[id]
	if !ok {
		if len(r.sessions) >= maxSessions {
			var oldest *session
			for _, o := range r.sessions {
				if oldest == nil || o.heard.Before(oldest.heard) {
					oldest = o
				}
			}
			r.dropSessionLocked(oldest)
		}
		s = &session{id: id, groups: make(map[uint64]*rgroup), msgs: make(map[uint64]*partial)}
		r.sessions[id] = s
		r.log.Info("diode sender session heard", "session", id.String())
	}
	s.heard = now
	return s
}

func (r *Receiver) dropSessionLocked(s *session) {
	for _, g := range s.groups {
		r.buffered -= g.bytes
	}
	for _, p := range s.msgs {
		r.buffered -= p.bytes
	}
	delete(r.sessions, s.id)
}

// dataLocked takes a data datagram's body. r.mu is held.
func (r *Receiver) dataLocked(s *session, gh groupHeader, body []byte, now time.Time, out []message) []message {
	if gh.parity == 0 { // no FEC
		return r.fragmentLocked(s, body, now, out, fragDup)
	}
	if s.gdone.has(gh.group) {
		r.stats.Duplicates++
		return out
	}
	if int(gh.index) >= int(gh.data) {
		r.stats.Malformed++
		return out
	}
	g := s.groups[gh.group]
	if g == nil {
		g = &rgroup{first: now}
		s.groups[gh.group] = g
	}
	if g.k > 0 && int(gh.index) >= g.k {
		r.stats.Malformed++
		return out
	}
	if int(gh.index) < len(g.data) && g.data[gh.index] != nil {
		r.stats.Duplicates++
		return out
	}
	g.data = grow(g.data, int(gh.index))
	kept := append([]byte(nil), body...)
	g.data[gh.index] = kept
	g.haveData++
	g.bytes += int64(len(body))
	r.buffered += int64(len(body))
	out = r.fragmentLocked(s, kept, now, out, fragOwned)
	return r.settleLocked(s, gh.group, g, now, out)
}

// parityLocked takes a parity datagram's body. r.mu is held.
func (r *Receiver) parityLocked(s *session, gh groupHeader, shard []byte, now time.Time, out []message) []message {
	if s.gdone.has(gh.group) {
		r.stats.Spare++
		return out
	}
	k, m := int(gh.data), int(gh.parity)
	if k == 0 || m == 0 || k+m > MaxGroup || int(gh.index) >= m || len(shard) == 0 {
		r.stats.Malformed++
		return out
	}
	g := s.groups[gh.group]
	if g == nil {
		g = &rgroup{first: now}
		s.groups[gh.group] = g
	}
	if g.k == 0 {
		if len(g.data) > k {
			for _, b := range g.data[k:] {
				if b != nil {
					r.stats.Malformed++
					return out
				}
			}
		}
		g.k, g.m = k, m
	} else if g.k != k || g.m != m {
		r.stats.Malformed++
		return out
	}
	for _, p := range g.parity {
		if p != nil && len(p) != len(shard) {
			r.stats.Malformed++
			return out
		}
	}
	if int(gh.index) < len(g.parity) && g.parity[gh.index] != nil {
		r.stats.Spare++
		return out
	}
	g.parity = grow(g.parity, int(gh.index))
	g.parity[gh.index] = append([]byte(nil), shard...)
	g.haveParity++
	g.bytes += int64(len(shard))
	r.buffered += int64(len(shard))
	return r.settleLocked(s, gh.group, g, now, out)
}

// settleLocked finishes group g when all its data is had, rebuilding what
// is missing when enough parity came. r.mu is held.
func (r *Receiver) settleLocked(s *session, id uint64, g *rgroup, now time.Time, out []message) []message {
	if g.k == 0 || g.haveData+g.haveParity < g.k {
		return out
	}
	if g.haveData < g.k {
		out = r.rebuildLocked(s, g, now, out)
	}
	s.gdone.mark(id)
	delete(s.groups, id)
	r.buffered -= g.bytes
	return out
}

// rebuildLocked rebuilds g's missing data datagrams from its parity and
// takes their fragments. r.mu is held.
func (r *Receiver) rebuildLocked(s *session, g *rgroup, now time.Time, out []message) []message {
	size := 0
	for _, p := range g.parity {
		if p != nil {
			size = len(p)
			break
		}
	}
	shards := make([][]byte, g.k+g.m)
	missing := make([]bool, g.k)
	for i := range g.k {
		if i >= len(g.data) || g.data[i] == nil {
			missing[i] = true
			continue
		}
		if len(g.data[i]) > size {
			r.stats.Malformed++
			return out
		}
		b := make([]byte, size)
		copy(b, g.data[i])
		shards[i] = b
	}
	for j, p := range g.parity {
		shards[g.k+j] = p
	}
	enc, err := r.codecs.get(g.k, g.m)
	if err == nil {
		err = enc.ReconstructData(shards)
	}
	if err != nil {
		r.stats.Malformed++
		return out
	}
	for i, miss := range missing {
		if miss {
			r.stats.Recovered++
			out = r.fragmentLocked(s, shards[i], now, out, fragOwned)
		}
	}
	return out
}

// How fragmentLocked treats a body.
const (
	// fragDup: a fragment already had counts as a duplicate datagram
	// (without FEC, this is the only place to notice one); the body is in
	// a read buffer and is copied.
	fragDup = 1 << iota
	// fragOwned: the body is the receiver's own (kept for FEC or rebuilt)
	// and can be kept as is.
	fragOwned
)

// fragmentLocked takes one fragment and returns the messages it completes,
// appended to out. r.mu is held.
func (r *Receiver) fragmentLocked(s *session, body []byte, now time.Time, out []message, how int) []message {
	dup, owned := how&fragDup != 0, how&fragOwned != 0
	keep := func(b []byte) []byte {
		if owned {
			return b
		}
		return append([]byte(nil), b...)
	}
	f, ok := parseFragment(body)
	if !ok || f.count > maxFragments {
		r.stats.Malformed++
		return out
	}
	if s.mdone.has(f.msg) {
		if dup {
			r.stats.Duplicates++
		}
		return out
	}
	if f.count == 1 {
		s.mdone.mark(f.msg)
		return append(out, message{session: s.id, id: f.msg, b: keep(f.data)})
	}
	p := s.msgs[f.msg]
	if p == nil {
		p = &partial{first: now, frags: make([][]byte, f.count)}
		s.msgs[f.msg] = p
	}
	if int(f.count) != len(p.frags) {
		r.stats.Malformed++
		return out
	}
	if p.frags[f.index] != nil {
		if dup {
			r.stats.Duplicates++
		}
		return out
	}
	p.frags[f.index] = keep(f.data)
	p.have++
	p.bytes += int64(len(f.data)) + 24
	r.buffered += int64(len(f.data)) + 24
	if p.have < len(p.frags) {
		return out
	}
	m := make([]byte, 0, p.bytes)
	for _, fr := range p.frags {
		m = append(m, fr...)
	}
	delete(s.msgs, f.msg)
	r.buffered -= p.bytes
	s.mdone.mark(f.msg)
	return append(out, message{session: s.id, id: f.msg, b: m})
}

func grow(s [][]byte, i int) [][]byte {
	if i < len(s) {
		return s
	}
	return append(s, make([][]byte, i+1-len(s))...)
}

// evictLocked drops the oldest incomplete messages and groups when more
// than maxBuffered is held, down to nine tenths of it. r.mu is held.
func (r *Receiver) evictLocked() {
	if r.buffered <= r.maxBuffered {
		return
	}
	for r.buffered > r.maxBuffered/10*9 {
		var (
			oldest  time.Time
			from    *session
			id      uint64
			isGroup bool
		)
		for _, s := range r.sessions {
			for gid, g := range s.groups {
				if from == nil || g.first.Before(oldest) {
					oldest, from, id, isGroup = g.first, s, gid, true
				}
			}
			for mid, p := range s.msgs {
				if from == nil || p.first.Before(oldest) {
					oldest, from, id, isGroup = p.first, s, mid, false
				}
			}
		}
		switch {
		case from == nil:
			r.buffered = 0
			return
		case isGroup:
			r.buffered -= from.groups[id].bytes
			delete(from.groups, id)
		default:
			r.buffered -= from.msgs[id].bytes
			delete(from.msgs, id)
			r.stats.Evicted++
		}
	}
}

// sweep expires the incomplete messages and groups that waited longer than
// the horizon, and forgets sessions not heard for long.
func (r *Receiver) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sessions {
		for id, g := range s.groups {
			if now.Sub(g.first) < r.horizon {
				continue
			}
			if g.k > 0 && g.haveData < g.k {
				r.stats.Unrecoverable++
			}
			delete(s.groups, id)
			r.buffered -= g.bytes
		}
		for id, p := range s.msgs {
			if now.Sub(p.first) < r.horizon {
				continue
			}
			r.stats.Expired++
			delete(s.msgs, id)
			r.buffered -= p.bytes
		}
		if len(s.groups) == 0 && len(s.msgs) == 0 && now.Sub(s.heard) > 10*r.horizon {
			r.log.Info("diode sender session forgotten", "session", s.id.String(), "silent", now.Sub(s.heard).Round(time.Second).String())
			delete(r.sessions, s.id)
		}
	}
}

// deliver decodes one complete message and hands it on; false when ctx
// ended first.
func (r *Receiver) deliver(ctx context.Context, msg message) bool {
	b, h, err := decodeMessage(msg.b)
	switch {
	case err != nil:
		r.malformed()
	case b != nil:
		select {
		case r.batches <- b:
		case <-ctx.Done():
			return false
		}
		r.mu.Lock()
		r.stats.Batches++
		r.mu.Unlock()
	default:
		h.Session = msg.session
		r.heartbeat(h, msg.id)
	}
	return true
}

// decodeMessage decodes a complete message: a batch or a heartbeat.
func decodeMessage(m []byte) (*Batch, *Heartbeat, error) {
	if len(m) == 0 {
		return nil, nil, errShort
	}
	switch m[0] {
	case msgBatch:
		b, err := decodeBatch(m[1:])
		return b, nil, err
	case msgHeartbeat:
		h, err := decodeHeartbeat(m[1:])
		return nil, h, err
	}
	return nil, nil, fmt.Errorf("unknown message type %d", m[0])
}

func (r *Receiver) malformed() {
	r.mu.Lock()
	r.stats.Malformed++
	r.mu.Unlock()
}

// heartbeat hands on h, message id of its session, unless a newer one of
// the session was (the message id orders them, whatever the sender's
// clock does), replacing a heartbeat not taken yet.
func (r *Receiver) heartbeat(h *Heartbeat, id uint64) {
	r.hbMu.Lock()
	defer r.hbMu.Unlock()
	r.mu.Lock()
	if s := r.sessions[h.Session]; s != nil {
		if id < s.lastHB {
			r.mu.Unlock()
			return
		}
		s.lastHB = id + 1
	}
	if w := h.Repeat.RepairWindow() + 3*time.Second; w > r.horizon {
		r.horizon = w
	}
	r.stats.Heartbeats++
	r.mu.Unlock()
	select {
	case <-r.heartbeats:
	default:
	}
	r.heartbeats <- h
}
