package e2e_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// The fleet scenarios: many sites run the same configuration template, with
// the same link name, into one real cloud cluster. A link is identified by
// (site, link name); nothing one site does (a crash, a restart, an open
// transaction on the shared checkpoint topic) may change what another site
// reads or writes.

const (
	fleetLink       = "telemetry-up"
	checkpointTopic = "__edgelink.checkpoints"
)

// fleetLinkYAML is the link every site of a fleet runs.
func fleetLinkYAML(commitInterval time.Duration) string {
	return fmt.Sprintf(`  - name: %s
    from: edge
    to: cloud
    topics:
      include: ['sensors\..*']
    rename: "{site}.{topic}"
    commit_interval: %s
`, fleetLink, commitInterval)
}

// writeSiteConfig writes the configuration of one site of a fleet.
func writeSiteConfig(t *testing.T, site string, edge, cloud []string, linkYAML string) string {
	t.Helper()
	quote := func(addrs []string) string {
		q := make([]string, len(addrs))
		for i, a := range addrs {
			q[i] = fmt.Sprintf("%q", a)
		}
		return strings.Join(q, ", ")
	}
	y := fmt.Sprintf(`site: %s
clusters:
  edge: {bootstrap: [%s]}
  cloud: {bootstrap: [%s]}
http: {listen: "127.0.0.1:0"}
links:
%s`, site, quote(edge), quote(cloud), linkYAML)
	p := filepath.Join(t.TempDir(), site+".yaml")
	require.NoError(t, os.WriteFile(p, []byte(y), 0o600))
	return p
}

// site is one edge location of a fleet: its in-process kfake edge cluster,
// the agents started for it (the last one is the current one) and its load.
type site struct {
	name   string
	edge   *kfake.Cluster
	cfg    string
	topics []string
	load   siteLoad

	agents  []*agent
	started []time.Time // when each agent was started
}

func newSite(t *testing.T, name string, cloud *testbed.Cluster, topics []string, partitions int32, linkYAML string) *site {
	t.Helper()
	edge := testbed.StartFake(t, kfake.ClusterID("edge-"+name), kfake.SeedTopics(partitions, topics...))
	return &site{
		name:   name,
		edge:   edge,
		cfg:    writeSiteConfig(t, name, edge.ListenAddrs(), cloud.Bootstrap(), linkYAML),
		topics: topics,
	}
}

func (s *site) current() *agent { return s.agents[len(s.agents)-1] }

// start starts a new agent for the site.
func (s *site) start(t *testing.T) *agent {
	t.Helper()
	s.started = append(s.started, time.Now())
	a := startAgent(t, fmt.Sprintf("%s#%d", s.name, len(s.agents)), s.cfg)
	s.agents = append(s.agents, a)
	return a
}

// pairs are the site's source topics and their mirrors in the cloud.
func (s *site) pairs() []verify.Pair {
	out := make([]verify.Pair, len(s.topics))
	for i, tp := range s.topics {
		out[i] = verify.Pair{Source: tp, Destination: s.name + "." + tp}
	}
	return out
}

// liveAt returns when the site's i-th agent first logged that its link was
// live, and whether it did.
func (s *site) liveAt(i int) (time.Duration, bool) {
	for _, m := range s.agents[i].logsWith("link state changed") {
		if m["to"] != "live" {
			continue
		}
		ts, _ := m["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return 0, false
		}
		return at.Sub(s.started[i]), true
	}
	return 0, false
}

