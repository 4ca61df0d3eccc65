package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/signing"
	"github.com/edgelink/edgelink/internal/testbed"
)

// The fleet service scenario: hundreds of simulated sites and three real
// agents report into one real Kafka cloud; one fleet service lists them
// all; signed revisions reach the managed agents, are refused when they
// must be, reverted when their links do not come up, and reach a site that
// was offline when it reconnects.

// fleetBed is the cloud, the operator's keys and the cloud-side config.
type fleetBed struct {
	cloud    *testbed.Cluster
	wan      *faultnet.Network
	dir      string
	cloudCfg string
}

// edgelink runs the binary to completion and returns its output.
func edgelink(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	require.NoError(t, err, "edgelink %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// fleetSite is a managed site: a kfake edge and an `edgelink run` agent.
type fleetSite struct {
	name  string
	edge  string
	cloud []string
	agent *agent
}

func (b *fleetBed) startSite(t *testing.T, name string, cloud []string) *fleetSite {
	t.Helper()
	edge := testbed.StartFake(t, kfake.ClusterID("edge-"+name), kfake.SeedTopics(3, "sensors.temp")).ListenAddrs()[0]
	cfg := fmt.Sprintf(`site: %s
site_labels: {tier: test, name: %s}
clusters:
  edge: {bootstrap: ["${EDGE_BROKERS}"]}
  cloud: {bootstrap: ["${CLOUD_BROKERS}"]}
links:
  - {name: telemetry-up, from: edge, to: cloud, topics: {include: ['sensors\..*']}, rename: "{site}.{topic}"}
fleet: {cluster: cloud, interval: 1s, managed: true, trusted_keys: [%q], revert_after: 10s}
http: {listen: "127.0.0.1:0"}
`, name, name, filepath.Join(b.dir, "ops.pub"))
	path := filepath.Join(b.dir, name+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	env := []string{"EDGE_BROKERS=" + edge, "CLOUD_BROKERS=" + strings.Join(cloud, ",")}
	return &fleetSite{name: name, edge: edge, cloud: cloud, agent: startProcess(t, name, env, "run", "-c", path)}
}

// doc is a revision document for the sites: the telemetry link, plus the
// named extra links. Its brokers resolve at each site.
func fleetDoc(extra ...string) string {
	var b strings.Builder
	b.WriteString(`clusters:
  edge: {bootstrap: ["${EDGE_BROKERS}"]}
  cloud: {bootstrap: ["${CLOUD_BROKERS}"]}
  nowhere: {bootstrap: ["127.0.0.1:1"]}
links:
  - {name: telemetry-up, from: edge, to: cloud, topics: {include: ['sensors\..*']}, rename: "{site}.{topic}"}
`)
	for _, e := range extra {
		switch e {
		case "extra":
			b.WriteString("  - {name: extra, from: edge, to: cloud, topics: {include: ['extra\\..*']}, rename: \"{site}.{topic}\"}\n")
		case "lost":
			b.WriteString("  - {name: lost, from: nowhere, to: cloud, topics: {include: ['lost\\..*']}}\n")
		}
	}
	return b.String()
}

var publishedRE = regexp.MustCompile(`published revision (\d+) for`)

// apply publishes doc for site with the key through `edgelink fleet apply`
// and returns the revision number and when the command started.
func (b *fleetBed) apply(t *testing.T, site, key, doc string, extra ...string) (int64, time.Time) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "agent.yaml")
	require.NoError(t, os.WriteFile(f, []byte(doc), 0o600))
	began := time.Now()
	out := edgelink(t, append([]string{"fleet", "apply", "-c", b.cloudCfg, "--site", site, "--key", filepath.Join(b.dir, key), "-f", f}, extra...)...)
	m := publishedRE.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	n, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(t, err)
	return n, began
}

// appliedAt returns when the agent logged that it applied revision n.
func appliedAt(a *agent, n int64) (time.Time, bool) {
	for _, m := range a.logsWith("fleet revision applied") {
		if rev, _ := m["revision"].(float64); int64(rev) == n {
			at, err := time.Parse(time.RFC3339Nano, m["time"].(string))
			return at, err == nil
		}
	}
	return time.Time{}, false
}

// fleetAPI reads the fleet service's API.
type fleetAPI struct{ url string }

func (f fleetAPI) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, out)
}

