package transform_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/transform"
)

// srec returns a record at offset off with the given key, JSON value and
// timestamp (Unix ms).
func srec(off int64, key, value string, ts int64) *transform.Record {
	return &transform.Record{
		Key: []byte(key), Value: []byte(value), Topic: "sensors.temp", Partition: 3,
		Offset: off, Timestamp: time.UnixMilli(ts),
	}
}

// stream builds records from (key, value, ts) triples, at offsets from
// base on.
func stream(base int64, triples ...any) []*transform.Record {
	var rs []*transform.Record
	for i := 0; i < len(triples); i += 3 {
		rs = append(rs, srec(base+int64(i/3), triples[i].(string), triples[i+1].(string), int64(triples[i+2].(int))))
	}
	return rs
}

// must returns a constructor's stateful transform, which must compile.
func must(s transform.Stateful, err error) transform.Stateful {
	if err != nil {
		panic(err)
	}
	return s
}

func mustProcess(t testing.TB, st transform.PartitionState, r *transform.Record) transform.Result {
	t.Helper()
	res, err := st.Process(r)
	require.NoError(t, err, "offset %d", r.Offset)
	return res
}

// keeps processes rs and returns, per record, k (kept), d (dropped) or l
// (late).
func keeps(t *testing.T, st transform.PartitionState, rs []*transform.Record) string {
	t.Helper()
	var b strings.Builder
	for _, r := range rs {
		res := mustProcess(t, st, r)
		require.Empty(t, res.Emit)
		switch {
		case res.Late:
			require.False(t, res.Keep)
			b.WriteByte('l')
		case res.Keep:
			b.WriteByte('k')
		default:
			b.WriteByte('d')
		}
	}
	return b.String()
}

// emitted is an Output in a comparable form.
type emitted struct {
	Key, Value string
	At         int64
}

func emits(res transform.Result) []emitted {
	var out []emitted
	for _, o := range res.Emit {
		out = append(out, emitted{Key: string(o.Key), Value: string(o.Value), At: o.Timestamp.UnixMilli()})
	}
	return out
}

func TestKinds(t *testing.T) {
	d := must(transform.NewDownsample("key", time.Second))
	require.Equal(t, "downsample", d.Kind())
	d = must(transform.NewDedupe("key", time.Second))
	require.Equal(t, "dedupe", d.Kind())
	d = must(transform.NewAggregate(transform.AggregateSpec{Window: time.Minute, Key: "key"}))
	require.Equal(t, "aggregate", d.Kind())
}

func TestStatefulConstructorErrors(t *testing.T) {
	var ce *transform.CompileError
	_, err := transform.NewDownsample("json.", time.Second)
	require.ErrorAs(t, err, &ce)
	_, err = transform.NewDownsample("key", 0)
	require.ErrorContains(t, err, "every")
	_, err = transform.NewDownsample("key", time.Microsecond)
	require.Error(t, err)
	_, err = transform.NewDedupe("nope", time.Second)
	require.ErrorAs(t, err, &ce)
	_, err = transform.NewDedupe("key", -time.Second)
	require.ErrorContains(t, err, "horizon")

	ok := transform.AggregateSpec{Window: time.Minute, Key: "json.id", Values: map[string]string{"t": "json.t"}}
	_, err = transform.NewAggregate(ok)
	require.NoError(t, err)
	for name, mod := range map[string]func(*transform.AggregateSpec){
		"window":         func(s *transform.AggregateSpec) { s.Window = 0 },
		"grace":          func(s *transform.AggregateSpec) { s.Grace = -time.Second },
		"key":            func(s *transform.AggregateSpec) { s.Key = "json..id" },
		"value":          func(s *transform.AggregateSpec) { s.Values = map[string]string{"t": "json.t +"} },
		"value type":     func(s *transform.AggregateSpec) { s.Values = map[string]string{"t": `"hot"`} },
		"reserved":       func(s *transform.AggregateSpec) { s.Values = map[string]string{"count": "json.t"} },
		"empty name":     func(s *transform.AggregateSpec) { s.Values = map[string]string{"": "json.t"} },
		"function":       func(s *transform.AggregateSpec) { s.Functions = []string{"median"} },
		"function twice": func(s *transform.AggregateSpec) { s.Functions = []string{"min", "min"} },
	} {
		spec := ok
		mod(&spec)
		_, err := transform.NewAggregate(spec)
		require.Error(t, err, name)
	}
	_, err = transform.NewAggregate(transform.AggregateSpec{Window: time.Minute, Key: "key", Values: map[string]string{"t": `"hot"`}})
	require.ErrorAs(t, err, &ce)
	require.Contains(t, err.Error(), `value "t"`)
	// Ints, uints and dyn are numbers.
	_, err = transform.NewAggregate(transform.AggregateSpec{Window: time.Minute, Key: "key", Values: map[string]string{
		"a": "size(value)", "b": "uint(size(value))", "c": "json.t", "d": "2.5",
	}})
	require.NoError(t, err)
}

