package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// ringTopic is the topic every cluster of the ring writes to and mirrors,
// under the same name everywhere.
const ringTopic = "telemetry"

// writeRingConfig writes the configuration of an agent that runs one link,
// from one cluster of the ring to the next, without renaming.
func writeRingConfig(t *testing.T, from, to *testbed.Cluster) string {
	t.Helper()
	y := fmt.Sprintf(`site: ring-%[1]s
clusters:
  %[1]s: {bootstrap: [%[3]q]}
  %[2]s: {bootstrap: [%[4]q]}
http: {listen: "127.0.0.1:0"}
links:
  - name: %[1]s-to-%[2]s
    from: %[1]s
    to: %[2]s
    topics: {include: [%[5]q]}
    start: earliest
`, from.Name, to.Name, strings.Join(from.Bootstrap(), ","), strings.Join(to.Bootstrap(), ","), ringTopic)
	p := filepath.Join(t.TempDir(), "edgelink.yaml")
	require.NoError(t, os.WriteFile(p, []byte(y), 0o600))
	return p
}

// ringLoad writes transactions of records with a unique id (header "id",
// "<cluster>/<n>") to ringTopic of c until ctx ends; every fourth
// transaction is aborted. It returns the ids of the committed records.
func ringLoad(ctx context.Context, c *testbed.Cluster) (map[string]bool, error) {
	cl, err := c.Client(kgo.TransactionalID("ring-load-"+c.Name), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	committed := make(map[string]bool)
	// A transaction begun is finished whatever ctx does.
	end := context.WithoutCancel(ctx)
	var failed error
	var mu sync.Mutex
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			failed = err
			mu.Unlock()
		}
	}
	n := 0
	for x := 0; ctx.Err() == nil; x++ {
		if err := cl.BeginTransaction(); err != nil {
			return nil, err
		}
		var ids []string
		for range 100 {
			id := fmt.Sprintf("%s/%d", c.Name, n)
			size := 50 + n%450
			if n%500 == 499 {
				size = 64 << 10
			}
			v := make([]byte, size)
			for j := range v {
				v[j] = byte('a' + (n+j)%26)
			}
			cl.Produce(end, &kgo.Record{
				Topic: ringTopic, Key: fmt.Appendf(nil, "machine-%d", n%17), Value: v,
				Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(id)}, {Key: "unit", Value: []byte("C")}},
			}, promise)
			ids = append(ids, id)
			n++
		}
		if err := cl.Flush(end); err != nil {
			return nil, err
		}
		mu.Lock()
		err := failed
		mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("produce: %w", err)
		}
		commit := kgo.TryCommit
		if x%4 == 3 {
			commit = kgo.TryAbort
		}
		if err := cl.EndTransaction(end, commit); err != nil {
			return nil, err
		}
		if commit == kgo.TryCommit {
			for _, id := range ids {
				committed[id] = true
			}
		}
	}
	return committed, nil
}

