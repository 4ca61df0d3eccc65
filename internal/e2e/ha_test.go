package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// The high-availability scenarios: several `edgelink run` processes with
// the configuration of one site share its link. The link's partitions map
// to slots; the agents share the slots through a group on the link's
// source cluster, and each slot has its own transactional producer at the
// destination, so that whoever opens a slot fences whoever held it
// before. An agent killed, cut off from the source, or stopped hands its
// slots to the others, and the mirror still holds every record exactly
// once, in order.

// haSite is the site of every agent of these scenarios: pairsFor names
// the mirrors of its topics.
const haSite = "plant-1"

// sharingStatus is the sharing block of a link in an agent's
// /api/v1/status, decoded by the field names of the API contract.
type sharingStatus struct {
	Group      string `json:"group"`
	Generation int32  `json:"generation"`
	SlotCount  int    `json:"slot_count"`
	Held       []int  `json:"held"`
	Agents     []struct {
		Instance string `json:"instance"`
		Self     bool   `json:"self"`
		Slots    []int  `json:"slots"`
	} `json:"agents"`
	Slots []struct {
		Slot       int      `json:"slot"`
		Owner      string   `json:"owner"`
		Partitions []string `json:"partitions"`
	} `json:"slots"`
}

// linkStatus is the part of a link's status these scenarios read.
type linkStatus struct {
	Name    string         `json:"name"`
	Sharing *sharingStatus `json:"sharing"`
	Events  []struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"events"`
	Groups *struct {
		Synced    int    `json:"synced"`
		Active    int    `json:"active"`
		LastError string `json:"last_error"`
	} `json:"groups"`
}

// linkStatusOf returns the status of the agent's only link.
func linkStatusOf(ctx context.Context, a *agent) (*linkStatus, error) {
	txt, err := statusText(ctx, a)
	if err != nil {
		return nil, err
	}
	var st struct {
		Links []linkStatus `json:"links"`
	}
	if err := json.Unmarshal([]byte(txt), &st); err != nil {
		return nil, fmt.Errorf("agent %s status: %w", a.name, err)
	}
	if len(st.Links) != 1 {
		return nil, fmt.Errorf("agent %s shows %d links, want 1", a.name, len(st.Links))
	}
	return &st.Links[0], nil
}

// sharingOf returns how the agent sees its link shared.
func sharingOf(ctx context.Context, a *agent) (*sharingStatus, error) {
	ls, err := linkStatusOf(ctx, a)
	if err != nil {
		return nil, err
	}
	if ls.Sharing == nil {
		return nil, fmt.Errorf("agent %s has not joined its link's group yet", a.name)
	}
	return ls.Sharing, nil
}

// logTime returns when a JSON log line was written.
func logTime(m map[string]any) time.Time {
	s, _ := m["time"].(string)
	at, _ := time.Parse(time.RFC3339Nano, s)
	return at
}

// slotLayout is a settled sharing of a link among agents.
type slotLayout struct {
	generation int32
	// owner[s] is the index (among the agents asked) of the agent that
	// holds slot s; partitions[s] are the source partitions of slot s,
	// as "topic[p]".
	owner      []int
	partitions [][]string
}

// of returns the slots agent i holds.
func (l *slotLayout) of(i int) []int {
	var out []int
	for s, o := range l.owner {
		if o == i {
			out = append(out, s)
		}
	}
	return out
}

// layoutOf returns how the agents share their link when the sharing is
// settled: all of them in the same generation, each seeing exactly these
// agents in the group, each holding the slots the group gives it and at
// least one, every slot held by exactly one. It fails the test if an
// agent exited, and returns an error while the sharing is not settled.
func layoutOf(t *testing.T, as ...*agent) (*slotLayout, error) {
	t.Helper()
	var l *slotLayout
	for i, a := range as {
		requireRunning(t, a)
		sh, err := sharingOf(t.Context(), a)
		if err != nil {
			return nil, err
		}
		if l == nil {
			l = &slotLayout{generation: sh.Generation, owner: make([]int, sh.SlotCount), partitions: make([][]string, sh.SlotCount)}
			for s := range l.owner {
				l.owner[s] = -1
			}
			for _, so := range sh.Slots {
				if so.Slot >= 0 && so.Slot < len(l.partitions) {
					l.partitions[so.Slot] = so.Partitions
				}
			}
		}
		switch {
		case sh.Generation != l.generation:
			return nil, fmt.Errorf("agent %s is in generation %d, agent %s in %d", a.name, sh.Generation, as[0].name, l.generation)
		case sh.SlotCount != len(l.owner):
			return nil, fmt.Errorf("agent %s has %d slots, agent %s %d", a.name, sh.SlotCount, as[0].name, len(l.owner))
		case len(sh.Agents) != len(as):
			return nil, fmt.Errorf("agent %s sees %d agents in generation %d, want %d", a.name, len(sh.Agents), sh.Generation, len(as))
		case len(sh.Held) == 0:
			return nil, fmt.Errorf("agent %s holds no slot in generation %d", a.name, sh.Generation)
		}
		for _, ag := range sh.Agents {
			if ag.Self && !slices.Equal(ag.Slots, sh.Held) {
				return nil, fmt.Errorf("agent %s holds slots %v, the group gives it %v", a.name, sh.Held, ag.Slots)
			}
		}
		for _, s := range sh.Held {
			if s < 0 || s >= len(l.owner) {
				return nil, fmt.Errorf("agent %s holds slot %d of %d", a.name, s, len(l.owner))
			}
			if o := l.owner[s]; o >= 0 {
				return nil, fmt.Errorf("slot %d is held by agents %s and %s", s, as[o].name, a.name)
			}
			l.owner[s] = i
		}
	}
	for s, o := range l.owner {
		if o < 0 {
			return nil, fmt.Errorf("no agent holds slot %d in generation %d", s, l.generation)
		}
	}
	return l, nil
}

// waitLayout waits until the agents' sharing is settled (see layoutOf)
// and returns it; it fails the test when bound passes first.
func waitLayout(t *testing.T, bound time.Duration, as ...*agent) *slotLayout {
	t.Helper()
	var l *slotLayout
	testbed.Eventually(t, bound, func() error {
		var err error
		l, err = layoutOf(t, as...)
		return err
	})
	return l
}

// waitHeld polls the agents' status every 100 ms until, between them,
// they hold every one of slots, and returns how long after since that
// was; it fails the test when bound passes first.
func waitHeld(t *testing.T, since time.Time, slots []int, bound time.Duration, as ...*agent) time.Duration {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var missing []int
	for {
		held := map[int]bool{}
		for _, a := range as {
			requireRunning(t, a)
			if sh, err := sharingOf(t.Context(), a); err == nil {
				for _, s := range sh.Held {
					held[s] = true
				}
			}
		}
		missing = missing[:0]
		for _, s := range slots {
			if !held[s] {
				missing = append(missing, s)
			}
		}
		took := time.Since(since)
		if len(missing) == 0 {
			return took
		}
		if took > bound {
			t.Fatalf("slots %v not held by any of the agents %s after the fault", missing, bound)
		}
		<-tick.C
	}
}

// crew is the agents of one site sharing its link, under steady load at
// its edge: member i runs with configuration cfgs[i] (the same site; only
// the addresses it reaches the clusters by may differ); agents[i] is its
// current process, nil while it is down.
type crew struct {
	t           *testing.T
	edge, cloud *testbed.Cluster
	topics      []string
	cfgs        []string
	agents      []*agent
	starts      []int // processes started per member
	load        siteLoad
}

func newCrew(t *testing.T, edge, cloud *testbed.Cluster, topics []string, cfgs ...string) *crew {
	return &crew{t: t, edge: edge, cloud: cloud, topics: topics, cfgs: cfgs, agents: make([]*agent, len(cfgs)), starts: make([]int, len(cfgs))}
}

// start starts a new process for member i.
func (c *crew) start(i int) *agent {
	c.t.Helper()
	a := startAgent(c.t, fmt.Sprintf("agent-%d#%d", i, c.starts[i]), c.cfgs[i])
	c.agents[i], c.starts[i] = a, c.starts[i]+1
	return a
}

// members returns the processes of members is.
func (c *crew) members(is ...int) []*agent {
	out := make([]*agent, len(is))
	for j, i := range is {
		require.NotNil(c.t, c.agents[i], "member %d is down", i)
		out[j] = c.agents[i]
	}
	return out
}

// settle waits until members is share the link (see layoutOf) and returns
// the layout, its owners as member numbers.
func (c *crew) settle(bound time.Duration, is ...int) *slotLayout {
	c.t.Helper()
	l := waitLayout(c.t, bound, c.members(is...)...)
	for s, o := range l.owner {
		l.owner[s] = is[o]
	}
	return l
}

// produce runs the crew's load until stop ends: small keyed records and
// transactions (every fourth aborted) every tick.
func (c *crew) produce(g *errgroup.Group, ctx, stop context.Context, tick time.Duration, perTick int, seed uint64) {
	g.Go(func() error { return c.load.run(ctx, stop, c.edge.Bootstrap(), c.topics, tick, perTick, seed) })
}

// check requires the mirror to hold every committed record of the edge
// exactly once, in order, and as many as the load produced.
func (c *crew) check(timeout time.Duration) *verify.Report {
	c.t.Helper()
	rep := checkUntilClean(c.t, c.edge, c.cloud, pairsFor(c.topics...), timeout, nil)
	if !rep.OK() {
		c.load.mu.Lock()
		c.t.Logf("transactions of the load:\n%s", strings.Join(c.load.journal, "\n"))
		c.load.mu.Unlock()
	}
	requireClean(c.t, rep)
	require.EqualValues(c.t, c.load.total(), rep.SourceRecords, "committed records at the edge")
	require.EqualValues(c.t, rep.SourceRecords, rep.DestinationRecords, "records in the cloud")
	return rep
}

// proxyOn returns a testbed.Options.Proxy that forwards through n.
func proxyOn(t *testing.T, n *faultnet.Network) func(string) (string, error) {
	return func(target string) (string, error) {
		p, err := n.Listen(target)
		if err != nil {
			return "", err
		}
		t.Cleanup(func() { _ = p.Close() })
		return p.Addr(), nil
	}
}

// TestRealKafkaAgentsTakeOverKilledAgents: three agents share a link of 24
// partitions under steady load (plain records and transactions). A random
// agent is killed with SIGKILL ten times, and started again once the
// others took its slots over: each takeover, from the SIGKILL until the
// survivors hold every slot the dead agent held, takes at most 20 s with
// the default membership timing. One more agent is then killed for good,
// and the two left hold every slot. The mirror holds every record exactly
// once, in order.
func TestRealKafkaAgentsTakeOverKilledAgents(t *testing.T) {
	const kills = 10
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge"}, testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	topics := []string{"sensors.a", "sensors.b"}
	createTopics(t, edge, 12, nil, topics...)
	cfg := writeSiteConfig(t, haSite, edge.Bootstrap(), cloud.Bootstrap(), upLink)
	c := newCrew(t, edge, cloud, topics, cfg, cfg, cfg)

	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var g errgroup.Group
	c.produce(&g, ctx, producing, 50*time.Millisecond, 4, 1)

	all := []int{0, 1, 2}
	for _, i := range all {
		c.start(i)
	}
	c.settle(90*time.Second, all...)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	var took []time.Duration
	for k := 1; k <= kills; k++ {
		l := c.settle(time.Minute, all...)
		victim := rng.IntN(len(all))
		survivors := slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == victim })
		dead := l.of(victim)
		name := c.agents[victim].name
		killed := time.Now()
		c.agents[victim].kill()
		d := waitHeld(t, killed, dead, time.Minute, c.members(survivors...)...)
		took = append(took, d)
		t.Logf("kill -9 #%d: %s held slots %v; the others held them %s after the SIGKILL (%d records produced)",
			k, name, dead, d.Round(10*time.Millisecond), c.load.total())
		c.agents[victim] = nil
		c.start(victim)
	}
	each := make([]string, len(took))
	for k, d := range took {
		each[k] = d.Round(10 * time.Millisecond).String()
	}
	t.Logf("takeover times: %s; each: %s (seed %d)", durations(took), strings.Join(each, " "), seed)
	for k, d := range took {
		require.LessOrEqual(t, d, 20*time.Second, "takeover after kill -9 #%d", k+1)
	}

	// One more dies for good: the two left share every slot.
	c.settle(time.Minute, all...)
	last := rng.IntN(len(all))
	survivors := slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == last })
	c.agents[last].kill()
	c.agents[last] = nil
	l := c.settle(time.Minute, survivors...)
	t.Logf("member %d killed for good: members %d and %d hold slots %v and %v", last, survivors[0], survivors[1], l.of(survivors[0]), l.of(survivors[1]))

	stopProducing()
	require.NoError(t, g.Wait(), "load")
	rep := c.check(2 * time.Minute)
	t.Logf("%d plain and %d committed transactional records (%d aborted) through %d kills; %d in the cloud",
		c.load.plain.Load(), c.load.committed.Load(), c.load.aborted.Load(), kills+1, rep.DestinationRecords)
	stopAgents(t, c.members(survivors...)...)
}

// TestRealKafkaZombieAgentIsFenced: two agents share a link; one of them,
// the zombie, reaches the edge only through a network that is then black
// holed, while it still reaches the cloud. Its heartbeats fail: it says it
// lost its membership, revokes its slots before the other agent is given
// them (after the session timeout) and holds none by the time the other
// agent does; had it kept writing, the other agent's producers would fence
// it. It holds nothing while cut off; when the network returns it rejoins
// and gets slots again. The mirror holds every record exactly once, in
// order.
func TestRealKafkaZombieAgentIsFenced(t *testing.T) {
	src := faultnet.New(nil)
	t.Cleanup(func() { _ = src.Close() })
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge", Proxy: proxyOn(t, src)}, testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	topics := []string{"sensors.a", "sensors.b"}
	createTopics(t, edge, 6, nil, topics...)
	c := newCrew(t, edge, cloud, topics,
		writeSiteConfig(t, haSite, edge.WANBootstrap(), cloud.Bootstrap(), upLink), // the zombie
		writeSiteConfig(t, haSite, edge.Bootstrap(), cloud.Bootstrap(), upLink))

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var g errgroup.Group
	c.produce(&g, ctx, producing, 50*time.Millisecond, 4, 2)

	zombie, other := c.start(0), c.start(1)
	l := c.settle(90*time.Second, 0, 1)
	zslots := l.of(0)
	t.Logf("generation %d: the zombie holds slots %v, the other agent %v", l.generation, zslots, l.of(1))
	time.Sleep(2 * time.Second) // records flow through both

	cut := time.Now()
	src.Cut()
	took := waitHeld(t, cut, zslots, time.Minute, other)
	// Read after the other agent's status: a slot the zombie holds now,
	// the two agents hold at once.
	sh, err := sharingOf(t.Context(), zombie)
	require.NoError(t, err)
	overlap := sh.Held
	t.Logf("the other agent held the zombie's slots %v %s after the cut (%d records produced); the zombie then held %v",
		zslots, took.Round(10*time.Millisecond), c.load.total(), overlap)
	require.LessOrEqual(t, took, 20*time.Second, "takeover of a zombie's slots")
	c.settle(30*time.Second, 1)

	// The zombie noticed: it logged that it lost its membership and
	// revoked its slots, and then holds none. Its revocation waits at
	// most the rebalance timeout (10 s) for the slots to close.
	var gaveUp, given time.Time
	testbed.Eventually(t, 30*time.Second, func() error {
		for _, m := range zombie.logsWith("slots revoked") {
			if at := logTime(m); m["lost"] == true && at.After(cut) && gaveUp.IsZero() {
				gaveUp = at
			}
		}
		if gaveUp.IsZero() || len(zombie.logsWith("membership lost")) == 0 {
			return fmt.Errorf("the zombie has not logged that it lost its membership and revoked its slots")
		}
		return nil
	})
	testbed.Eventually(t, 30*time.Second, func() error {
		sh, err := sharingOf(t.Context(), zombie)
		if err != nil {
			return err
		}
		if len(sh.Held) > 0 {
			return fmt.Errorf("the zombie still holds slots %v", sh.Held)
		}
		return nil
	})
	emptied := time.Now()
	for _, m := range other.logsWith("slots assigned") {
		if at := logTime(m); at.After(cut) && given.IsZero() {
			given = at
		}
	}
	require.False(t, given.IsZero(), "the other agent should log the zombie's slots assigned")
	since := func(at time.Time) time.Duration { return at.Sub(cut).Round(10 * time.Millisecond) }
	t.Logf("after the cut: the zombie revoked its slots at +%s and held none by +%s; the other agent was assigned them at +%s and held them at +%s",
		since(gaveUp), since(emptied), since(given), took.Round(10*time.Millisecond))
	require.True(t, gaveUp.Before(given), "the zombie should revoke its slots before the other agent is given them")
	require.LessOrEqual(t, emptied.Sub(gaveUp), 11*time.Second, "the zombie's slots should close within the rebalance timeout of its revocation")
	require.Empty(t, overlap, "the zombie still held slots %v when the other agent held them (+%s): it revoked them at +%s, held none only by +%s; two agents ran them at once, and only the other's fence kept them apart",
		overlap, took.Round(10*time.Millisecond), since(gaveUp), since(emptied))
	ls, err := linkStatusOf(t.Context(), zombie)
	require.NoError(t, err)
	var said []string
	for _, e := range ls.Events {
		if m := strings.ToLower(e.Message); strings.Contains(m, "lost its membership") || strings.Contains(m, "fenced") {
			said = append(said, e.Message)
		}
	}
	require.NotEmpty(t, said, "the zombie's status events should say it lost its membership or was fenced")
	t.Logf("the zombie's status says: %q; its log has %d fence message(s)", said[0], len(zombie.logsWith("fenced")))
	for range 20 { // it stays out while cut off
		sh, err := sharingOf(t.Context(), zombie)
		require.NoError(t, err)
		require.Empty(t, sh.Held, "slots the zombie holds while cut off from the edge")
		time.Sleep(200 * time.Millisecond)
	}

	restored := time.Now()
	src.Restore()
	l = c.settle(time.Minute, 0, 1)
	t.Logf("the zombie rejoined %s after the network returned: generation %d, slots %v and %v",
		time.Since(restored).Round(100*time.Millisecond), l.generation, l.of(0), l.of(1))
	time.Sleep(2 * time.Second)

	stopProducing()
	require.NoError(t, g.Wait(), "load")
	rep := c.check(2 * time.Minute)
	t.Logf("%d plain and %d committed transactional records (%d aborted); %d in the cloud",
		c.load.plain.Load(), c.load.committed.Load(), c.load.aborted.Load(), rep.DestinationRecords)
	stopAgents(t, zombie, other)
}

// pulse writes one record to every partition of topics each tick until
// stop ends, so that a partition's records arrive in the mirror at least
// that often while the link runs; they count as plain records.
func (l *siteLoad) pulse(ctx, stop context.Context, seeds []string, topics []string, partitions int32, tick time.Duration, seed uint64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(seed, 9))
	every := time.NewTicker(tick)
	defer every.Stop()
	for n := 0; stop.Err() == nil; {
		var recs []*kgo.Record
		for _, tp := range topics {
			for p := range partitions {
				r := smallRecord(rng, tp, "u", n)
				r.Partition = p
				recs = append(recs, r)
				n++
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		l.plain.Add(int64(len(recs)))
		select {
		case <-stop.Done():
		case <-every.C:
		}
	}
	return nil
}

// arrivals records when the records of mirror topics reach a
// read_committed consumer at the destination, per source partition
// ("topic[p]").
type arrivals struct {
	mu sync.Mutex
	at map[string][]time.Time
}

// watch consumes the mirrors of topics (as pairsFor names them) at the
// cloud until ctx ends; g owns the consumer.
func (ar *arrivals) watch(ctx context.Context, t *testing.T, g *errgroup.Group, cloud *testbed.Cluster, topics ...string) {
	t.Helper()
	ar.at = make(map[string][]time.Time)
	var mirrors []string
	for _, p := range pairsFor(topics...) {
		mirrors = append(mirrors, p.Destination)
	}
	cl, err := cloud.Client(kgo.ConsumeTopics(mirrors...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	require.NoError(t, err)
	g.Go(func() error {
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			ar.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				k := fmt.Sprintf("%s[%d]", strings.TrimPrefix(r.Topic, haSite+"."), r.Partition)
				ar.at[k] = append(ar.at[k], now)
			})
			ar.mu.Unlock()
		}
		return nil
	})
}

// count returns how many records arrived.
func (ar *arrivals) count() int {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	n := 0
	for _, ts := range ar.at {
		n += len(ts)
	}
	return n
}

// maxGap returns the longest time partition k went without an arrival
// within [from, to]: between consecutive arrivals, and from the last one
// to to.
func (ar *arrivals) maxGap(k string, from, to time.Time) time.Duration {
	ar.mu.Lock()
	defer ar.mu.Unlock()
	var longest time.Duration
	gap := func(a, b time.Time) {
		if a.Before(from) {
			a = from
		}
		longest = max(longest, b.Sub(a))
	}
	prev := time.Time{}
	for _, at := range ar.at[k] {
		if !prev.IsZero() && at.After(from) && prev.Before(to) {
			gap(prev, at)
		}
		prev = at
	}
	if !prev.IsZero() && prev.Before(to) {
		gap(prev, to)
	}
	return longest
}

// TestRealKafkaRollingRestartUnderLoad: three agents share a link of 24
// partitions while every partition gets a record every 40 ms. Each agent
// in turn is stopped with SIGTERM (the others take its slots over at
// once) and started again (it gets slots back). Partitions whose slot
// kept its owner through a restart never pause more than 1 s in the
// mirror, read committed; the mirror holds every record exactly once,
// in order.
func TestRealKafkaRollingRestartUnderLoad(t *testing.T) {
	const partitions = 12
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge"}, testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	topics := []string{"sensors.a", "sensors.b"}
	createTopics(t, edge, partitions, nil, topics...)
	cfg := writeSiteConfig(t, haSite, edge.Bootstrap(), cloud.Bootstrap(), upLink)
	c := newCrew(t, edge, cloud, topics, cfg, cfg, cfg)

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var g errgroup.Group
	g.Go(func() error {
		return c.load.pulse(ctx, producing, edge.Bootstrap(), topics, partitions, 40*time.Millisecond, 3)
	})

	all := []int{0, 1, 2}
	for _, i := range all {
		c.start(i)
	}
	c.settle(90*time.Second, all...)
	watching, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	var consumer errgroup.Group
	var ar arrivals
	ar.watch(watching, t, &consumer, cloud, topics...)
	testbed.Eventually(t, 30*time.Second, func() error {
		if ar.count() == 0 {
			return fmt.Errorf("no record arrived in the mirror yet")
		}
		return nil
	})
	time.Sleep(3 * time.Second)

	type step struct {
		member    int
		from, to  time.Time
		untouched []string // partitions whose slot kept its owner
		moved     []string // the others
	}
	var steps []step
	for _, i := range all {
		others := slices.DeleteFunc(slices.Clone(all), func(j int) bool { return j == i })
		before := c.settle(time.Minute, all...)
		from := time.Now()
		code, took := c.agents[i].stop()
		require.Equal(t, 0, code, "exit status of member %d after SIGTERM", i)
		require.Less(t, took, 10*time.Second, "SIGTERM exit time of member %d", i)
		c.agents[i] = nil
		mid := c.settle(30*time.Second, others...)
		handed := time.Since(from)
		c.start(i)
		after := c.settle(time.Minute, all...)
		to := time.Now()
		s := step{member: i, from: from, to: to}
		var kept []int
		for slot := range before.owner {
			if before.owner[slot] == mid.owner[slot] && mid.owner[slot] == after.owner[slot] {
				kept = append(kept, slot)
				s.untouched = append(s.untouched, after.partitions[slot]...)
			} else {
				s.moved = append(s.moved, after.partitions[slot]...)
			}
		}
		steps = append(steps, s)
		t.Logf("restart of member %d: exit in %s, slots %v held by the others %s after the SIGTERM, all settled after %s; slots %v kept their owner",
			i, took.Round(10*time.Millisecond), before.of(i), handed.Round(10*time.Millisecond), to.Sub(from).Round(10*time.Millisecond), kept)
		require.NotEmpty(t, kept, "restart of member %d: no slot kept its owner", i)
		time.Sleep(2 * time.Second)
	}
	stopProducing()
	require.NoError(t, g.Wait(), "load")
	rep := c.check(2 * time.Minute)
	stopWatching()
	require.NoError(t, consumer.Wait(), "consumer")

	var (
		largest time.Duration
		where   string
	)
	for _, s := range steps {
		var stepMax time.Duration
		for _, k := range s.untouched {
			gap := ar.maxGap(k, s.from, s.to)
			if gap > stepMax {
				stepMax = gap
			}
			if gap > largest {
				largest, where = gap, fmt.Sprintf("%s during the restart of member %d", k, s.member)
			}
		}
		var movedMax time.Duration
		for _, k := range s.moved {
			movedMax = max(movedMax, ar.maxGap(k, s.from, s.to))
		}
		t.Logf("restart of member %d: %d untouched partitions, their longest pause %s; %d partitions moved, their longest pause %s",
			s.member, len(s.untouched), stepMax.Round(time.Millisecond), len(s.moved), movedMax.Round(time.Millisecond))
	}
	t.Logf("largest pause of an untouched partition: %s (%s); %d records, checker 0/0/0", largest.Round(time.Millisecond), where, rep.DestinationRecords)
	for _, s := range steps {
		for _, k := range s.untouched {
			require.LessOrEqual(t, ar.maxGap(k, s.from, s.to), time.Second, "pause of %s, whose slot kept its owner, during the restart of member %d", k, s.member)
		}
	}
	stopAgents(t, c.members(all...)...)
}

// TestRealKafkaWANBlackHoleCausesNoRebalance: two agents share a link and
// reach the cloud through a WAN, the edge directly. The WAN is black holed
// for 30 s under load: the agents share the link through a group at the
// edge, so neither the group's generation changes nor any slot is revoked,
// during the outage or after it. Once the WAN returns the mirror holds
// every record exactly once, in order.
func TestRealKafkaWANBlackHoleCausesNoRebalance(t *testing.T) {
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	edge, cloud := wanClusters(t, wan)
	topics := []string{"sensors.a", "sensors.b"}
	createTopics(t, edge, 6, nil, topics...)
	cfg := writeSiteConfig(t, haSite, edge.Bootstrap(), cloud.WANBootstrap(), upLink)
	c := newCrew(t, edge, cloud, topics, cfg, cfg)

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	producing, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var g errgroup.Group
	c.produce(&g, ctx, producing, 50*time.Millisecond, 4, 4)

	as := []*agent{c.start(0), c.start(1)}
	c.settle(90*time.Second, 0, 1)
	time.Sleep(2 * time.Second) // records flow through both
	l := c.settle(10*time.Second, 0, 1)
	t.Logf("generation %d: slots %v and %v", l.generation, l.of(0), l.of(1))
	requireSameGeneration := func(when string) {
		t.Helper()
		for _, a := range as {
			requireRunning(t, a)
			sh, err := sharingOf(t.Context(), a)
			require.NoError(t, err)
			require.Equal(t, l.generation, sh.Generation, "generation of agent %s %s", a.name, when)
		}
	}
	revoked := func() int {
		n := 0
		for _, a := range as {
			n += len(a.logsWith("slots revoked")) + len(a.logsWith("membership lost"))
		}
		return n
	}
	revokedBefore := revoked()

	wan.Cut()
	cut := time.Now()
	for time.Since(cut) < 30*time.Second {
		requireSameGeneration("during the WAN black hole")
		require.Equal(t, revokedBefore, revoked(), "slots revoked or membership lost during the WAN black hole")
		time.Sleep(500 * time.Millisecond)
	}
	noticed := 0
	for _, a := range as {
		for _, m := range a.logsWith("link state changed") {
			if m["to"] == "disconnected" {
				noticed++
				break
			}
		}
	}
	wan.Restore()
	t.Logf("WAN restored after %s; %d of 2 agents reported their link disconnected (%d records produced)",
		time.Since(cut).Round(100*time.Millisecond), noticed, c.load.total())
	time.Sleep(3 * time.Second)

	stopProducing()
	require.NoError(t, g.Wait(), "load")
	rep := c.check(3 * time.Minute)
	requireSameGeneration("after the WAN black hole")
	require.Equal(t, revokedBefore, revoked(), "slots revoked or membership lost after the WAN black hole")
	c.settle(10*time.Second, 0, 1)
	t.Logf("%d plain and %d committed transactional records (%d aborted); %d in the cloud; generation %d throughout",
		c.load.plain.Load(), c.load.committed.Load(), c.load.aborted.Load(), rep.DestinationRecords, l.generation)
	stopAgents(t, as...)
}