// TestAggregateJSON checks a window's record byte for byte.
func TestAggregateJSON(t *testing.T) {
	agg := must(transform.NewAggregate(transform.AggregateSpec{
		Window: time.Minute, Key: "json.id",
		Values: map[string]string{"t": "json.t", "h": "json.h"},
	}))
	st := agg.Partition(3)
	rs := stream(10,
		"", `{"id":"a","t":22,"h":40}`, 0,
		"", `{"id":"b","t":1e-7,"h":1e21}`, 59_999,
		"", `{"id":"a","t":20,"h":41.5}`, 30_000,
		"", `{"id":"c","t":-0.5,"h":3}`, 60_000,
	)
	for _, r := range rs[:3] {
		require.Equal(t, transform.Result{}, mustProcess(t, st, r))
	}
	res := mustProcess(t, st, rs[3])
	require.False(t, res.Keep)
	require.False(t, res.Late)
	require.Equal(t, []emitted{
		{
			Key: "a", At: 60_000,
			Value: `{"window_start":0,"window_end":60000,"count":2,` +
				`"h":{"min":40,"max":41.5,"mean":40.75,"count":2,"sum":81.5,"first":40,"last":41.5},` +
				`"t":{"min":20,"max":22,"mean":21,"count":2,"sum":42,"first":22,"last":20}}`,
		},
		{
			Key: "b", At: 60_000,
			Value: `{"window_start":0,"window_end":60000,"count":1,` +
				`"h":{"min":1e+21,"max":1e+21,"mean":1e+21,"count":1,"sum":1e+21,"first":1e+21,"last":1e+21},` +
				`"t":{"min":1e-7,"max":1e-7,"mean":1e-7,"count":1,"sum":1e-7,"first":1e-7,"last":1e-7}}`,
		},
	}, emits(res))
}

func TestAggregateFunctions(t *testing.T) {
	agg := must(transform.NewAggregate(transform.AggregateSpec{
		Window: 10 * time.Millisecond, Key: "string(key)",
		Values: map[string]string{"v": "json.v", "n": "size(value)"},
		// Listed in any order; written in the canonical one.
		Functions: []string{"last", "mean", "count"},
	}))
	st := agg.Partition(0)
	rs := stream(0,
		"k", `{"v":1}`, 1,
		"k", `{"v":2.5}`, 2,
		"k", `{"v":3}`, 3,
		"x", `{"v":0}`, 10,
	)
	var out []emitted
	for _, r := range rs {
		out = append(out, emits(mustProcess(t, st, r))...)
	}
	require.Equal(t, []emitted{{
		Key: "k", At: 10,
		Value: `{"window_start":0,"window_end":10,"count":3,` +
			`"n":{"mean":7.666666666666667,"count":3,"last":7},` +
			`"v":{"mean":2.1666666666666665,"count":3,"last":3}}`,
	}}, out)

	// No values: the count only.
	agg = must(transform.NewAggregate(transform.AggregateSpec{Window: 10 * time.Millisecond, Key: "string(key)"}))
	st = agg.Partition(0)
	out = nil
	for _, r := range rs {
		out = append(out, emits(mustProcess(t, st, r))...)
	}
	require.Equal(t, []emitted{{Key: "k", At: 10, Value: `{"window_start":0,"window_end":10,"count":3}`}}, out)
}

