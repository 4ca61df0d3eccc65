package diode

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"syscall"
	"time"
)

// Sender timing.
const (
	// DefaultHeartbeatEvery is how often a sender repeats its heartbeat.
	DefaultHeartbeatEvery = time.Second
	// flushAfter is how long an open FEC group waits for more data once
	// the sender is idle, before its parity is sent.
	flushAfter = 20 * time.Millisecond
	// paceBurst is how far ahead of its rate a sender may get, so that
	// timer slack does not lower the rate.
	paceBurst = 5 * time.Millisecond
	// repeatsPerTurn bounds the repetitions sent under the lock at once.
	repeatsPerTurn = 64
)

// SenderOptions configure a Sender.
type SenderOptions struct {
	// Key seals every datagram.
	Key Key
	// Rate is the most bytes per second on the wire, UDP payload with all
	// overhead, repetitions and parity included; 0 is unlimited.
	Rate int64
	// Redundancy is the FEC and repetition; the zero value is none.
	Redundancy Redundancy
	// DatagramSize is the size of every datagram's UDP payload, at most;
	// 0 is DefaultDatagramSize.
	DatagramSize int
	// HeartbeatEvery is how often the last heartbeat is sent again; 0 is
	// DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration
	// Logger receives the sender's state changes; nil discards them.
	Logger *slog.Logger
}

// SenderStats count what a Sender sent.
type SenderStats struct {
	// Datagrams are first transmissions (data, parity and heartbeat);
	// Parity and Heartbeats count those of their kind.
	Datagrams, Parity, Heartbeats int64
	// Bytes are all bytes written, repetitions included.
	Bytes int64
	// Repeats are repetitions sent; RepeatBytes their bytes.
	Repeats, RepeatBytes int64
	// RepeatsSkipped are repetitions not sent because their datagram fell
	// out of the repeat buffer first.
	RepeatsSkipped int64
	// Batches and Records sent; Messages are their encoded bytes.
	Batches, Records, Messages int64
	// Refused counts writes the local network refused (a port unreachable
	// came back on loopback or a bidirectional test network); the datagram
	// is then lost as if on the wire.
	Refused int64
}

// Sender sends batches and heartbeats as sealed datagrams over a connected
// UDP socket. Send and Heartbeat may be called from one goroutine while Run
// runs in another; Stats and Close from any.
type Sender struct {
	conn    net.Conn
	aead    cipher.AEAD
	log     *slog.Logger
	red     Redundancy
	session SessionID
	start   time.Time
	every   time.Duration
	size    int // datagram size
	maxFrag int // message bytes per data datagram
	kick    chan struct{}
	done    chan struct{} // closed by Close
	enc     []byte        // Send's encoding buffer

	mu        sync.Mutex
	closed    bool
	seq       uint64
	msg       uint64
	group     uint64   // id of the open FEC group
	bodies    [][]byte // bodies of the open group's data datagrams
	arena     []byte   // the open group's shards, size apart
	busy      bool     // a Send is under way: its group stays open
	lastData  time.Time
	codecs    codecs
	rep       *repeats
	pace      pacer
	hb        *Heartbeat // the last heartbeat given
	hbEnc     []byte
	lastHB    time.Time
	positions map[TopicPartition]int64
	scratch   []byte
	wbuf      []byte
	stats     SenderStats
}

