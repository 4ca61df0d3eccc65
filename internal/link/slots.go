package link

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Slots: a link's source partitions map to a fixed number of slots
// (slotOf). A slot is the unit that agents sharing a link hand to each
// other, and the unit of a destination transaction: each slot has its own
// transactional producer ("edgelink-<identity>-<slot>"), its own
// checkpoints and its own transactions. Whoever opens a slot initialises
// its producer, which fences whoever held it before; a session holds the
// slots its agent owns, and while one slot waits for its commit the others
// keep sending.

// slot is one slot held by a session: its sink, its checkpoints, and its
// open transaction. It is owned by the session's goroutine, except while a
// commit of it runs in its own goroutine (committing), when only that
// goroutine touches its sink.
type slot struct {
	index int
	out   sink
	store slotStore
	pos   *positions
	// mark: the slot's marker is still to be written (its session's first
	// commit writes it, see store); markSent: it is in the open
	// transaction already (sent with its first records, so that the
	// producer asks for both topics' metadata at once).
	mark, markSent bool
	// fresh: the slot was opened since the last discovery pass, which
	// starts its partitions without a checkpoint at the link's start
	// position. opened is when it was installed.
	fresh  bool
	opened time.Time
	// committing: a commit runs; releasing: the slot is being handed over
	// (it takes no more records, commits what it has and closes).
	committing, releasing bool

	// The open transaction: its payload, records, per-topic counts.
	txBytes, txRecs int
	txTopics        map[string]counts
	// txIn counts, per source topic, the records (and payload) that went
	// into the stages of a link with transforms since the last commit,
	// kept or not: they commit with the next transaction or checkpoint.
	txIn map[string]counts
	// txFiltered and txLate count the records the transforms dropped and
	// found late, txLooped those loop prevention dropped, since the last
	// commit: they count once committed too.
	txFiltered, txLate, txLooped int64
	txStarted                    time.Time
	// txSize is the payload at which the open transaction commits; see
	// session.txLimit and sizeTransactions. Zero until the first one.
	txSize float64
}

// pending reports whether the slot has something to commit.
func (sl *slot) pending() bool { return sl.mark || sl.pos.pending() }

// pendingDue reports when a slot with something to commit and no open
// transaction commits it: a newly opened slot waits one commit interval
// for records, so that its checkpoints and marker ride with them (alone
// they would cost a long link a commit's round trips before the first
// record).
func (sl *slot) pendingDue(interval time.Duration) time.Time {
	return sl.opened.Add(interval)
}

func (sl *slot) forgetTransaction() {
	clear(sl.txTopics)
	clear(sl.txIn)
	sl.txBytes, sl.txRecs = 0, 0
	sl.txFiltered, sl.txLate, sl.txLooped = 0, 0, 0
	sl.markSent = false
}

// slotError is an error of one slot's sink.
type slotError struct {
	slot int
	err  error
}

func (e *slotError) Error() string { return fmt.Sprintf("slot %d: %v", e.slot, e.err) }
func (e *slotError) Unwrap() error { return e.err }

// commitResult is the outcome of a commit that ran in its own goroutine,
// started at began.
type commitResult struct {
	sl    *slot
	err   error
	began time.Time
}

// openResult is the outcome of opening slots in the background.
type openResult struct {
	slots map[int]*slot
	err   error
}

// openSlots opens slots: it creates and initialises their producers in
// parallel (fencing earlier holders and settling their transactions), then
// reads the checkpoints of all of them in one pass.
func (s *session) openSlots(ctx context.Context, indexes []int, mirrors map[string]int32) (map[int]*slot, error) {
	inits, err := s.initSlots(ctx, indexes)
	if err != nil {
		return nil, err
	}
	return s.loadSlots(ctx, inits, mirrors)
}

// initSlots creates and initialises the producers of slots, in parallel.
func (s *session) initSlots(ctx context.Context, indexes []int) (map[int]*slot, error) {
	out := make(map[int]*slot, len(indexes))
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	for _, i := range indexes {
		wg.Go(func() {
			out1, err := s.openSink(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				if out1 != nil {
					out1.close()
				}
				return
			}
			out[i] = &slot{index: i, out: out1, txTopics: make(map[string]counts), txIn: make(map[string]counts)}
		})
	}
	wg.Wait()
	if first != nil {
		closeSlots(out)
		return nil, first
	}
	return out, nil
}

