package link

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pendingCap bounds the memory of fetched records waiting to be copied
// (scheduler.mem): past it, a partition whose records are all copied is
// fetched again only if records of a lower priority wait. With
// fetchMaxBytes and the producer's buffer (the profile's) it bounds a
// link's memory whatever its backlog or partition count.
const pendingCap = 8 << 20

// blockedCap bounds the memory of fetched records waiting for their
// slot's commit beyond pendingCap (see refill).
const blockedCap = 24 << 20

// fetchMaxBytes is the most one fetch from the source returns.
const fetchMaxBytes = 8 << 20

// intake reads the source: it fetches the assigned partitions
// (read_committed, markers kept so that positions are exact), hands their
// records out in the scheduler's weighted-fair order, and pauses a
// partition while its fetched records wait. It is owned by the session's
// goroutine.
type intake struct {
	src      source
	consumer fetcher
	priority func(topic string) int
	// sched holds fetched records waiting to be copied; a partition with
	// records waiting is not fetched. held lists partitions (with their
	// weight) whose waiting records are gone but that are not fetched
	// again yet, because too much waits already (pendingCap).
	sched *scheduler
	held  map[tp]int
	// assigned holds the partitions the consumer reads.
	assigned map[tp]struct{}
}

func newIntake(src source, priority func(string) int) (*intake, error) {
	in := &intake{
		src:      src,
		priority: priority,
		sched:    newScheduler(),
		held:     make(map[tp]int),
		assigned: make(map[tp]struct{}),
	}
	var err error
	if in.consumer, err = src.fetcher(); err != nil {
		return nil, err
	}
	return in, nil
}

// consumerOpts are the options of a source cluster's consumer: what the
// intake needs of it.
func consumerOpts(fetchWait time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxWait(fetchWait),
	}
}

func (in *intake) close() { in.consumer.Close() }

// reading reports whether k is assigned.
func (in *intake) reading(k tp) bool {
	_, ok := in.assigned[k]
	return ok
}

// assign starts reading partitions at the given offsets.
func (in *intake) assign(at map[tp]int64) {
	if len(at) == 0 {
		return
	}
	add := make(map[string]map[int32]kgo.Offset)
	for k, off := range at {
		if add[k.Topic] == nil {
			add[k.Topic] = make(map[int32]kgo.Offset)
		}
		add[k.Topic][k.Partition] = kgo.NewOffset().At(off)
		in.assigned[k] = struct{}{}
	}
	in.consumer.AddConsumePartitions(add)
}

// rewind starts reading every assigned partition again at the given
// positions, with a new consumer (so that no fetch from before can
// arrive), forgetting every waiting record.
func (in *intake) rewind(at func(tp) int64) error {
	in.consumer.Close()
	var err error
	if in.consumer, err = in.src.fetcher(); err != nil {
		return err
	}
	in.sched = newScheduler()
	clear(in.held)
	parts := maps.Clone(in.assigned)
	clear(in.assigned)
	pos := make(map[tp]int64, len(parts))
	for k := range parts {
		pos[k] = at(k)
	}
	in.assign(pos)
	return nil
}

// remove stops reading partitions and forgets their waiting records.
func (in *intake) remove(parts []tp) {
	if len(parts) == 0 {
		return
	}
	drop := make(map[string][]int32)
	for _, k := range parts {
		drop[k.Topic] = append(drop[k.Topic], k.Partition)
		delete(in.assigned, k)
		delete(in.held, k)
		in.sched.remove(k)
	}
	in.consumer.RemoveConsumePartitions(drop)
	// A paused partition stays paused in the consumer until resumed, even
	// once removed: were its slot to come back, it would never be fetched.
	in.consumer.ResumeFetchPartitions(drop)
}

// poll fetches what the source has: at once when records wait that are
// not blocked, else waiting until deadline for some, or until wake (a
// commit finished: its partitions' records may go on).
func (in *intake) poll(ctx context.Context, deadline time.Time, wake <-chan struct{}, blocked func(tp) bool) error {
	var fs kgo.Fetches
	select {
	case <-wake:
		deadline = time.Now() // something finished in the background: look at once
	default:
	}
	if in.sched.ready(blocked) || !deadline.After(time.Now()) {
		fs = in.consumer.PollFetches(nil) //nolint:staticcheck // a nil context returns what is buffered without waiting (documented by franz-go)
	} else {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // owned here: ends before poll returns
			defer close(done)
			select {
			case <-wake:
				cancel()
			case <-stop:
			}
		}()
		fs = in.consumer.PollFetches(pctx)
		close(stop)
		<-done
		cancel()
	}
	if ctx.Err() != nil {
		return nil
	}
	for _, fe := range fs.Errors() {
		if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
			continue
		}
		return fmt.Errorf("fetch %s[%d] from source: %w", fe.Topic, fe.Partition, fe.Err)
	}
	in.enqueue(fs)
	return nil
}

// enqueue hands fetched records to the scheduler and stops fetching the
// partitions that now have records waiting.
func (in *intake) enqueue(fs kgo.Fetches) {
	var pause map[string][]int32
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		k := tp{p.Topic, p.Partition}
		if !in.reading(k) {
			return // removed while the fetch was under way
		}
		if in.sched.add(k, in.priority(p.Topic), p.Records) {
			if pause == nil {
				pause = make(map[string][]int32)
			}
			pause[k.Topic] = append(pause[k.Topic], k.Partition)
		}
	})
	in.sched.polled()
	if pause != nil {
		in.consumer.PauseFetchPartitions(pause)
	}
}

// next hands out the next chunk of one partition's records, in order,
// passing over partitions that are blocked.
func (in *intake) next(blocked func(tp) bool) (tp, []*kgo.Record, bool) {
	k, recs, emptied, ok := in.sched.next(blocked)
	if ok && emptied {
		in.held[k] = in.priority(k.Topic)
	}
	return k, recs, ok
}

// drained reports whether a finite source (bundles) has handed out every
// record and none waits; a source cluster is never drained.
func (in *intake) drained() bool {
	f, ok := in.consumer.(interface{ drained() bool })
	return ok && f.drained() && in.sched.len() == 0
}

// refill fetches again the partitions whose waiting records are gone.
// Beyond pendingCap only partitions of a higher priority than some waiting
// records are: the lower ones drain later, so an alert is not kept out by
// raw telemetry holding the memory. Records that wait because their
// partitions are blocked (their slot commits) count only up to
// blockedCap beside them, so that the slots still sending are fed.
func (in *intake) refill(blocked func(tp) bool) {
	if len(in.held) == 0 {
		return
	}
	low := in.sched.minWeight()
	mem := in.sched.mem
	if stuck := in.sched.memOf(blocked); stuck > 0 && mem < pendingCap+blockedCap {
		mem -= stuck
	}
	resume := make(map[string][]int32)
	for k, w := range in.held {
		if mem < pendingCap || w > low {
			resume[k.Topic] = append(resume[k.Topic], k.Partition)
			delete(in.held, k)
		}
	}
	if len(resume) > 0 {
		in.consumer.ResumeFetchPartitions(resume)
	}
}
