package verify_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

const (
	sourceID      = "source-cluster-id"
	destinationID = "destination-cluster-id"
	topic         = "events"
)

// fixture is a source cluster holding topic "events" (2 partitions) with
// varied records and transactions, and an empty destination cluster.
//
// Partition 0: offsets 0-11 plain records (keyed, null key, tombstone,
// empty value, empty key, headers); 12-13 an aborted transaction, 14 its
// marker; 15-16 a committed transaction, 17 its marker; 18-19 plain.
// Partition 1: offsets 0-2 plain; 3 a committed transaction, 4 its marker.
type fixture struct {
	src, dst   *kgo.Client
	srcCluster *kfake.Cluster
	committed  []*kgo.Record // in partition then offset order
	aborted    []*kgo.Record
}

var base = time.UnixMilli(1_700_000_000_000)

func newClient(t *testing.T, addrs []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func rec(p int32, key, value []byte, ts int, headers ...kgo.RecordHeader) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Key: key, Value: value, Headers: headers, Timestamp: base.Add(time.Duration(ts) * time.Second)}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srcC := testbed.StartFake(t, kfake.ClusterID(sourceID), kfake.SeedTopics(2, topic))
	dstC := testbed.StartFake(t, kfake.ClusterID(destinationID))
	f := &fixture{src: newClient(t, srcC.ListenAddrs()), dst: newClient(t, dstC.ListenAddrs()), srcCluster: srcC}
	ctx := t.Context()

	produce := func(rs ...*kgo.Record) []*kgo.Record {
		require.NoError(t, f.src.ProduceSync(ctx, rs...).FirstErr())
		return rs
	}
	p0 := produce(
		rec(0, []byte("k0"), []byte("v0"), 0),
		rec(0, nil, []byte("v1"), 1),
		rec(0, []byte("k2"), nil, 2),
		rec(0, []byte("k3"), []byte{}, 3),
		rec(0, []byte{}, []byte("v4"), 4,
			kgo.RecordHeader{Key: "a", Value: []byte("1")}, kgo.RecordHeader{Key: "b", Value: []byte("2")}, kgo.RecordHeader{Key: "c", Value: []byte{}}),
	)
	for i := 5; i < 12; i++ {
		p0 = append(p0, produce(rec(0, fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i), i, kgo.RecordHeader{Key: "n", Value: fmt.Appendf(nil, "%d", i)}))...)
	}
	p1 := produce(rec(1, []byte("a"), []byte("x"), 100), rec(1, []byte("b"), []byte("y"), 101), rec(1, []byte("c"), []byte("z"), 102))

	tx, err := kgo.NewClient(kgo.SeedBrokers(srcC.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("fixture"))
	require.NoError(t, err)
	defer tx.Close()
	inTxn := func(commit kgo.TransactionEndTry, rs ...*kgo.Record) []*kgo.Record {
		require.NoError(t, tx.BeginTransaction())
		require.NoError(t, tx.ProduceSync(ctx, rs...).FirstErr())
		require.NoError(t, tx.EndTransaction(ctx, commit))
		return rs
	}
	f.aborted = inTxn(kgo.TryAbort, rec(0, []byte("ab1"), []byte("aborted"), 12), rec(0, []byte("ab2"), []byte("aborted"), 13))
	done := inTxn(kgo.TryCommit, rec(0, []byte("t1"), []byte("committed"), 15), rec(0, []byte("t2"), []byte("committed"), 16), rec(1, []byte("t3"), []byte("committed"), 103))
	p0 = append(p0, done[:2]...)
	p1 = append(p1, done[2])
	p0 = append(p0, produce(rec(0, []byte("k18"), []byte("v18"), 18), rec(0, []byte("k19"), []byte("v19"), 19))...)

	require.Equal(t, []int64{12, 13}, []int64{f.aborted[0].Offset, f.aborted[1].Offset})
	require.Equal(t, []int64{15, 16, 18, 19}, offsets(p0[12:]))
	require.Equal(t, []int64{0, 1, 2, 3}, offsets(p1))
	f.committed = append(p0, p1...)
	return f
}

func offsets(rs []*kgo.Record) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.Offset)
	}
	return out
}