// loadSlots reads the checkpoints of slots whose producers are
// initialised, in one pass, settles what their earlier epochs left
// hanging (see hanging.go) in the checkpoints and in the mirror partitions
// of mirrors (source topics and their partition counts), and sets up
// their positions. On error it closes them.
func (s *session) loadSlots(ctx context.Context, out map[int]*slot, mirrors map[string]int32) (map[int]*slot, error) {
	if len(out) == 0 {
		return out, nil
	}
	o := s.loadOptions()
	if s.eos {
		for _, sl := range out {
			if ps, ok := sl.out.(*produceSink); ok {
				o.producers[ps.pid] = ps.epoch
			}
		}
	}
	saved, err := s.store.load(ctx, o, sortedSlots(out))
	if err == nil {
		for _, sv := range saved {
			if err = s.checkSource(sv); err != nil {
				break
			}
		}
	}
	if err == nil && s.eos {
		err = s.settleHanging(ctx, out, mirrors, o.hanging, saved)
	}
	if err != nil {
		closeSlots(out)
		return nil, err
	}
	for i, sl := range out {
		sv := saved[i]
		sl.store = slotStore{store: s.store, slot: i, gen: sv.gen}
		sl.pos = newPositions(sl.store, s.srcID, sv.checkpoints, s.checkLost)
		sl.mark, sl.fresh = true, true
		if len(sv.checkpoints) > 0 {
			s.l.logger.Info("resuming slot from checkpoints", "slot", i, "partitions", len(sv.checkpoints), "found_in", sv.from, "generation", sv.gen)
		}
	}
	return out, nil
}

// closeSlots closes the sinks of slots never installed.
func closeSlots(slots map[int]*slot) {
	for _, sl := range slots {
		sl.out.close()
	}
}

// install adds opened slots to the session; the next discovery pass starts
// reading their partitions.
func (s *session) install(opened map[int]*slot) {
	now := time.Now()
	for _, i := range slices.Sorted(maps.Keys(opened)) {
		opened[i].opened = now
		s.slots[i] = opened[i]
		s.l.held.set(opened[i].pos.committed)
		if s.tstage != nil && s.tstage.keyed != nil {
			opened[i].pos.rebuild = s.tstage.keyed.rebuild
		}
	}
	s.nextDiscovery = time.Now()
	s.l.slotsHeld(s.held(), sortedSlots(opened), nil)
}

// held returns the slots the session holds, sorted.
func (s *session) held() []int { return sortedSlots(s.slots) }

func sortedSlots(m map[int]*slot) []int { return slices.Sorted(maps.Keys(m)) }

// reconcile follows the link's wanted slots: it opens in the background
// the slots wanted and not held, and begins to release those held and no
// longer wanted.
func (s *session) reconcile(ctx context.Context) {
	want, changed := s.l.wanted()
	if !changed && !s.retryOpen {
		return
	}
	s.retryOpen = false
	for i, sl := range s.slots {
		if !want[i] && !sl.releasing {
			sl.releasing = true
			s.l.logger.Info("handing over slot", "slot", i)
		}
	}
	if s.opening {
		s.retryOpen = true // look again once the open under way is done
		return
	}
	var add []int
	for i := range want {
		if _, ok := s.slots[i]; !ok {
			add = append(add, i)
		}
	}
	if len(add) == 0 {
		return
	}
	slices.Sort(add)
	mirrors := maps.Clone(s.ready)
	s.opening = true
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		opened, err := s.openSlots(ctx, add, mirrors)
		s.opened <- openResult{opened, err}
		s.signal()
	}()
}

// finishReleases closes the slots being handed over once they committed
// what they had.
func (s *session) finishReleases(ctx context.Context) error {
	var gone []int
	for i, sl := range s.slots {
		if !sl.releasing || sl.committing {
			continue
		}
		if sl.out.open() || sl.pending() {
			if err := s.startCommit(ctx, sl); err != nil {
				return err
			}
			continue
		}
		s.drop(sl)
		gone = append(gone, i)
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		s.l.slotsHeld(s.held(), nil, gone)
	}
	return nil
}

// drop closes a slot and stops reading its partitions.
func (s *session) drop(sl *slot) {
	if sl.out.open() {
		sl.out.abort(context.Background())
	}
	sl.out.close()
	var parts []tp
	for k := range s.in.assigned {
		if slotOf(k, s.store.slots) == sl.index {
			parts = append(parts, k)
		}
	}
	s.in.remove(parts)
	s.l.held.forget(parts)
	if s.tstage != nil && s.tstage.keyed != nil {
		for _, k := range parts {
			s.tstage.keyed.forget(k)
		}
	}
	delete(s.slots, sl.index)
	s.l.update(func(st *Status) { st.Partitions = len(s.in.assigned) })
}

// slotFor returns the held slot that replicates k, or nil.
func (s *session) slotFor(k tp) *slot { return s.slots[slotOf(k, s.store.slots)] }