// NewSender returns a sender writing to conn, a connected UDP socket. It
// chooses the session id. The caller runs [Sender.Run] for repetitions,
// heartbeats and the flush of FEC groups.
func NewSender(conn net.Conn, o SenderOptions) (*Sender, error) {
	if err := o.Redundancy.Validate(); err != nil {
		return nil, fmt.Errorf("diode sender: redundancy: %w", err)
	}
	size := o.DatagramSize
	if size == 0 {
		size = DefaultDatagramSize
	}
	if size < MinDatagramSize || size > MaxDatagramSize {
		return nil, fmt.Errorf("diode sender: datagram size %d is outside [%d, %d]", size, MinDatagramSize, MaxDatagramSize)
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("diode sender: rate %d is negative", o.Rate)
	}
	if o.Key == (Key{}) {
		return nil, errors.New("diode sender: no key")
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	every := o.HeartbeatEvery
	if every <= 0 {
		every = DefaultHeartbeatEvery
	}
	red := o.Redundancy
	red.Repeat = append([]time.Duration(nil), red.Repeat...)
	if red.RepeatBuffer == 0 {
		red.RepeatBuffer = DefaultRepeatBuffer
	}
	s := &Sender{
		conn:      conn,
		aead:      newAEAD(o.Key),
		red:       red,
		start:     time.Now(),
		every:     every,
		size:      size,
		maxFrag:   size - dataOverhead,
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		codecs:    make(codecs),
		rep:       newRepeats(red.Repeat, red.RepeatBuffer),
		pace:      pacer{rate: float64(o.Rate)},
		positions: make(map[TopicPartition]int64),
	}
	if _, err := rand.Read(s.session[:]); err != nil {
		return nil, fmt.Errorf("diode sender: session id: %w", err)
	}
	if red.Parity > 0 {
		s.arena = make([]byte, (red.Data+red.Parity)*s.bodySize())
	}
	s.log = logger.With("component", "diode-sender", "session", s.session.String())
	s.log.Info("diode sender started", "redundancy", red.String(), "rate", o.Rate, "datagram_size", size)
	return s, nil
}

// Session is the sender's session id.
func (s *Sender) Session() SessionID { return s.session }

// bodySize is the largest body of a data datagram.
func (s *Sender) bodySize() int { return s.size - overheadLen - groupHeaderLen }

// Send sends b: encodes it, cuts it into datagrams, adds FEC parity, seals
// and writes them, pacing them to the rate (blocking as needed, until ctx
// ends). A Send cut short by ctx leaves a partial batch the receiver drops.
func (s *Sender) Send(ctx context.Context, b *Batch) error {
	if err := checkBatch(b); err != nil {
		return err
	}
	s.enc = appendBatch(s.enc[:0], b)
	if err := s.sendMessage(ctx, kindData, s.enc); err != nil {
		return err
	}
	tp := TopicPartition{Topic: b.Topic, Partition: b.Partition}
	s.mu.Lock()
	s.stats.Batches++
	s.stats.Records += int64(len(b.Records))
	s.stats.Messages += int64(len(s.enc))
	s.positions[tp] = max(s.positions[tp], b.To)
	s.mu.Unlock()
	if cap(s.enc) > 4*MaxDatagramSize && len(s.enc) < cap(s.enc)/4 {
		s.enc = nil // do not keep a huge batch's buffer
	}
	return nil
}

// sendMessage sends the message m (type byte and encoding) as fragments in
// datagrams of kind.
func (s *Sender) sendMessage(ctx context.Context, kind byte, m []byte) error {
	if len(m) > MaxMessage {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(m), MaxMessage)
	}
	count := (len(m) + s.maxFrag - 1) / s.maxFrag
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	id := s.msg
	s.msg++
	s.busy = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy = false
		s.lastData = time.Now()
		s.mu.Unlock()
		s.wake()
	}()
	for i := 0; i < count; {
		if err := s.paced(ctx); err != nil {
			return err
		}
		chunk := m[i*s.maxFrag : min(len(m), (i+1)*s.maxFrag)]
		f := fragment{msg: id, index: uint32(i), count: uint32(count), data: chunk}
		err := s.emitData(kind, &f, time.Now())
		s.mu.Unlock()
		if err != nil {
			return err
		}
		i++
	}
	return nil
}

