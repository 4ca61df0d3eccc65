package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// kcatConsume runs kcat (librdkafka) as a member of group on topic at
// brokers: it consumes what there is until it reaches the end of every
// partition, commits what it consumed as it leaves, and returns the
// values. (It consumes to the end: a consumer stopped after n records
// may have committed records it fetched but never handed out.)
func kcatConsume(ctx context.Context, t *testing.T, brokers []string, group, topic string) []string {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	require.NoError(t, err, "kcat is needed (scripts/setup installs it)")
	args := []string{
		"-C", "-b", strings.Join(brokers, ","), "-G", group, "-X", "auto.offset.reset=earliest",
		"-X", "enable.auto.commit=true", "-X", "auto.commit.interval.ms=100", "-e", "-q", "-f", "%s\n", topic,
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, kcat, args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Logf("kcat stderr: %s", ee.Stderr)
	}
	require.NoError(t, err, "kcat -G %s %s", group, topic)
	var vals []string
	for _, v := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if v != "" {
			vals = append(vals, v)
		}
	}
	return vals
}

// groupOffsets returns group's committed offsets of topic at cl.
func groupOffsets(t *testing.T, cl *kgo.Client, group, topic string) map[int32]int64 {
	t.Helper()
	got, err := kadm.NewClient(cl).FetchOffsets(t.Context(), group)
	out := make(map[int32]int64)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out
	}
	require.NoError(t, err)
	got.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// TestRealKafkaGroupSync: consumer groups driven by kcat (librdkafka)