// copyOf is what a correct link writes for r.
func copyOf(r *kgo.Record) *kgo.Record {
	return &kgo.Record{
		Partition: r.Partition,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   append(slices.Clone(r.Headers), provenance.Origin{ClusterID: sourceID, Site: "plant-1", Partition: r.Partition, Offset: r.Offset}.Header()),
		Timestamp: r.Timestamp,
	}
}

// mirror is a clean copy of the committed source records.
func (f *fixture) mirror() []*kgo.Record {
	var out []*kgo.Record
	for _, r := range f.committed {
		out = append(out, copyOf(r))
	}
	return out
}

// write creates destination topic name with partitions partitions and
// writes rs to it, in order.
func (f *fixture) write(t *testing.T, name string, partitions int32, rs []*kgo.Record) {
	t.Helper()
	_, err := kadm.NewClient(f.dst).CreateTopic(t.Context(), partitions, 1, nil, name)
	require.NoError(t, err)
	for _, r := range rs {
		r.Topic = name
	}
	require.NoError(t, f.dst.ProduceSync(t.Context(), rs...).FirstErr())
}

func (f *fixture) check(t *testing.T, opts verify.Options) *verify.Report {
	t.Helper()
	opts.Source, opts.Destination = f.src, f.dst
	rep, err := verify.Check(t.Context(), opts)
	require.NoError(t, err)
	t.Logf("report:\n%s", rep)
	return rep
}

// at returns the index in rs of the copy of source partition p offset off.
func at(t *testing.T, rs []*kgo.Record, p int32, off int64) int {
	t.Helper()
	for i, r := range rs {
		if o, ok, _ := provenance.Find(r); ok && o.Partition == p && o.Offset == off {
			return i
		}
	}
	t.Fatalf("no copy of %d@%d", p, off)
	return -1
}

func without(t *testing.T, rs []*kgo.Record, p int32, offs ...int64) []*kgo.Record {
	t.Helper()
	for _, off := range offs {
		i := at(t, rs, p, off)
		rs = slices.Delete(rs, i, i+1)
	}
	return rs
}

func after(t *testing.T, rs []*kgo.Record, p int32, off int64, r *kgo.Record) []*kgo.Record {
	t.Helper()
	i := at(t, rs, p, off)
	return slices.Insert(rs, i+1, r)
}

type counts struct {
	Lost, Duplicated, Reordered, Corrupted, Phantom, Foreign, Echoed int64
	ExpectedLost, BelowSourceStart, Ahead, OtherSource, Looped       int64
}

func countsOf(r *verify.Report) counts {
	return counts{
		r.Lost, r.Duplicated, r.Reordered, r.Corrupted, r.Phantom, r.Foreign, r.Echoed,
		r.ExpectedLost, r.BelowSourceStart, r.Ahead, r.OtherSource, r.Looped,
	}
}

// want is one expected example: kind, partition, offsets and a part of the
// detail.
type want struct {
	kind      verify.Kind
	partition int32
	src, dst  int64
	detail    string
}

func requireExamples(t *testing.T, rep *verify.Report, wants ...want) {
	t.Helper()
	require.Len(t, rep.Examples, len(wants), rep.String())
	for i, w := range wants {
		e := rep.Examples[i]
		require.Equal(t, w.kind, e.Kind, "example %d: %s", i, e)
		require.Equal(t, w.partition, e.Partition, "example %d: %s", i, e)
		require.Equal(t, w.src, e.SourceOffset, "example %d: %s", i, e)
		require.Equal(t, w.dst, e.DestinationOffset, "example %d: %s", i, e)
		require.Contains(t, e.Detail, w.detail, "example %d: %s", i, e)
	}
}

