package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
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
	// The site's agent keeps running: failed over, the link waits for
	// failback, also once the edge answers again.

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
	// The site's applications write on meanwhile: left behind too.
	lcl, err := edge.Client()
	require.NoError(t, err)
	for i := range 50 {
		require.NoError(t, lcl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(i % 11)), Value: []byte(fmt.Sprintf("late-%03d", i))}).FirstErr())
	}
	lcl.Close()
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

	failback(t, ctx, a, cfg, edge, cloud, replicated, len(mirror), left)
}

// failbackReport is the part of `edgelink failback --json` the drill reads.
type failbackReport struct {
	Quarantined int64 `json:"quarantined"`
	CopiedBack  int64 `json:"copied_back"`
	Partitions  []struct {
		Partition   int32  `json:"partition"`
		Replicated  int64  `json:"replicated"`
		ResumeAt    int64  `json:"resume_at"`
		Quarantine  string `json:"quarantine"`
		Quarantined int64  `json:"quarantined"`
		MirrorEnd   int64  `json:"mirror_end"`
		CopiedTo    int64  `json:"copied_to"`
	} `json:"partitions"`
	Groups *struct {
		Returned  int `json:"returned"`
		Committed int `json:"committed"`
	} `json:"groups"`
}

// failback is the drill's second half. The cloud's applications write
// records of their own (app-1 consumes the first half of them there),
// while the edge, back, holds what was left behind and the agent waits.
// `edgelink failback` quarantines what was left behind, copies the
// cloud's records back, and returns app-1, which consumes at the edge
// exactly the cloud records it had not consumed; the agent resumes the
// link. Checker verdicts on both sides, and on the quarantine.
func failback(t *testing.T, ctx context.Context, a *agent, cfg string, edge, cloud *testbed.Cluster, replicated map[int32]int64, atCloud int, left map[int32][]*kgo.Record) {
	t.Helper()
	ccl, err := cloud.Client()
	require.NoError(t, err)
	defer ccl.Close()
	writeCloud := func(tag string, n int) []string {
		var vals []string
		recs := make([]*kgo.Record, n)
		for i := range recs {
			v := fmt.Sprintf("%s-%03d", tag, i)
			recs[i] = &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(i % 7)), Value: []byte(v)}
			vals = append(vals, v)
		}
		require.NoError(t, ccl.ProduceSync(ctx, recs...).FirstErr())
		return vals
	}
	consumedAtCloud := writeCloud("cloud-a", 40)
	got := kcatConsume(ctx, t, cloud.Bootstrap(), "app-1", "orders")
	require.ElementsMatch(t, consumedAtCloud, got, "app-1 consumes the cloud's records at the cloud")
	notConsumed := writeCloud("cloud-b", 40)

	// Failed over, the link waits though the edge is back: the cloud
	// holds nothing new from the edge.
	time.Sleep(3 * time.Second)
	fromEdge := 0
	for _, r := range readTopic(t, cloud, "orders") {
		if _, found, _ := provenance.Find(r); found {
			fromEdge++
		}
	}
	require.Equal(t, atCloud, fromEdge, "the failed-over link copied nothing more")
	testbed.Eventually(t, 30*time.Second, func() error {
		st, err := statusText(ctx, a)
		if err == nil && (!strings.Contains(st, "the link failed over") || !strings.Contains(st, `"state": "failed-over"`)) {
			err = errors.New("the agent's status does not say that the link failed over")
		}
		return err
	})

	code, out := edgelinkCmd(t, ctx, "failback", "-c", cfg, "--link", "up", "--json", "--log-level", "error")
	require.Zero(t, code, out)
	var rep failbackReport
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep), out)
	var leftTotal int
	for _, ls := range left {
		leftTotal += len(ls)
	}
	require.Equal(t, int64(leftTotal), rep.Quarantined)
	require.Equal(t, int64(len(consumedAtCloud)+len(notConsumed)), rep.CopiedBack)
	require.NotNil(t, rep.Groups)
	require.Equal(t, 1, rep.Groups.Returned)
	expectQuarantined := make(map[string]map[int32][]verify.Range)
	expectLeft := make(map[string]map[int32][]verify.Range)
	expectQuarantined["orders"], expectLeft["orders"] = make(map[int32][]verify.Range), make(map[int32][]verify.Range)
	for _, p := range rep.Partitions {
		require.Equal(t, replicated[p.Partition], p.Replicated)
		require.Equal(t, int64(len(left[p.Partition])), p.Quarantined, "partition %d", p.Partition)
		// What was not left behind is expected nowhere in quarantine; what
		// was is expected nowhere at the cloud.
		expectQuarantined["orders"][p.Partition] = []verify.Range{{From: 0, To: p.Replicated}, {From: p.ResumeAt, To: math.MaxInt64}}
		expectLeft["orders"][p.Partition] = []verify.Range{{From: p.Replicated, To: p.ResumeAt}}
	}

	// app-1 continues at the edge with exactly the cloud records it had
	// not consumed.
	atEdge := kcatConsume(ctx, t, edge.Bootstrap(), "app-1", "orders")
	require.ElementsMatch(t, notConsumed, atEdge, "app-1 at the edge after failback")

	// The agent resumes the link: the edge's new records reach the cloud,
	// the records copied back do not go there again.
	ecl, err := edge.Client()
	require.NoError(t, err)
	defer ecl.Close()
	for i := range 30 {
		require.NoError(t, ecl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint(i % 5)), Value: []byte(fmt.Sprintf("after-%03d", i))}).FirstErr())
	}
	verdict := func(name string, src, dst *testbed.Cluster, pair verify.Pair, expected map[string]map[int32][]verify.Range, within time.Duration) *verify.Report {
		sc, err := src.Client()
		require.NoError(t, err)
		defer sc.Close()
		dc, err := dst.Client()
		require.NoError(t, err)
		defer dc.Close()
		deadline := time.Now().Add(within)
		for {
			r, err := verify.Check(ctx, verify.Options{Source: sc, Destination: dc, Topics: []verify.Pair{pair}, AllowForeign: true, ExpectedLost: expected})
			require.NoError(t, err)
			if r.OK() || time.Now().After(deadline) {
				t.Logf("checker, %s:\n%s", name, r)
				requireClean(t, r)
				return r
			}
			time.Sleep(time.Second)
		}
	}
	up := verdict("edge to cloud", edge, cloud, verify.Pair{Source: "orders", Destination: "orders"}, expectLeft, 45*time.Second)
	require.EqualValues(t, leftTotal, up.ExpectedLost, "the records left behind, quarantined, are not at the cloud")
	require.EqualValues(t, rep.CopiedBack, up.Looped, "the records copied back are not copied to the cloud again")
	back := verdict("cloud to edge", cloud, edge, verify.Pair{Source: "orders", Destination: "orders"}, nil, 0)
	require.EqualValues(t, rep.CopiedBack, back.SourceRecords, "every record the cloud wrote (the link's copies there are looped) is at the edge once")
	q := verdict("edge to quarantine", edge, edge, verify.Pair{Source: "orders", Destination: link.QuarantineTopic("up", "orders")}, expectQuarantined, 0)
	require.EqualValues(t, leftTotal, q.SourceRecords-q.ExpectedLost, "every record left behind is in quarantine once")
}
