package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/transform"
)

// A link's stateful transform (downsample, dedupe or aggregate) keeps its
// state per source partition in memory only. Each checkpoint of a
// partition carries where replaying the source rebuilds that state
// (checkpoint.Rebuild, see transform.PartitionState.Rebuild), written in the
// same transaction as what the state emitted. A session resuming a
// partition reads it from there: the records below the checkpoint go
// through the transforms once more to rebuild the state, and what they
// emit is dropped (it was committed before); from the checkpoint on the
// output is what an uninterrupted run writes. The same happens when a
// session rewinds to its committed positions after an aborted transaction:
// the state, ahead of them, starts over from the rebuild position.

// ErrStateLimit reports a stateful transform whose state outgrew the link's
// max_state: the link stops rather than drop anything.
var ErrStateLimit = errors.New("transform state over max_state")

// keyedState is the link's stateful transform and its state per source
// partition; it is owned by the session's goroutine.
type keyedState struct {
	op transform.Stateful
	// step is its index among the link's transforms.
	step   int
	states map[tp]transform.PartitionState
	// replayTo holds, for a partition being rebuilt, the offset where the
	// replay ends (its checkpoint): records below it are replayed;
	// replayFrom where it begins, until its first records came.
	replayTo, replayFrom map[tp]int64
	// gap is told when a replay's first record comes after its rebuild
	// position (records it needed may have been deleted by retention).
	gap func(k tp, from, got int64)
	// bytes is the state's estimated size, limit max_state.
	bytes, limit int64
	// to and late name, by source topic, where the output and the late
	// records go when the transform says (see config.Outputs): a
	// destination topic, "" for down the transforms (to) or nowhere (late).
	to, late func(topic string) string
}

func newKeyedState(op transform.Stateful, step int, limit int64) *keyedState {
	if limit <= 0 {
		limit = config.DefaultMaxState
	}
	none := func(string) string { return "" }
	return &keyedState{
		op: op, step: step, states: make(map[tp]transform.PartitionState),
		replayTo: make(map[tp]int64), replayFrom: make(map[tp]int64), limit: limit, to: none, late: none,
	}
}

// outputTopic returns a function naming the destination topic of template
// tmpl for a source topic ("" without a template), memoised.
func outputTopic(tmpl, site string) func(string) string {
	if tmpl == "" {
		return func(string) string { return "" }
	}
	names := make(map[string]string)
	return func(topic string) string {
		n, ok := names[topic]
		if !ok {
			n = config.ExpandTopic(tmpl, site, topic)
			names[topic] = n
		}
		return n
	}
}

// derivedKey marks a record a transform addressed to a destination topic
// of its own (an output or late topic): the mirror stage keeps its topic.
type derivedKey struct{}

var derivedCtx = context.WithValue(context.Background(), derivedKey{}, true)

// derived returns a copy of r addressed to topic, marked for the mirror
// stage.
func derived(r *kgo.Record, topic string) *kgo.Record {
	c := *r
	c.Topic, c.Context = topic, derivedCtx
	return &c
}

// isDerived reports whether a transform addressed r to a topic of its own.
func isDerived(r *kgo.Record) bool { return r.Context == derivedCtx }

// compileStateful compiles a downsample, dedupe or aggregate.
func compileStateful(t config.Transform) (transform.Stateful, error) {
	switch {
	case t.Downsample != nil:
		return transform.NewDownsample(t.Downsample.Key, t.Downsample.Every)
	case t.Dedupe != nil:
		return transform.NewDedupe(t.Dedupe.Key, t.Dedupe.Horizon)
	default:
		a := t.Aggregate
		return transform.NewAggregate(transform.AggregateSpec{Window: a.Window, Grace: a.Grace, Key: a.Key, Values: a.Values, Functions: a.Functions})
	}
}

// begin starts k's state over from a rebuild position, to be replayed up to
// next (its checkpoint).
func (ks *keyedState) begin(k tp, from transform.Position, next int64) {
	if old := ks.states[k]; old != nil {
		ks.bytes -= old.Size()
	}
	st := ks.op.Partition(k.Partition)
	st.Restore(from)
	ks.states[k] = st
	if from.Offset < next {
		ks.replayTo[k], ks.replayFrom[k] = next, from.Offset
	} else {
		delete(ks.replayTo, k)
		delete(ks.replayFrom, k)
	}
}

// forget drops k's state (its slot was handed over).
func (ks *keyedState) forget(k tp) {
	if old := ks.states[k]; old != nil {
		ks.bytes -= old.Size()
	}
	delete(ks.states, k)
	delete(ks.replayTo, k)
	delete(ks.replayFrom, k)
}

// state returns k's state, new (no watermark) for a partition that starts
// without a checkpoint.
func (ks *keyedState) state(k tp) transform.PartitionState {
	st := ks.states[k]
	if st == nil {
		st = ks.op.Partition(k.Partition)
		st.Restore(transform.Position{Watermark: transform.NoWatermark})
		ks.states[k] = st
	}
	return st
}