// blocked reports whether k's records must wait: its slot is committing,
// being handed over, or its transaction is full.
func (s *session) blocked(k tp) bool {
	sl := s.slotFor(k)
	return sl == nil || sl.committing || sl.releasing || sl.txBytes >= s.txLimit(sl) || s.budgetFull()
}

// budgetFull reports, for a link with a bandwidth budget, whether its
// slots' transactions (open or committing) hold a transaction time's worth
// of the budget: what is copied next then waits, so that a record of a
// higher priority is never queued behind more than that in other slots'
// producers.
func (s *session) budgetFull() bool {
	if s.l.limit == nil || s.l.limit.Rate() <= 0 {
		return false
	}
	n := 0
	for _, sl := range s.slots {
		n += sl.txBytes
	}
	return n >= max(int(float64(s.l.limit.Rate())*s.tune.txTime.Seconds()), minTxBytes)
}

// startCommit commits a slot's open transaction (with its checkpoints) in
// its own goroutine; collect takes the result.
func (s *session) startCommit(ctx context.Context, sl *slot) error {
	if !sl.out.open() {
		if err := sl.out.begin(); err != nil {
			return &slotError{slot: sl.index, err: err}
		}
		sl.txStarted = time.Now()
	}
	marks := sl.pos.marks(s.srcTopicIDs)
	if sl.mark && !sl.markSent {
		marks = append(marks, sl.store.markRecord(s.l.opts.Instance))
	}
	sl.committing = true
	s.inflight++
	began := time.Now()
	s.lastCommit = began
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		err := sl.out.commit(ctx, marks)
		s.results <- commitResult{sl, err, began}
		s.signal()
	}()
	return nil
}

// commitSpacing is how long after one commit began the next may begin
// while commits are under way: the recent commit duration shared out among
// the slots, so that the slots' commits spread over time and while some
// wait for theirs the others send (all committing at once would leave a
// long link idle for the round trips a commit takes).
func (s *session) commitSpacing() time.Duration {
	if s.inflight == 0 || len(s.slots) < 2 {
		return 0
	}
	return s.commitTook / time.Duration(len(s.slots))
}

// signal ends a wait for the source early: a background result arrived.
func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// collect takes the results of commits and slot openings that finished,
// without waiting. It returns the first commit error.
func (s *session) collect() error {
	var first error
	for {
		select {
		case r := <-s.results:
			if err := s.finished(r); err != nil && first == nil {
				first = err
			}
		case r := <-s.opened:
			s.opening = false
			if r.err != nil {
				if first == nil {
					first = r.err
				}
				continue
			}
			want := s.l.peekWanted()
			keep := make(map[int]*slot, len(r.slots))
			for i, sl := range r.slots {
				if want[i] {
					keep[i] = sl
				} else {
					sl.out.close()
				}
			}
			s.install(keep)
			s.retryOpen = true
		default:
			return first
		}
	}
}

// finished takes one commit's result.
func (s *session) finished(r commitResult) error {
	s.inflight--
	r.sl.committing = false
	took := time.Since(r.began)
	if s.commitTook == 0 {
		s.commitTook = took
	}
	s.commitTook = (4*s.commitTook + took) / 5
	if r.err == nil {
		s.committed(r.sl)
		return nil
	}
	if r.sl.releasing {
		// The slot is handed over anyway: its next holder copies again
		// what this transaction held.
		s.l.logger.Warn("last transaction of a slot handed over not committed", "slot", r.sl.index, "err", r.err)
		r.sl.out.abort(context.Background())
		r.sl.pos.rewind()
		r.sl.mark = false
		clear(r.sl.pos.dirty)
		return nil
	}
	return &slotError{slot: r.sl.index, err: r.err}
}

// settle waits for every commit under way and takes its result; errors
// are moot (the caller is rewinding or stopping).
func (s *session) settle() {
	for s.inflight > 0 {
		_ = s.finished(<-s.results)
	}
}

// fenced drops a slot whose producer was fenced: another agent holds it
// now. The slot is not opened again until it is assigned to this agent
// anew.
func (s *session) fenced(err error) bool {
	var se *slotError
	if !s.l.opts.Shared || !errors.Is(err, ErrFenced) || !errors.As(err, &se) {
		return false
	}
	sl := s.slots[se.slot]
	if sl == nil {
		return true
	}
	s.l.logger.Warn("slot taken over by another agent", "slot", se.slot, "err", err)
	s.l.event(EventSlots, fmt.Sprintf("slot %d was taken over by another agent (fenced)", se.slot))
	s.drop(sl)
	s.l.slotLost(se.slot)
	s.l.slotsHeld(s.held(), nil, []int{se.slot})
	return true
}

