package transform

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"cel.dev/cel-go/cel"
)

// AggregateSpec is an aggregate: per key and tumbling window of event
// time, the count of records and functions of numbers taken from them.
type AggregateSpec struct {
	// Window is the windows' length (at least a millisecond); Grace how
	// long after a window's end, in event time, its records are still
	// taken (zero or more).
	Window, Grace time.Duration
	// Key is the CEL expression of a record's key (its key text).
	Key string
	// Values names the numbers to aggregate: name -> CEL expression
	// giving an int, a uint or a double. It may be empty (count only).
	Values map[string]string
	// Functions are those computed of each value, some of min, max,
	// mean, count, sum, first and last (listed in any order; a window's
	// record has them in that order); empty means all. mean is sum/count
	// and count the number of records (as the window's count); first and
	// last are the values of the window's first and last record in offset
	// order.
	Functions []string
}

// aggregateFunctions are the functions an aggregate computes of a value,
// in the order a window's record has them.
var aggregateFunctions = []string{"min", "max", "mean", "count", "sum", "first", "last"}

// aggFunc indexes aggregateFunctions.
type aggFunc int

const (
	fnMin aggFunc = iota
	fnMax
	fnMean
	fnCount
	fnSum
	fnFirst
	fnLast
)

// aggregate is a compiled AggregateSpec.
type aggregate struct {
	window, grace int64 // ms
	key           *Program
	// values are the value expressions in the order of their names,
	// sorted, and names their names encoded as JSON object keys (`"t":`).
	values []*Program
	names  [][]byte
	funcs  []aggFunc // in the order of aggregateFunctions
}

// reservedValueNames are the fields of a window's record besides the
// values.
var reservedValueNames = []string{"window_start", "window_end", "count"}

// NewAggregate compiles spec. A problem with an expression is reported as
// a *CompileError (a value's wrapped with its name). When a window closes,
// each of its keys is emitted as a record whose key is the key text, whose
// timestamp is the window's end, and whose value is the JSON written by
// encode.
func NewAggregate(spec AggregateSpec) (Stateful, error) {
	window, err := millis("window", spec.Window, time.Millisecond)
	if err != nil {
		return nil, err
	}
	grace, err := millis("grace", spec.Grace, 0)
	if err != nil {
		return nil, err
	}
	key, err := Compile(spec.Key, nil)
	if err != nil {
		return nil, err
	}
	a := &aggregate{window: window, grace: grace, key: key}
	names := make([]string, 0, len(spec.Values))
	for name := range spec.Values {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "" || slices.Contains(reservedValueNames, name) {
			return nil, fmt.Errorf("value %q: a value's name must not be empty nor one of %v", name, reservedValueNames)
		}
		p, err := CompileFor(spec.Values[name], cel.DoubleType, "a value must be a number, e.g. json.temp")
		if err != nil {
			return nil, fmt.Errorf("value %q: %w", name, err)
		}
		enc, err := json.Marshal(name)
		if err != nil {
			return nil, fmt.Errorf("value %q: %w", name, err)
		}
		a.values = append(a.values, p)
		a.names = append(a.names, append(enc, ':'))
	}
	if len(spec.Functions) == 0 {
		for f := range aggregateFunctions {
			a.funcs = append(a.funcs, aggFunc(f))
		}
	} else {
		for _, name := range spec.Functions {
			f := slices.Index(aggregateFunctions, name)
			if f < 0 {
				return nil, fmt.Errorf("unknown function %q: the functions are %v", name, aggregateFunctions)
			}
			if slices.Contains(a.funcs, aggFunc(f)) {
				return nil, fmt.Errorf("function %q is listed twice", name)
			}
			a.funcs = append(a.funcs, aggFunc(f))
		}
		slices.Sort(a.funcs)
	}
	return a, nil
}

// Kind implements Stateful.
func (a *aggregate) Kind() string { return "aggregate" }

// Partition implements Stateful.
func (a *aggregate) Partition(int32) PartitionState {
	return &aggregateState{a: a, wm: NoWatermark, windows: newWindows[*accumulator](), scratch: make([]float64, len(a.values))}
}

// aggregateState is an aggregate's state of one partition: its open
// windows, each with an accumulator per key.
type aggregateState struct {
	a       *aggregate
	wm      int64
	windows windows[*accumulator]
	size    int64
	scratch []float64 // a record's values, evaluated before any change
}

// accumulator is a key's aggregates in one window.
type accumulator struct {
	count  int64
	values []valueAcc // in the order of aggregate.values
}

// valueAcc is the aggregates of one value; first and last are the values
// of the first and the last record in offset order.
type valueAcc struct {
	min, max, sum, first, last float64
}

// Estimates of the bytes of a key's accumulator in a window besides the
// key's text: its map slot (string header and pointer) at a typical load
// and the accumulator, and per value a valueAcc (BenchmarkAggregate100kKeys
// measures about 163 bytes a key of 13 bytes with two values).
const (
	accumulatorOverhead = 72
	valueAccBytes       = 40
)