// TestAggregateFirstLast: first and last follow the offsets, not the
// timestamps.
func TestAggregateFirstLast(t *testing.T) {
	agg := must(transform.NewAggregate(transform.AggregateSpec{
		Window: 100 * time.Millisecond, Key: "string(key)",
		Values: map[string]string{"v": "json.v"}, Functions: []string{"min", "max", "first", "last"},
	}))
	st := agg.Partition(0)
	rs := stream(7,
		"k", `{"v":5}`, 50,
		"k", `{"v":-2}`, 10,
		"k", `{"v":9}`, 99,
		"k", `{"v":3}`, 0,
		"k", `{"v":0}`, 100,
	)
	var out []emitted
	for _, r := range rs {
		out = append(out, emits(mustProcess(t, st, r))...)
	}
	require.Equal(t, []emitted{{
		Key: "k", At: 100,
		Value: `{"window_start":0,"window_end":100,"count":4,"v":{"min":-2,"max":9,"first":5,"last":3}}`,
	}}, out)
}

// TestAggregateClosesWindowsInOrder: a record that moves the watermark
// far closes every window left behind, by start, then key.
func TestAggregateClosesWindowsInOrder(t *testing.T) {
	agg := must(transform.NewAggregate(transform.AggregateSpec{
		Window: 10 * time.Millisecond, Grace: 100 * time.Millisecond, Key: "string(key)",
	}))
	st := agg.Partition(0)
	rs := stream(100,
		"b", ``, 5,
		"a", ``, 15,
		"c", ``, 7,
		"a", ``, 3,
		"b", ``, 25,
		"b", ``, -1, // [-10, 0)
		"a", ``, 9,
	)
	for _, r := range rs {
		require.Equal(t, transform.Result{}, mustProcess(t, st, r))
	}
	require.Equal(t, transform.Position{Offset: 100, Watermark: transform.NoWatermark}, st.Rebuild(107))
	res := mustProcess(t, st, srec(107, "z", "", 1000))
	w := func(key string, start, n int) emitted {
		return emitted{Key: key, At: int64(start + 10), Value: fmt.Sprintf(`{"window_start":%d,"window_end":%d,"count":%d}`, start, start+10, n)}
	}
	require.Equal(t, []emitted{w("b", -10, 1), w("a", 0, 2), w("b", 0, 1), w("c", 0, 1), w("a", 10, 1), w("b", 20, 1)}, emits(res))
	// Only z's window is left: it started at offset 107, with the
	// watermark 25 before it.
	require.Equal(t, transform.Position{Offset: 107, Watermark: 25}, st.Rebuild(108))
}

// TestAggregateLateAndGrace: a window takes records until the watermark
// reaches its end plus the grace.
func TestAggregateLateAndGrace(t *testing.T) {
	agg := must(transform.NewAggregate(transform.AggregateSpec{
		Window: 10 * time.Millisecond, Grace: 5 * time.Millisecond, Key: "string(key)",
	}))
	st := agg.Partition(0)
	rs := stream(0,
		"a", ``, 0,
		"a", ``, 14, // wm 14: [0, 10) is open until 15
		"a", ``, 9, // taken
		"a", ``, 15, // closes [0, 10)
		"a", ``, 9, // late
		"a", ``, 5, // late
		"b", ``, 10, // [10, 20) is open until 25
		"b", ``, 25, // closes it
		"b", ``, 19, // late
		"b", ``, 20, // [20, 30) is open
	)
	var got []string
	for _, r := range rs {
		res := mustProcess(t, st, r)
		require.False(t, res.Keep)
		if res.Late {
			require.Empty(t, res.Emit)
			got = append(got, "late")
		}
		for _, o := range res.Emit {
			got = append(got, string(o.Key)+" "+string(o.Value))
		}
	}
	require.Equal(t, []string{
		`a {"window_start":0,"window_end":10,"count":2}`,
		"late", "late",
		`a {"window_start":10,"window_end":20,"count":2}`,
		`b {"window_start":10,"window_end":20,"count":1}`,
		"late",
	}, got)
	// A late record does not move the watermark.
	require.Equal(t, transform.Position{Offset: 7, Watermark: 15}, st.Rebuild(10))
}