// waitLive waits until the site's current agent reports its link live and
// returns how long that took from its start; it fails the test when the
// agent exits or bound passes first.
func (s *site) waitLive(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	a, i := s.current(), len(s.agents)-1
	deadline := s.started[i].Add(bound)
	for {
		if d, ok := s.liveAt(i); ok {
			return d
		}
		select {
		case <-a.done:
			t.Fatalf("agent %s exited before its link was live: %v", a.name, a.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s: link not live %s after the start", a.name, bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requireNoFalseAlarm fails the test when any agent the site ran was fenced,
// stopped a link, or took a topic for deleted and created again.
func (s *site) requireNoFalseAlarm(t *testing.T) {
	t.Helper()
	for _, a := range s.agents {
		for _, bad := range []string{"fenced", "deleted and created again", "every link stopped"} {
			require.Empty(t, a.logsWith(bad), "agent %s logged %q", a.name, bad)
		}
		for _, m := range a.logsWith("link stopped") {
			require.NotEqual(t, "link stopped", m["msg"], "agent %s stopped its link: %v", a.name, m)
		}
		a.mu.Lock()
		raw := a.raw.String()
		a.mu.Unlock()
		for _, bad := range []string{"fenced", "created again", "another instance"} {
			require.NotContains(t, strings.ToLower(raw), bad, "agent %s log mentions %q", a.name, bad)
		}
	}
}

// statusText returns the text of the running agent's /api/v1/status.
func statusText(ctx context.Context, a *agent) (string, error) {
	var url string
	for _, m := range a.logsWith("http server listening") {
		url, _ = m["url"].(string)
	}
	if url == "" {
		return "", fmt.Errorf("agent %s has not logged its status URL", a.name)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+"/api/v1/status", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// requireCleanEvents fails the test when the running agent's status API
// shows a fence or a topic deleted and created again among its events.
func requireCleanEvents(t *testing.T, a *agent) {
	t.Helper()
	txt, err := statusText(t.Context(), a)
	require.NoError(t, err)
	require.NotContains(t, txt, "created again", "agent %s status events", a.name)
	require.NotContains(t, strings.ToLower(txt), "fenced", "agent %s status events", a.name)
}

// stopAgents sends SIGTERM to every agent at once and requires each to exit
// 0 within 10 s.
func stopAgents(t *testing.T, as ...*agent) {
	t.Helper()
	codes := make([]int, len(as))
	took := make([]time.Duration, len(as))
	var wg sync.WaitGroup
	for i, a := range as {
		requireRunning(t, a)
		wg.Go(func() { codes[i], took[i] = a.stop() })
	}
	wg.Wait()
	for i, a := range as {
		require.Equal(t, 0, codes[i], "exit status of %s after SIGTERM", a.name)
		require.Less(t, took[i], 10*time.Second, "SIGTERM exit time of %s", a.name)
	}
}

// siteLoad is the steady load at one site: small keyed records with headers
// and transactions of which every fourth aborts.
type siteLoad struct {
	plain, committed, aborted atomic.Int64

	mu      sync.Mutex
	journal []string // one line per transaction: when it ended, how, where
}

// note adds a line to the load's journal.
func (l *siteLoad) note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.journal = append(l.journal, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

func (l *siteLoad) total() int64 { return l.plain.Load() + l.committed.Load() }

// smallRecord is a record of 10 B to 1 KB with a key (or none), a value (or
// none) and two headers.
func smallRecord(rng *rand.Rand, topic, tag string, i int) *kgo.Record {
	v := make([]byte, 10+rng.IntN(990))
	for j := range v {
		v[j] = byte('a' + (i+j)%26)
	}
	r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "machine-%d", rng.IntN(40)), Value: v}
	switch i % 10 {
	case 3:
		r.Key = nil
	case 5:
		r.Value = nil
	}
	r.Headers = []kgo.RecordHeader{{Key: "seq", Value: fmt.Appendf(nil, "%s-%d", tag, i)}, {Key: "unit", Value: []byte("C")}}
	return r
}

// run produces to the site's edge every tick (perTick plain records, and
// every third tick a transaction of perTick records) until stop ends; the
// produce requests themselves run under ctx, so no transaction is cut short
// by stop.
func (l *siteLoad) run(ctx, stop context.Context, seeds []string, topics []string, tick time.Duration, perTick int, seed uint64) error {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ProducerLinger(2 * time.Millisecond)}
	plain, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer plain.Close()
	txn, err := kgo.NewClient(append(opts, kgo.TransactionalID(fmt.Sprintf("load-%d", seed)))...)
	if err != nil {
		return err
	}
	defer txn.Close()
	rng := rand.New(rand.NewPCG(seed, 7))
	n, txns := 0, 0
	for i := 0; stop.Err() == nil; i++ {
		recs := make([]*kgo.Record, perTick)
		for j := range recs {
			recs[j] = smallRecord(rng, topics[n%len(topics)], "p", n)
			n++
		}
		if err := plain.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		l.plain.Add(int64(len(recs)))
		if i%3 == 2 {
			if err := txn.BeginTransaction(); err != nil {
				return err
			}
			var (
				failed atomic.Pointer[error]
				omu    sync.Mutex
				offs   []string
			)
			for j := range perTick {
				txn.Produce(ctx, smallRecord(rng, topics[txns%len(topics)], "t", txns*perTick+j), func(r *kgo.Record, err error) {
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					omu.Lock()
					offs = append(offs, fmt.Sprintf("%s[%d]@%d", r.Topic, r.Partition, r.Offset))
					omu.Unlock()
				})
			}
			if err := txn.Flush(ctx); err != nil {
				return err
			}
			if p := failed.Load(); p != nil {
				return fmt.Errorf("produce in a transaction: %w", *p)
			}
			commit := kgo.TryCommit
			if txns%4 == 3 {
				commit = kgo.TryAbort
			}
			if err := txn.EndTransaction(ctx, commit); err != nil {
				return fmt.Errorf("end transaction: %w", err)
			}
			slices.Sort(offs)
			l.note("transaction %d %s: %s", txns, map[kgo.TransactionEndTry]string{kgo.TryCommit: "committed", kgo.TryAbort: "aborted"}[commit], strings.Join(offs, " "))
			if commit == kgo.TryCommit {
				l.committed.Add(int64(perTick))
			} else {
				l.aborted.Add(int64(perTick))
			}
			txns++
		}
		select {
		case <-stop.Done():
		case <-time.After(tick):
		}
	}
	return nil
}

// checkClients is checkUntilClean with the caller's clients (the edge may
// be a kfake cluster); it logs the report under name.
func checkClients(t *testing.T, name string, src, dst *kgo.Client, pairs []verify.Pair, timeout time.Duration) *verify.Report {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rep, err := verify.Check(t.Context(), verify.Options{Source: src, Destination: dst, Topics: pairs, Examples: 40})
		require.NoError(t, err)
		if rep.OK() || time.Now().After(deadline) || rep.Duplicated+rep.Reordered+rep.Corrupted+rep.Phantom > 0 {
			if !rep.OK() {
				t.Logf("checker %s:\n%s", name, rep)
			}
			return rep
		}
		time.Sleep(time.Second)
	}
}

// checkSite checks the site's mirrors in the cloud and requires 0/0/0 and
// every produced record present exactly once.
func checkSite(t *testing.T, s *site, dst *kgo.Client, timeout time.Duration) *verify.Report {
	t.Helper()
	src, err := kgo.NewClient(kgo.SeedBrokers(s.edge.ListenAddrs()...))
	require.NoError(t, err)
	defer src.Close()
	rep := checkClients(t, s.name, src, dst, s.pairs(), timeout)
	if !rep.OK() {
		s.load.mu.Lock()
		t.Logf("%s: transactions of the load:\n%s", s.name, strings.Join(s.load.journal, "\n"))
		s.load.mu.Unlock()
		for i, a := range s.agents {
			t.Logf("%s: agent %s started %s", s.name, a.name, s.started[i].Format("15:04:05.000"))
		}
	}
	requireClean(t, rep)
	require.EqualValues(t, s.load.total(), rep.SourceRecords, "%s: committed records at the source", s.name)
	require.EqualValues(t, rep.SourceRecords, rep.DestinationRecords, "%s: records in the cloud", s.name)
	return rep
}

// openForeignTransaction starts a transaction under its own transactional
// id that writes one record, shaped like another site's checkpoint, into
// every partition of the checkpoint topic, and leaves it open until the
// test ends. It returns the number of partitions it holds open.
func openForeignTransaction(t *testing.T, cloud *testbed.Cluster, id string) int {
	t.Helper()
	cl, err := cloud.Client(
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(5*time.Minute),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cl.EndTransaction(ctx, kgo.TryAbort)
		cl.Close()
	})
	adm := kadm.NewClient(cl)
	tds, err := adm.ListTopics(t.Context(), checkpointTopic)
	require.NoError(t, err)
	td, ok := tds[checkpointTopic]
	require.True(t, ok && td.Err == nil, "checkpoint topic %s: %v", checkpointTopic, td.Err)
	n := len(td.Partitions)
	require.NoError(t, cl.BeginTransaction())
	for p := range n {
		r := &kgo.Record{
			Topic:     checkpointTopic,
			Partition: int32(p),
			Key:       fmt.Appendf(nil, "%s:%s/sensors.temp/%d", id, fleetLink, p),
			Value:     []byte(`{"next":1,"gen":1}`),
		}
		require.NoError(t, cl.ProduceSync(t.Context(), r).FirstErr())
	}
	// The transaction is open: every partition's last stable offset stays
	// below its high watermark.
	ends, err := adm.ListEndOffsets(t.Context(), checkpointTopic)
	require.NoError(t, err)
	stable, err := adm.ListCommittedOffsets(t.Context(), checkpointTopic)
	require.NoError(t, err)
	for p := range n {
		e, _ := ends.Lookup(checkpointTopic, int32(p))
		s, _ := stable.Lookup(checkpointTopic, int32(p))
		require.Less(t, s.Offset, e.Offset, "partition %d: the foreign transaction should hold the last stable offset back", p)
	}
	return n
}

// durations formats a list of durations as "min / median / max (n)".
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	return fmt.Sprintf("min %s, median %s, max %s (%d)", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]), len(s))
}

