package link

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/provenance"
)

// BenchmarkStages: loop prevention and the mirror stage over chunks of 500
// records with two headers of their own: records produced at the source
// (plain), and records that came into it over another link (chained: one
// provenance header to check and replace).
func BenchmarkStages(b *testing.B) {
	plain := []kgo.RecordHeader{{Key: "seq", Value: []byte("p-1234")}, {Key: "unit", Value: []byte("C")}}
	chained := append(plain[:2:2], provenance.Origin{ClusterID: "Q2xvdWRDbHVzdGVySWQwMQ", Site: "cloud", Partition: 2, Offset: 1 << 30}.Header())
	for _, tc := range []struct {
		name    string
		headers []kgo.RecordHeader
	}{{"plain", plain}, {"chained", chained}} {
		b.Run(tc.name, func(b *testing.B) {
			loop := loopStage{dstID: "RGVzdENsdXN0ZXJJZDAwMQ", looped: func(tp, int64) {}}
			mirror := newMirrorStage(provenance.NewEncoder("MkU3OEVBNTcwNTJENDM2Qg", "plant-1"), func(t string) string { return "plant-1." + t }, nil)
			recs := make([]*kgo.Record, 500)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: "sensors", Partition: 2, Offset: int64(1<<40 + i), Value: make([]byte, 100)}
			}
			k := tp{"sensors", 2}
			b.ReportAllocs()
			for b.Loop() {
				for _, r := range recs {
					r.Topic, r.Headers = "sensors", tc.headers
				}
				out, _ := loop.process(k, recs)
				if _, err := mirror.process(k, out); err != nil || len(out) != len(recs) {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
		})
	}
}