func TestDownsample(t *testing.T) {
	ds := must(transform.NewDownsample("json.id", 10*time.Millisecond))
	st := ds.Partition(0)
	rs := stream(0,
		"", `{"id":"a"}`, 0, // k
		"", `{"id":"a"}`, 5, // d: (a, 0) seen
		"", `{"id":"b"}`, 6, // k
		"", `{"id":"a"}`, 10, // k: (a, 10)
		"", `{"id":"a"}`, 3, // d: (a, 0) is live until the watermark reaches 20
		"", `{"id":"a"}`, 19, // d
		"", `{"id":"c"}`, 9, // k: (c, 0)
		"", `{"id":"a"}`, 25, // k: wm 25
		"", `{"id":"a"}`, 4, // l: (a, 0) ended at 10, 10 + 10 <= 25
		"", `{"id":"d"}`, 9, // l: whatever the key
		"", `{"id":"a"}`, 12, // d: (a, 10) is live until 30
		"", `{"id":"b"}`, 15, // k
		"", `{"id":"c"}`, 30, // k: wm 30
		"", `{"id":"d"}`, 19, // l: (d, 10) ended at 20, 20 + 10 <= 30
		"", `{"id":"d"}`, 20, // k
		"", `{"id":"d"}`, -5, // l
	)
	require.Equal(t, "kdkkddkklldkklkl", keeps(t, st, rs))
	// Live: the intervals 20 (a, d) and 30 (c); 20 began with the record
	// at offset 7, after the watermark 19.
	require.Equal(t, transform.Position{Offset: 7, Watermark: 19}, st.Rebuild(16))
}

func TestDedupe(t *testing.T) {
	dd := must(transform.NewDedupe("string(key)", 10*time.Millisecond))
	st := dd.Partition(0)
	rs := stream(0,
		"a", ``, 100, // k
		"a", ``, 110, // d: 100 is exactly a horizon before
		"a", ``, 121, // k: 110 (dropped, but seen) is 11 before
		"a", ``, 111, // d: 121 is exactly a horizon after; wm 121
		"a", ``, 110, // l: 110 < 121 - 10
		"b", ``, 112, // k: another key
		"b", ``, 111, // d: 112 is within a horizon after
		"a", ``, 200, // k
		"a", ``, 195, // d: seen 5 after
		"a", ``, 211, // k
		"c", ``, 201, // k: wm 211, 201 is not late
		"c", ``, 200, // l
		"c", ``, 190, // l
		"c", ``, 211, // d
		"c", ``, 222, // k
		"c", ``, 212, // d: 222 within a horizon after
	)
	require.Equal(t, "kdkdlkdkdkklldkd", keeps(t, st, rs))
	// Live entries: maxSeen >= wm - 2*horizon = 202: a (211, offset 9,
	// after the watermark 200) and c (222, offset 14).
	require.Equal(t, transform.Position{Offset: 9, Watermark: 200}, st.Rebuild(16))
	// Ties keep the earlier offset.
	st = dd.Partition(0)
	require.Equal(t, "kdd", keeps(t, st, stream(40, "a", ``, 5, "a", ``, 7, "a", ``, 7)))
	require.Equal(t, transform.Position{Offset: 41, Watermark: 5}, st.Rebuild(43))
}

func TestRebuildEmptyAndRestore(t *testing.T) {
	for _, s := range []transform.Stateful{
		must(transform.NewDownsample("key", 10*time.Millisecond)),
		must(transform.NewDedupe("key", 10*time.Millisecond)),
		must(transform.NewAggregate(transform.AggregateSpec{Window: 10 * time.Millisecond, Key: "key"})),
	} {
		st := s.Partition(0)
		require.Equal(t, transform.Position{Offset: 12, Watermark: transform.NoWatermark}, st.Rebuild(12), s.Kind())
		require.Equal(t, int64(0), st.Size())
		st.Restore(transform.Position{Offset: 5, Watermark: 1000})
		require.Equal(t, transform.Position{Offset: 5, Watermark: 1000}, st.Rebuild(5), s.Kind())
		// The restored watermark makes an old record late.
		res := mustProcess(t, st, srec(5, "k", "", 500))
		require.True(t, res.Late, s.Kind())
		require.Equal(t, int64(0), st.Size())
		res = mustProcess(t, st, srec(6, "k", "", 1000))
		require.False(t, res.Late, s.Kind())
		require.Positive(t, st.Size())
		require.Equal(t, transform.Position{Offset: 6, Watermark: 1000}, st.Rebuild(7), s.Kind())
	}
}

