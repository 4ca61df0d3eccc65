package link_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

// loopCluster is one cluster of a loop test: its configuration name and
// Kafka cluster id.
type loopCluster struct {
	name, id string
	c        *kfake.Cluster
}

func (c *loopCluster) seeds() []string { return c.c.ListenAddrs() }

// startLoopClusters starts one kfake cluster per name, each with a cluster
// id of its own and the topic alerts (3 partitions).
func startLoopClusters(t *testing.T, names ...string) map[string]*loopCluster {
	t.Helper()
	out := make(map[string]*loopCluster)
	for _, n := range names {
		id := "cluster-" + n
		out[n] = &loopCluster{name: n, id: id, c: testbed.StartFake(t, kfake.ClusterID(id), kfake.SeedTopics(3, "alerts"))}
	}
	return out
}

// loopLink is a link of a loop test, from one cluster to another.
type loopLink struct{ from, to, rename string }

// runLoopLinks runs links between the clusters in the background, each
// selecting the topics include matches.
func runLoopLinks(t *testing.T, cs map[string]*loopCluster, links []loopLink, include string) []*link.Link {
	t.Helper()
	var y strings.Builder
	y.WriteString("site: plant-1\nclusters:\n")
	for _, n := range slices.Sorted(maps.Keys(cs)) {
		fmt.Fprintf(&y, "  %s: {bootstrap: [%q]}\n", n, strings.Join(cs[n].seeds(), ","))
	}
	y.WriteString("links:\n")
	for _, l := range links {
		fmt.Fprintf(&y, "  - name: %s-to-%s\n    from: %s\n    to: %s\n    topics: {include: [%q]}\n", l.from, l.to, l.from, l.to, include)
		if l.rename != "" {
			fmt.Fprintf(&y, "    rename: %q\n", l.rename)
		}
	}
	cfg, err := config.Parse("loops.yaml", []byte(y.String()))
	require.NoError(t, err, y.String())
	var out []*link.Link
	for _, lc := range cfg.Links {
		l := link.New(cfg, lc, fastOpts, testLogger(t))
		start(t, l)
		out = append(out, l)
	}
	return out
}

// produceIDs writes n records to alerts of c, spread over its partitions,
// each with a unique id (header "id" and value) and one more header; it
// returns the ids.
func produceIDs(t *testing.T, c *loopCluster, tag string, n int) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	var ids []string
	var recs []*kgo.Record
	for i := range n {
		id := fmt.Sprintf("%s/%s-%d", c.name, tag, i)
		ids = append(ids, id)
		recs = append(recs, &kgo.Record{
			Topic: "alerts", Partition: int32(i % 3), Value: []byte(id),
			Headers: []kgo.RecordHeader{{Key: "id", Value: []byte(id)}, {Key: "unit", Value: []byte("C")}},
		})
	}
	require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
	return ids
}

// clusterRecords reads every committed record of every topic of c but the
// internal ones (__…): once it has want records, until a poll brings
// nothing more (anything beyond want is a duplicate or an echo); short of
// want, until nothing came for 2 seconds.
func clusterRecords(t *testing.T, c *loopCluster, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ConsumeRegex(), kgo.ConsumeTopics(`^[^_].*`),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(100*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	last := time.Now()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
		rs := cl.PollFetches(ctx).Records()
		cancel()
		if len(rs) > 0 {
			out, last = append(out, rs...), time.Now()
			continue
		}
		if len(out) >= want || time.Since(last) > 2*time.Second {
			return out
		}
	}
}

// loopWorld is what a loop test expects: records produced in each cluster
// (by id), and where each record must be.
type loopWorld struct {
	clusters map[string]*loopCluster
	produced map[string][]string // cluster name -> ids produced there
	// path returns the clusters (names) a record produced in origin has
	// been in before it reaches cluster at, oldest first, and the topic
	// it is in there.
	path func(origin, at string) (chain []string, topic string)
}

