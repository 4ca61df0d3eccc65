package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

// failoverReport is the part of `edgelink failover --json` the drill reads.
type failoverReport struct {
	Fenced          bool  `json:"fenced"`
	SourceReachable bool  `json:"source_reachable"`
	LeftBehind      int64 `json:"left_behind"`
	Partitions      []struct {
		Topic      string     `json:"topic"`
		Partition  int32      `json:"partition"`
		Replicated int64      `json:"replicated"`
		SourceEnd  int64      `json:"source_end"`
		LeftBehind int64      `json:"left_behind"`
		FirstLeft  *time.Time `json:"first_left"`
		LastLeft   *time.Time `json:"last_left"`
	} `json:"partitions"`
}

// readTopic reads every committed record of topic at c.
func readTopic(t *testing.T, c *testbed.Cluster, topic string) []*kgo.Record {
	t.Helper()
	cl, err := c.Client(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			return out
		}
		out = append(out, fs.Records()...)
	}
}

// TestRealKafkaFailoverDrill: the edge broker is killed mid-stream while a
// kcat group consumes at the edge. `edgelink failover` (the source gone)
// fences the link and reports per partition what the cloud holds; the
// cloud holds exactly the source records below it, and the group resumes
// at the cloud with nothing consumed twice. Once the edge broker is back,
// a dry run reports exactly the records left behind there.
func TestRealKafkaFailoverDrill(t *testing.T) {
	edge := testbed.StartKafka(t, testbed.Options{Name: "edge"})
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	createTopics(t, edge, 3, nil, "orders")
	cfg := writeConfig(t, edge, cloud, `  - name: up
    from: edge
    to: cloud
    topics: {include: ["orders"]}
    commit_interval: 100ms
    groups: {include: ["app-.*"], interval: 300ms}
`)
	a := startAgent(t, "agent", cfg)

	// The edge takes records all along, until its broker dies.
	ecl, err := edge.Client(kgo.DisableIdempotentWrite(), kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(3*time.Second), kgo.ProduceRequestTimeout(2*time.Second))
	require.NoError(t, err)
	defer ecl.Close()
	var (
		mu     sync.Mutex
		gate   sync.Mutex                     // held, it pauses the producer
		acked  = make(map[string]*kgo.Record) // by value
		stop   = make(chan struct{})
		g      errgroup.Group
		serial int
	)
	g.Go(func() error {
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			gate.Lock()
			gate.Unlock() //nolint:staticcheck // a pause point, nothing to guard
			recs := make([]*kgo.Record, 25)
			for i := range recs {
				serial++
				recs[i] = &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(serial % 13)), Value: []byte(fmt.Sprintf("order-%06d", serial))}
			}
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			res := ecl.ProduceSync(pctx, recs...)
			cancel()
			mu.Lock()
			for _, r := range res {
				if r.Err == nil {
					acked[string(r.Record.Value)] = r.Record
				}
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	})
	time.Sleep(3 * time.Second)
	// kcat consumes to the end: the producer pauses meanwhile.
	gate.Lock()
	edgeConsumed := kcatConsume(ctx, t, edge.Bootstrap(), "app-1", "orders")
	gate.Unlock()
	require.NotEmpty(t, edgeConsumed)
	time.Sleep(2 * time.Second) // the group syncs; the stream goes on
	edge.Brokers[0].Kill()
	close(stop)
	require.NoError(t, g.Wait())

	code, out := edgelinkCmd(t, ctx, "failover", "-c", cfg, "--link", "up", "--json", "--source-timeout", "5s", "--log-level", "error")
	require.Zero(t, code, out)
	var rep failoverReport
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep), out)
	require.True(t, rep.Fenced)
	require.False(t, rep.SourceReachable, "the edge broker is dead")
	require.Equal(t, int64(-1), rep.LeftBehind, "unknown while the source is gone")
	require.Len(t, rep.Partitions, 3)
	replicated := make(map[int32]int64)
	for _, p := range rep.Partitions {
		replicated[p.Partition] = p.Replicated
	}
	// The site's agents are stopped too, as an operator would: one still
	// running would start the link again once the edge answers.
	stopAgents(t, a)

	// The cloud holds exactly the acknowledged source records below the
	// reported positions, once each.
	mirror := readTopic(t, cloud, "orders")
	seen := make(map[string]int)
	for _, r := range mirror {
		o, found, err := provenance.Find(r)
		require.NoError(t, err)
		require.True(t, found)
		require.Less(t, o.Offset, replicated[r.Partition], "mirror record beyond the reported position")
		seen[string(r.Value)]++
	}
	var below, above int
	for v, r := range acked {
		switch {
		case r.Offset < replicated[r.Partition]:
			below++
			require.Equal(t, 1, seen[v], "record %s (offset %d of partition %d) at the cloud", v, r.Offset, r.Partition)
		default:
			above++
		}
	}
	require.Equal(t, len(mirror), len(seen), "no record twice at the cloud")
	t.Logf("%d records acknowledged at the edge: %d at the cloud, %d beyond the failover positions %v", len(acked), below, above, replicated)

	// The group resumes at the cloud: nothing consumed at the edge again,
	// nothing the cloud holds skipped.
	cloudConsumed := kcatConsume(ctx, t, cloud.Bootstrap(), "app-1", "orders")
	var atCloud []string
	for v := range seen {
		atCloud = append(atCloud, v)
	}
	skipped, repeated := compareConsumed(atCloud, edgeConsumed, cloudConsumed)
	t.Logf("group app-1: %d consumed at the edge, %d at the cloud: %d skipped, %d repeated", len(edgeConsumed), len(cloudConsumed), skipped, repeated)
	require.Zero(t, repeated)
	require.Zero(t, skipped)

	// The edge broker returns: a dry run reports exactly what was left
	// behind there.
	require.NoError(t, edge.Brokers[0].Start())
	require.NoError(t, edge.WaitReady(ctx))
	left := make(map[int32][]*kgo.Record)
	for _, r := range readTopic(t, edge, "orders") {
		if r.Offset >= replicated[r.Partition] {
			left[r.Partition] = append(left[r.Partition], r)
		}
	}
	code, out = edgelinkCmd(t, ctx, "failover", "-c", cfg, "--link", "up", "--json", "--dry-run", "--log-level", "error")
	require.Zero(t, code, out)
	rep = failoverReport{}
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep), out)
	require.True(t, rep.SourceReachable)
	var total int64
	for _, p := range rep.Partitions {
		require.Equal(t, replicated[p.Partition], p.Replicated, "the positions stay put: the link is fenced")
		ls := left[p.Partition]
		require.Equal(t, int64(len(ls)), p.LeftBehind, "partition %d", p.Partition)
		if len(ls) > 0 {
			require.Equal(t, ls[0].Timestamp.UTC(), p.FirstLeft.UTC())
			require.Equal(t, ls[len(ls)-1].Timestamp.UTC(), p.LastLeft.UTC())
		}
		total += p.LeftBehind
	}
	require.Equal(t, total, rep.LeftBehind)
	t.Logf("left behind at the edge: %d records", total)
}