// TestRealKafkaTwoSitesShareOneCloud: two sites with the same link name
// (telemetry-up) and the same source topics replicate into one real cloud
// cluster under "{site}.{topic}", while their agents are started, stopped,
// restarted and killed in every order and load keeps arriving at both
// edges. Each site mirrors exactly once; no agent is fenced, stops, or
// takes a topic for deleted and created again; every SIGTERM exits 0.
func TestRealKafkaTwoSitesShareOneCloud(t *testing.T) {
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	topics := []string{"sensors.temp", "sensors.vibration"}
	linkYAML := fleetLinkYAML(200 * time.Millisecond)
	a := newSite(t, "plant-a", cloud, topics, 3, linkYAML)
	b := newSite(t, "plant-b", cloud, topics, 3, linkYAML)
	sites := []*site{a, b}

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	g, gctx := errgroup.WithContext(ctx)
	for i, s := range sites {
		g.Go(func() error {
			return s.load.run(gctx, producing, s.edge.ListenAddrs(), s.topics, 100*time.Millisecond, 5, uint64(10+i))
		})
	}

	var live []time.Duration
	bound := 30 * time.Second
	step := func(format string, args ...any) {
		t.Logf(time.Now().Format("15:04:05.000 ")+"two sites: "+format+" (records: plant-a %d, plant-b %d)", append(args, a.load.total(), b.load.total())...)
	}
	waitLive := func(ss ...*site) {
		for _, s := range ss {
			live = append(live, s.waitLive(t, bound))
		}
	}
	checkEvents := func() {
		for _, s := range sites {
			requireCleanEvents(t, s.current())
		}
	}

	step("start A, then B")
	a.start(t)
	waitLive(a)
	b.start(t)
	waitLive(b)
	time.Sleep(2 * time.Second)
	checkEvents()

	step("stop both; start B, then A")
	stopAgents(t, a.current(), b.current())
	b.start(t)
	waitLive(b)
	a.start(t)
	waitLive(a)
	time.Sleep(2 * time.Second)
	checkEvents()

	step("restart both at once")
	stopAgents(t, a.current(), b.current())
	a.start(t)
	b.start(t)
	waitLive(a, b)
	time.Sleep(2 * time.Second)
	checkEvents()

	step("kill -9 A while B runs")
	a.current().kill()
	time.Sleep(time.Second)
	a.start(t)
	waitLive(a)
	time.Sleep(time.Second)
	requireRunning(t, b.current())

	step("kill -9 B while A runs")
	b.current().kill()
	time.Sleep(time.Second)
	b.start(t)
	waitLive(b)
	time.Sleep(time.Second)
	requireRunning(t, a.current())

	step("kill -9 both; start B, then A")
	a.current().kill()
	b.current().kill()
	b.start(t)
	time.Sleep(500 * time.Millisecond)
	a.start(t)
	waitLive(b, a)
	time.Sleep(2 * time.Second)
	checkEvents()

	stopProducing()
	require.NoError(t, g.Wait(), "load")
	step("load stopped")

	dst, err := cloud.Client()
	require.NoError(t, err)
	defer dst.Close()
	for _, s := range sites {
		rep := checkSite(t, s, dst, time.Minute)
		t.Logf("%s: %d plain and %d committed transactional records (%d aborted) at the edge; %d in the cloud; %d agents",
			s.name, s.load.plain.Load(), s.load.committed.Load(), s.load.aborted.Load(), rep.DestinationRecords, len(s.agents))
	}
	checkEvents()
	stopAgents(t, a.current(), b.current())
	for _, s := range sites {
		s.requireNoFalseAlarm(t)
	}
	t.Logf("time to live after a start: %s", durations(live))
}

