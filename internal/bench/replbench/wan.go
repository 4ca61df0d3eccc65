package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/faultnet"
)

// wanPlan, when rtt is set, puts a simulated WAN between the replicators
// and the destination cluster: every connection they open to it goes
// through faultnet proxies that add rtt/2 each way and share rate bytes per
// second. The bench's own clients reach the destination directly.
type wanPlan struct {
	rtt  time.Duration
	rate int64
}

func (w wanPlan) enabled() bool { return w.rtt > 0 }

func (w wanPlan) String() string {
	return fmt.Sprintf("%s round trip, %s Mbit/s", w.rtt, strconv.FormatFloat(float64(w.rate)*8/1e6, 'f', -1, 64))
}

// parseWANRate parses a rate such as 50Mbit/s with the configuration's rules.
func parseWANRate(s string) (int64, error) { return config.ParseRate(s) }

// newWAN returns the network of plan, with queues that hold a full
// bandwidth-delay product in each direction.
func newWAN(plan wanPlan) *faultnet.Network {
	n := faultnet.New(nil)
	n.SetLatency(plan.rtt/2, 0)
	n.SetBandwidth(plan.rate)
	n.SetBuffer(max(int(float64(plan.rate)*plan.rtt.Seconds())*2, faultnet.BufferSize))
	return n
}

// wanProxy starts a proxy on n in front of a destination broker listener.
func wanProxy(n *faultnet.Network, proxies *[]*faultnet.Proxy) func(target string) (string, error) {
	return func(target string) (string, error) {
		p, err := n.Listen(target)
		if err != nil {
			return "", err
		}
		*proxies = append(*proxies, p)
		return p.Addr(), nil
	}
}

// destination returns the bootstrap servers replicators use for the
// destination: through the WAN when there is one.
func (b *bench) destination() []string {
	if b.o.wan.enabled() {
		return b.dst.WANBootstrap()
	}
	return b.dst.Bootstrap()
}

// mm2WANTuning is MirrorMaker 2's producer tuned for a long, narrow link as
// Kafka's documentation advises: big batches and socket buffers sized by
// the operating system, zstd, and timeouts that allow for the round trip.
func mm2WANTuning(target string) map[string]string {
	return map[string]string{
		target + ".producer.compression.type":    "zstd",
		target + ".producer.batch.size":          "1048576",
		target + ".producer.linger.ms":           "100",
		target + ".producer.buffer.memory":       "33554432", // per task: the tasks share one heap
		target + ".producer.send.buffer.bytes":   "-1",
		target + ".producer.request.timeout.ms":  "60000",
		target + ".producer.delivery.timeout.ms": "600000",
	}
}

// mm2JVMFlags are MirrorMaker 2's extra JVM options. Over the WAN its
// producers compress with zstd, whose JNI code holds the GC locker; with
// Java 17's default of two retries an allocation then fails with "Retried
// waiting for GCLocker too often" and the JVM stops with an
// OutOfMemoryError although the heap has room, so the bench allows more
// retries.
func (b *bench) mm2JVMFlags() []string {
	if !b.o.wan.enabled() {
		return nil
	}
	return []string{"-XX:+UnlockDiagnosticVMOptions", "-XX:GCLockerRetryAllocationCount=100"}
}

// wanMeasure is what the WAN carried during one stage's copy.
type wanMeasure struct {
	start int64
}

func (b *bench) wanStart() wanMeasure {
	if b.net == nil {
		return wanMeasure{}
	}
	return wanMeasure{start: b.net.Stats().Up}
}

// done fills r's wire figures.
func (m wanMeasure) done(b *bench, r *result) {
	if b.net == nil {
		return
	}
	r.WireBytes = b.net.Stats().Up - m.start
}