// TestAggregateValueNotNumber: a value that is not a number is an error
// that leaves the state as it was.
func TestAggregateValueNotNumber(t *testing.T) {
	agg := must(transform.NewAggregate(transform.AggregateSpec{
		Window: 10 * time.Millisecond, Key: "string(key)", Values: map[string]string{"v": "json.v", "w": "json.v * 1e300"},
		Functions: []string{"sum"},
	}))
	for _, bad := range []string{`{"v":"hot"}`, `{"v":null}`, `{"v":[1]}`, `{"v":1e10}` /* w is not finite */, `{}`, `not json`} {
		st := agg.Partition(0)
		mustProcess(t, st, srec(0, "k", `{"v":1}`, 3))
		size, pos := st.Size(), st.Rebuild(1)
		// Far ahead: had it moved the watermark, it would close [0, 10)
		// and make the record at offset 2 late.
		res, err := st.Process(srec(1, "k", bad, 1000))
		require.Error(t, err, bad)
		require.Equal(t, transform.Result{}, res)
		require.Equal(t, size, st.Size())
		require.Equal(t, pos, st.Rebuild(1))
		require.Empty(t, mustProcess(t, st, srec(2, "j", `{"v":2}`, 4)).Emit)
		res = mustProcess(t, st, srec(3, "k", `{"v":1}`, 1000))
		require.Equal(t, []emitted{
			{Key: "j", At: 10, Value: `{"window_start":0,"window_end":10,"count":1,"v":{"sum":2},"w":{"sum":2e+300}}`},
			{Key: "k", At: 10, Value: `{"window_start":0,"window_end":10,"count":1,"v":{"sum":1},"w":{"sum":1e+300}}`},
		}, emits(res), bad)
	}
}

// TestStatefulNotJSON: a value that is not JSON where json is used is an
// ErrNotJSON error that leaves the state as it was.
func TestStatefulNotJSON(t *testing.T) {
	for _, s := range []transform.Stateful{
		must(transform.NewDownsample("json.id", 10*time.Millisecond)),
		must(transform.NewDedupe("json.id", 10*time.Millisecond)),
		must(transform.NewAggregate(transform.AggregateSpec{Window: 10 * time.Millisecond, Key: "json.id"})),
		must(transform.NewAggregate(transform.AggregateSpec{Window: 10 * time.Millisecond, Key: "key", Values: map[string]string{"t": "json.t"}})),
	} {
		st := s.Partition(0)
		_, err := st.Process(srec(0, "k", `{"id":"k","t":1}`, 5))
		require.NoError(t, err)
		size, pos := st.Size(), st.Rebuild(1)
		res, err := st.Process(srec(1, "k", `{"id":`, 1000))
		require.ErrorIs(t, err, transform.ErrNotJSON, s.Kind())
		require.Equal(t, transform.Result{}, res)
		require.Equal(t, size, st.Size())
		require.Equal(t, pos, st.Rebuild(2))
		// An error of another kind (no such key) is not ErrNotJSON.
		_, err = st.Process(srec(2, "k", `{"x":1}`, 1000))
		require.Error(t, err, s.Kind())
		require.NotErrorIs(t, err, transform.ErrNotJSON)
		require.Equal(t, size, st.Size())
	}
}

// TestStatefulSize: the estimate grows with the keys (and their length)
// and shrinks when entries are forgotten.
func TestStatefulSize(t *testing.T) {
	for _, s := range []transform.Stateful{
		must(transform.NewDownsample("string(key)", 10*time.Millisecond)),
		must(transform.NewDedupe("string(key)", 10*time.Millisecond)),
		must(transform.NewAggregate(transform.AggregateSpec{
			Window: 10 * time.Millisecond, Key: "string(key)", Values: map[string]string{"v": "1"},
		})),
	} {
		st := s.Partition(0)
		prev := st.Size()
		for i := range 100 {
			mustProcess(t, st, srec(int64(2*i), fmt.Sprintf("key-%d", i), "", 5))
			require.Greater(t, st.Size(), prev, s.Kind())
			prev = st.Size()
			// A key seen again adds nothing.
			mustProcess(t, st, srec(int64(2*i+1), fmt.Sprintf("key-%d", i), "", 5))
			require.Equal(t, prev, st.Size(), s.Kind())
		}
		long := st.Size()
		mustProcess(t, st, srec(200, strings.Repeat("x", 1000), "", 5))
		require.Greater(t, st.Size(), long+1000, s.Kind())
		// Far ahead, the entries die; Rebuild forgets them at the latest.
		mustProcess(t, st, srec(201, "last", "", 10_000))
		st.Rebuild(202)
		require.Less(t, st.Size(), long/10, s.Kind())
		require.Positive(t, st.Size(), s.Kind())
	}
}