// TestRealKafkaForeignOpenTransactionOnCheckpoints: a link mirrors into a
// real cloud; a foreign transactional producer then leaves a transaction
// open on every partition of the checkpoint topic. The agent is killed with
// SIGKILL and restarted three times with records arriving meanwhile (some
// from kcat): each time the link resumes from its latest checkpoints, not
// from those below the open transaction, becomes live within 30 s, and the
// mirror holds every record exactly once.
func TestRealKafkaForeignOpenTransactionOnCheckpoints(t *testing.T) {
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	topics := []string{"sensors.temp", "sensors.vibration"}
	s := newSite(t, "plant-a", cloud, topics, 3, fleetLinkYAML(100*time.Millisecond))
	dst, err := cloud.Client()
	require.NoError(t, err)
	defer dst.Close()
	src, err := kgo.NewClient(kgo.SeedBrokers(s.edge.ListenAddrs()...))
	require.NoError(t, err)
	defer src.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	burst := func(n int, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 1))
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = smallRecord(rng, topics[i%len(topics)], fmt.Sprintf("b%d", seed), i)
		}
		require.NoError(t, src.ProduceSync(ctx, recs...).FirstErr())
		s.load.plain.Add(int64(n))
	}
	mirrored := func(what string) {
		rep := checkClients(t, s.name, src, dst, s.pairs(), time.Minute)
		requireClean(t, rep)
		require.EqualValues(t, s.load.total(), rep.DestinationRecords, "%s: records in the cloud", what)
		t.Logf("%s: %d records at the edge, %d in the cloud, checker 0/0/0", what, rep.SourceRecords, rep.DestinationRecords)
	}

	burst(300, 1)
	s.start(t)
	live := []time.Duration{s.waitLive(t, 30*time.Second)}
	mirrored("before the foreign transaction")

	n := openForeignTransaction(t, cloud, "foreign-open-1")
	t.Logf("a foreign transaction holds all %d partitions of %s open", n, checkpointTopic)
	// Checkpoints written now sit above the open transaction: a restart
	// that read only to the last stable offset would resume from older ones
	// and copy these records again.
	burst(200, 2)
	mirrored("after the foreign transaction opened")

	for restart := 1; restart <= 3; restart++ {
		switch restart {
		case 1: // killed while idle, records arrive while it is down
			s.current().kill()
			burst(200, 10+uint64(restart))
		case 2: // killed under load
			producing, stopProducing := context.WithCancel(ctx)
			var g errgroup.Group
			g.Go(func() error {
				return s.load.run(ctx, producing, s.edge.ListenAddrs(), topics, 50*time.Millisecond, 10, 20)
			})
			time.Sleep(3 * time.Second)
			s.current().kill()
			time.Sleep(time.Second)
			stopProducing()
			require.NoError(t, g.Wait())
		case 3: // a third-party client writes while the agent is down
			s.current().kill()
			kcatProduce(ctx, t, s, "sensors.temp", 150)
		}
		s.start(t)
		d := s.waitLive(t, 30*time.Second)
		live = append(live, d)
		t.Logf("restart %d: live %s after the start", restart, d.Round(10*time.Millisecond))
		burst(100, 30+uint64(restart))
		mirrored(fmt.Sprintf("after restart %d", restart))
		requireRunning(t, s.current())
	}
	requireCleanEvents(t, s.current())
	stopAgents(t, s.current())
	s.requireNoFalseAlarm(t)
	t.Logf("%d plain and %d committed transactional records (%d aborted); time to live: %s",
		s.load.plain.Load(), s.load.committed.Load(), s.load.aborted.Load(), durations(live))
}