func TestCheckFindsEachKind(t *testing.T) {
	f := newFixture(t)
	withHeaders := func(rs []*kgo.Record, p int32, off int64, edit func([]kgo.RecordHeader) []kgo.RecordHeader) []*kgo.Record {
		r := rs[at(t, rs, p, off)]
		n := len(r.Headers) - 1 // the provenance header stays last
		r.Headers = append(edit(slices.Clone(r.Headers[:n])), r.Headers[n])
		return rs
	}
	// Destination offsets in partition 0 of the clean mirror: source
	// offsets 0-11 are at 0-11, then 15, 16, 18, 19 at 12-15.
	for _, tc := range []struct {
		name     string
		edit     func([]*kgo.Record) []*kgo.Record
		opts     verify.Options
		counts   counts
		examples []want
	}{
		{name: "clean copy", edit: func(rs []*kgo.Record) []*kgo.Record { return rs }},
		{
			name:     "lost",
			edit:     func(rs []*kgo.Record) []*kgo.Record { return without(t, rs, 0, 2, 5, 6) },
			counts:   counts{Lost: 3},
			examples: []want{{verify.KindLost, 0, 2, -1, "names it"}, {verify.KindLost, 0, 5, -1, "nor the next 1 source records (to offset 6)"}},
		},
		{
			name: "duplicated",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs = after(t, rs, 0, 3, copyOf(f.committed[3]))
				return append(rs, copyOf(f.committed[16]))
			},
			counts: counts{Duplicated: 2},
			examples: []want{
				{verify.KindDuplicated, 0, 3, 4, "first copy at destination offset 3"},
				{verify.KindDuplicated, 1, 0, 4, "first copy at destination offset 0"},
			},
		},
		{
			name: "reordered",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				i := at(t, rs, 0, 8)
				rs[i], rs[i+1] = rs[i+1], rs[i]
				return rs
			},
			counts:   counts{Reordered: 1},
			examples: []want{{verify.KindReordered, 0, 8, 9, "follows source offset 9 (at destination offset 8)"}},
		},
		{
			name: "one record moved far back counts once",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				r := rs[at(t, rs, 0, 1)]
				rs = without(t, rs, 0, 1)
				return after(t, rs, 0, 10, r)
			},
			counts:   counts{Reordered: 1},
			examples: []want{{verify.KindReordered, 0, 1, 10, "follows source offset 10"}},
		},
		{
			name: "corrupted value",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs[at(t, rs, 0, 0)].Value = []byte("vX")
				return rs
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 0, 0, "value differs (source 2 bytes, destination 2 bytes)"}},
		},
		{
			name: "corrupted key",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs[at(t, rs, 0, 5)].Key = []byte("other")
				return rs
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 5, 5, "key differs (source 2 bytes, destination 5 bytes)"}},
		},
		{
			name: "corrupted header value",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return withHeaders(rs, 0, 4, func(h []kgo.RecordHeader) []kgo.RecordHeader { h[0].Value = []byte("9"); return h })
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 4, 4, "headers differ"}},
		},
		{
			name: "headers reordered",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return withHeaders(rs, 0, 4, func(h []kgo.RecordHeader) []kgo.RecordHeader { h[0], h[1] = h[1], h[0]; return h })
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 4, 4, "headers differ"}},
		},
		{
			name: "header value empty becomes null",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return withHeaders(rs, 0, 4, func(h []kgo.RecordHeader) []kgo.RecordHeader { h[2].Value = nil; return h })
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 4, 4, "headers differ"}},
		},
		{
			name: "header dropped",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return withHeaders(rs, 0, 5, func(h []kgo.RecordHeader) []kgo.RecordHeader { return h[:0] })
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 5, 5, "headers differ"}},
		},
		{
			name: "empty value becomes null",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs[at(t, rs, 0, 3)].Value = nil
				return rs
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 3, 3, "value is 0 bytes at the source, null at the destination"}},
		},
		{
			name: "tombstone becomes empty",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs[at(t, rs, 0, 2)].Value = []byte{}
				return rs
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 2, 2, "value is null at the source, 0 bytes at the destination"}},
		},
		{
			name: "null key becomes empty, empty key becomes null",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs[at(t, rs, 0, 1)].Key = []byte{}
				rs[at(t, rs, 0, 4)].Key = nil
				return rs
			},
			counts: counts{Corrupted: 2},
			examples: []want{
				{verify.KindCorrupted, 0, 1, 1, "key is null at the source, 0 bytes at the destination"},
				{verify.KindCorrupted, 0, 4, 4, "key is 0 bytes at the source, null at the destination"},
			},
		},
		{
			name: "timestamp",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs[at(t, rs, 0, 7)].Timestamp = base.Add(time.Hour)
				return rs
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 0, 7, 7, "timestamp differs (source 1700000007000, destination 1700003600000)"}},
		},
		{
			name: "record of an aborted transaction",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return after(t, rs, 0, 11, copyOf(f.aborted[0]))
			},
			counts:   counts{Phantom: 1},
			examples: []want{{verify.KindPhantom, 0, 12, 12, "aborted transaction"}},
		},
		{
			name: "transaction marker",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return after(t, rs, 0, 16, copyOf(&kgo.Record{Partition: 0, Offset: 17, Timestamp: base}))
			},
			counts:   counts{Phantom: 1},
			examples: []want{{verify.KindPhantom, 0, 17, 14, "not a committed source record"}},
		},
		{
			name: "wrong partition",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				r := rs[at(t, rs, 0, 7)]
				rs = without(t, rs, 0, 7)
				r.Partition = 1
				return append(rs, r)
			},
			counts: counts{Lost: 1, Corrupted: 1},
			examples: []want{
				{verify.KindLost, 0, 7, -1, "names it"},
				{verify.KindCorrupted, 1, -1, 4, "in partition 1, but its provenance names source partition 0 offset 7"},
			},
		},
		{
			name: "malformed provenance",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return append(rs, &kgo.Record{Partition: 1, Value: []byte("x"), Headers: []kgo.RecordHeader{{Key: provenance.Key, Value: []byte{9}}}})
			},
			counts:   counts{Corrupted: 1},
			examples: []want{{verify.KindCorrupted, 1, -1, 4, "malformed provenance header"}},
		},
		{
			name: "foreign",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return append(rs, &kgo.Record{Partition: 1, Value: []byte("written by someone else")})
			},
			counts:   counts{Foreign: 1},
			examples: []want{{verify.KindForeign, 1, -1, 4, "no provenance header"}},
		},
		{
			name: "foreign allowed",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return append(rs, &kgo.Record{Partition: 1, Value: []byte("written by someone else")})
			},
			opts:     verify.Options{AllowForeign: true},
			counts:   counts{Foreign: 1},
			examples: []want{{verify.KindForeign, 1, -1, 4, "no provenance header"}},
		},
		{
			name: "another source cluster",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				other := copyOf(f.committed[0])
				other.Headers[len(other.Headers)-1] = provenance.Origin{ClusterID: "elsewhere", Partition: 0, Offset: 3}.Header()
				return append(rs, other)
			},
			counts: counts{OtherSource: 1},
		},
		{
			name: "copied after the snapshot",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				return append(rs, copyOf(&kgo.Record{Partition: 0, Offset: 20, Timestamp: base}))
			},
			counts: counts{Ahead: 1},
		},
		{
			name: "every fault at once",
			edit: func(rs []*kgo.Record) []*kgo.Record {
				rs = without(t, rs, 0, 2, 6)                    // 2 lost
				rs = after(t, rs, 0, 3, copyOf(f.committed[3])) // duplicate
				rs = append(rs, copyOf(f.committed[17]))        // duplicate in partition 1
				i := at(t, rs, 0, 8)                            // a reordering
				rs[i], rs[i+1] = rs[i+1], rs[i]                 //
				rs[at(t, rs, 0, 0)].Value = []byte("corrupt")   // corrupted value
				rs = withHeaders(rs, 0, 4, func(h []kgo.RecordHeader) []kgo.RecordHeader {
					h[1].Value = []byte("corrupt") // corrupted header
					return h
				})
				rs[at(t, rs, 0, 3)].Value = nil                  // empty becomes null
				return after(t, rs, 0, 11, copyOf(f.aborted[1])) // phantom
			},
			counts: counts{Lost: 2, Duplicated: 2, Reordered: 1, Corrupted: 3, Phantom: 1},
			// Partition 0 at the destination, source offsets: 0 1 3 3 4 5 7 9 8 10 11 13 15 16 18 19.
			examples: []want{
				{verify.KindLost, 0, 2, -1, "names it"},
				{verify.KindLost, 0, 6, -1, "names it"},
				{verify.KindDuplicated, 0, 3, 3, "first copy at destination offset 2"},
				{verify.KindDuplicated, 1, 1, 4, "first copy at destination offset 1"},
				{verify.KindReordered, 0, 8, 8, "follows source offset 9"},
				{verify.KindCorrupted, 0, 0, 0, "value differs (source 2 bytes, destination 7 bytes)"},
				{verify.KindCorrupted, 0, 3, 2, "value is 0 bytes at the source, null at the destination"},
				{verify.KindCorrupted, 0, 4, 4, "headers differ"},
				{verify.KindPhantom, 0, 13, 11, "aborted transaction"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "mirror." + strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			f.write(t, name, 2, tc.edit(f.mirror()))
			opts := tc.opts
			opts.Topics = []verify.Pair{{Source: topic, Destination: name}}
			rep := f.check(t, opts)
			require.Equal(t, tc.counts, countsOf(rep), rep.String())
			require.Equal(t, int64(len(f.committed)), rep.SourceRecords)
			require.Equal(t, 1, rep.Topics)
			require.Equal(t, 2, rep.Partitions)
			require.Equal(t, sourceID, rep.SourceClusterID)
			requireExamples(t, rep, tc.examples...)
			wantOK := tc.counts.Lost+tc.counts.Duplicated+tc.counts.Reordered+tc.counts.Corrupted+tc.counts.Phantom == 0 &&
				(tc.counts.Foreign == 0 || tc.opts.AllowForeign)
			require.Equal(t, wantOK, rep.OK(), rep.String())
			if wantOK {
				require.Empty(t, rep.Discrepancies())
				require.Contains(t, rep.String(), "\nOK\n")
			} else {
				require.Contains(t, rep.String(), "NOT OK: "+rep.Discrepancies())
			}
		})
	}
}