// txLimit is the payload at which a slot's open transaction commits,
// within [64 KiB, MaxTransactionBytes]: at first the bandwidth budget's
// worth of the profile's transaction time (or 1 MiB), then as
// sizeTransactions adapts it.
func (s *session) txLimit(sl *slot) int {
	if sl.txSize == 0 {
		sl.txSize = initialTxBytes
		if s.l.limit != nil && s.l.limit.Rate() > 0 {
			sl.txSize = float64(s.l.limit.Rate()) * s.tune.txTime.Seconds()
		}
	}
	sl.txSize = min(max(sl.txSize, minTxBytes), float64(s.l.opts.MaxTransactionBytes))
	return int(sl.txSize)
}

// producerOpts returns the kgo options of a slot's producer.
func (s *session) producerOpts(index int) []kgo.Opt {
	opts := s.dstOpts
	if s.eos {
		opts = append(opts, kgo.TransactionalID(s.l.id.TransactionalID(index)), kgo.TransactionTimeout(s.l.opts.TransactionTimeout),
			kgo.MaxVersions(explicitTxnVersions()))
	}
	return opts
}

// slotTable is what the link's owner (its agent's membership) wants the
// link to run, and what its session holds. It is safe for concurrent use.
type slotTable struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
	want map[int]bool
	held map[int]bool
	// lost holds slots fenced by another agent, and when: not opened again
	// until assigned anew, or for retry (by then this agent's membership
	// has revoked them if they are not its own).
	lost  map[int]time.Time
	retry time.Duration
	// changed is set when want changed since the session last looked.
	changed bool
	// settled is closed once the link's owner said what it should run
	// (at once without sharing; at the first assignment or generation of
	// the link's group with it).
	settled     chan struct{}
	settledOnce sync.Once
	// interrupt, while set, cuts short the session's wait for the source
	// (see ReleaseNow).
	interrupt context.CancelCauseFunc
}

func (t *slotTable) settle() { t.settledOnce.Do(func() { close(t.settled) }) }

// isSettled reports whether the link's owner said what it should run.
func (t *slotTable) isSettled() bool {
	select {
	case <-t.settled:
		return true
	default:
		return false
	}
}

func (t *slotTable) init(n int, all bool, retry time.Duration) {
	t.cond = sync.NewCond(&t.mu)
	t.n = max(n, 1)
	t.retry = retry
	t.want, t.held, t.lost = make(map[int]bool), make(map[int]bool), make(map[int]time.Time)
	t.settled = make(chan struct{})
	if all {
		for i := range t.n {
			t.want[i] = true
		}
		t.settle()
	}
	t.changed = true
}

// Assign tells the link to run slots (in addition to those it runs). It
// does not wait: the link opens them in the background.
func (l *Link) Assign(slots ...int) {
	t := &l.slots
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, i := range slots {
		if i >= 0 && i < t.n {
			t.want[i] = true
			delete(t.lost, i)
		}
	}
	t.changed = true
	t.settle()
}

// Release tells the link to stop running slots and waits until its
// session committed what they hold and closed them, or ctx ends. A link
// without a session releases at once (the next holder's producer settles
// what was left open).
func (l *Link) Release(ctx context.Context, slots ...int) error {
	t := &l.slots
	t.mu.Lock()
	for _, i := range slots {
		delete(t.want, i)
		delete(t.lost, i)
	}
	t.changed = true
	t.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		busy := false
		for _, i := range slots {
			busy = busy || t.held[i]
		}
		if !busy {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("release slots %v of link %s: %w", slots, l.cfg.Name, err)
		}
		t.cond.Wait()
	}
}

// errReleased cuts a session's wait for the source short: slots had to be
// released at once.
var errReleased = errors.New("slots released at once: this agent lost its membership")

// ReleaseNow is Release for slots this agent lost (its membership expired,
// it is presumed dead): a wait for the source under way (a source that
// does not answer is why the membership was lost) is cut short, which ends
// the session, so that the slots close at once rather than when that wait
// times out. Their open transactions are left to their next holders.
func (l *Link) ReleaseNow(ctx context.Context, slots ...int) error {
	t := &l.slots
	t.mu.Lock()
	if t.interrupt != nil {
		t.interrupt(errReleased)
	}
	t.mu.Unlock()
	return l.Release(ctx, slots...)
}

