package link

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

// TestRemovedPartitionIsFetchedWhenItComesBack: a partition paused because
// its records waited, then removed with its slot (handed over, fenced), is
// fetched again when the slot comes back to the same session (a pause
// outlives the removal in the consumer).
func TestRemovedPartitionIsFetchedWhenItComesBack(t *testing.T) {
	c := testbed.StartFake(t, kfake.SeedTopics(1, "t"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("t"))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	produce := func(n int) {
		for range n {
			require.NoError(t, cl.ProduceSync(t.Context(), &kgo.Record{Value: []byte("v")}).FirstErr())
		}
	}
	src, err := newKafkaSource(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, consumerOpts(50*time.Millisecond)...), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(src.close)
	in, err := newIntake(src, func(string) int { return 1 })
	require.NoError(t, err)
	t.Cleanup(in.close)
	k := tp{"t", 0}
	waitFor := func(n int) {
		t.Helper()
		got := 0
		testbed.Eventually(t, 10*time.Second, func() error {
			require.NoError(t, in.poll(t.Context(), time.Now().Add(100*time.Millisecond), nil, nil))
			for {
				_, recs, ok := in.next(nil)
				if !ok {
					break
				}
				got += len(recs)
			}
			in.refill(nil)
			if got < n {
				return context.DeadlineExceeded
			}
			return nil
		})
	}
	produce(3)
	in.assign(map[tp]int64{k: 0})
	// Records wait (the partition is paused), then the slot goes.
	testbed.Eventually(t, 10*time.Second, func() error {
		require.NoError(t, in.poll(t.Context(), time.Now().Add(100*time.Millisecond), nil, nil))
		if in.sched.len() == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	in.remove([]tp{k})
	require.Zero(t, in.sched.len())

	produce(2)
	in.assign(map[tp]int64{k: 0})
	waitFor(5)
}
