package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/signing"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// fast makes links commit, discover and retry quickly.
var fast = agent.Options{LinkOptions: func(*config.Link) link.Options {
	return link.Options{
		CommitInterval: 30 * time.Millisecond, DiscoveryInterval: 300 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second, FirstAssignment: 100 * time.Millisecond,
	}
}}

// bed is an edge and a cloud cluster, an operator's key and the local file
// of a managed site.
type bed struct {
	edge, cloud string
	dir         string
	operator    *signing.Signer
	localFile   string
	opts        []kgo.Opt
	topics      fleet.Topics
}

func newBed(t *testing.T, revertAfter time.Duration) *bed {
	edge := testbed.StartFake(t).ListenAddrs()[0]
	cloud := testbed.StartFake(t).ListenAddrs()[0]
	dir := t.TempDir()
	require.NoError(t, signing.WriteKeyPair(filepath.Join(dir, "ops")))
	op, err := signing.LoadPrivate(filepath.Join(dir, "ops.key"))
	require.NoError(t, err)
	b := &bed{edge: edge, cloud: cloud, dir: dir, operator: op, topics: fleet.TopicsOf("")}
	local := fmt.Sprintf(`site: plant-a
site_labels: {region: eu}
clusters:
  edge: {bootstrap: [%q]}
  cloud: {bootstrap: [%q]}
links:
  - {name: up, from: edge, to: cloud, topics: {include: ["s.*"]}}
fleet: {cluster: cloud, interval: 1s, managed: true, trusted_keys: [%q], revert_after: %s}
`, edge, cloud, filepath.Join(dir, "ops.pub"), revertAfter)
	b.localFile = filepath.Join(dir, "edgelink.yaml")
	require.NoError(t, os.WriteFile(b.localFile, []byte(local), 0o600))
	cfg, err := config.Load(b.localFile)
	require.NoError(t, err)
	b.opts, err = kafka.ClientOptions(cfg.Clusters["cloud"], nil, kafka.Dial{})
	require.NoError(t, err)
	return b
}

// doc is a revision document with the links given as YAML flow mappings.
func (b *bed) doc(links ...string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "clusters:\n  edge: {bootstrap: [%q]}\n  cloud: {bootstrap: [%q]}\n  nowhere: {bootstrap: [\"127.0.0.1:1\"]}\nlinks:\n", b.edge, b.cloud)
	for _, l := range links {
		s.WriteString("  - " + l + "\n")
	}
	return s.String()
}

const (
	linkUp  = `{name: up, from: edge, to: cloud, topics: {include: ["s.*"]}}`
	linkUp2 = `{name: up2, from: edge, to: cloud, topics: {include: ["t.*"]}}`
	linkBad = `{name: lost, from: nowhere, to: cloud, topics: {include: ["u.*"]}}`
)

// site is a running managed agent.
type site struct {
	agent  *agent.Agent
	uplink *fleet.Uplink
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (b *bed) start(t *testing.T) *site { return b.startWith(t, kafka.Dial{}) }

// startWith starts the site with its fleet connections dialed by d.
func (b *bed) startWith(t *testing.T, d kafka.Dial) *site {
	text, err := os.ReadFile(b.localFile)
	require.NoError(t, err)
	cfg, err := config.Parse(b.localFile, text)
	require.NoError(t, err)
	logger := testLogger(t)
	a := agent.New(cfg, fast, logger)
	model := status.New(status.Options{Links: a, Version: "v-test", Logger: logger})
	u, err := fleet.NewUplink(fleet.UplinkOptions{Local: cfg, LocalText: text, Agent: a, Status: model, Dial: d, Logger: logger})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	s := &site{agent: a, uplink: u, cancel: cancel}
	s.wg.Go(func() { _ = a.Run(ctx) })
	s.wg.Go(func() { model.Run(ctx) })
	s.wg.Go(func() { _ = u.Run(ctx) })
	t.Cleanup(s.stop)
	return s
}

func (s *site) stop() {
	s.cancel()
	s.wg.Wait()
}

// follow runs a reader of the fleet into a view for the test.
func (b *bed) follow(t *testing.T) *fleet.View {
	view := fleet.NewView(nil)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = fleet.NewReader(b.opts, b.topics, view, testLogger(t)).Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return view
}

func (b *bed) publish(t *testing.T, signer *signing.Signer, doc string) int64 {
	revs, err := fleet.Publish(t.Context(), b.opts, b.topics, fleet.PublishOptions{
		Targets: []fleet.Target{{Site: "plant-a"}}, Document: []byte(doc), Signer: signer,
	})
	require.NoError(t, err)
	return revs[0].Number
}

// produce writes an envelope to the site's key of the config topic as is.
func (b *bed) produce(t *testing.T, env fleet.Envelope) {
	cl, err := kgo.NewClient(b.opts...)
	require.NoError(t, err)
	defer cl.Close()
	v, err := env.Marshal()
	require.NoError(t, err)
	require.NoError(t, cl.ProduceSync(t.Context(), &kgo.Record{Topic: b.topics.Config, Key: []byte("site/plant-a"), Value: v}).FirstErr())
}

func linkNames(a *agent.Agent) string {
	_, links := a.Current()
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Name()
	}
	return strings.Join(names, ",")
}