// TestKeyText: how a key's value becomes its text (seen as the key of an
// aggregate's windows).
func TestKeyText(t *testing.T) {
	value := `{"n":7,"id":1234567,"d":21.5,"big":1e21,"s":"dev-1","b":true,"z":null,"o":{"z":1,"a":{"y":2,"x":"s"}},"l":[1,"a",null]}`
	for expr, want := range map[string]string{
		`7`:                                     "7",
		`-3`:                                    "-3",
		`5u`:                                    "5",
		`json.n`:                                "7",
		`json.id`:                               "1234567",
		`json.d`:                                "21.5",
		`2.5`:                                   "2.5",
		`json.big`:                              "1e+21",
		`json.s`:                                "dev-1",
		`"dev-1"`:                               "dev-1",
		`b"raw\x00"`:                            "raw\x00",
		`key`:                                   "the-key",
		`true`:                                  "true",
		`json.b`:                                "true",
		`null`:                                  "",
		`json.z`:                                "",
		`json.o`:                                `{"a":{"x":"s","y":2},"z":1}`,
		`json.l`:                                `[1,"a",null]`,
		`{"b": 1, "a": [true, null, 1.5, "x"]}`: `{"a":[true,null,1.5,"x"],"b":1}`,
		`{2: "two", 1: "one"}`:                  `{"1":"one","2":"two"}`,
		`[json.s, json.n]`:                      `["dev-1",7]`,
		`timestamp("2026-01-02T03:04:05Z")`:     "2026-01-02T03:04:05Z",
		`duration("90s")`:                       "90s",
	} {
		agg := must(transform.NewAggregate(transform.AggregateSpec{Window: 10 * time.Millisecond, Key: expr}))
		st := agg.Partition(0)
		mustProcess(t, st, srec(0, "the-key", value, 0))
		res := mustProcess(t, st, srec(1, "the-key", value, 100))
		require.Len(t, res.Emit, 1, expr)
		require.Equal(t, want, string(res.Emit[0].Key), expr)
	}
	// Map keys of different types with the same text are an error.
	agg := must(transform.NewAggregate(transform.AggregateSpec{Window: 10 * time.Millisecond, Key: `{1: "a", "1": "b"}`}))
	_, err := agg.Partition(0).Process(srec(0, "", "", 0))
	require.ErrorContains(t, err, "map keys")
}

// The stateful transforms of the property tests: their windows,
// intervals and horizons span a few to a few dozen records of a stream.
var statefuls = []struct {
	name string
	// json: the expressions read json, so some records are errors.
	json bool
	make func() (transform.Stateful, error)
}{
	{"downsample", true, func() (transform.Stateful, error) { return transform.NewDownsample("json.id", 100*time.Millisecond) }},
	{"downsample-short", false, func() (transform.Stateful, error) { return transform.NewDownsample("key", 37*time.Millisecond) }},
	{"dedupe", true, func() (transform.Stateful, error) { return transform.NewDedupe("json.id", 50*time.Millisecond) }},
	{"dedupe-long", false, func() (transform.Stateful, error) { return transform.NewDedupe("key", 400*time.Millisecond) }},
	{"aggregate", true, func() (transform.Stateful, error) {
		return transform.NewAggregate(transform.AggregateSpec{
			Window: 100 * time.Millisecond, Grace: 30 * time.Millisecond, Key: "json.id",
			Values: map[string]string{"v": "json.v", "w": "json.w"},
		})
	}},
	{"aggregate-no-grace", true, func() (transform.Stateful, error) {
		return transform.NewAggregate(transform.AggregateSpec{
			Window: 250 * time.Millisecond, Key: "string(key)",
			Values: map[string]string{"v": "json.v"}, Functions: []string{"first", "last", "count"},
		})
	}},
	{"aggregate-long-grace", true, func() (transform.Stateful, error) {
		return transform.NewAggregate(transform.AggregateSpec{
			Window: 40 * time.Millisecond, Grace: 300 * time.Millisecond, Key: "json.id",
			Values: map[string]string{"v": "json.v"},
		})
	}},
}

var seeds = []uint64{1, 2, 42, 20261129}

// base is the offset of a stream's first record: offsets are not indexes.
const base = 1000