// ringIDs counts the records of ringTopic in c by id, reading until it has
// want records and then a moment more (anything beyond is a duplicate or
// an echo). It checks that no copy was in c before.
func ringIDs(t *testing.T, c *testbed.Cluster, want int) map[string]int {
	t.Helper()
	cl, err := c.Client(kgo.ConsumeTopics(ringTopic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	seen := make(map[string]int)
	total, quietSince := 0, time.Time{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, fe := range fs.Errors() {
			require.ErrorIs(t, fe.Err, context.DeadlineExceeded, "read %s", c.Name)
		}
		rs := fs.Records()
		for _, r := range rs {
			require.NotEmpty(t, r.Headers)
			require.Equal(t, "id", r.Headers[0].Key)
			seen[string(r.Headers[0].Value)]++
			total++
			o, found, err := provenance.Find(r)
			require.NoError(t, err)
			require.False(t, found && o.Visited(c.ID), "%s: a copy of %s had been in it before: %+v", c.Name, r.Headers[0].Value, o)
		}
		switch {
		case len(rs) > 0 || total < want:
			quietSince = time.Time{}
		case quietSince.IsZero():
			quietSince = time.Now()
		case time.Since(quietSince) > time.Second:
			return seen
		}
	}
	t.Fatalf("%s: %d records of %s read, want %d", c.Name, total, ringTopic, want)
	return nil
}

// TestRealKafkaRing: three clusters in a ring, edge-a → cloud → edge-b →
// edge-a, one `edgelink run` agent per link, identical topic names
// everywhere. Every cluster takes transactional load (a fourth of it
// aborted) for 20 seconds while the agents run. Then the checker finds,
// for each link, every record it must copy exactly once at its
// destination (lost 0, duplicated 0, echoed 0), and exactly the
// destination's own records kept out as loops; and every committed record
// produced anywhere is exactly once in every cluster, nothing else is.
func TestRealKafkaRing(t *testing.T) {
	began := time.Now()
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge-a"}, testbed.Options{Name: "cloud"}, testbed.Options{Name: "edge-b"})
	t.Logf("3 clusters started in %s", time.Since(began).Round(time.Millisecond))
	for _, c := range cs {
		createTopics(t, c, 3, nil, ringTopic)
	}
	var agents []*agent
	for i, c := range cs {
		next := cs[(i+1)%len(cs)]
		agents = append(agents, startAgent(t, c.Name+"-to-"+next.Name, writeRingConfig(t, c, next)))
	}

	loadStarted := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	committed := make([]map[string]bool, len(cs))
	var g errgroup.Group
	for i, c := range cs {
		g.Go(func() error {
			ids, err := ringLoad(ctx, c)
			if err != nil {
				return fmt.Errorf("load %s: %w", c.Name, err)
			}
			committed[i] = ids
			return nil
		})
	}
	require.NoError(t, g.Wait())
	total := 0
	for i, c := range cs {
		t.Logf("%s: %d committed records", c.Name, len(committed[i]))
		total += len(committed[i])
	}
	t.Logf("load ran %s", time.Since(loadStarted).Round(time.Millisecond))

	// Each link, checked record by record until it has caught up.
	caughtUp := time.Now()
	var wg sync.WaitGroup
	reps := make([]*verify.Report, len(cs))
	for i := range cs {
		// The link from i copies the records produced in i and those that
		// reached i from the cluster before it, and keeps out those of the
		// cluster after it, which went round.
		before, after := (i+len(cs)-1)%len(cs), (i+1)%len(cs)
		want := ringCounts{source: len(committed[i]) + len(committed[before]), looped: len(committed[after])}
		wg.Go(func() { reps[i] = checkRingLink(t, cs[i], cs[after], want, 60*time.Second) })
	}
	wg.Wait()
	t.Logf("links caught up and checked in %s", time.Since(caughtUp).Round(time.Millisecond))
	for i, rep := range reps {
		from, to := i, (i+1)%len(cs)
		before := (i + len(cs) - 1) % len(cs)
		require.NotNil(t, rep)
		requireClean(t, rep)
		require.Zero(t, rep.Echoed, "echoed")
		require.EqualValues(t, len(committed[from])+len(committed[before]), rep.SourceRecords, "%s: records to copy to %s", cs[from].Name, cs[to].Name)
		require.EqualValues(t, len(committed[to]), rep.Looped, "%s: records of %s kept out", cs[from].Name, cs[to].Name)
		require.EqualValues(t, len(committed[to]), rep.Foreign, "%s's own records", cs[to].Name)
		require.EqualValues(t, len(committed[from])+len(committed[before])+len(committed[to]), rep.DestinationRecords)
	}

	// Every committed record exactly once in every cluster; nothing else.
	for _, c := range cs {
		seen := ringIDs(t, c, total)
		require.Len(t, seen, total, "%s: distinct records", c.Name)
		for i := range cs {
			for id := range committed[i] {
				require.Equal(t, 1, seen[id], "%s holds %s", c.Name, id)
			}
		}
	}
	stopAgents(t, agents...)
	t.Logf("TestRealKafkaRing took %s", time.Since(began).Round(time.Millisecond))
}

// ringCounts is what the checker finds in the source of a link of the
// ring once every link has caught up: records to copy, records kept out.
type ringCounts struct{ source, looped int }

// checkRingLink runs the checker on the link from one cluster to the next
// until it reports no discrepancy and want, or timeout passes; the
// destination's own records are foreign to it. (Records still arrive in
// the source from the link before it until that one has caught up too.)
func checkRingLink(t *testing.T, from, to *testbed.Cluster, want ringCounts, timeout time.Duration) *verify.Report {
	src, err := from.Client()
	if err != nil {
		t.Error(err)
		return nil
	}
	defer src.Close()
	dst, err := to.Client()
	if err != nil {
		t.Error(err)
		return nil
	}
	defer dst.Close()
	deadline := time.Now().Add(timeout)
	for {
		rep, err := verify.Check(t.Context(), verify.Options{
			Source: src, Destination: dst, AllowForeign: true,
			Topics: []verify.Pair{{Source: ringTopic, Destination: ringTopic}},
		})
		if err != nil {
			t.Errorf("check %s to %s: %v", from.Name, to.Name, err)
			return nil
		}
		done := rep.OK() && rep.SourceRecords == int64(want.source) && rep.Looped == int64(want.looped) && rep.Ahead == 0
		if done || time.Now().After(deadline) || rep.Duplicated+rep.Reordered+rep.Corrupted+rep.Phantom+rep.Echoed > 0 {
			t.Logf("checker, %s to %s:\n%s", from.Name, to.Name, rep)
			return rep
		}
		time.Sleep(time.Second)
	}
}