func siteConfig(view *fleet.View) (fleet.ConfigState, error) {
	s, ok := view.Site("plant-a")
	if !ok {
		return fleet.ConfigState{}, fmt.Errorf("site plant-a not reported yet")
	}
	return s.Config, nil
}

// TestManagedSite walks a managed site through the configuration channel:
// it reports; it applies a signed revision without restarting the link
// that did not change; it refuses a revision signed by an unknown key, a
// tampered one, an invalid one and an older one, and keeps running; it
// reverts a revision whose new link does not become live; and a restarted
// agent takes its last good revision back from the fleet.
func TestManagedSite(t *testing.T) {
	b := newBed(t, 3*time.Second)
	s := b.start(t)
	view := b.follow(t)

	testbed.Eventually(t, 20*time.Second, func() error {
		st, ok := view.Site("plant-a")
		if !ok {
			return fmt.Errorf("no report yet")
		}
		if len(st.Links) != 1 || st.Links[0].Name != "up" || st.Labels["region"] != "eu" || !st.Config.Managed || st.Version != "v-test" {
			return fmt.Errorf("report %+v", st)
		}
		return nil
	})

	_, before := s.agent.Current()
	rev1 := b.publish(t, b.operator, b.doc(linkUp, linkUp2))
	testbed.Eventually(t, 20*time.Second, func() error {
		c, err := siteConfig(view)
		if err != nil || c.AppliedRevision != rev1 || c.DesiredRevision != rev1 {
			return fmt.Errorf("config %+v: %w", c, err)
		}
		return nil
	})
	require.Equal(t, "up,up2", linkNames(s.agent))
	_, after := s.agent.Current()
	require.Same(t, before[0], after[0], "the unchanged link keeps running")

	// A key the site does not trust.
	require.NoError(t, signing.WriteKeyPair(filepath.Join(b.dir, "stranger")))
	stranger, err := signing.LoadPrivate(filepath.Join(b.dir, "stranger.key"))
	require.NoError(t, err)
	refused := func(rev int64, reason string) {
		t.Helper()
		testbed.Eventually(t, 20*time.Second, func() error {
			c, err := siteConfig(view)
			if err != nil || c.RefusedRevision != rev || !strings.Contains(c.RefusedReason, reason) || c.AppliedRevision != rev1 {
				return fmt.Errorf("config %+v: %w", c, err)
			}
			return nil
		})
		require.Equal(t, "up,up2", linkNames(s.agent), "a refused revision changes nothing")
	}
	rev2 := b.publish(t, stranger, b.doc(linkUp))
	refused(rev2, "untrusted key")

	// A tampered revision: the document changed after signing.
	rev3 := rev2 + 1
	env, err := fleet.Seal(fleet.Revision{Format: 1, Number: rev3, Target: fleet.Target{Site: "plant-a"}, IssuedAt: time.Now(), Document: b.doc(linkUp)}, b.operator)
	require.NoError(t, err)
	env.Payload = []byte(strings.Replace(string(env.Payload), `\"s.*\"`, `\"x.*\"`, 1))
	b.produce(t, env)
	refused(rev3, "bad signature")

	// An invalid document.
	rev4 := b.publish(t, b.operator, "clusters:\n  cloud: {bootstrap: [\"127.0.0.1\"]}\n")
	refused(rev4, "invalid configuration")

	// A link that never becomes live: applied, then reverted.
	rev5 := b.publish(t, b.operator, b.doc(linkUp, linkUp2, linkBad))
	testbed.Eventually(t, 30*time.Second, func() error {
		c, err := siteConfig(view)
		if err != nil || c.RefusedRevision != rev5 || !c.Reverted || c.AppliedRevision != rev1 || !strings.Contains(c.RefusedReason, "lost is") {
			return fmt.Errorf("config %+v: %w", c, err)
		}
		return nil
	})
	require.Equal(t, "up,up2", linkNames(s.agent), "reverted to the last good revision")

	// A good revision, then a replay of an older one.
	rev6 := b.publish(t, b.operator, b.doc(linkUp))
	testbed.Eventually(t, 20*time.Second, func() error {
		c, err := siteConfig(view)
		if err != nil || c.AppliedRevision != rev6 {
			return fmt.Errorf("config %+v: %w", c, err)
		}
		return nil
	})
	old, err := fleet.Seal(fleet.Revision{Format: 1, Number: rev1, Target: fleet.Target{Site: "plant-a"}, IssuedAt: time.Now(), Document: b.doc(linkUp, linkUp2)}, b.operator)
	require.NoError(t, err)
	b.produce(t, old)
	testbed.Eventually(t, 20*time.Second, func() error {
		c, err := siteConfig(view)
		if err != nil || c.RefusedRevision != rev1 || !strings.Contains(c.RefusedReason, "older than the current one") || c.AppliedRevision != rev6 {
			return fmt.Errorf("config %+v: %w", c, err)
		}
		return nil
	})
	require.Equal(t, "up", linkNames(s.agent))

	// The history holds every revision published and every outcome.
	d, ok := view.Site("plant-a")
	require.True(t, ok)
	kinds := map[string]int{}
	for _, e := range d.History {
		kinds[e.Kind]++
	}
	require.GreaterOrEqual(t, kinds[fleet.HistoryPublished], 4, "%v", kinds)
	require.GreaterOrEqual(t, kinds[fleet.HistoryApplied], 3, "%v", kinds)
	require.GreaterOrEqual(t, kinds[fleet.HistoryRefused], 4, "%v", kinds)
	require.Equal(t, 1, kinds[fleet.HistoryReverted], "%v", kinds)

	// A new agent on the same file takes the last good revision back. The
	// local file has link "up" only; make the last good revision differ.
	rev7 := b.publish(t, b.operator, b.doc(linkUp2))
	testbed.Eventually(t, 20*time.Second, func() error {
		c, err := siteConfig(view)
		if err != nil || c.AppliedRevision != rev7 {
			return fmt.Errorf("config %+v: %w", c, err)
		}
		return nil
	})
	time.Sleep(time.Second) // the confirmed state reaches the state topic
	s.stop()
	s2 := b.start(t)
	testbed.Eventually(t, 20*time.Second, func() error {
		if got := linkNames(s2.agent); got != "up2" {
			return fmt.Errorf("links %s", got)
		}
		if c := s2.uplink.State().Config; c.AppliedRevision != rev7 || c.RefusedRevision != rev1 {
			return fmt.Errorf("config %+v", c)
		}
		return nil
	})
}

