package link

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
)

func records(topic string, p int32, from, n, size int) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range out {
		out[i] = &kgo.Record{Topic: topic, Partition: p, Offset: int64(from + i), Value: make([]byte, size)}
	}
	return out
}

// TestSchedulerWeightedShares: with alerts at 10 and raw at 1 both waiting,
// alerts get about 10/11 of the bytes until they are gone; raw is never
// starved; each partition's records come out in order.
func TestSchedulerWeightedShares(t *testing.T) {
	s := newScheduler()
	alerts, raw0, raw1 := tp{"alerts", 0}, tp{"raw", 0}, tp{"raw", 1}
	require.True(t, s.add(raw0, 1, records("raw", 0, 0, 2000, 1000)))
	require.True(t, s.add(raw1, 1, records("raw", 1, 0, 2000, 1000)))
	require.True(t, s.add(alerts, 10, records("alerts", 0, 0, 500, 1000)))
	require.False(t, s.add(alerts, 10, records("alerts", 0, 500, 500, 1000)), "already waiting")
	require.Equal(t, 5000*(1000+recordMemory), s.mem)
	require.Equal(t, 1, s.minWeight())

	next := map[tp]int64{}
	var alertBytes, rawBytes int
	lastAlertAt, rawAtLastAlert := 0, 0
	for i := 0; ; i++ {
		k, recs, _, ok := s.next(nil)
		if !ok {
			break
		}
		require.NotEmpty(t, recs)
		for _, r := range recs {
			require.Equal(t, next[k], r.Offset, "order within %s", k)
			next[k]++
			if k.Topic == "alerts" {
				alertBytes += len(r.Value)
			} else {
				rawBytes += len(r.Value)
			}
		}
		if k.Topic == "alerts" {
			lastAlertAt, rawAtLastAlert = i, rawBytes
		}
	}
	require.Equal(t, 1000*1000, alertBytes)
	require.Equal(t, 4000*1000, rawBytes)
	require.Zero(t, s.mem)
	require.Zero(t, s.len())
	share := float64(1000*1000) / float64(1000*1000+rawAtLastAlert)
	t.Logf("alerts finished after %d chunks; their share until then %.3f", lastAlertAt+1, share)
	require.InDelta(t, 10.0/11, share, 0.02)
	require.Positive(t, rawAtLastAlert, "raw is not starved")
}

// TestSchedulerIdleClassGetsNoCredit: a priority that had nothing waiting
// does not get to catch up on the share it did not use.
func TestSchedulerIdleClassGetsNoCredit(t *testing.T) {
	s := newScheduler()
	s.add(tp{"raw", 0}, 1, records("raw", 0, 0, 10000, 1000))
	for range 100 {
		_, _, _, ok := s.next(nil)
		require.True(t, ok)
	}
	// Now a weight-2 topic arrives; it gets twice raw's share from here on,
	// not more.
	s.add(tp{"late", 0}, 2, records("late", 0, 0, 5000, 1000))
	got := map[string]int{}
	for range 30 {
		k, recs, _, _ := s.next(nil)
		got[k.Topic] += len(recs)
	}
	require.InDelta(t, 2*got["raw"], got["late"], float64(got["late"])/4+2, "%v", got)
}

// TestSchedulerSamePriorityDrainsByPoll: within a priority, the records
// of one poll drain before those of the next, so that the fetch response
// they came in is released first; the partitions of one poll take turns.
func TestSchedulerSamePriorityDrainsByPoll(t *testing.T) {
	s := newScheduler()
	s.add(tp{"raw", 0}, 1, records("raw", 0, 0, 300, 1000))
	s.add(tp{"raw", 1}, 1, records("raw", 1, 0, 300, 1000))
	s.polled()
	s.add(tp{"raw", 2}, 1, records("raw", 2, 0, 300, 1000))
	s.polled()
	var order []int32
	var emptied []int32
	for {
		k, _, done, ok := s.next(nil)
		if !ok {
			break
		}
		order = append(order, k.Partition)
		if done {
			emptied = append(emptied, k.Partition)
		}
		if k.Partition == 2 {
			require.Subset(t, emptied, []int32{0, 1}, "partition 2 before the first poll was drained")
		}
	}
	require.Equal(t, []int32{0, 1}, order[:2], "partitions of one poll take turns")
	require.Equal(t, int32(0), order[2])
	require.ElementsMatch(t, []int32{0, 1}, emptied[:2])
	require.Equal(t, int32(2), emptied[2])
}

// TestPendingCapHoldsEqualPriorities: beyond pendingCap, partitions whose
// records were all copied are not fetched again while records of the same
// priority wait (the cap once held only below the top priority, so a link
// whose topics all had the default priority buffered a fetch per
// partition); a higher priority still is, and everything is once the
// waiting records drain below the cap.
func TestPendingCapHoldsEqualPriorities(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`clusters: {a: {bootstrap: ["h:1"]}, b: {bootstrap: ["h:2"]}}
links: [{name: up, from: a, to: b, topics: {include: [".*"]}, priorities: [{match: alerts, priority: 10}]}]
`))
	require.NoError(t, err)
	consumer, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	require.NoError(t, err)
	t.Cleanup(consumer.Close)
	in := &intake{consumer: consumer, priority: cfg.Links[0].PriorityOf, sched: newScheduler(), held: make(map[tp]int)}
	over := pendingCap/(1000+recordMemory) + 1
	in.sched.add(tp{"raw", 0}, 1, records("raw", 0, 0, over, 1000))
	in.held[tp{"raw", 1}] = 1
	in.held[tp{"raw", 2}] = 1
	in.held[tp{"alerts", 0}] = 10
	in.refill(nil)
	require.Equal(t, map[tp]int{{"raw", 1}: 1, {"raw", 2}: 1}, in.held, "alerts fetched again, raw held")

	in.sched = newScheduler()
	in.sched.add(tp{"raw", 0}, 1, records("raw", 0, 0, 10, 1000))
	in.refill(nil)
	require.Empty(t, in.held, "below the cap everything is fetched again")

	// Records waiting for their slot's commit do not starve the others,
	// up to blockedCap.
	in.sched = newScheduler()
	in.sched.add(tp{"raw", 0}, 1, records("raw", 0, 0, over, 1000))
	in.held[tp{"raw", 1}] = 1
	stuck := func(k tp) bool { return k == tp{"raw", 0} }
	in.refill(stuck)
	require.Empty(t, in.held, "raw[0] waits for its commit: raw[1] is fetched again")
	in.sched.add(tp{"raw", 2}, 1, records("raw", 2, 0, over, 1000))
	in.held[tp{"raw", 1}] = 1
	in.refill(stuck)
	require.Equal(t, map[tp]int{{"raw", 1}: 1}, in.held, "what the sending slots hold counts")
}