// check reads every cluster and returns what is wrong, or nil: each
// produced record must be exactly once in every cluster, in its topic,
// intact, its provenance listing exactly the clusters it came through
// (never the one holding it).
func (w *loopWorld) check(t *testing.T) error {
	t.Helper()
	total := 0
	for _, ids := range w.produced {
		total += len(ids)
	}
	for _, at := range slices.Sorted(maps.Keys(w.clusters)) {
		c := w.clusters[at]
		seen := make(map[string]int)
		for _, r := range clusterRecords(t, c, total) {
			if len(r.Headers) == 0 || r.Headers[0].Key != "id" {
				return fmt.Errorf("%s: record %s[%d]@%d without an id", at, r.Topic, r.Partition, r.Offset)
			}
			id := string(r.Headers[0].Value)
			seen[id]++
			if seen[id] > 1 {
				return fmt.Errorf("%s holds %s %d times (%s[%d]@%d)", at, id, seen[id], r.Topic, r.Partition, r.Offset)
			}
			origin := id[:strings.IndexByte(id, '/')]
			chain, topic := w.path(origin, at)
			if r.Topic != topic {
				return fmt.Errorf("%s holds %s in %s, want %s", at, id, r.Topic, topic)
			}
			if string(r.Value) != id || len(r.Headers) < 2 || string(r.Headers[1].Value) != "C" {
				return fmt.Errorf("%s: %s is not intact: value %q, headers %v", at, id, r.Value, r.Headers)
			}
			var srcHeaders int
			for _, h := range r.Headers {
				if h.Key == provenance.Key {
					srcHeaders++
				}
			}
			if origin == at {
				if srcHeaders != 0 {
					return fmt.Errorf("%s: %s, produced there, has a provenance header", at, id)
				}
				continue
			}
			o, found, err := provenance.Find(r)
			if err != nil || !found || srcHeaders != 1 || len(r.Headers) != 3 {
				return fmt.Errorf("%s: %s has %d provenance headers among %d (err: %w)", at, id, srcHeaders, len(r.Headers), err)
			}
			var ids []string
			for _, n := range chain {
				ids = append(ids, w.clusters[n].id)
			}
			if got := append(slices.Clone(o.Hops), o.ClusterID); !slices.Equal(got, ids) {
				return fmt.Errorf("%s: %s has been in %v by its provenance, want %v", at, id, got, ids)
			}
			if o.Visited(c.id) || o.First() != w.clusters[origin].id {
				return fmt.Errorf("%s: %s echoed: provenance %+v", at, id, o)
			}
		}
		for origin, ids := range w.produced {
			for _, id := range ids {
				if seen[id] != 1 {
					return fmt.Errorf("%s holds %s (produced in %s) %d times", at, id, origin, seen[id])
				}
			}
		}
		if len(seen) != total {
			return fmt.Errorf("%s holds %d records, %d were produced", at, len(seen), total)
		}
	}
	return nil
}

// runLoopWorld produces records in every cluster, before and while the
// links run, and waits until every record is exactly once in every
// cluster and each link skipped, as loops, exactly the records produced in
// its destination; then it checks that nothing more arrives.
func runLoopWorld(t *testing.T, w *loopWorld, links []loopLink, include string) {
	t.Helper()
	w.produced = make(map[string][]string)
	for n, c := range w.clusters {
		w.produced[n] = produceIDs(t, c, "before", 90)
	}
	running := runLoopLinks(t, w.clusters, links, include)
	for n, c := range w.clusters {
		w.produced[n] = append(w.produced[n], produceIDs(t, c, "during", 120)...)
	}
	testbed.Eventually(t, 30*time.Second, func() error {
		if err := w.check(t); err != nil {
			return err
		}
		for i, l := range running {
			want := int64(len(w.produced[links[i].to]))
			if got := l.Status().SkippedLoops; got != want {
				return fmt.Errorf("link %s-to-%s skipped %d records as loops, want %d (those produced in %s)", links[i].from, links[i].to, got, want, links[i].to)
			}
		}
		return nil
	})
	// Nothing more comes: no late echo.
	time.Sleep(time.Second)
	require.NoError(t, w.check(t))
	for i, l := range running {
		st := l.Status()
		require.EqualValues(t, len(w.produced[links[i].to]), st.SkippedLoops)
		require.Empty(t, st.LastError, "link %d", i)
		t.Logf("link %s-to-%s: %d records copied, %d skipped as loops", links[i].from, links[i].to, st.Records, st.SkippedLoops)
	}
}

// TestActiveActiveIdenticalNamesFake: links both ways between two
// clusters, on the same topic names, records produced on both sides before
// and while they run: each cluster ends with every record exactly once,
// and each link skipped the other's copies.
func TestActiveActiveIdenticalNamesFake(t *testing.T) {
	w := &loopWorld{
		clusters: startLoopClusters(t, "a", "b"),
		path: func(origin, _ string) ([]string, string) {
			return []string{origin}, "alerts"
		},
	}
	runLoopWorld(t, w, []loopLink{{from: "a", to: "b"}, {from: "b", to: "a"}}, "alerts")
}

// ring is the order of the clusters of a ring: each links to the next,
// the last to the first (edge-a → cloud → edge-b → edge-a).
var ring = []string{"a", "c", "b"}

