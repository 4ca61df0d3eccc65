package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// fast makes links commit, discover and retry quickly.
var fast = agent.Options{LinkOptions: func(*config.Link) link.Options {
	return link.Options{
		CommitInterval: 30 * time.Millisecond, DiscoveryInterval: 300 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
	}
}}

// lnk is one link of a test configuration.
type lnk struct {
	name, from, to, include, extra string
}

// up is a link edge -> cloud of the topics include.
func up(name, include string, extra ...string) lnk {
	return lnk{name: name, from: "edge", to: "cloud", include: include, extra: strings.Join(extra, "\n")}
}

// conf is a test configuration.
type conf struct {
	site                  string
	edge, cloud, spare    []string
	links                 []lnk
	http                  string // the http block's body
	cloudExtra, edgeExtra string
}

func (c conf) parse(t *testing.T) *config.Config {
	t.Helper()
	var b strings.Builder
	if c.site != "" {
		fmt.Fprintf(&b, "site: %s\n", c.site)
	}
	quote := func(addrs []string) string {
		q := make([]string, len(addrs))
		for i, a := range addrs {
			q[i] = fmt.Sprintf("%q", a)
		}
		return strings.Join(q, ", ")
	}
	fmt.Fprintf(&b, "clusters:\n  edge: {bootstrap: [%s]%s}\n  cloud: {bootstrap: [%s]%s}\n",
		quote(c.edge), c.edgeExtra, quote(c.cloud), c.cloudExtra)
	if len(c.spare) > 0 {
		fmt.Fprintf(&b, "  spare: {bootstrap: [%s]}\n", quote(c.spare))
	}
	b.WriteString("links:\n")
	for _, l := range c.links {
		fmt.Fprintf(&b, "  - name: %s\n    from: %s\n    to: %s\n    topics: {include: [%q]}\n", l.name, l.from, l.to, l.include)
		for line := range strings.SplitSeq(l.extra, "\n") {
			if line != "" {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
	}
	if c.http != "" {
		fmt.Fprintf(&b, "http:\n%s\n", c.http)
	}
	cfg, err := config.Parse("test.yaml", []byte(b.String()))
	require.NoError(t, err, b.String())
	return cfg
}

func names(links []*link.Link) []string {
	out := make([]string, len(links))
	for i, l := range links {
		out[i] = l.Name()
	}
	return out
}

func byName(links []*link.Link) map[string]*link.Link {
	m := make(map[string]*link.Link, len(links))
	for _, l := range links {
		m[l.Name()] = l
	}
	return m
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestApplyDecides: Apply compares each link's effective configuration
// (its settings, its two clusters, the site) by value, and keeps, restarts,
// adds and removes links accordingly. Before Run nothing runs, so this
// needs no cluster.
func TestApplyDecides(t *testing.T) {
	base := conf{
		site: "plant-1", edge: []string{"127.0.0.1:1"}, cloud: []string{"127.0.0.1:2"}, spare: []string{"127.0.0.1:3"},
		links: []lnk{
			up("a", `a\..*`),
			up("b", "b", `rename: "{site}.{topic}"`, `priorities: [{match: 'b.*', priority: 10}]`),
			{name: "c", from: "spare", to: "cloud", include: "c"},
		},
		http: `  listen: "127.0.0.1:0"`,
	}
	for _, tc := range []struct {
		name   string
		change func(*conf)
		want   agent.Changes
	}{
		{
			name:   "same file again",
			change: func(*conf) {},
			want:   agent.Changes{Kept: []string{"a", "b", "c"}},
		},
		{
			name:   "http only",
			change: func(c *conf) { c.http = "  listen: \"127.0.0.1:9999\"\n  token: s3cret\n  pprof: true" },
			want:   agent.Changes{Kept: []string{"a", "b", "c"}},
		},
		{
			name:   "site",
			change: func(c *conf) { c.site = "plant-2" },
			want:   agent.Changes{Restarted: []string{"a", "b", "c"}},
		},
		{
			name:   "topics of a link",
			change: func(c *conf) { c.links[0].include = `a\..+` },
			want:   agent.Changes{Restarted: []string{"a"}, Kept: []string{"b", "c"}},
		},
		{
			name:   "rename of a link",
			change: func(c *conf) { c.links[1].extra = "rename: \"{topic}\"\npriorities: [{match: 'b.*', priority: 10}]" },
			want:   agent.Changes{Restarted: []string{"b"}, Kept: []string{"a", "c"}},
		},
		{
			name: "priority pattern",
			change: func(c *conf) {
				c.links[1].extra = "rename: \"{site}.{topic}\"\npriorities: [{match: 'b.+', priority: 10}]"
			},
			want: agent.Changes{Restarted: []string{"b"}, Kept: []string{"a", "c"}},
		},
		{
			name:   "delivery",
			change: func(c *conf) { c.links[0].extra = "delivery: at-least-once" },
			want:   agent.Changes{Restarted: []string{"a"}, Kept: []string{"b", "c"}},
		},
		{
			name:   "a cluster one link uses",
			change: func(c *conf) { c.spare = []string{"127.0.0.1:4"} },
			want:   agent.Changes{Restarted: []string{"c"}, Kept: []string{"a", "b"}},
		},
		{
			name:   "a cluster every link uses",
			change: func(c *conf) { c.cloudExtra = ", client_id: other" },
			want:   agent.Changes{Restarted: []string{"a", "b", "c"}},
		},
		{
			name:   "a link added",
			change: func(c *conf) { c.links = append(c.links, up("d", "d")) },
			want:   agent.Changes{Added: []string{"d"}, Kept: []string{"a", "b", "c"}},
		},
		{
			name:   "a link removed",
			change: func(c *conf) { c.links = append(c.links[:1], c.links[2]) },
			want:   agent.Changes{Removed: []string{"b"}, Kept: []string{"a", "c"}},
		},
		{
			name:   "a link renamed",
			change: func(c *conf) { c.links[0].name = "a2" },
			want:   agent.Changes{Added: []string{"a2"}, Removed: []string{"a"}, Kept: []string{"b", "c"}},
		},
		{
			name:   "links reordered",
			change: func(c *conf) { c.links[0], c.links[2] = c.links[2], c.links[0] },
			want:   agent.Changes{Kept: []string{"c", "b", "a"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			b.links = append([]lnk(nil), base.links...)
			a := agent.New(b.parse(t), fast, testLogger(t))
			before := byName(a.Links())
			tc.change(&b)
			next := b.parse(t)
			changed := a.Changed()

			ch, err := a.Apply(t.Context(), next)
			require.NoError(t, err)
			require.Equal(t, tc.want, ch)
			require.Equal(t, len(tc.want.Kept) != len(next.Links) || len(tc.want.Removed) > 0, ch.Any())
			require.True(t, closed(changed), "observers learn that the links changed")
			require.False(t, closed(a.Changed()))
			require.Same(t, next, a.Config())
			cfg, links := a.Current()
			require.Same(t, next, cfg)
			want := make([]string, len(next.Links))
			for i, lc := range next.Links {
				want[i] = lc.Name
			}
			require.Equal(t, want, names(links), "configuration order")
			after := byName(links)
			for _, n := range tc.want.Kept {
				require.Same(t, before[n], after[n], "kept link %s is the same link", n)
			}
			for _, n := range append(tc.want.Restarted, tc.want.Added...) {
				require.NotNil(t, after[n])
				require.NotSame(t, before[n], after[n], "link %s is a new link", n)
			}
			for _, n := range tc.want.Removed {
				require.NotContains(t, after, n)
			}
		})
	}
}

// producer writes records to the edge cluster.
type producer struct {
	cl *kgo.Client
}

func newProducer(t *testing.T, seeds []string) *producer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerBatchMaxBytes(4<<20))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &producer{cl: cl}
}

func (p *producer) produce(t *testing.T, topic string, n int, size int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := fmt.Appendf(nil, "%s-%d-", topic, i)
		if size > len(v) {
			v = append(v, make([]byte, size-len(v))...)
		}
		recs[i] = &kgo.Record{Topic: topic, Value: v}
	}
	require.NoError(t, p.cl.ProduceSync(t.Context(), recs...).FirstErr())
}

// steady writes one record to topic every interval until stop; it
// returns how many it wrote.
func (p *producer) steady(topic string, interval time.Duration) (stop func() (int64, error)) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		n   atomic.Int64
		err error
		wg  sync.WaitGroup
	)
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if e := p.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%d", n.Load())}).FirstErr(); e != nil {
				if ctx.Err() == nil {
					err = e
				}
				return
			}
			n.Add(1)
		}
	})
	return func() (int64, error) { cancel(); wg.Wait(); return n.Load(), err }
}