func TestCheckExpectedLost(t *testing.T) {
	f := newFixture(t)
	// Partition 0 misses source offsets 9, 10, 11 and 15 (12-14 hold no
	// committed record); partition 1 misses 0.
	rs := without(t, f.mirror(), 0, 9, 10, 11, 15)
	f.write(t, "mirror", 2, without(t, rs, 1, 0))
	for _, tc := range []struct {
		name     string
		expected map[string]map[int32][]verify.Range
		counts   counts
		examples []want
	}{
		{"none expected", nil, counts{Lost: 5}, []want{
			{verify.KindLost, 0, 9, -1, "nor the next 3 source records (to offset 15)"},
			{verify.KindLost, 1, 0, -1, "names it"},
		}},
		{"partly expected", map[string]map[int32][]verify.Range{topic: {0: {{From: 9, To: 11}}}}, counts{Lost: 3, ExpectedLost: 2}, []want{
			{verify.KindLost, 0, 11, -1, "nor the next 1 source records (to offset 15)"},
			{verify.KindLost, 1, 0, -1, "names it"},
		}},
		{"all expected, overlapping ranges", map[string]map[int32][]verify.Range{topic: {
			0: {{From: 12, To: 16}, {From: 9, To: 13}, {From: 5, To: 5}},
			1: {{From: 0, To: 1}},
		}}, counts{ExpectedLost: 5}, nil},
		{"other topic expected", map[string]map[int32][]verify.Range{"other": {0: {{From: 0, To: 100}}}}, counts{Lost: 5}, []want{
			{verify.KindLost, 0, 9, -1, ""},
			{verify.KindLost, 1, 0, -1, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := f.check(t, verify.Options{Topics: []verify.Pair{{Source: topic, Destination: "mirror"}}, ExpectedLost: tc.expected})
			require.Equal(t, tc.counts, countsOf(rep), rep.String())
			require.Equal(t, tc.counts.Lost == 0, rep.OK())
			requireExamples(t, rep, tc.examples...)
		})
	}
}

func TestCheckSourceRetention(t *testing.T) {
	f := newFixture(t)
	f.write(t, "mirror", 2, f.mirror())
	// Retention at the source: partition 0 below offset 5, partition 1
	// entirely.
	adm := kadm.NewClient(f.src)
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 5})
	os.Add(kadm.Offset{Topic: topic, Partition: 1, At: 5})
	resp, err := adm.DeleteRecords(t.Context(), os)
	require.NoError(t, err)
	require.NoError(t, resp.Error())

	rep := f.check(t, verify.Options{Topics: []verify.Pair{{Source: topic, Destination: "mirror"}}})
	require.Equal(t, counts{BelowSourceStart: 5 + 4}, countsOf(rep), rep.String())
	require.True(t, rep.OK())
	require.Equal(t, int64(len(f.committed)-5-4), rep.SourceRecords)
	require.Equal(t, int64(len(f.committed)), rep.DestinationRecords)

	// A duplicate of a record no longer at the source is still a duplicate.
	require.NoError(t, f.dst.ProduceSync(t.Context(), &kgo.Record{Topic: "mirror", Partition: 1, Headers: copyOf(f.committed[16]).Headers}).FirstErr())
	rep = f.check(t, verify.Options{Topics: []verify.Pair{{Source: topic, Destination: "mirror"}}})
	require.Equal(t, counts{BelowSourceStart: 5 + 4 + 1, Duplicated: 1}, countsOf(rep), rep.String())
	requireExamples(t, rep, want{verify.KindDuplicated, 1, 0, 4, "first copy at destination offset 0"})
}

