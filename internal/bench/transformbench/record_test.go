package main

import (
	"encoding/json"
	"testing"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/edgelink/edgelink/internal/transform"
)

// The per-record cost of the variants' transforms on the bench's records,
// without Kafka or the link: go test -bench . ./internal/bench/transformbench/

// benchRecords returns n of the bench's readings as the transforms see
// them.
func benchRecords(tb testing.TB, n int) []*transform.Record {
	tb.Helper()
	rs := make([]*transform.Record, 0, n)
	start := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	err := newTelemetry(200, n, start, 1).readings(func(i int, r reading) error {
		rs = append(rs, &transform.Record{
			Key: []byte(r.machine), Value: r.value(), Topic: "telemetry", Offset: int64(i), Timestamp: r.at,
			Headers: []transform.Header{{Key: "content-type", Value: []byte("application/json")}, {Key: "unit", Value: []byte("celsius")}},
		})
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

func BenchmarkFilter(b *testing.B) {
	p, err := transform.Compile(filterExpr(79.0), cel.BoolType)
	if err != nil {
		b.Fatal(err)
	}
	rs := benchRecords(b, 100_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := p.Bool(rs[i%len(rs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAggregate(b *testing.B) {
	a, err := transform.NewAggregate(transform.AggregateSpec{
		Window: aggWindow, Grace: aggGrace, Key: "json.machine",
		Values: map[string]string{"celsius": "json.celsius"}, Functions: []string{"min", "max", "mean", "count"},
	})
	if err != nil {
		b.Fatal(err)
	}
	rs := benchRecords(b, 1_000_000)
	st := a.Partition(0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(rs) {
			st, i = a.Partition(0), 0
		}
		if _, err := st.Process(rs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkParseJSON is what parsing a value as the transforms do costs
// alone (encoding/json into an any).
func BenchmarkParseJSON(b *testing.B) {
	rs := benchRecords(b, 100_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var v any
		if err := json.Unmarshal(rs[i%len(rs)].Value, &v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
