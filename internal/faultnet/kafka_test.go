package faultnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

func TestFranzGoThroughNetwork(t *testing.T) {
	fake := testbed.StartFake(t, kfake.SeedTopics(1, "wan"))
	n := newNetwork(t)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(fake.ListenAddrs()...),
		kgo.Dialer(n.Dialer()),
		kgo.DefaultProduceTopic("wan"),
		// An idempotent producer never gives up on an in-flight request;
		// this lets the record's context bound it while the link is cut.
		kgo.AllowIdempotentProduceCancellation(),
	)
	require.NoError(t, err)
	defer cl.Close()

	produce := func(timeout time.Duration, value string) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		return cl.ProduceSync(ctx, kgo.StringRecord(value)).FirstErr()
	}

	n.SetLatency(50*time.Millisecond, 0)
	start := time.Now()
	require.NoError(t, produce(10*time.Second, "slow"))
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "at least one round trip")
	st := n.Stats()
	require.Positive(t, st.Up)
	require.Positive(t, st.Down)
	require.Positive(t, st.Opened)

	n.Cut()
	err = produce(time.Second, "lost")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	n.Restore()
	require.NoError(t, produce(15*time.Second, "after"))

	// After a reset the client must open new connections.
	opened := n.Stats().Opened
	n.Reset()
	require.NoError(t, produce(15*time.Second, "reconnected"))
	require.Greater(t, n.Stats().Opened, opened)
}