// requireMirrored waits until the destination topic holds want committed
// records, and fails if it holds more.
func requireMirrored(t *testing.T, seeds []string, topic string, want int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for got < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		got += len(cl.PollFetches(ctx).Records())
		cancel()
	}
	// Anything beyond want would be a duplicate: give it a moment to show.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	got += len(cl.PollFetches(ctx).Records())
	cancel()
	require.Equal(t, want, got, "records in %s", topic)
}

// running is an agent running in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once Run returned, with err
	err    error
}

// runAgent runs a until the test ends or stop is called.
func runAgent(t *testing.T, a *agent.Agent) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = a.Run(ctx)
	}()
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// stop cancels the agent and returns Run's error.
func (r *running) stop() error {
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		return errors.New("agent did not stop within 30s")
	}
}

func waitState(t *testing.T, l *link.Link, states ...link.State) {
	t.Helper()
	testbed.Eventually(t, 30*time.Second, func() error {
		st := l.Status()
		for _, s := range states {
			if st.State == s {
				return nil
			}
		}
		return fmt.Errorf("link %s is %s, want %v (last error %q)", l.Name(), st.State, states, st.LastError)
	})
}

var connected = []link.State{link.StateLive, link.StateCatchingUp}

// interrupted reports state changes of l since `since` that took it away
// from replicating: back to starting, stopped or disconnected.
func interrupted(l *link.Link, since time.Time) []string {
	var out []string
	for _, e := range l.Events() {
		if e.Kind != link.EventState || e.Time.Before(since) {
			continue
		}
		for _, s := range []link.State{link.StateStarting, link.StateStopped, link.StateDisconnected, link.StateFailed} {
			if strings.Contains(e.Message, "→ "+string(s)) {
				out = append(out, e.Message)
			}
		}
	}
	return out
}

