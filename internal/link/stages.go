package link

import (
	"encoding/json"
	"fmt"
	"slices"

	"cel.dev/cel-go/cel"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/transform"
)

// A stage works on the records of one source partition on their way from
// the intake to the sink: it may drop records, rewrite them, or address
// them elsewhere, in place (it reuses recs' array and the records
// themselves) and in order. It returns what goes on. A stage never reaches
// back into the intake or the positions: the source offsets a chunk covers
// are accounted for whatever the stages make of it.
//
// The stages of a link run in this order: loop prevention, mirror (rename
// and provenance), refused-record skips. Filters, projections and
// aggregates go between loop prevention and mirror.
//
// A stage's error stops the copy: the session ends with it and the policy
// table decides (a transform's error under on_error: stop is ErrTransform).
type stage interface {
	process(k tp, recs []*kgo.Record) ([]*kgo.Record, error)
}

// loopStage drops records that have been in the destination cluster
// before: their provenance names it as the cluster they were read from or
// as an earlier hop. So links in opposite directions between two clusters,
// and rings of links through three or more, never echo a record, whatever
// their topic names. The source offsets of the records dropped are
// accounted for like those of any other chunk (the checkpoints move past
// them).
type loopStage struct {
	dstID string
	// looped counts the records of k dropped.
	looped func(k tp, n int64)
}

func (s loopStage) process(k tp, recs []*kgo.Record) ([]*kgo.Record, error) {
	n := 0 // records kept so far; recs[:n] is the result
	for i, r := range recs {
		if len(r.Headers) > 0 && provenance.Visited(r.Headers, s.dstID) {
			continue
		}
		if n != i {
			recs[n] = r
		}
		n++
	}
	if dropped := len(recs) - n; dropped > 0 {
		s.looped(k, int64(dropped))
	}
	return recs[:n], nil
}

// mirrorStage addresses each record to its mirror topic (same partition)
// and gives it its provenance header (source cluster, site, partition,
// offset, and the clusters the record was in before), which replaces the
// provenance headers the record carried from earlier links: a mirrored
// record carries one, last, after its other headers in their order. It is
// the hot path: the headers and provenance values of a chunk come from one
// allocation each.
type mirrorStage struct {
	origin provenance.Encoder
	// mirror names the mirror topic of a source topic.
	mirror func(topic string) string
	names  map[string]string
	// tooFar handles a record that has crossed more links than a header
	// can list (provenance.ErrTooManyHops), per on_error: the error that
	// stops the link, or nil when the record is recorded in SkippedTopic
	// instead (by skipStage).
	tooFar func(k tp, r *kgo.Record, err error) error
}

func newMirrorStage(origin provenance.Encoder, mirror func(string) string, tooFar func(tp, *kgo.Record, error) error) *mirrorStage {
	return &mirrorStage{origin: origin, mirror: mirror, names: make(map[string]string), tooFar: tooFar}
}

func (s *mirrorStage) process(k tp, recs []*kgo.Record) ([]*kgo.Record, error) {
	dst, ok := s.names[k.Topic]
	if !ok {
		dst = s.mirror(k.Topic)
		s.names[k.Topic] = dst
	}
	nh, size := 0, len(recs)*s.origin.MaxLen()
	for _, r := range recs {
		nh += len(r.Headers) + 1
		for _, h := range r.Headers {
			if h.Key == provenance.Key { // earlier hops: their ids and lengths
				size += len(h.Value) + 1
			}
		}
	}
	headers := make([]kgo.RecordHeader, 0, nh)
	origins := make([]byte, 0, size)
	for _, r := range recs {
		from := len(headers)
		at := len(origins)
		carried := false
		for _, h := range r.Headers {
			if h.Key == provenance.Key {
				carried = true
				break
			}
		}
		if !carried {
			headers = append(headers, r.Headers...)
			origins = s.origin.Append(origins, r.Partition, r.Offset)
		} else {
			var err error
			if origins, err = s.origin.AppendChained(origins, r.Partition, r.Offset, r.Headers); err != nil {
				if err = s.tooFar(k, r, err); err != nil {
					return nil, err
				}
				// Recorded as skipped: its entry carries this hop's header.
				origins = s.origin.Append(origins, r.Partition, r.Offset)
			}
			for _, h := range r.Headers {
				if !provenance.Valid(h) { // replaced by the new header
					headers = append(headers, h)
				}
			}
		}
		headers = append(headers, kgo.RecordHeader{Key: provenance.Key, Value: origins[at:len(origins):len(origins)]})
		if r.Context == nil || !isDerived(r) { // a transform's output topic stays
			r.Topic = dst
		}
		r.Headers = headers[from:len(headers):len(headers)]
	}
	return recs, nil
}