// randomStream returns n records of a handful of keys whose timestamps
// mostly increase, with jitter backwards and forwards, some records far
// late, some jumps ahead, ties, and a few records that are not JSON or
// whose value is not a number. It starts before the Unix epoch, so that
// windows of negative timestamps are crossed too.
func randomStream(seed uint64, n int) []*transform.Record {
	rng := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15))
	now := int64(-3000)
	rs := make([]*transform.Record, n)
	for i := range rs {
		now += rng.Int64N(25)
		ts := now
		switch p := rng.Float64(); {
		case p < 0.01:
			now += 500 + rng.Int64N(3000)
			ts = now
		case p < 0.25:
			ts -= rng.Int64N(250)
		case p < 0.30:
			ts += rng.Int64N(120)
		case p < 0.33:
			ts -= 500 + rng.Int64N(5000)
		}
		ts -= ts % 5 // ties
		id := fmt.Sprintf("k%d", rng.IntN(6))
		var value string
		switch p := rng.Float64(); {
		case p < 0.01:
			value = `not json`
		case p < 0.02:
			value = fmt.Sprintf(`{"id":%q,"v":"hot","w":1}`, id)
		default:
			value = fmt.Sprintf(`{"id":%q,"v":%g,"w":%d}`, id, float64(rng.IntN(400)-100)/4, rng.IntN(50))
		}
		rs[i] = srec(base+int64(i), id, value, ts)
	}
	return rs
}

// outcome is what Process made of a record, comparable.
type outcome struct {
	Keep, Late bool
	Emit       []emitted
	Err        string
}

func process(st transform.PartitionState, r *transform.Record) outcome {
	res, err := st.Process(r)
	o := outcome{Keep: res.Keep, Late: res.Late, Emit: emits(res)}
	if err != nil {
		o.Err = err.Error()
		if res.Keep || res.Late || res.Emit != nil {
			o.Err += " (with a result)"
		}
	}
	return o
}

// run processes rs with a new state and returns the outcomes.
func run(s transform.Stateful, rs []*transform.Record) []outcome {
	st := s.Partition(3)
	out := make([]outcome, len(rs))
	for i, r := range rs {
		out[i] = process(st, r)
	}
	return out
}

// resume returns a new state rebuilt from pos up to next (exclusive) by
// replaying rs, discarding what the replay makes.
func resume(t *testing.T, s transform.Stateful, rs []*transform.Record, pos transform.Position, next int64) transform.PartitionState {
	t.Helper()
	require.LessOrEqual(t, pos.Offset, next)
	require.GreaterOrEqual(t, pos.Offset, int64(base))
	st := s.Partition(3)
	st.Restore(pos)
	for _, r := range rs[pos.Offset-base : next-base] {
		_, _ = st.Process(r)
	}
	return st
}

// TestRebuildReplay is the property the link's exactly-once rests on: a
// state rebuilt from Rebuild's position by replaying the source up to a
// checkpoint makes, from the checkpoint on, exactly what the uninterrupted
// state makes.
func TestRebuildReplay(t *testing.T) {
	const (
		n = 2000
		// After most checkpoints, the outputs of the next records are
		// compared (windows and horizons span a few dozen), after every
		// tenth, all of them.
		suffix = 200
	)
	for _, sf := range statefuls {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", sf.name, seed), func(t *testing.T) {
				t.Parallel()
				s := must(sf.make())
				rs := randomStream(seed, n)
				want := run(s, rs)
				requireVaried(t, s.Kind(), sf.json, want)

				// Run A again, taking the rebuild position at many
				// checkpoints (which sweeps dead entries): that changes
				// nothing of the output.
				cuts := map[int]bool{n: true, n - 1: true}
				for i := 0; i < n; i += 6 {
					cuts[i] = true
				}
				for i := range 20 {
					cuts[i] = true
				}
				st := s.Partition(3)
				pos := map[int]transform.Position{}
				for i := 0; i <= n; i++ {
					if cuts[i] {
						pos[i] = st.Rebuild(base + int64(i))
					}
					if i < n {
						require.Equal(t, want[i], process(st, rs[i]), "offset %d", base+i)
					}
				}

				// Run B for each checkpoint: rebuilt, it makes what A
				// made from the checkpoint on.
				replayed, checked := 0, 0
				for i := range n + 1 {
					if !cuts[i] {
						continue
					}
					next := base + int64(i)
					replayed += i - int(pos[i].Offset-base)
					st := resume(t, s, rs, pos[i], next)
					end := n
					if checked++; checked%10 != 0 {
						end = min(n, i+suffix)
					}
					for j := i; j < end; j++ {
						require.Equal(t, want[j], process(st, rs[j]), "checkpoint %d, rebuilt from %+v: offset %d", next, pos[i], base+j)
					}
				}
				// The positions are not all trivial.
				require.Positive(t, replayed)
			})
		}
	}
}