// TestApplyWhileRunning applies one configuration after another to a
// running agent while records arrive steadily for the link "keep", which
// no step but the last touches. Each step takes effect, and "keep" runs
// throughout: the same link, never back to starting or disconnected, its
// count rising across every Apply, every record mirrored exactly once.
// The last step changes the site, which restarts every link.
func TestApplyWhileRunning(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(1, "keep", "chg1", "chg2", "rm", "add"))
	cloud := testbed.StartFake(t)
	c := conf{
		site: "plant-1", edge: edge.ListenAddrs(), cloud: cloud.ListenAddrs(), http: `  listen: "127.0.0.1:0"`,
		links: []lnk{up("keep", "keep"), up("chg", "chg1"), up("rm", "rm")},
	}
	a := agent.New(c.parse(t), fast, testLogger(t))
	run := runAgent(t, a)
	for _, l := range a.Links() {
		waitState(t, l, connected...)
	}
	keep := a.Links()[0]
	require.Equal(t, "keep", keep.Name())
	began := time.Now()

	p := newProducer(t, edge.ListenAddrs())
	p.produce(t, "chg2", 30, 0) // replicated once "chg" includes it
	stopSteady := p.steady("keep", 10*time.Millisecond)
	defer func() { _, _ = stopSteady() }()

	// Watch "keep" replicate: the longest time its count stood still.
	var (
		watchDone = make(chan struct{})
		longest   time.Duration
		watchWG   sync.WaitGroup
	)
	watchWG.Go(func() {
		last, since := keep.Status().Records, time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-watchDone:
				return
			case <-tick.C:
			}
			if n := keep.Status().Records; n != last {
				last, since = n, time.Now()
			}
			longest = max(longest, time.Since(since))
		}
	})
	testbed.Eventually(t, 30*time.Second, func() error {
		if n := keep.Status().Records; n < 20 {
			return fmt.Errorf("keep replicated %d records", n)
		}
		return nil
	})

	for _, step := range []struct {
		name   string
		change func(*conf)
		want   agent.Changes
		check  func(t *testing.T, before, after map[string]*link.Link)
	}{
		{
			name:   "add a link",
			change: func(c *conf) { c.links = append(c.links, up("add", "add")) },
			want:   agent.Changes{Added: []string{"add"}, Kept: []string{"keep", "chg", "rm"}},
			check: func(t *testing.T, _, after map[string]*link.Link) {
				p.produce(t, "add", 25, 0)
				requireMirrored(t, cloud.ListenAddrs(), "add", 25)
				waitState(t, after["add"], connected...)
			},
		},
		{
			name:   "remove a link",
			change: func(c *conf) { c.links = append(c.links[:2], c.links[3]) },
			want:   agent.Changes{Removed: []string{"rm"}, Kept: []string{"keep", "chg", "add"}},
			check: func(t *testing.T, before, _ map[string]*link.Link) {
				require.Equal(t, link.StateStopped, before["rm"].Status().State, "a removed link has returned from Run")
				p.produce(t, "rm", 10, 0)
				p.produce(t, "add", 5, 0)
				requireMirrored(t, cloud.ListenAddrs(), "add", 30)
				requireMirrored(t, cloud.ListenAddrs(), "rm", 0)
			},
		},
		{
			name:   "change a link's topics",
			change: func(c *conf) { c.links[1].include = "chg[12]" },
			want:   agent.Changes{Restarted: []string{"chg"}, Kept: []string{"keep", "add"}},
			check: func(t *testing.T, before, after map[string]*link.Link) {
				require.Equal(t, link.StateStopped, before["chg"].Status().State)
				waitState(t, after["chg"], connected...)
				requireMirrored(t, cloud.ListenAddrs(), "chg2", 30)
				p.produce(t, "chg1", 10, 0)
				requireMirrored(t, cloud.ListenAddrs(), "chg1", 10)
			},
		},
		{
			name:   "change http only",
			change: func(c *conf) { c.http = `  listen: "127.0.0.1:0"` + "\n  token: s3cret" },
			want:   agent.Changes{Kept: []string{"keep", "chg", "add"}},
		},
	} {
		t.Run(step.name, func(t *testing.T) {
			before := byName(a.Links())
			replicated := keep.Status().Records
			step.change(&c)
			ch, err := a.Apply(t.Context(), c.parse(t))
			require.NoError(t, err)
			require.Equal(t, step.want, ch)
			after := byName(a.Links())
			for _, n := range step.want.Kept {
				require.Same(t, before[n], after[n], "link %s kept", n)
			}
			if step.check != nil {
				step.check(t, before, after)
			}
			// "keep" went on replicating, untouched.
			require.Same(t, keep, after["keep"])
			testbed.Eventually(t, 10*time.Second, func() error {
				if n := keep.Status().Records; n <= replicated {
					return fmt.Errorf("keep stuck at %d records", n)
				}
				return nil
			})
			require.Contains(t, connected, keep.Status().State)
			require.Empty(t, interrupted(keep, began), "keep's state changes since it connected")
		})
	}
	close(watchDone)
	watchWG.Wait()
	t.Logf("keep's count stood still for at most %s while links were added, removed and restarted", longest)
	require.Less(t, longest, 5*time.Second, "keep paused")
	written, err := stopSteady()
	require.NoError(t, err)
	requireMirrored(t, cloud.ListenAddrs(), "keep", int(written))
	require.Empty(t, interrupted(keep, began))

	t.Run("change the site", func(t *testing.T) {
		before := byName(a.Links())
		c.site = "plant-2"
		ch, err := a.Apply(t.Context(), c.parse(t))
		require.NoError(t, err)
		require.Equal(t, agent.Changes{Restarted: []string{"keep", "chg", "add"}}, ch)
		for n, l := range byName(a.Links()) {
			require.NotSame(t, before[n], l)
			require.Equal(t, link.StateStopped, before[n].Status().State)
			waitState(t, l, connected...)
		}
	})
	require.NoError(t, run.stop())
	for _, l := range a.Links() {
		require.Equal(t, link.StateStopped, l.Status().State)
	}
	_, err = a.Apply(t.Context(), c.parse(t))
	require.ErrorIs(t, err, agent.ErrStopped)
}