// transformStage applies the link's transforms (links[].transforms) in
// order: filters drop records, projections rewrite JSON values. A record a
// transform cannot handle (a value that is not JSON where it must be, an
// expression that fails or runs over its cost limit) follows on_error: under
// skip-and-record it is recorded in SkippedTopic instead (by skipStage,
// after the mirror stage), under stop the link stops with ErrTransform.
// Records it drops still count as replicated source offsets: the
// checkpoints move past them.
type transformStage struct {
	l     *Link
	steps []transformStep
	// filtered counts the records dropped by filters (and by a downsample
	// or dedupe), by source topic; late the records a stateful transform
	// found late.
	filtered, late func(k tp, n int64)
	// keyed is the link's stateful transform, if any (see state.go).
	keyed *keyedState
}

type transformStep struct {
	filter   *transform.Program
	project  *transform.Projection
	stateful transform.Stateful
}

// newTransformStage compiles the link's transforms; nil when it has none.
func newTransformStage(l *Link) (*transformStage, error) {
	steps, err := compileTransforms(l.cfg.Transforms)
	if err != nil || steps == nil {
		return nil, err
	}
	ts := &transformStage{l: l, steps: steps}
	for i, st := range steps {
		if st.stateful != nil {
			ts.keyed = newKeyedState(st.stateful, i, int64(l.cfg.MaxState))
			o := l.cfg.Transforms[i].Outputs()
			ts.keyed.to, ts.keyed.late = outputTopic(o.To, l.id.Site), outputTopic(o.Late, l.id.Site)
		}
	}
	return ts, nil
}

// compileTransforms compiles transforms (validated with the
// configuration); nil when there are none.
func compileTransforms(ts []config.Transform) ([]transformStep, error) {
	var steps []transformStep
	for i, t := range ts {
		var step transformStep
		var err error
		switch {
		case t.Filter != "":
			step.filter, err = transform.Compile(t.Filter, cel.BoolType)
		case t.Project != nil && len(t.Project.Keep) > 0:
			step.project, err = transform.NewProjection(t.Project.Keep, false)
		case t.Project != nil:
			step.project, err = transform.NewProjection(t.Project.Drop, true)
		case t.Stateful():
			step.stateful, err = compileStateful(t)
		}
		if err != nil {
			return nil, fmt.Errorf("transforms[%d]: %w", i, err)
		}
		steps = append(steps, step)
	}
	return steps, nil
}

// RecordTransform returns what link lc's transforms do to one source
// record, for checking its mirror (verify.Options.Transform): it rewrites
// the record's value as a projection does and reports whether the record
// crosses. Nil when the link has no transforms. It may be called from
// several goroutines at once.
func RecordTransform(lc *config.Link) (func(*kgo.Record) (bool, error), error) {
	steps, err := compileTransforms(lc.Transforms)
	if err != nil || steps == nil {
		return nil, err
	}
	for _, step := range steps {
		if step.stateful != nil {
			return nil, fmt.Errorf("a link with a %s: use RecordDeriver", step.stateful.Kind())
		}
	}
	st := &transformStage{steps: steps}
	// Safe for concurrent use: each call has its own view of the record.
	return func(r *kgo.Record) (bool, error) {
		var in transform.Record
		return st.apply(r, &in)
	}, nil
}