// ringPath is where a record produced in origin is at cluster at: the
// clusters of the ring from origin up to at, and its topic there.
func ringPath(origin, at string, prefixed bool) ([]string, string) {
	i, j := slices.Index(ring, origin), slices.Index(ring, at)
	var chain []string
	for k := i; k != j; k = (k + 1) % len(ring) {
		chain = append(chain, ring[k])
	}
	topic := "alerts"
	if prefixed {
		for _, n := range chain {
			topic = n + "." + topic
		}
	}
	return chain, topic
}

func ringLinks(prefixed bool) []loopLink {
	var out []loopLink
	for i, from := range ring {
		l := loopLink{from: from, to: ring[(i+1)%len(ring)]}
		if prefixed {
			l.rename = from + ".{topic}"
		}
		out = append(out, l)
	}
	return out
}

// TestRingIdenticalNamesFake: three clusters in a ring, identical topic
// names: every record reaches every cluster exactly once and stops before
// it would come back where it was produced.
func TestRingIdenticalNamesFake(t *testing.T) {
	w := &loopWorld{
		clusters: startLoopClusters(t, ring...),
		path:     func(origin, at string) ([]string, string) { return ringPath(origin, at, false) },
	}
	runLoopWorld(t, w, ringLinks(false), "alerts")
}

// TestRingPrefixedNamesFake: the same ring with each link prefixing its
// mirror topics, and topic selections that take the prefixed topics in
// too (names grow by one prefix a hop; the selection stops them at three
// parts so that the empty mirror topics of looped records do not grow
// without end): loops are prevented by provenance, not by names.
func TestRingPrefixedNamesFake(t *testing.T) {
	w := &loopWorld{
		clusters: startLoopClusters(t, ring...),
		path:     func(origin, at string) ([]string, string) { return ringPath(origin, at, true) },
	}
	runLoopWorld(t, w, ringLinks(true), `[^.]+(\.[^.]+){0,2}`)
}

// TestTooManyHopsFake: a record that has crossed more links than a
// provenance header lists stops the link under on_error: stop, and is
// recorded as skipped under skip-and-record; a record at the limit is
// copied with every hop.
func TestTooManyHopsFake(t *testing.T) {
	chain := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("hop-%02d", i))
		}
		return out
	}
	atLimit := provenance.Origin{ClusterID: "hop-15", Hops: chain(provenance.MaxHops - 1)}
	over := provenance.Origin{ClusterID: "hop-16", Hops: chain(provenance.MaxHops)}
	for _, policy := range []config.OnError{config.OnErrorStop, config.OnErrorSkip} {
		t.Run(string(policy), func(t *testing.T) {
			src := testbed.StartFake(t, kfake.ClusterID("src"), kfake.SeedTopics(1, "alerts"))
			dst := testbed.StartFake(t, kfake.ClusterID("dst"))
			cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    on_error: "+string(policy))
			produceRecords(t, src.ListenAddrs(),
				&kgo.Record{Topic: "alerts", Value: []byte("at the limit"), Headers: []kgo.RecordHeader{atLimit.Header()}},
				&kgo.Record{Topic: "alerts", Value: []byte("over"), Headers: []kgo.RecordHeader{{Key: "k", Value: []byte("v")}, over.Header()}},
				&kgo.Record{Topic: "alerts", Value: []byte("plain")})
			l, stop := runLink(t, cfg, fastOpts)
			if policy == config.OnErrorStop {
				err := stopWhenFailed(t, l, stop)
				require.ErrorIs(t, err, provenance.ErrTooManyHops)
				require.ErrorContains(t, err, "alerts[0] offset 1")
				require.ErrorContains(t, err, "been in 17 clusters before this one (hop-00, hop-01")
				require.ErrorContains(t, err, "shorten it")
				got := readAll(t, dst.ListenAddrs(), "alerts", 0)
				require.LessOrEqual(t, len(got), 1, "nothing from it on is replicated")
				for _, r := range got {
					require.Equal(t, "at the limit", string(r.Value))
				}
				return
			}
			got := readAll(t, dst.ListenAddrs(), "alerts", 2)
			require.Len(t, got, 2)
			require.Equal(t, "at the limit", string(got[0].Value))
			o, _, err := provenance.Find(got[0])
			require.NoError(t, err)
			require.Equal(t, append(chain(provenance.MaxHops-1), "hop-15"), o.Hops)
			require.Equal(t, "src", o.ClusterID)
			require.Equal(t, "plain", string(got[1].Value))
			skipped := readAll(t, dst.ListenAddrs(), link.SkippedTopic, 1)
			require.Len(t, skipped, 1)
			require.Contains(t, string(skipped[0].Value), `"offset":1`)
			require.Contains(t, string(skipped[0].Value), "crossed too many links")
			require.EqualValues(t, 1, l.Status().SkippedRecords)
			require.NoError(t, stop())
		})
	}
}