// rebuild returns where replaying k rebuilds its state at next, the
// position its checkpoint at next carries; nil when the state cannot say
// (none yet, or still being rebuilt: the position saved holds).
func (ks *keyedState) rebuild(k tp, next int64) *transform.Position {
	st := ks.states[k]
	if st == nil {
		return nil
	}
	if _, replaying := ks.replayTo[k]; replaying {
		return nil
	}
	p := st.Rebuild(next)
	return &p
}

// feed takes one record into k's state and keeps the size within the limit.
func (ks *keyedState) feed(k tp, in *transform.Record) (transform.Result, error) {
	st := ks.state(k)
	before := st.Size()
	res, err := st.Process(in)
	ks.bytes += st.Size() - before
	if err == nil && ks.bytes > ks.limit {
		return res, fmt.Errorf("%w: the %s's state holds about %d MiB (max_state: %d MiB); raise max_state, shorten the window or horizon, or narrow the key",
			ErrStateLimit, ks.op.Kind(), ks.bytes>>20, ks.limit>>20)
	}
	return res, err
}

// replay feeds the records of k below its replay's end into its state the
// way the run that committed them did (the transforms before the stateful
// one, then it; what it emits and the errors are dropped) and returns the
// others.
func (s *transformStage) replay(k tp, recs []*kgo.Record) []*kgo.Record {
	ks := s.keyed
	end, ok := ks.replayTo[k]
	if !ok {
		return recs
	}
	if from, first := ks.replayFrom[k]; first && len(recs) > 0 {
		delete(ks.replayFrom, k)
		if recs[0].Offset > from && ks.gap != nil {
			ks.gap(k, from, recs[0].Offset)
		}
	}
	var in transform.Record
	i := 0
	for ; i < len(recs) && recs[i].Offset < end; i++ {
		r := recs[i]
		if r.Attrs.IsControl() {
			continue
		}
		if keep, err := applySteps(s.steps[:ks.step], r, &in); err != nil || !keep {
			continue
		}
		_, _ = ks.feed(k, &in) // errors were handled when the record was first copied
	}
	if i < len(recs) {
		delete(ks.replayTo, k)
	}
	return recs[i:]
}

// processKeyed runs the transforms of a link with a stateful one: those
// before it on each record, then it, then those after it on what it keeps
// and emits (an aggregate's windows, addressed to the record's partition
// with the offset of the record that closed them).
func (s *transformStage) processKeyed(k tp, recs []*kgo.Record) ([]*kgo.Record, error) {
	ks := s.keyed
	before, after := s.steps[:ks.step], s.steps[ks.step+1:]
	out := make([]*kgo.Record, 0, len(recs))
	var (
		in              transform.Record
		filtered, lated int64
	)
	pass := func(r *kgo.Record) error {
		keep, err := applySteps(after, r, &in)
		if err != nil {
			return fmt.Errorf("%w: %s offset %d: %w", ErrTransform, k, r.Offset, err)
		}
		if keep {
			out = append(out, r)
		} else {
			filtered++
		}
		return nil
	}
	for _, r := range recs {
		keep, err := applySteps(before, r, &in)
		if err == nil && keep {
			var res transform.Result
			res, err = ks.feed(k, &in)
			if errors.Is(err, ErrStateLimit) {
				return nil, err
			}
			if err == nil {
				if res.Late {
					lated++
					if late := ks.late(k.Topic); late != "" {
						out = append(out, derived(r, late))
					}
				}
				to := ks.to(k.Topic)
				switch {
				case to != "":
					// The output goes to its own topic, the raw record on.
					if res.Keep {
						out = append(out, derived(r, to))
					}
					if err := pass(r); err != nil {
						return nil, err
					}
				case res.Keep:
					if err := pass(r); err != nil {
						return nil, err
					}
				case !res.Late && ks.op.Kind() != "aggregate":
					filtered++
				}
				for _, o := range res.Emit {
					w := &kgo.Record{Topic: k.Topic, Partition: k.Partition, Offset: r.Offset, Key: o.Key, Value: o.Value, Timestamp: o.Timestamp}
					if to != "" {
						out = append(out, derived(w, to))
						continue
					}
					if err := pass(w); err != nil {
						return nil, err
					}
				}
				continue
			}
		}
		switch {
		case err != nil:
			if err = s.failed(k, r, err); err != nil {
				return nil, err
			}
			out = append(out, r) // recorded in SkippedTopic by skipStage
		case !keep:
			filtered++
		}
	}
	if filtered > 0 && s.filtered != nil {
		s.filtered(k, filtered)
	}
	if lated > 0 && s.late != nil {
		s.late(k, lated)
	}
	return out, nil
}