// RecordDeriver returns what the transforms of link lc, which has a
// stateful one, do to the records of one source partition fed in offset
// order from its start, for checking its mirror (verify.Options.Derive):
// whether a record crosses (rewritten as a projection does), and the
// records emitted after it (an aggregate's windows, with their
// provenance). Nil when the link has no stateful transform. The function
// it returns for a partition is for one goroutine; those of several
// partitions may run at once.
func RecordDeriver(lc *config.Link) (func(topic string, partition int32) func(*kgo.Record) (bool, []*kgo.Record, error), error) {
	steps, err := compileTransforms(lc.Transforms)
	if err != nil {
		return nil, err
	}
	si := slices.IndexFunc(steps, func(s transformStep) bool { return s.stateful != nil })
	if si < 0 {
		return nil, nil
	}
	before, after := steps[:si], steps[si+1:]
	if lc.Transforms[si].Outputs().To != "" {
		// The output goes to a topic of its own: the mirror holds the raw
		// records, through the transforms after the stateful one.
		return func(_ string, _ int32) func(*kgo.Record) (bool, []*kgo.Record, error) {
			var in transform.Record
			return func(r *kgo.Record) (bool, []*kgo.Record, error) {
				if keep, err := applySteps(before, r, &in); err != nil || !keep {
					return false, nil, err
				}
				keep, err := applySteps(after, r, &in)
				return keep, nil, err
			}
		}, nil
	}
	return func(_ string, partition int32) func(*kgo.Record) (bool, []*kgo.Record, error) {
		st := steps[si].stateful.Partition(partition)
		st.Restore(transform.Position{Watermark: transform.NoWatermark})
		var in, out transform.Record
		return func(r *kgo.Record) (bool, []*kgo.Record, error) {
			if keep, err := applySteps(before, r, &in); err != nil || !keep {
				return false, nil, err
			}
			res, err := st.Process(&in)
			if err != nil {
				return false, nil, err
			}
			kept := false
			if res.Keep {
				if kept, err = applySteps(after, r, &out); err != nil {
					return false, nil, err
				}
			}
			var emit []*kgo.Record
			for _, o := range res.Emit {
				w := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: o.Key, Value: o.Value, Timestamp: o.Timestamp}
				keep, err := applySteps(after, w, &out)
				if err != nil {
					return kept, emit, err
				}
				if keep {
					emit = append(emit, w)
				}
			}
			return kept, emit, nil
		}
	}, nil
}

func (s *transformStage) process(k tp, recs []*kgo.Record) ([]*kgo.Record, error) {
	if s.keyed != nil {
		return s.processKeyed(k, recs)
	}
	n := 0 // records kept so far; recs[:n] is the result
	var in transform.Record
	for _, r := range recs {
		keep, err := s.apply(r, &in)
		if err != nil {
			if err = s.failed(k, r, err); err != nil {
				return nil, err
			}
			keep = true
		}
		if !keep {
			continue
		}
		recs[n] = r
		n++
	}
	if dropped := len(recs) - n; dropped > 0 && s.filtered != nil {
		s.filtered(k, int64(dropped))
	}
	return recs[:n], nil
}

// failed handles a record a transform could not handle, per on_error: the
// error that stops the link, or nil when the record is to be recorded in
// SkippedTopic (by skipStage, after the mirror stage) and passed on.
func (s *transformStage) failed(k tp, r *kgo.Record, err error) error {
	if s.l.cfg.OnError != config.OnErrorSkip {
		return fmt.Errorf("%w: %s offset %d: %w", ErrTransform, k, r.Offset, err)
	}
	if s.l.skip[k] == nil {
		s.l.skip[k] = make(map[int64]string)
	}
	s.l.skip[k][r.Offset] = "transform: " + err.Error()
	return nil
}