// TestFailedLinks: a link that stops for good stays among the links,
// failed, while the others run; an Apply that changes it restarts it. The
// agent returns the errors of links that stopped for good, and returns by
// itself once every link did.
func TestFailedLinks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		links []lnk
	}{
		{"one of two failed", []lnk{up("big", "big", "on_error: stop"), up("ok", "ok")}},
		{"every link failed", []lnk{up("big", "big", "on_error: stop")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edge := testbed.StartFake(t, kfake.SeedTopics(1, "big", "ok"))
			cloud := testbed.StartFake(t)
			p := newProducer(t, edge.ListenAddrs())
			p.produce(t, "big", 3, 0)
			p.produce(t, "big", 1, 2<<20) // more than the destination producer sends in one batch
			p.produce(t, "big", 3, 0)
			c := conf{site: "plant-1", edge: edge.ListenAddrs(), cloud: cloud.ListenAddrs(), links: tc.links}
			a := agent.New(c.parse(t), fast, testLogger(t))
			run := runAgent(t, a)
			big := a.Links()[0]
			waitState(t, big, link.StateFailed)

			if len(tc.links) == 1 {
				select {
				case <-run.done:
					require.ErrorIs(t, run.err, link.ErrRefused)
				case <-time.After(30 * time.Second):
					t.Fatal("the agent did not return once its only link failed")
				}
				_, err := a.Apply(t.Context(), c.parse(t))
				require.ErrorIs(t, err, agent.ErrStopped)
				return
			}

			ok := a.Links()[1]
			p.produce(t, "ok", 10, 0)
			requireMirrored(t, cloud.ListenAddrs(), "ok", 10)
			require.Equal(t, []*link.Link{big, ok}, a.Links(), "the failed link stays")
			require.Equal(t, link.StateFailed, big.Status().State)
			select {
			case <-run.done:
				t.Fatalf("the agent returned while a link runs: %v", run.err)
			default:
			}

			// Unchanged, a reload starts it again (as after fixing the
			// cause): here it fails again the same way. Changed, it
			// restarts and replicates.
			ch, err := a.Apply(t.Context(), c.parse(t))
			require.NoError(t, err)
			require.Equal(t, agent.Changes{Restarted: []string{"big"}, Kept: []string{"ok"}}, ch)
			require.NotSame(t, big, a.Links()[0])
			require.Same(t, ok, a.Links()[1])
			waitState(t, a.Links()[0], link.StateFailed)
			c.links[0].extra = "on_error: skip-and-record"
			ch, err = a.Apply(t.Context(), c.parse(t))
			require.NoError(t, err)
			require.Equal(t, agent.Changes{Restarted: []string{"big"}, Kept: []string{"ok"}}, ch)
			restarted := a.Links()[0]
			require.NotSame(t, big, restarted)
			requireMirrored(t, cloud.ListenAddrs(), "big", 6)
			testbed.Eventually(t, 10*time.Second, func() error {
				if n := restarted.Status().SkippedRecords; n != 1 {
					return fmt.Errorf("%d skipped", n)
				}
				return nil
			})
			require.NoError(t, run.stop(), "the link that failed was replaced")
		})
	}
}