// Process implements PartitionState.
func (s *aggregateState) Process(r *Record) (Result, error) {
	// The expressions share the record's value parsed as JSON.
	act := sharedVars(r)
	k, err := evalKey(s.a.key, act)
	if err != nil {
		return Result{}, err
	}
	for i, p := range s.a.values {
		if s.scratch[i], err = evalNumber(p, act); err != nil {
			return Result{}, err
		}
	}
	ts := r.Timestamp.UnixMilli()
	start := floorStart(ts, s.a.window)
	if s.wm != NoWatermark && addSat(addSat(start, s.a.window), s.a.grace) <= s.wm {
		// Its window was closed, or would have been, had it a record.
		return Result{Late: true}, nil
	}
	w := s.windows.get(start)
	if w == nil {
		w = s.windows.open(start, Position{Offset: r.Offset, Watermark: s.wm})
		s.size += windowOverhead
	}
	if acc := w.entries[k]; acc != nil {
		acc.add(s.scratch)
	} else {
		w.entries[k] = newAccumulator(s.scratch)
		s.size += int64(len(k)) + accumulatorOverhead + int64(len(s.scratch))*valueAccBytes
	}
	return Result{Emit: s.advance(ts)}, nil
}

// newAccumulator returns the accumulator of a window's first record of a
// key, whose values are vals.
func newAccumulator(vals []float64) *accumulator {
	acc := &accumulator{count: 1, values: make([]valueAcc, len(vals))}
	for i, v := range vals {
		acc.values[i] = valueAcc{min: v, max: v, sum: v, first: v, last: v}
	}
	return acc
}

// add takes a record, whose values are vals, into acc.
func (acc *accumulator) add(vals []float64) {
	acc.count++
	for i, v := range vals {
		va := &acc.values[i]
		va.min = min(va.min, v)
		va.max = max(va.max, v)
		va.sum += v
		va.last = v
	}
}

// advance raises the watermark to ts and returns the windows it closed:
// those whose end plus grace is at or before it, in window start, then key
// order.
func (s *aggregateState) advance(ts int64) []Output {
	if ts <= s.wm {
		return nil
	}
	s.wm = ts
	var out []Output
	s.windows.closeThrough(subSat(subSat(s.wm, s.a.grace), s.a.window), func(w *window[*accumulator]) {
		s.size -= windowOverhead
		keys := make([]string, 0, len(w.entries))
		for k := range w.entries {
			keys = append(keys, k)
			s.size -= int64(len(k)) + accumulatorOverhead + int64(len(s.a.values))*valueAccBytes
		}
		slices.Sort(keys)
		end := addSat(w.start, s.a.window)
		for _, k := range keys {
			out = append(out, Output{
				Key:       []byte(k),
				Value:     s.a.encode(w.start, end, w.entries[k]),
				Timestamp: time.UnixMilli(end),
			})
		}
	})
	return out
}

// encode returns the JSON of a key's window:
//
//	{"window_start":0,"window_end":60000,"count":2,"t":{"min":20,"max":22,"mean":21,"count":2,"sum":42,"first":22,"last":20}}
//
// with the values by name and their functions in the order of
// aggregateFunctions. Numbers are written as encoding/json writes a
// float64, so the same window always gives the same bytes.
func (a *aggregate) encode(start, end int64, acc *accumulator) []byte {
	b := make([]byte, 0, 64+len(a.values)*(16+24*len(a.funcs)))
	b = append(b, `{"window_start":`...)
	b = strconv.AppendInt(b, start, 10)
	b = append(b, `,"window_end":`...)
	b = strconv.AppendInt(b, end, 10)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, acc.count, 10)
	for i, name := range a.names {
		va := &acc.values[i]
		b = append(b, ',')
		b = append(b, name...)
		b = append(b, '{')
		for j, f := range a.funcs {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, aggregateFunctions[f]...)
			b = append(b, `":`...)
			switch f {
			case fnMin:
				b = appendJSONFloat(b, va.min)
			case fnMax:
				b = appendJSONFloat(b, va.max)
			case fnMean:
				b = appendJSONFloat(b, va.sum/float64(acc.count))
			case fnCount:
				b = strconv.AppendInt(b, acc.count, 10)
			case fnSum:
				b = appendJSONFloat(b, va.sum)
			case fnFirst:
				b = appendJSONFloat(b, va.first)
			case fnLast:
				b = appendJSONFloat(b, va.last)
			}
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// Rebuild implements PartitionState. Windows are closed as the watermark
// moves (in Process), so every open window is live.
func (s *aggregateState) Rebuild(next int64) Position {
	if p, ok := s.windows.oldest(); ok {
		return p
	}
	return Position{Offset: next, Watermark: s.wm}
}

// Restore implements PartitionState.
func (s *aggregateState) Restore(p Position) { s.wm = p.Watermark }

// Size implements PartitionState.
func (s *aggregateState) Size() int64 { return s.size }