// requireVaried checks that a random stream exercises every outcome.
func requireVaried(t *testing.T, kind string, errors bool, out []outcome) {
	t.Helper()
	var kept, dropped, late, emitted, errs int
	for _, o := range out {
		switch {
		case o.Err != "":
			errs++
		case o.Late:
			late++
		case o.Keep:
			kept++
		default:
			dropped++
		}
		if len(o.Emit) > 1 {
			emitted++
		}
	}
	require.Positive(t, late, "late")
	if errors {
		require.Positive(t, errs, "errors")
	}
	if kind == "aggregate" {
		require.Positive(t, emitted, "several windows emitted at once")
	} else {
		require.Positive(t, kept, "kept")
		require.Positive(t, dropped, "dropped")
	}
}

// TestRebuildReplayRepeatedly kills the state again and again, sometimes
// twice at the same record (the second time rebuilding a rebuilt state):
// the output is that of an uninterrupted run.
func TestRebuildReplayRepeatedly(t *testing.T) {
	const n = 3000
	for _, sf := range statefuls {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", sf.name, seed), func(t *testing.T) {
				t.Parallel()
				s := must(sf.make())
				rs := randomStream(seed, n)
				want := run(s, rs)
				rng := rand.New(rand.NewPCG(seed, 7))
				var kills []int
				for range 30 {
					kills = append(kills, rng.IntN(n+1))
				}
				kills = append(kills, kills[:5]...) // twice at the same record
				kills = append(kills, 0, n, 1)
				slices.Sort(kills)
				st := s.Partition(3)
				got := make([]outcome, 0, n)
				for i := 0; i <= n; i++ {
					for len(kills) > 0 && kills[0] == i {
						kills = kills[1:]
						next := base + int64(i)
						st = resume(t, s, rs, st.Rebuild(next), next)
					}
					if i < n {
						got = append(got, process(st, rs[i]))
					}
				}
				require.Equal(t, want, got)
			})
		}
	}
}

// benchmark100kKeys processes one record of each of 100,000 keys, all
// in one window, interval or horizon, and reports the state's Size
// (state-bytes) and the heap it takes (heap-bytes), for the link's
// documentation.
func benchmark100kKeys(b *testing.B, s transform.Stateful) {
	const keys = 100_000
	rs := make([]*transform.Record, keys)
	for i := range rs {
		rs[i] = srec(int64(i), "", fmt.Sprintf(`{"device":"device-%06d","temp":%d.5,"humidity":%d}`, i, i%40, i%100), int64(i%60_000))
	}
	var state, heap float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		st := s.Partition(0)
		for _, r := range rs {
			if _, err := st.Process(r); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		state = float64(st.Size())
		heap = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		runtime.KeepAlive(st)
	}
	b.ReportMetric(state, "state-bytes")
	b.ReportMetric(heap, "heap-bytes")
	b.ReportMetric(state/keys, "state-bytes/key")
	b.ReportMetric(heap/keys, "heap-bytes/key")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/record")
}

// BenchmarkAggregate100kKeys: two values, all seven functions, keys of
// 13 bytes.
func BenchmarkAggregate100kKeys(b *testing.B) {
	benchmark100kKeys(b, must(transform.NewAggregate(transform.AggregateSpec{
		Window: time.Minute, Grace: 10 * time.Second, Key: "json.device",
		Values: map[string]string{"temp": "json.temp", "humidity": "json.humidity"},
	})))
}

func BenchmarkDownsample100kKeys(b *testing.B) {
	benchmark100kKeys(b, must(transform.NewDownsample("json.device", time.Minute)))
}

func BenchmarkDedupe100kKeys(b *testing.B) {
	benchmark100kKeys(b, must(transform.NewDedupe("json.device", time.Minute)))
}