// TestFailedLinkErrorReturned: Run returns, once stopped, the error of a
// current link that stopped for good.
func TestFailedLinkErrorReturned(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(1, "big", "ok"))
	cloud := testbed.StartFake(t)
	p := newProducer(t, edge.ListenAddrs())
	p.produce(t, "big", 1, 2<<20)
	c := conf{edge: edge.ListenAddrs(), cloud: cloud.ListenAddrs(), links: []lnk{up("big", "big"), up("ok", "ok")}}
	a := agent.New(c.parse(t), fast, testLogger(t))
	run := runAgent(t, a)
	waitState(t, a.Links()[0], link.StateFailed)
	waitState(t, a.Links()[1], connected...)
	err := run.stop()
	require.ErrorIs(t, err, link.ErrRefused)
	require.ErrorContains(t, err, "link big")
}

// TestInterruptedApply: an Apply whose context ends while it waits for a
// link to stop leaves that link out, and the next Apply of the same
// configuration starts it again, after the old one returned.
func TestInterruptedApply(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(1, "a", "b"))
	cloud := testbed.StartFake(t)
	c := conf{site: "plant-1", edge: edge.ListenAddrs(), cloud: cloud.ListenAddrs(), links: []lnk{up("a", "a"), up("b", "b")}}
	a := agent.New(c.parse(t), fast, testLogger(t))
	run := runAgent(t, a)
	for _, l := range a.Links() {
		waitState(t, l, connected...)
	}
	old := a.Links()[0]
	c.links[0].include = "a|b"
	next := c.parse(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ch, err := a.Apply(ctx, next)
	t.Logf("apply with a cancelled context: %v", err)
	if err == nil {
		// The link returned before Apply looked at ctx: nothing to finish.
		require.Equal(t, agent.Changes{Restarted: []string{"a"}, Kept: []string{"b"}}, ch)
	} else {
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, agent.Changes{Removed: []string{"a"}, Kept: []string{"b"}}, ch)
		require.Equal(t, []string{"b"}, names(a.Links()))
		ch, err = a.Apply(t.Context(), next)
		require.NoError(t, err)
		require.Equal(t, agent.Changes{Added: []string{"a"}, Kept: []string{"b"}}, ch)
	}
	require.Equal(t, link.StateStopped, old.Status().State)
	require.Equal(t, []string{"a", "b"}, names(a.Links()))
	waitState(t, a.Links()[0], connected...)
	p := newProducer(t, edge.ListenAddrs())
	p.produce(t, "a", 5, 0)
	requireMirrored(t, cloud.ListenAddrs(), "a", 5)
	require.NoError(t, run.stop())
}