func TestCheckEmptyAndMissing(t *testing.T) {
	srcC := testbed.StartFake(t, kfake.ClusterID(sourceID), kfake.SeedTopics(3, "empty", "drained"))
	dstC := testbed.StartFake(t, kfake.ClusterID(destinationID), kfake.SeedTopics(3, "empty", "drained"))
	src, dst := newClient(t, srcC.ListenAddrs()), newClient(t, dstC.ListenAddrs())
	ctx := t.Context()
	// "drained": records whose log start is now the end, at both ends.
	for _, cl := range []*kgo.Client{src, dst} {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "drained", Partition: 2, Value: []byte("x")}, &kgo.Record{Topic: "drained", Partition: 2, Value: []byte("y")}).FirstErr())
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: "drained", Partition: 2, At: 2})
		resp, err := kadm.NewClient(cl).DeleteRecords(ctx, os)
		require.NoError(t, err)
		require.NoError(t, resp.Error())
	}
	opts := verify.Options{Source: src, Destination: dst, Timeout: 20 * time.Second, Topics: []verify.Pair{
		{Source: "empty", Destination: "empty"}, {Source: "drained", Destination: "drained"},
	}}
	rep, err := verify.Check(ctx, opts)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.String())
	require.Equal(t, 6, rep.Partitions)
	require.Equal(t, 2, rep.Topics)
	require.Zero(t, rep.SourceRecords+rep.DestinationRecords)

	// A missing destination topic is checked as empty: all lost.
	require.NoError(t, src.ProduceSync(ctx, &kgo.Record{Topic: "empty", Partition: 1, Value: []byte("x")}).FirstErr())
	opts.Topics = []verify.Pair{{Source: "empty", Destination: "nonexistent"}}
	rep, err = verify.Check(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, counts{Lost: 1}, countsOf(rep))
	require.Equal(t, []string{"destination topic nonexistent does not exist: checked as empty"}, rep.Notes)
	require.Contains(t, rep.String(), "note: destination topic nonexistent does not exist")

	// A missing source topic cannot be checked.
	opts.Topics = []verify.Pair{{Source: "nonexistent", Destination: "empty"}}
	_, err = verify.Check(ctx, opts)
	require.ErrorContains(t, err, "source topic nonexistent")

	// Bad options.
	_, err = verify.Check(ctx, verify.Options{Source: src})
	require.ErrorContains(t, err, "clients are required")
	_, err = verify.Check(ctx, verify.Options{Source: src, Destination: dst, Topics: []verify.Pair{{Source: "a", Destination: "b"}, {Source: "a", Destination: "c"}}})
	require.ErrorContains(t, err, "source topic a is listed twice")
}