// consume part of a busy topic and all of a quiet one at the edge; once
// the link synced them, the same group ids at the cloud resume with no
// record skipped and none repeated; a group consuming at the cloud is left
// alone; offsets at the cloud never move backwards.
func TestRealKafkaGroupSync(t *testing.T) {
	edge := testbed.StartKafka(t, testbed.Options{Name: "edge"})
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	createTopics(t, edge, 3, nil, "orders")
	createTopics(t, edge, 1, nil, "quiet")
	cfg := writeConfig(t, edge, cloud, `  - name: up
    from: edge
    to: cloud
    topics: {include: ["orders", "quiet"]}
    commit_interval: 100ms
    groups: {include: ["app-.*"], interval: 500ms}
`)
	ecl, err := edge.Client()
	require.NoError(t, err)
	defer ecl.Close()
	ccl, err := cloud.Client()
	require.NoError(t, err)
	defer ccl.Close()

	// The busy topic takes records all along the first phase; the quiet
	// one five, then nothing for a long while.
	var (
		mu       sync.Mutex
		produced []string
		seq      atomic.Int64
	)
	write := func(topic string, n int) error {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			v := fmt.Sprintf("%s-%06d", topic, seq.Add(1))
			recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i % 11)), Value: []byte(v)}
		}
		if err := ecl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			produced = append(produced, string(r.Value))
		}
		return nil
	}
	require.NoError(t, write("orders", 600))
	require.NoError(t, write("quiet", 5))
	// A transaction aborted at the source: its records and markers are in
	// no mirror, and offsets past them still translate exactly.
	txn, err := kgo.NewClient(kgo.SeedBrokers(edge.Bootstrap()...), kgo.TransactionalID("aborter"))
	require.NoError(t, err)
	require.NoError(t, txn.BeginTransaction())
	for i := range 30 {
		txn.Produce(ctx, &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(i % 11)), Value: []byte("aborted")}, nil)
	}
	require.NoError(t, txn.Flush(ctx))
	require.NoError(t, txn.EndTransaction(ctx, kgo.TryAbort))
	txn.Close()
	require.NoError(t, write("orders", 300))

	// app-active consumes the mirror at the cloud (franz-go, committing
	// nothing itself) while its namesake commits at the edge.
	createTopics(t, cloud, 3, nil, "orders")
	active, err := kgo.NewClient(kgo.SeedBrokers(cloud.Bootstrap()...), kgo.ConsumerGroup("app-active"), kgo.ConsumeTopics("orders"), kgo.DisableAutoCommit())
	require.NoError(t, err)
	defer active.Close()
	go func() {
		for ctx.Err() == nil && !active.PollFetches(ctx).IsClientClosed() {
		}
	}()
	commit := make(kadm.Offsets)
	commit.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 10, LeaderEpoch: -1})
	_, err = kadm.NewClient(ecl).CommitOffsets(ctx, "app-active", commit)
	require.NoError(t, err)

	a := startAgent(t, "agent", cfg)
	defer stopAgents(t, a)
	// The busy topic takes records all along, but while kcat consumes it:
	// kcat consumes what is there until it reaches the end of every
	// partition, which a writer never pausing may keep it from.
	busy, stopBusy := context.WithCancel(ctx)
	var (
		g    errgroup.Group
		gate sync.Mutex // held, it pauses the writer
	)
	g.Go(func() error {
		for busy.Err() == nil {
			gate.Lock()
			err := write("orders", 20)
			gate.Unlock()
			if err != nil && busy.Err() == nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	time.Sleep(time.Second)
	gate.Lock()
	edgeBusy := kcatConsume(ctx, t, edge.Bootstrap(), "app-busy", "orders")
	gate.Unlock()
	require.Greater(t, len(edgeBusy), 900)
	edgeQuiet := kcatConsume(ctx, t, edge.Bootstrap(), "app-quiet", "quiet")
	require.Len(t, edgeQuiet, 5)

	// Synced: the cloud group has an offset for every partition the edge
	// group committed.
	synced := func(group, topic string) map[int32]int64 {
		var at map[int32]int64
		testbed.Eventually(t, 60*time.Second, func() error {
			want := groupOffsets(t, ecl, group, topic)
			at = groupOffsets(t, ccl, group, topic)
			if len(want) == 0 || len(at) != len(want) {
				return fmt.Errorf("%s: edge %v, cloud %v", group, want, at)
			}
			return nil
		})
		return at
	}
	busyAt := synced("app-busy", "orders")
	stopBusy()
	require.NoError(t, g.Wait())
	t.Logf("app-busy: edge %v, cloud %v", groupOffsets(t, ecl, "app-busy", "orders"), busyAt)
	synced("app-quiet", "quiet")

	// Never backwards: the edge group moved back, the cloud's stays.
	back := make(kadm.Offsets)
	back.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 1, LeaderEpoch: -1})
	_, err = kadm.NewClient(ecl).CommitOffsets(ctx, "app-busy", back)
	require.NoError(t, err)
	time.Sleep(2 * time.Second) // four rounds
	require.Equal(t, busyAt, groupOffsets(t, ccl, "app-busy", "orders"), "offsets at the cloud never move backwards")

	// The groups resume at the cloud, with kcat, once the mirror caught up.
	pairs := []verify.Pair{{Source: "orders", Destination: "orders"}, {Source: "quiet", Destination: "quiet"}}
	requireClean(t, checkUntilClean(t, edge, cloud, pairs, 60*time.Second, nil))
	cloudBusy := kcatConsume(ctx, t, cloud.Bootstrap(), "app-busy", "orders")
	cloudQuiet := kcatConsume(ctx, t, cloud.Bootstrap(), "app-quiet", "quiet")
	require.Empty(t, cloudQuiet, "the quiet topic was consumed whole at the edge")
	var busyProduced []string
	for _, v := range produced {
		if strings.HasPrefix(v, "orders-") {
			busyProduced = append(busyProduced, v)
		}
	}
	skipped, repeated := compareConsumed(busyProduced, edgeBusy, cloudBusy)
	if skipped > 0 {
		t.Logf("consumed at the cloud: %v ... %v", cloudBusy[:min(5, len(cloudBusy))], cloudBusy[max(0, len(cloudBusy)-5):])
	}
	t.Logf("busy topic: %d produced, %d consumed at the edge, %d at the cloud: %d skipped, %d repeated",
		len(busyProduced), len(edgeBusy), len(cloudBusy), skipped, repeated)
	require.Zero(t, skipped)
	require.Zero(t, repeated)

	// A record on the quiet topic, long after: consumed once, at the cloud.
	require.NoError(t, write("quiet", 1))
	requireClean(t, checkUntilClean(t, edge, cloud, pairs, 30*time.Second, nil))
	cloudQuiet = kcatConsume(ctx, t, cloud.Bootstrap(), "app-quiet", "quiet")
	require.Equal(t, []string{produced[len(produced)-1]}, cloudQuiet)

	require.Empty(t, groupOffsets(t, ccl, "app-active", "orders"), "a group consuming at the cloud is left alone")
	st, err := linkStatusOf(ctx, a)
	require.NoError(t, err)
	require.NotNil(t, st.Groups)
	require.GreaterOrEqual(t, st.Groups.Active, 1)
	require.Empty(t, st.Groups.LastError)
}

// compareConsumed counts the produced records consumed by neither consumer
// (skipped) and those consumed by both or twice (repeated).
func compareConsumed(produced []string, consumed ...[]string) (skipped, repeated int) {
	seen := make(map[string]int, len(produced))
	for _, c := range consumed {
		for _, v := range c {
			seen[v]++
		}
	}
	for _, v := range produced {
		switch n := seen[v]; {
		case n == 0:
			skipped++
		case n > 1:
			repeated += n - 1
		}
	}
	return skipped, repeated
}