// TestOfflineSite: a site cut off from the fleet cluster keeps running and
// reporting locally; when it reconnects, its report reaches the fleet at
// once and it applies only the newest of the revisions published
// meanwhile.
func TestOfflineSite(t *testing.T) {
	b := newBed(t, time.Minute)
	wan := faultnet.New(testLogger(t))
	t.Cleanup(func() { _ = wan.Close() })
	s := b.startWith(t, kafka.Dial{Raw: wan.Dialer(), Timeout: 2 * time.Second})
	view := b.follow(t)
	testbed.Eventually(t, 20*time.Second, func() error {
		if _, err := siteConfig(view); err != nil {
			return err
		}
		return nil
	})

	wan.Cut()
	cutAt := time.Now()
	skipped := b.publish(t, b.operator, b.doc(linkUp, linkUp2))
	newest := b.publish(t, b.operator, b.doc(linkUp2))
	testbed.Eventually(t, 20*time.Second, func() error {
		if st := s.uplink.State(); st.LastError == "" || st.Failed == 0 {
			return fmt.Errorf("uplink %+v", st)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	require.Equal(t, "up", linkNames(s.agent), "nothing reaches a site that is cut off")
	st, _ := view.Site("plant-a")
	require.True(t, st.LastSeen.Before(cutAt.Add(time.Second)), "no report passes the cut")

	wan.Restore()
	restored := time.Now()
	testbed.Eventually(t, 30*time.Second, func() error {
		st, ok := view.Site("plant-a")
		if !ok || st.LastSeen.Before(restored) {
			return fmt.Errorf("no report since the link returned")
		}
		return nil
	})
	reported := time.Since(restored)
	testbed.Eventually(t, 30*time.Second, func() error {
		c, err := siteConfig(view)
		if err != nil || c.AppliedRevision != newest {
			return fmt.Errorf("config %+v: %w", c, err)
		}
		return nil
	})
	applied := time.Since(restored)
	t.Logf("after the link returned: report in %s, newest revision applied in %s", reported.Round(time.Millisecond), applied.Round(time.Millisecond))
	require.Less(t, applied, 30*time.Second)
	require.Equal(t, "up2", linkNames(s.agent))
	d, _ := view.Site("plant-a")
	for _, e := range d.History {
		if e.Kind == fleet.HistoryApplied {
			require.NotEqual(t, skipped, e.Revision, "the revision superseded while the site was offline is never applied")
		}
	}
}

// TestReportShape: a report carries what the fleet needs and stays small.
func TestReportShape(t *testing.T) {
	b := newBed(t, time.Minute)
	s := b.start(t)
	testbed.Eventually(t, 20*time.Second, func() error {
		if st := s.uplink.State(); st.Published < 2 || st.LastError != "" {
			return fmt.Errorf("uplink %+v", st)
		}
		return nil
	})
	r := s.uplink.Report(false)
	raw, err := json.Marshal(r)
	require.NoError(t, err)
	for _, field := range []string{`"site":"plant-a"`, `"labels":{"region":"eu"}`, `"links":[{"name":"up"`, `"lag_records"`, `"data_loss_in_seconds"`, `"config":{"managed":true`, `"certificates":[]`} {
		require.Contains(t, string(raw), field)
	}
	require.Less(t, len(raw), 4096, "a one-link report stays small")
}