func (f fleetAPI) site(ctx context.Context, name string) (fleet.SiteDetail, error) {
	var d fleet.SiteDetail
	err := f.get(ctx, "api/v1/fleet/sites/"+name, &d)
	return d, err
}

// startFleetService starts `edgelink fleet serve` and returns its API once
// it is loaded.
func (b *fleetBed) startFleetService(t *testing.T, name string) (*agent, fleetAPI) {
	t.Helper()
	p := startProcess(t, name, nil, "fleet", "serve", "-c", b.cloudCfg)
	var api fleetAPI
	testbed.Eventually(t, 30*time.Second, func() error {
		for _, m := range p.logsWith("fleet service running") {
			if u, _ := m["page"].(string); u != "" {
				api = fleetAPI{url: u}
				return nil
			}
		}
		return fmt.Errorf("fleet service not running yet")
	})
	testbed.Eventually(t, 60*time.Second, func() error {
		resp, err := http.Get(api.url + "readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %s", resp.Status)
		}
		return nil
	})
	return p, api
}

// simulate publishes the reports of sims every interval until ctx ends;
// a site whose index is in silenced stops reporting.
func simulate(ctx context.Context, cl *kgo.Client, topic string, sims []*fleet.SimSite, interval time.Duration, silenced *atomic.Int64) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		recs := make([]*kgo.Record, 0, len(sims))
		now := time.Now()
		for i, s := range sims {
			if int64(i) == silenced.Load() {
				continue
			}
			v, err := json.Marshal(s.Report(now, interval))
			if err != nil {
				return err
			}
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(s.Key()), Value: v})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func TestRealKafkaFleetService(t *testing.T) {
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	b := &fleetBed{wan: wan, dir: t.TempDir()}
	b.cloud = wanCloud(t, wan)
	edgelink(t, "keygen", "--out", filepath.Join(b.dir, "ops"))
	edgelink(t, "keygen", "--out", filepath.Join(b.dir, "stranger"))
	b.cloudCfg = filepath.Join(b.dir, "cloud.yaml")
	require.NoError(t, os.WriteFile(b.cloudCfg, fmt.Appendf(nil, `clusters:
  cloud: {bootstrap: [%q]}
fleet: {cluster: cloud}
http: {listen: "127.0.0.1:0"}
`, b.cloud.Bootstrap()[0]), 0o600))

	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()

	// 500 simulated sites report every 5 s; three real agents every 1 s.
	// Site 3 reaches the cloud through the WAN that the test cuts.
	sims := fleet.SimFleet("sim", 500, "v1.4.0", "v1.3.2", 42)
	var silenced atomic.Int64
	silenced.Store(-1)
	cl, err := b.cloud.Client()
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	require.NoError(t, fleet.CreateTopics(ctx, mustClientOpts(b.cloud), fleet.TopicsOf("")))
	simCtx, stopSims := context.WithCancel(ctx)
	var simWG sync.WaitGroup
	simWG.Go(func() {
		if err := simulate(simCtx, cl, fleet.TopicsOf("").Reports, sims, 5*time.Second, &silenced); err != nil {
			t.Errorf("simulated sites: %v", err)
		}
	})
	t.Cleanup(func() { stopSims(); simWG.Wait() })
	s1 := b.startSite(t, "site-1", b.cloud.Bootstrap())
	s2 := b.startSite(t, "site-2", b.cloud.Bootstrap())
	s3 := b.startSite(t, "site-3", b.cloud.WANBootstrap())
	svc, api := b.startFleetService(t, "fleet-service")

	// Every site is listed.
	testbed.Eventually(t, 60*time.Second, func() error {
		var f fleet.Fleet
		if err := api.get(ctx, "api/v1/fleet", &f); err != nil {
			return err
		}
		if len(f.Sites) != 503 {
			return fmt.Errorf("%d sites listed", len(f.Sites))
		}
		for _, s := range []string{"site-1", "site-2", "site-3"} {
			i := slices.IndexFunc(f.Sites, func(x fleet.Site) bool { return x.Site == s })
			if i < 0 || f.Sites[i].State != "live" || !f.Sites[i].Config.Managed {
				return fmt.Errorf("%s not live and managed yet", s)
			}
		}
		return nil
	})

	// A site that falls silent is flagged within 30 s.
	silenced.Store(6)
	silencedAt := time.Now()
	testbed.Eventually(t, 30*time.Second, func() error {
		d, err := api.site(ctx, sims[6].Name)
		if err != nil || !d.Stale {
			return fmt.Errorf("%s not flagged silent (%w)", sims[6].Name, err)
		}
		return nil
	})
	t.Logf("a silent site flagged %s after its last report", time.Since(silencedAt).Round(time.Second))

	// 20 revisions to a connected managed agent, one after the other.
	var took []time.Duration
	for i := range 20 {
		doc := fleetDoc()
		if i%2 == 0 {
			doc = fleetDoc("extra")
		}
		n, began := b.apply(t, "site-1", "ops.key", doc)
		var at time.Time
		testbed.Eventually(t, 30*time.Second, func() error {
			var ok bool
			if at, ok = appliedAt(s1.agent, n); !ok {
				return fmt.Errorf("revision %d not applied", n)
			}
			return nil
		})
		took = append(took, at.Sub(began))
	}
	slices.Sort(took)
	p95 := took[len(took)*95/100-1]
	t.Logf("20 applies to a connected agent: median %s, p95 %s, max %s", took[len(took)/2].Round(time.Millisecond), p95.Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	require.Less(t, p95, 10*time.Second)
	testbed.Eventually(t, 20*time.Second, func() error {
		d, err := api.site(ctx, "site-1")
		if err != nil || d.Config.AppliedRevision == 0 || d.Config.AppliedRevision != d.Config.DesiredRevision {
			return fmt.Errorf("site-1 config %+v (%w)", d.Config, err)
		}
		return nil
	})

	// Refused revisions change nothing at the site.
	restarts := len(s2.agent.logsWith("stopping link"))
	refused := func(n int64, reason string) {
		t.Helper()
		testbed.Eventually(t, 30*time.Second, func() error {
			d, err := api.site(ctx, "site-2")
			if err != nil || d.Config.RefusedRevision != n || !strings.Contains(d.Config.RefusedReason, reason) {
				return fmt.Errorf("site-2 config %+v (%w)", d.Config, err)
			}
			if len(d.Links) != 1 || d.Links[0].State != "live" {
				return fmt.Errorf("site-2 links %+v", d.Links)
			}
			return nil
		})
		require.Len(t, s2.agent.logsWith("stopping link"), restarts, "a refused revision restarts nothing")
	}
	n, _ := b.apply(t, "site-2", "stranger.key", fleetDoc("extra"))
	refused(n, "untrusted key")
	signer, err := signing.LoadPrivate(filepath.Join(b.dir, "ops.key"))
	require.NoError(t, err)
	env, err := fleet.Seal(fleet.Revision{Format: fleet.RevisionFormat, Number: n + 1, Target: fleet.Target{Site: "site-2"}, IssuedAt: time.Now(), Document: fleetDoc()}, signer)
	require.NoError(t, err)
	env.Payload = []byte(strings.Replace(string(env.Payload), "sensors", "sensorz", 1))
	v, err := env.Marshal()
	require.NoError(t, err)
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: fleet.TopicsOf("").Config, Key: []byte("site/site-2"), Value: v}).FirstErr())
	refused(n+1, "bad signature")
	n, _ = b.apply(t, "site-2", "ops.key", "clusters:\n  cloud: {bootstrap: [\"${CLOUD_BROKERS}\"]}\nlinks:\n  - {name: up, from: cloud, to: cloud, topics: {include: [x]}}\n", "--force")
	refused(n, "invalid configuration")

	// A revision whose new link never comes up is reverted.
	good, _ := b.apply(t, "site-2", "ops.key", fleetDoc("extra"))
	testbed.Eventually(t, 30*time.Second, func() error {
		d, err := api.site(ctx, "site-2")
		if err != nil || d.Config.GoodRevision != good {
			return fmt.Errorf("site-2 config %+v (%w)", d.Config, err)
		}
		return nil
	})
	bad, badAt := b.apply(t, "site-2", "ops.key", fleetDoc("extra", "lost"))
	testbed.Eventually(t, 40*time.Second, func() error {
		d, err := api.site(ctx, "site-2")
		if err != nil || d.Config.RefusedRevision != bad || !d.Config.Reverted || d.Config.AppliedRevision != good {
			return fmt.Errorf("site-2 config %+v (%w)", d.Config, err)
		}
		if names := linkNamesOf(d.Links); names != "telemetry-up,extra" {
			return fmt.Errorf("site-2 links %s", names)
		}
		return nil
	})
	t.Logf("revision %d reverted %s after it was published", bad, time.Since(badAt).Round(time.Second))

	// A site offline during two applies gets only the newest within 30 s
	// of reconnecting.
	wan.Cut()
	skipped, _ := b.apply(t, "site-3", "ops.key", fleetDoc("extra"))
	newest, _ := b.apply(t, "site-3", "ops.key", fleetDoc())
	time.Sleep(3 * time.Second)
	wan.Restore()
	back := time.Now()
	var at time.Time
	testbed.Eventually(t, 30*time.Second, func() error {
		var ok bool
		if at, ok = appliedAt(s3.agent, newest); !ok {
			return fmt.Errorf("revision %d not applied", newest)
		}
		return nil
	})
	_, appliedSkipped := appliedAt(s3.agent, skipped)
	require.False(t, appliedSkipped, "a revision superseded while the site was offline is never applied")
	testbed.Eventually(t, 30*time.Second, func() error {
		d, err := api.site(ctx, "site-3")
		if err != nil || d.Config.AppliedRevision != newest {
			return fmt.Errorf("site-3 config %+v (%w)", d.Config, err)
		}
		return nil
	})
	t.Logf("offline site: newest revision applied %s and reported %s after the link returned", at.Sub(back).Round(time.Millisecond), time.Since(back).Round(time.Millisecond))

	// A restarted fleet service has everything back from the topics.
	svc.kill()
	_, api = b.startFleetService(t, "fleet-service-2")
	var f fleet.Fleet
	require.NoError(t, api.get(ctx, "api/v1/fleet", &f))
	require.Len(t, f.Sites, 503)
	d, err := api.site(ctx, "site-2")
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, e := range d.History {
		kinds[e.Kind]++
	}
	require.Positive(t, kinds[fleet.HistoryReverted], "history %v", kinds)
	require.Positive(t, kinds[fleet.HistoryRefused], "history %v", kinds)
	out := edgelink(t, "fleet", "status", "-c", b.cloudCfg, "--site", "site-*")
	require.Contains(t, out, "site-2")
	require.Contains(t, out, "reverted")
	t.Logf("edgelink fleet status --site 'site-*':\n%s", out)

	stopAgents(t, s1.agent, s2.agent, s3.agent)
}

func linkNamesOf(links []fleet.SiteLink) string {
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = l.Name
	}
	return strings.Join(names, ",")
}

// mustClientOpts are the options of a client of c.
func mustClientOpts(c *testbed.Cluster) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...)}
}
