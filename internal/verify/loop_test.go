package verify_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// linkCopy is what a link from the source cluster writes for r: its
// provenance headers replaced by one that lists them as earlier hops.
func linkCopy(t *testing.T, r *kgo.Record, dstTopic string) *kgo.Record {
	t.Helper()
	v, err := provenance.NewEncoder(sourceID, "plant-1").AppendChained(nil, r.Partition, r.Offset, r.Headers)
	require.NoError(t, err)
	c := &kgo.Record{Topic: dstTopic, Partition: r.Partition, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	for _, h := range r.Headers {
		if !provenance.Valid(h) {
			c.Headers = append(c.Headers, h)
		}
	}
	c.Headers = append(c.Headers, kgo.RecordHeader{Key: provenance.Key, Value: v})
	return c
}

// A record that crossed earlier links carries one provenance header,
// which each link replaces by one listing the clusters the record was in
// before: the check compares what the copy lists with the source record's
// provenance.
func TestCheckReplacedProvenance(t *testing.T) {
	srcC := testbed.StartFake(t, kfake.ClusterID(sourceID), kfake.SeedTopics(1, topic))
	dstC := testbed.StartFake(t, kfake.ClusterID(destinationID), kfake.SeedTopics(1, topic))
	src, dst := newClient(t, srcC.ListenAddrs()), newClient(t, dstC.ListenAddrs())
	ctx := t.Context()
	h := kgo.RecordHeader{Key: "h", Value: []byte("x")}
	fromEdge := provenance.Origin{ClusterID: "edge-cluster", Site: "ship-7", Partition: 3, Offset: 41}.Header()
	viaCloud := provenance.Origin{ClusterID: "cloud-cluster", Partition: 1, Offset: 9, Hops: []string{"edge-cluster"}}.Header()
	rs := []*kgo.Record{
		rec(0, []byte("k0"), []byte("v0"), 0),
		rec(0, []byte("k1"), []byte("v1"), 1, h, fromEdge),
		rec(0, []byte("k2"), []byte("v2"), 2, viaCloud, h),
		rec(0, []byte("k3"), []byte("v3"), 3, fromEdge),
		rec(0, []byte("k4"), []byte("v4"), 4, fromEdge, h),
		rec(0, []byte("k5"), []byte("v5"), 5, kgo.RecordHeader{Key: provenance.Key, Value: []byte("not ours")}),
	}
	require.NoError(t, src.ProduceSync(ctx, rs...).FirstErr())
	var copies []*kgo.Record
	for _, r := range rs {
		copies = append(copies, linkCopy(t, r, topic))
	}
	o, _, err := provenance.Find(copies[2])
	require.NoError(t, err)
	require.Equal(t, []string{"edge-cluster", "cloud-cluster"}, o.Hops)
	require.Len(t, copies[5].Headers, 2, "a header that is not ours is kept")
	// The copy of offset 3 forgot the earlier hop (a version 1 header);
	// that of offset 4 kept the old header beside the new one.
	copies[3].Headers[0] = provenance.Origin{ClusterID: sourceID, Partition: 0, Offset: 3}.Header()
	copies[4].Headers = append([]kgo.RecordHeader{fromEdge}, copies[4].Headers...)
	require.NoError(t, dst.ProduceSync(ctx, copies...).FirstErr())
	rep, err := verify.Check(ctx, verify.Options{Source: src, Destination: dst, Topics: []verify.Pair{{Source: topic, Destination: topic}}})
	require.NoError(t, err)
	require.Equal(t, counts{Corrupted: 2}, countsOf(rep), rep.String())
	requireExamples(t, rep,
		want{verify.KindCorrupted, 0, 3, 3, "headers differ"},
		want{verify.KindCorrupted, 0, 4, 4, "headers differ"})
	require.EqualValues(t, 6, rep.SourceRecords)
}

// Records that had been in the destination cluster before are expected
// nowhere (looped); a destination record that had is an echo.
func TestCheckLoops(t *testing.T) {
	srcC := testbed.StartFake(t, kfake.ClusterID(sourceID), kfake.SeedTopics(1, topic))
	dstC := testbed.StartFake(t, kfake.ClusterID(destinationID), kfake.SeedTopics(1, topic, "clean"))
	src, dst := newClient(t, srcC.ListenAddrs()), newClient(t, dstC.ListenAddrs())
	ctx := t.Context()
	rs := []*kgo.Record{
		rec(0, []byte("native"), []byte("v"), 0),
		// Copied from the destination cluster by the opposite link.
		rec(0, []byte("back"), []byte("v"), 1, provenance.Origin{ClusterID: destinationID, Offset: 7}.Header()),
		// Came from the destination cluster through a third one (a ring).
		rec(0, []byte("round"), []byte("v"), 2, provenance.Origin{ClusterID: "third", Offset: 8, Hops: []string{destinationID}}.Header()),
		// Came from the third cluster: copied on.
		rec(0, []byte("third"), []byte("v"), 3, provenance.Origin{ClusterID: "third", Offset: 9}.Header()),
	}
	require.NoError(t, src.ProduceSync(ctx, rs...).FirstErr())
	native := &kgo.Record{Topic: topic, Value: []byte("written at the destination")}
	require.NoError(t, dst.ProduceSync(ctx, linkCopy(t, rs[0], topic), native, linkCopy(t, rs[2], topic), linkCopy(t, rs[3], topic)).FirstErr())
	native = &kgo.Record{Topic: "clean", Value: []byte("written at the destination")}
	require.NoError(t, dst.ProduceSync(ctx, linkCopy(t, rs[0], "clean"), native, linkCopy(t, rs[3], "clean")).FirstErr())

	check := func(dstTopic string) *verify.Report {
		rep, err := verify.Check(ctx, verify.Options{Source: src, Destination: dst, AllowForeign: true, Topics: []verify.Pair{{Source: topic, Destination: dstTopic}}})
		require.NoError(t, err)
		t.Logf("report:\n%s", rep)
		require.Equal(t, destinationID, rep.DestinationClusterID)
		require.EqualValues(t, 2, rep.SourceRecords, "the looped records are not expected")
		return rep
	}
	rep := check(topic)
	require.Equal(t, counts{Foreign: 1, Echoed: 1, Looped: 2}, countsOf(rep))
	require.False(t, rep.OK())
	require.Equal(t, "1 echoed", rep.Discrepancies())
	requireExamples(t, rep,
		want{verify.KindForeign, 0, -1, 1, "no provenance header"},
		want{verify.KindEchoed, 0, 2, 2, "had been in the destination cluster before (its provenance lists " + destinationID + ", third)"})
	require.Contains(t, rep.String(), "echoed 1")
	require.Contains(t, rep.String(), "looped 2")

	rep = check("clean")
	require.Equal(t, counts{Foreign: 1, Looped: 2}, countsOf(rep))
	require.True(t, rep.OK(), rep.String())
}