// kcatProduce writes n records with kcat (librdkafka) to the site's edge.
func kcatProduce(ctx context.Context, t *testing.T, s *site, topic string, n int) {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Logf("kcat is not installed (scripts/setup installs it): producing with franz-go instead")
		rng := rand.New(rand.NewPCG(99, 1))
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.edge.ListenAddrs()...))
		require.NoError(t, err)
		defer cl.Close()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = smallRecord(rng, topic, "k", i)
		}
		require.NoError(t, cl.ProduceSync(ctx, recs...).FirstErr())
		s.load.plain.Add(int64(n))
		return
	}
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "machine-%d|kcat-%d\n", i%7, i)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, kcat, "-P", "-b", strings.Join(s.edge.ListenAddrs(), ","), "-t", topic, "-K", "|")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "kcat: %s", out)
	s.load.plain.Add(int64(n))
}

// TestRealKafkaTwentySitesChaos: 20 sites, each an agent with its own kfake
// edge and the same configuration template, replicate into one real cloud
// cluster under steady load, while 20 SIGKILLs fall at random sites (each
// restarted after a short random delay) and foreign transactions stay open
// on every partition of the checkpoint topic. Every site's mirror must then
// hold every record exactly once, in order.
func TestRealKafkaTwentySitesChaos(t *testing.T) {
	const nSites, kills = 20, 20
	cloud := testbed.StartKafka(t, testbed.Options{Name: "cloud"})
	topics := []string{"sensors.a", "sensors.b"}
	linkYAML := fleetLinkYAML(500 * time.Millisecond)
	sites := make([]*site, nSites)
	for i := range sites {
		sites[i] = newSite(t, fmt.Sprintf("site-%02d", i+1), cloud, topics, 2, linkYAML)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	g, gctx := errgroup.WithContext(ctx)
	for i, s := range sites {
		g.Go(func() error {
			return s.load.run(gctx, producing, s.edge.ListenAddrs(), s.topics, 500*time.Millisecond, 2, uint64(100+i))
		})
	}
	began := time.Now()
	for _, s := range sites {
		s.start(t)
	}
	for _, s := range sites {
		s.waitLive(t, time.Minute)
	}
	t.Logf("20 sites live %s after the first start", time.Since(began).Round(100*time.Millisecond))
	n := openForeignTransaction(t, cloud, "foreign-open-1")
	t.Logf("foreign transaction 1 holds all %d partitions of %s open", n, checkpointTopic)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	type restart struct {
		s  *site
		at time.Time
	}
	var (
		pending []restart
		down    = map[*site]bool{}
		killed  []string
	)
	nextKill := time.Now().Add(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	for k := 0; k < kills || len(pending) > 0; {
		// The next event: the earliest restart due, or the next kill.
		slices.SortFunc(pending, func(x, y restart) int { return x.at.Compare(y.at) })
		if len(pending) > 0 && (k >= kills || pending[0].at.Before(nextKill)) {
			r := pending[0]
			pending = pending[1:]
			time.Sleep(time.Until(r.at))
			r.s.start(t)
			delete(down, r.s)
			continue
		}
		time.Sleep(time.Until(nextKill))
		// A site's agent is killed again only once it had time to join its
		// group (a restarted agent waits for the killed one's session to
		// expire). The sites' edges are kfake clusters, whose group
		// coordinator keeps a member that died while its JoinGroup waited
		// for ever (it sets no session timer when the join's answer cannot
		// be delivered); Kafka expires such a member after its session
		// timeout, which the real-Kafka takeover tests show.
		var up []*site
		for _, s := range sites {
			if !down[s] && time.Since(s.started[len(s.started)-1]) > 12*time.Second {
				up = append(up, s)
			}
		}
		if len(up) == 0 {
			nextKill = time.Now().Add(time.Second)
			continue
		}
		s := up[rng.IntN(len(up))]
		requireRunning(t, s.current())
		s.current().kill()
		down[s] = true
		k++
		killed = append(killed, s.name)
		pending = append(pending, restart{s, time.Now().Add(time.Duration(200+rng.IntN(2800)) * time.Millisecond)})
		if k == kills/2 {
			openForeignTransaction(t, cloud, "foreign-open-2")
			t.Logf("foreign transaction 2 opened after kill %d", k)
		}
		nextKill = time.Now().Add(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
	}
	t.Logf("chaos: %d kills in %s: %s", kills, time.Since(began).Round(time.Second), strings.Join(killed, " "))

	// Every site's current agent becomes live again; then the load stops.
	var live []time.Duration
	for _, s := range sites {
		s.waitLive(t, time.Minute)
	}
	stopProducing()
	require.NoError(t, g.Wait(), "load")

	dst, err := cloud.Client()
	require.NoError(t, err)
	defer dst.Close()
	var records []string
	var total int64
	for _, s := range sites {
		rep := checkSite(t, s, dst, 90*time.Second)
		records = append(records, fmt.Sprintf("%s:%d", s.name, rep.DestinationRecords))
		total += rep.DestinationRecords
	}
	t.Logf("every site 0/0/0; records per site (%d in all): %s", total, strings.Join(records, " "))

	notLive := 0
	restarts := 0
	for _, s := range sites {
		for i := range s.agents {
			if i > 0 {
				restarts++
			}
			if d, ok := s.liveAt(i); ok {
				if i > 0 {
					live = append(live, d)
				}
			} else {
				notLive++
			}
		}
	}
	t.Logf("%d restarts; time to live after a restart: %s; %d agents killed before they were live",
		restarts, durations(live), notLive)
	var last []*agent
	for _, s := range sites {
		last = append(last, s.current())
	}
	stopAgents(t, last...)
	for _, s := range sites {
		s.requireNoFalseAlarm(t)
	}
}

// wanCloud starts a real cloud cluster that agents reach only through
// faultnet proxies on wan (its WANBootstrap); the test's clients reach it
// directly.
func wanCloud(t *testing.T, wan *faultnet.Network) *testbed.Cluster {
	t.Helper()
	return testbed.StartKafka(t, testbed.Options{Name: "cloud", Proxy: func(target string) (string, error) {
		p, err := wan.Listen(target)
		if err != nil {
			return "", err
		}
		t.Cleanup(func() { _ = p.Close() })
		return p.Addr(), nil
	}})
}

// TestRealKafkaSigtermUnderLoadLosesNothing: an agent is stopped with
// SIGTERM ten times while records keep arriving, and restarted each time.
// The cloud is 20 ms away (a faultnet proxy), so a commit every 100 ms
// spends a good share of the time waiting for acknowledgements and a
// signal often lands in the middle of one. A stop drains or gives back the
// open transaction: the mirror must hold every record exactly once.
func TestRealKafkaSigtermUnderLoadLosesNothing(t *testing.T) {
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	wan.SetLatency(10*time.Millisecond, 2*time.Millisecond)
	cloud := wanCloud(t, wan)
	topics := []string{"sensors.temp"}
	s := newSite(t, "plant-a", cloud, topics, 1, fleetLinkYAML(100*time.Millisecond))
	s.cfg = writeSiteConfig(t, s.name, s.edge.ListenAddrs(), cloud.WANBootstrap(), fleetLinkYAML(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var g errgroup.Group
	g.Go(func() error {
		return s.load.run(ctx, producing, s.edge.ListenAddrs(), topics, 10*time.Millisecond, 5, 1)
	})
	s.start(t)
	live := []time.Duration{s.waitLive(t, 30*time.Second)}
	for i := range 10 {
		time.Sleep(time.Duration(700+80*i) * time.Millisecond)
		stopAgents(t, s.current())
		s.start(t)
		live = append(live, s.waitLive(t, 30*time.Second))
	}
	stopProducing()
	require.NoError(t, g.Wait(), "load")
	dst, err := cloud.Client()
	require.NoError(t, err)
	defer dst.Close()
	rep := checkSite(t, s, dst, 30*time.Second)
	t.Logf("%d records through 10 SIGTERMs and restarts, checker 0/0/0; time to live: %s", rep.DestinationRecords, durations(live))
	stopAgents(t, s.current())
	s.requireNoFalseAlarm(t)
}