// paced waits until the rate allows a write or ctx ends, and returns with
// s.mu held unless it returns an error.
func (s *Sender) paced(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		now := time.Now()
		// Repetitions that are due go first: what was sent keeps its
		// promise, and new data waits.
		if err := s.repeatLocked(now); err != nil {
			s.mu.Unlock()
			return err
		}
		wait := s.pace.delay(now)
		if wait == 0 {
			return nil
		}
		s.mu.Unlock()
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// emitData seals and writes one data datagram, adds it to the open FEC
// group and closes the group when full. s.mu is held.
func (s *Sender) emitData(kind byte, f *fragment, now time.Time) error {
	// Heartbeats stay out of FEC groups: a newer one follows soon.
	fec := s.red.Parity > 0 && kind != kindHeartbeat
	var gh groupHeader
	if fec {
		gh = groupHeader{group: s.group, index: uint8(len(s.bodies)), data: uint8(s.red.Data), parity: uint8(s.red.Parity)}
	}
	pt := gh.append(s.scratch[:0])
	pt = f.append(pt)
	s.scratch = pt
	body := pt[groupHeaderLen:]
	if err := s.emit(kind, pt, now); err != nil {
		return err
	}
	if kind == kindHeartbeat {
		s.stats.Heartbeats++
	}
	if !fec {
		return nil
	}
	bs := s.bodySize()
	slot := s.arena[len(s.bodies)*bs : (len(s.bodies)+1)*bs]
	s.bodies = append(s.bodies, slot[:copy(slot, body)])
	s.lastData = now
	if len(s.bodies) == s.red.Data {
		return s.closeGroup(now)
	}
	return nil
}

// closeGroup sends the parity of the open group and opens the next one.
// s.mu is held.
func (s *Sender) closeGroup(now time.Time) error {
	k := len(s.bodies)
	if k == 0 {
		return nil
	}
	m := parityFor(k, s.red.Data, s.red.Parity)
	size := 0
	for _, b := range s.bodies {
		size = max(size, len(b))
	}
	bs := s.bodySize()
	shards := make([][]byte, k+m)
	for i := range shards {
		shards[i] = s.arena[i*bs : i*bs+size : i*bs+size]
		if i < k {
			clear(shards[i][len(s.bodies[i]):])
		}
	}
	group := s.group
	s.group++
	s.bodies = s.bodies[:0]
	enc, err := s.codecs.get(k, m)
	if err != nil {
		return err
	}
	if err := enc.Encode(shards); err != nil {
		return fmt.Errorf("fec encode: %w", err)
	}
	for j := range m {
		gh := groupHeader{group: group, index: uint8(j), data: uint8(k), parity: uint8(m)}
		pt := gh.append(s.scratch[:0])
		pt = append(pt, shards[k+j]...)
		s.scratch = pt
		if err := s.emit(kindParity, pt, now); err != nil {
			return err
		}
		s.stats.Parity++
	}
	return nil
}

// emit seals and writes one new datagram, keeping it for repetition. s.mu
// is held.
func (s *Sender) emit(kind byte, pt []byte, now time.Time) error {
	h := header{kind: kind, session: s.session, seq: s.seq}
	s.seq++
	var d []byte
	keep := s.rep != nil && kind != kindHeartbeat
	if keep {
		d = seal(s.aead, make([]byte, 0, overheadLen+len(pt)), &h, pt)
	} else {
		d = seal(s.aead, s.wbuf[:0], &h, pt)
		s.wbuf = d
	}
	if err := s.write(d, now); err != nil {
		return err
	}
	s.stats.Datagrams++
	if keep {
		s.rep.push(d, now)
	}
	return nil
}

// write writes one datagram and charges the pacer. s.mu is held.
func (s *Sender) write(d []byte, now time.Time) error {
	_, err := s.conn.Write(d)
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
		// A port unreachable reported on an earlier datagram; the error is
		// consumed, so this one can go.
		_, err = s.conn.Write(d)
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			s.stats.Refused++
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("send datagram: %w", err)
	}
	s.stats.Bytes += int64(len(d))
	s.pace.charge(len(d), now)
	return nil
}

// Heartbeat sends h now and keeps it to send again every HeartbeatEvery.
// The sender sets Sent, SenderStart and Repeat, and raises Positions to the
// end of what it sent.
func (s *Sender) Heartbeat(ctx context.Context, h *Heartbeat) error {
	c := *h
	c.Topics = append([]Topic(nil), h.Topics...)
	c.Positions = maps.Clone(h.Positions)
	if err := s.paced(ctx); err != nil {
		return err
	}
	prev := s.hb
	s.hb = &c
	err := s.heartbeatLocked(time.Now())
	if errors.Is(err, ErrTooLarge) {
		s.hb = prev // keep sending the last one that fits
	}
	s.mu.Unlock()
	s.wake()
	return err
}