// TestRestartOnlyLink: restarting or removing the agent's only link
// leaves the agent running (it returns by itself only once every link
// stopped for good), and a link added later starts.
func TestRestartOnlyLink(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(1, "a", "b"))
	cloud := testbed.StartFake(t)
	c := conf{site: "plant-1", edge: edge.ListenAddrs(), cloud: cloud.ListenAddrs(), links: []lnk{up("a", "a")}}
	a := agent.New(c.parse(t), fast, testLogger(t))
	run := runAgent(t, a)
	waitState(t, a.Links()[0], connected...)
	p := newProducer(t, edge.ListenAddrs())

	for _, step := range []struct {
		name   string
		change func(*conf)
		want   agent.Changes
	}{
		{"restart it", func(c *conf) { c.links[0].include = "a|b" }, agent.Changes{Restarted: []string{"a"}}},
		{"remove it", func(c *conf) { c.links = nil }, agent.Changes{Removed: []string{"a"}}},
		{"add one", func(c *conf) { c.links = []lnk{up("b", "b")} }, agent.Changes{Added: []string{"b"}}},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.change(&c)
			ch, err := a.Apply(t.Context(), c.parse(t))
			require.NoError(t, err)
			require.Equal(t, step.want, ch)
			for _, l := range a.Links() {
				waitState(t, l, connected...)
			}
			select {
			case <-run.done:
				t.Fatalf("the agent returned: %v", run.err)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
	p.produce(t, "b", 4, 0)
	requireMirrored(t, cloud.ListenAddrs(), "b", 4)
	require.NoError(t, run.stop())
}