func TestCheckRespectsContext(t *testing.T) {
	srcC := testbed.StartFake(t, kfake.ClusterID(sourceID), kfake.SeedTopics(1, topic))
	dstC := testbed.StartFake(t, kfake.ClusterID(destinationID), kfake.SeedTopics(1, topic))
	src, dst := newClient(t, srcC.ListenAddrs()), newClient(t, dstC.ListenAddrs())
	require.NoError(t, src.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := verify.Check(ctx, verify.Options{Source: src, Destination: dst, Topics: []verify.Pair{{Source: topic, Destination: topic}}})
	require.ErrorIs(t, err, context.Canceled)

	// A source partition whose leader keeps moving: the check retries
	// until its timeout.
	srcC.ControlKey(int16(kmsg.Fetch), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		srcC.KeepControl()
		req := kreq.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	began := time.Now()
	_, err = verify.Check(t.Context(), verify.Options{Source: src, Destination: dst, Timeout: 2 * time.Second, Topics: []verify.Pair{{Source: topic, Destination: topic}}})
	t.Log(err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "NOT_LEADER")
	require.Less(t, time.Since(began), 10*time.Second)
}

// A record that crossed an earlier link carries that link's provenance
// header; the check uses the header of the hop it verifies (the last one,
// naming the source cluster) and compares the others as ordinary headers.
func TestCheckChainedHops(t *testing.T) {
	srcC := testbed.StartFake(t, kfake.ClusterID(sourceID), kfake.SeedTopics(1, topic))
	dstC := testbed.StartFake(t, kfake.ClusterID(destinationID), kfake.SeedTopics(1, topic))
	src, dst := newClient(t, srcC.ListenAddrs()), newClient(t, dstC.ListenAddrs())
	ctx := t.Context()
	first := provenance.Origin{ClusterID: "edge-cluster", Site: "ship-7", Partition: 3, Offset: 41}.Header()
	var rs []*kgo.Record
	for i := range 3 {
		rs = append(rs, rec(0, []byte("k"), []byte("v"), i, kgo.RecordHeader{Key: "h", Value: []byte("x")}, first))
	}
	require.NoError(t, src.ProduceSync(ctx, rs...).FirstErr())
	var copies []*kgo.Record
	for _, r := range rs {
		copies = append(copies, copyOf(r))
	}
	// The third copy lost the earlier hop's header.
	copies[2].Headers = slices.Delete(copies[2].Headers, 1, 2)
	for _, c := range copies {
		c.Topic = topic
	}
	require.NoError(t, dst.ProduceSync(ctx, copies...).FirstErr())
	rep, err := verify.Check(ctx, verify.Options{Source: src, Destination: dst, Topics: []verify.Pair{{Source: topic, Destination: topic}}})
	require.NoError(t, err)
	require.Equal(t, counts{Corrupted: 1}, countsOf(rep), rep.String())
	requireExamples(t, rep, want{verify.KindCorrupted, 0, 2, 2, "headers differ"})
}

// Large values over several partitions: several fetches per partition,
// partitions checked concurrently, one duplicate and one loss among them.
func TestCheckLarge(t *testing.T) {
	const partitions, perPartition = 3, 400
	srcC := testbed.StartFake(t, kfake.ClusterID(sourceID), kfake.SeedTopics(partitions, topic))
	dstC := testbed.StartFake(t, kfake.ClusterID(destinationID), kfake.SeedTopics(partitions, topic))
	src, dst := newClient(t, srcC.ListenAddrs(), kgo.ProducerBatchMaxBytes(4<<20)), newClient(t, dstC.ListenAddrs(), kgo.ProducerBatchMaxBytes(4<<20))
	ctx := t.Context()
	value := make([]byte, 64<<10) // 400 records of 64 KiB: 25 MiB a partition
	var rs []*kgo.Record
	for p := range int32(partitions) {
		for i := range perPartition {
			v := slices.Clone(value)
			copy(v, fmt.Sprintf("%d/%d", p, i))
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "%d", i), Value: v})
		}
	}
	require.NoError(t, src.ProduceSync(ctx, rs...).FirstErr())
	var copies []*kgo.Record
	for _, r := range rs {
		if r.Partition == 1 && r.Offset == 250 {
			continue
		}
		c := copyOf(r)
		c.Topic = topic
		copies = append(copies, c)
		if r.Partition == 2 && r.Offset == 399 {
			c := copyOf(r)
			c.Topic = topic
			copies = append(copies, c)
		}
	}
	require.NoError(t, dst.ProduceSync(ctx, copies...).FirstErr())
	rep, err := verify.Check(ctx, verify.Options{Source: src, Destination: dst, Concurrency: 2, Topics: []verify.Pair{{Source: topic, Destination: topic}}})
	require.NoError(t, err)
	require.Equal(t, counts{Lost: 1, Duplicated: 1}, countsOf(rep), rep.String())
	require.Equal(t, int64(partitions*perPartition), rep.SourceRecords)
	require.Equal(t, int64(partitions*perPartition), rep.DestinationRecords)
	requireExamples(t, rep,
		want{verify.KindLost, 1, 250, -1, "names it"},
		want{verify.KindDuplicated, 2, 399, 400, "first copy at destination offset 399"})
}