// interruptible returns ctx, cut short by ReleaseNow until done is called.
func (l *Link) interruptible(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := &l.slots
	t.mu.Lock()
	t.interrupt = cancel
	t.mu.Unlock()
	return ctx, func() {
		t.mu.Lock()
		t.interrupt = nil
		t.mu.Unlock()
		cancel(nil)
	}
}

// SlotCount returns the link's number of slots.
func (l *Link) SlotCount() int { return l.slots.n }

// Held returns the slots the link's session holds, sorted.
func (l *Link) Held() []int {
	t := &l.slots
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Sorted(maps.Keys(t.held))
}

// firstWanted waits until the link's owner said what it should run (a
// shared link's first assignment), at most wait, so that a starting
// session opens its slots with its other set-up work rather than after it.
func (l *Link) firstWanted(ctx context.Context, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-l.slots.settled:
	case <-t.C:
	case <-ctx.Done():
	}
}

// wanted returns the slots the session should hold, and whether that
// changed since the last call.
func (l *Link) wanted() (map[int]bool, bool) {
	t := &l.slots
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := t.changed
	t.changed = false
	for i, at := range t.lost {
		if time.Since(at) > t.retry {
			delete(t.lost, i)
			changed = true
		}
	}
	return t.wantLocked(), changed
}

// peekWanted returns the slots the session should hold, leaving the
// change for wanted to report.
func (l *Link) peekWanted() map[int]bool {
	t := &l.slots
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wantLocked()
}

func (t *slotTable) wantLocked() map[int]bool {
	out := make(map[int]bool, len(t.want))
	for i := range t.want {
		if _, lost := t.lost[i]; !lost {
			out[i] = true
		}
	}
	return out
}

// slotLost records that another agent fenced slot i.
func (l *Link) slotLost(i int) {
	t := &l.slots
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lost[i] = time.Now()
}

// slotsHeld records what the session holds now, and what it opened and
// closed, for Release and the link's status.
func (l *Link) slotsHeld(held, opened, closed []int) {
	t := &l.slots
	t.mu.Lock()
	clear(t.held)
	for _, i := range held {
		t.held[i] = true
	}
	t.cond.Broadcast()
	t.mu.Unlock()
	l.update(func(st *Status) { st.Slots = slices.Clone(held) })
	if len(opened) > 0 {
		l.event(EventSlots, fmt.Sprintf("opened slot(s) %s", slotList(opened)))
	}
	if len(closed) > 0 {
		l.event(EventSlots, fmt.Sprintf("closed slot(s) %s", slotList(closed)))
	}
}

// slotList formats slots as "0, 2, 5".
func slotList(slots []int) string {
	return strings.Join(strings.Fields(strings.Trim(fmt.Sprint(slots), "[]")), ", ")
}

// Agent identifies an agent process that runs links.
type Agent struct {
	Instance string
	Host     string
	PID      int
}

// Sharing is how the agents running a link share its slots, as this
// agent's membership last saw it.
type Sharing struct {
	// Generation is the membership's generation; Since when it began.
	Generation int32
	Since      time.Time
	// Self is this agent; Agents are every agent sharing the link
	// (Self among them); Owners[i] is the agent that owns slot i (zero
	// while the slot moves).
	Self   Agent
	Agents []Agent
	Owners []Agent
}

// SetSharing records how the agents share the link, and an event when
// event is not empty.
func (l *Link) SetSharing(sh Sharing, event string) {
	if sh.Generation > 0 {
		l.slots.settle()
	}
	l.update(func(st *Status) { st.Sharing = sh })
	if event != "" {
		l.event(EventSlots, event)
	}
}

// Report records a problem of the link's owner (its membership) in the
// link's status and events.
func (l *Link) Report(err error) {
	l.logger.Error("link cannot share its slots", "err", err)
	l.update(func(st *Status) { st.LastError = err.Error() })
	l.event(EventError, err.Error())
}

// explicitTxnVersions caps Produce below version 12, so that a slot's
// producer adds each partition to its transaction explicitly
// (AddPartitionsToTxn) rather than by producing to it (Kafka's transactions
// v2, KIP-890 part 2). With the implicit add, a destination broker restarted
// in the middle of a transaction was seen to commit a transaction's records
// while its checkpoint record, in another partition, got no marker at all:
// data and checkpoint must commit together, so the link uses the explicit
// add, which Kafka 4 still serves.
//
// EndTxn is capped below version 5 and AddPartitionsToTxn below 4 to
// match: the transactions of nothing but markers that settle hanging
// transactions (see hanging.go) are sent as requests of the producer, and
// an EndTxn of version 5 would bump its epoch under it.
func explicitTxnVersions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	v.SetMaxKeyVersion(int16(kmsg.AddPartitionsToTxn), 3)
	return v
}