// heartbeatLocked sends the last heartbeat given. s.mu is held.
func (s *Sender) heartbeatLocked(now time.Time) error {
	h := *s.hb
	h.Positions = maps.Clone(s.hb.Positions)
	if h.Positions == nil {
		h.Positions = make(map[TopicPartition]int64, len(s.positions))
	}
	for tp, next := range s.positions {
		h.Positions[tp] = max(h.Positions[tp], next)
	}
	h.Sent, h.SenderStart, h.Repeat = now, s.start, s.red.Info()
	if s.rep != nil {
		if due, ok := s.rep.next(); ok && due.Before(now) {
			h.Repeat.Lag = now.Sub(due)
		}
	}
	s.hbEnc = appendHeartbeat(s.hbEnc[:0], &h)
	s.lastHB = now
	m := s.hbEnc
	if len(m) > MaxMessage {
		return fmt.Errorf("%w: heartbeat of %d bytes", ErrTooLarge, len(m))
	}
	count := (len(m) + s.maxFrag - 1) / s.maxFrag
	id := s.msg
	s.msg++
	for i := range count {
		f := fragment{msg: id, index: uint32(i), count: uint32(count), data: m[i*s.maxFrag : min(len(m), (i+1)*s.maxFrag)]}
		if err := s.emitData(kindHeartbeat, &f, now); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sender) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run sends the repetitions when due, the heartbeat every HeartbeatEvery
// and the parity of an FEC group left open by an idle sender. It returns
// nil when ctx ends or the sender is closed, or the error of a write.
func (s *Sender) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait, err := s.turn(time.Now())
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-s.done:
			return nil
		case <-s.kick:
		case <-timer.C:
		}
	}
}

// turn does what is due at now and returns how long until more is.
func (s *Sender) turn(now time.Time) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if len(s.bodies) > 0 && !s.busy && now.Sub(s.lastData) >= flushAfter {
		if err := s.closeGroup(now); err != nil {
			return 0, err
		}
	}
	if s.hb != nil && now.Sub(s.lastHB) >= s.every {
		if err := s.heartbeatLocked(now); err != nil {
			return 0, err
		}
	}
	if err := s.repeatLocked(now); err != nil {
		return 0, err
	}
	wait := time.Hour
	if d := s.pace.delay(now); d > 0 {
		return d, nil
	}
	if s.rep != nil {
		if due, ok := s.rep.next(); ok {
			wait = min(wait, due.Sub(now))
		}
	}
	if len(s.bodies) > 0 && !s.busy {
		wait = min(wait, s.lastData.Add(flushAfter).Sub(now))
	}
	if s.hb != nil {
		wait = min(wait, s.lastHB.Add(s.every).Sub(now))
	}
	return max(wait, 0), nil
}

// repeatLocked sends the repetitions due at now while the rate allows, at
// most repeatsPerTurn. s.mu is held.
func (s *Sender) repeatLocked(now time.Time) error {
	if s.rep == nil {
		return nil
	}
	for range repeatsPerTurn {
		if s.pace.delay(now) > 0 {
			return nil
		}
		d, ok := s.rep.pop(now)
		if !ok {
			return nil
		}
		if err := s.write(d, now); err != nil {
			return err
		}
		s.stats.Repeats++
		s.stats.RepeatBytes += int64(len(d))
	}
	return nil
}

// Stats returns the sender's counters.
func (s *Sender) Stats() SenderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if s.rep != nil {
		st.RepeatsSkipped = s.rep.skipped
	}
	return st
}

// Close sends the parity of the open FEC group and closes the connection;
// repetitions not yet due are not sent. Run returns.
func (s *Sender) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	err := s.closeGroup(time.Now())
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	if cerr := s.conn.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close diode sender: %w", cerr)
	}
	s.log.Info("diode sender closed")
	return err
}

// pacer spaces writes to a byte rate. Not safe for concurrent use.
type pacer struct {
	rate float64   // bytes per second; 0 is unlimited
	next time.Time // when the wire is free again
}

// charge accounts for n bytes written at now.
func (p *pacer) charge(n int, now time.Time) {
	if p.rate == 0 {
		return
	}
	if p.next.Before(now.Add(-paceBurst)) {
		p.next = now.Add(-paceBurst)
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
}

// delay is how long to wait at now before writing more.
func (p *pacer) delay(now time.Time) time.Duration {
	if p.rate == 0 {
		return 0
	}
	return max(p.next.Sub(now), 0)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