// tooFar handles a source record that has crossed more links than its
// provenance can list (err is provenance.ErrTooManyHops), per on_error:
// under stop the error that stops the link, under skip-and-record nil, and
// the record is recorded in SkippedTopic instead (by skipStage, after the
// mirror stage). Copying it on with hops left out could let it circle a
// ring of clusters forever.
func (l *Link) tooFar(k tp, r *kgo.Record, err error) error {
	if l.cfg.OnError != config.OnErrorSkip {
		return fmt.Errorf("%s offset %d: %w: the links form a chain longer than %d; shorten it (or set on_error: skip-and-record to record such records in %s and go on)",
			k, r.Offset, err, provenance.MaxHops+1, SkippedTopic)
	}
	if l.skip[k] == nil {
		l.skip[k] = make(map[int64]string)
	}
	l.skip[k][r.Offset] = err.Error()
	return nil
}

// apply runs the transforms on r; in is reused for the expressions' view
// of the record.
func (s *transformStage) apply(r *kgo.Record, in *transform.Record) (bool, error) {
	return applySteps(s.steps, r, in)
}

// applySteps runs stateless steps on r (projections rewrite its value) and
// reports whether it is kept; in is the expressions' view of r, reused.
func applySteps(steps []transformStep, r *kgo.Record, in *transform.Record) (bool, error) {
	*in = transform.Record{
		Key: r.Key, Value: r.Value, Headers: in.Headers[:0],
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
	}
	for _, h := range r.Headers {
		in.Headers = append(in.Headers, transform.Header{Key: h.Key, Value: h.Value})
	}
	for _, step := range steps {
		switch {
		case step.filter != nil:
			ok, err := step.filter.Bool(in)
			if err != nil || !ok {
				return false, err
			}
		case step.project != nil:
			v, err := step.project.Apply(r.Value)
			if err != nil {
				return false, err
			}
			r.Value, in.Value = v, v
		}
	}
	return true, nil
}

// skipStage replaces records the destination refused before (on_error:
// skip-and-record) by a record of what was skipped and why, written to
// SkippedTopic in the same transaction. It runs after mirrorStage, whose
// provenance header it keeps.
type skipStage struct {
	l *Link
}

func (s skipStage) process(k tp, recs []*kgo.Record) ([]*kgo.Record, error) {
	skip := s.l.skip[k]
	if len(skip) == 0 {
		return recs, nil
	}
	for i, r := range recs {
		if reason, ok := skip[r.Offset]; ok {
			recs[i] = s.l.skippedEntry(k, r, reason)
		}
	}
	return recs, nil
}

// skippedRecord is the value of a SkippedTopic record.
type skippedRecord struct {
	Site       string `json:"site,omitempty"`
	Link       string `json:"link"`
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Timestamp  int64  `json:"timestamp_ms"`
	KeyBytes   int    `json:"key_bytes"`
	ValueBytes int    `json:"value_bytes"`
	Headers    int    `json:"headers"`
	Reason     string `json:"reason"`
}

// skippedEntry is the SkippedTopic record of a refused source record r of
// k (already mirrored: its last header is the provenance).
func (l *Link) skippedEntry(k tp, r *kgo.Record, reason string) *kgo.Record {
	l.logger.Error("record skipped and recorded",
		"topic", k.Topic, "partition", k.Partition, "offset", r.Offset, "reason", reason, "recorded_in", SkippedTopic)
	v, _ := json.Marshal(skippedRecord{
		Site: l.id.Site, Link: l.id.Link, Topic: k.Topic, Partition: k.Partition, Offset: r.Offset,
		Timestamp: r.Timestamp.UnixMilli(), KeyBytes: len(r.Key), ValueBytes: len(r.Value), Headers: len(r.Headers) - 1,
		Reason: reason,
	})
	entry := &kgo.Record{Topic: SkippedTopic, Key: l.id.checkpointKey(k), Value: v, Headers: r.Headers[len(r.Headers)-1:]}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.SkippedRecords++
	l.eventLocked(EventSkipped, fmt.Sprintf("%s offset %d skipped (%s); recorded in %s", k, r.Offset, reason, SkippedTopic))
	return entry
}
