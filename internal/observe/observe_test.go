package observe_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
)

// fixture is a link between two kfake clusters, running, with its status
// model and the HTTP server in front of it.
type fixture struct {
	cfg    *config.Config
	link   *link.Link
	model  *status.Model
	srv    *observe.Server
	client *http.Client
	token  string
	// stopLink stops the link (as an outage would stop its measurements);
	// the model and the server go on.
	stopLink func()
}

func logger(*testing.T) *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

func parseConfig(t *testing.T, src, dst []string, httpBlock string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`site: plant-1
clusters:
  edge: {bootstrap: [%q]}
  cloud: {bootstrap: [%q]}
links:
  - name: up
    from: edge
    to: cloud
    topics: {include: ['sensors\..*']}
    rename: "{site}.{topic}"
http:
  listen: "127.0.0.1:0"
%s`, strings.Join(src, ","), strings.Join(dst, ","), httpBlock)
	cfg, err := config.Parse("test.yaml", []byte(y))
	require.NoError(t, err)
	return cfg
}

var fastOpts = link.Options{CommitInterval: 30 * time.Millisecond, DiscoveryInterval: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}

// start runs the link, its status model and the server until the test
// ends.
func start(t *testing.T, cfg *config.Config, ctl observe.Control) *fixture {
	t.Helper()
	return startWith(t, cfg, observe.Options{Control: ctl})
}

// startWith is start with the server's options; HTTP, Status and Logger
// are set here.
func startWith(t *testing.T, cfg *config.Config, opts observe.Options) *fixture {
	t.Helper()
	l := link.New(cfg, cfg.Links[0], fastOpts, logger(t))
	m := status.New(status.Options{
		Links: status.Static(cfg, l), Version: "v0.0.0-test", Logger: logger(t), SampleInterval: 100 * time.Millisecond,
	})
	opts.HTTP, opts.Status, opts.Logger = cfg.HTTP, m, logger(t)
	srv, err := observe.Listen(t.Context(), opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	lctx, lcancel := context.WithCancel(ctx)
	var wg, lwg sync.WaitGroup
	lwg.Go(func() { _ = l.Run(lctx) })
	wg.Go(func() { m.Run(ctx) })
	wg.Go(func() { require.NoError(t, srv.Run(ctx)) })
	t.Cleanup(func() { cancel(); lwg.Wait(); wg.Wait() })
	return &fixture{
		cfg: cfg, link: l, model: m, srv: srv, client: &http.Client{Timeout: 30 * time.Second}, token: cfg.HTTP.Token,
		stopLink: func() { lcancel(); lwg.Wait() },
	}
}

func (f *fixture) get(t *testing.T, path string, auth bool) (int, string) {
	t.Helper()
	return f.do(t, http.MethodGet, path, auth, nil)
}

func (f *fixture) do(t *testing.T, method, path string, auth bool, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, strings.TrimSuffix(f.srv.URL(), "/")+path, nil)
	require.NoError(t, err)
	if auth && f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := f.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

func (f *fixture) status(t *testing.T) status.Snapshot {
	t.Helper()
	code, body := f.get(t, "/api/v1/status", true)
	require.Equal(t, http.StatusOK, code, body)
	var st status.Snapshot
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	return st
}

func produce(t *testing.T, seeds []string, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	require.NoError(t, err)
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "m%d", i%5), Value: fmt.Appendf(nil, `{"i":%d}`, i)}
	}
	require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
}

// metricValue returns the value of one series in a scrape, or -1 when absent.
func metricValue(t *testing.T, scrape, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(scrape)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

// TestStatusMetricsAndTranslateFake: the status API, the page, /metrics
// and offset translation follow a link that replicates two batches.
func TestStatusMetricsAndTranslateFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "sensors.temp"))
	dst := testbed.StartFake(t)
	f := start(t, parseConfig(t, src.ListenAddrs(), dst.ListenAddrs(), ""), nil)

	code, body := f.get(t, "/healthz", false)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	code, _ = f.get(t, "/debug/pprof/heap", false)
	require.Equal(t, http.StatusNotFound, code, "profiles only with http.pprof")

	produce(t, src.ListenAddrs(), "sensors.temp", 200)
	testbed.Eventually(t, 30*time.Second, func() error {
		if code, body := f.get(t, "/readyz", false); code != http.StatusOK {
			return fmt.Errorf("readyz %d: %s (last error %q)", code, body, f.link.Status().LastError)
		}
		if st := f.status(t); st.Links[0].Records != 200 {
			return fmt.Errorf("%d records replicated", st.Links[0].Records)
		}
		return nil
	})
	st := f.status(t)
	require.Equal(t, "v0.0.0-test", st.Version)
	require.Equal(t, "plant-1", st.Site)
	require.True(t, st.Ready)
	require.False(t, st.Controls)
	require.Len(t, st.Links, 1)
	l := st.Links[0]
	require.Equal(t, "up", l.Name)
	require.Equal(t, "edge", l.From)
	require.Equal(t, "cloud", l.To)
	require.Contains(t, []string{"live", "catching-up"}, l.State)
	require.True(t, l.ConnectedOnce)
	require.Nil(t, l.LinkCut, "link_cut is only reported with controls")
	require.Positive(t, l.Bytes)
	require.Positive(t, l.WireBytes)
	require.Positive(t, l.Transactions)
	kinds := map[string]bool{}
	for i, e := range l.Events {
		kinds[e.Kind] = true
		if i > 0 {
			require.False(t, e.Time.After(l.Events[i-1].Time), "events are newest first")
		}
	}
	require.True(t, kinds["state"], "a state change is among the events: %+v", l.Events)
	require.True(t, kinds["topic"], "the topic discovery is among the events: %+v", l.Events)

	// Per-topic progress appears with the next backlog measurement; the
	// backlog empties with the one after the last commit.
	testbed.Eventually(t, 10*time.Second, func() error {
		st := f.status(t)
		if len(st.Links[0].Topics) != 1 || st.Links[0].Topics[0].Records != 200 || st.Links[0].Topics[0].BacklogRecords != 0 || st.Links[0].Backlog.MeasuredAt == nil {
			return fmt.Errorf("topics %+v", st.Links[0].Topics)
		}
		return nil
	})
	tp := f.status(t).Links[0].Topics[0]
	week := (7 * 24 * time.Hour).Seconds() // kfake's default retention.ms
	require.Equal(t, status.TopicProgress{Source: "sensors.temp", Destination: "plant-1.sensors.temp", Partitions: 2, Priority: 1, Records: 200, Bytes: tp.Bytes, RecordsIn: 200, BytesIn: tp.Bytes, RetentionSeconds: &week}, tp, "without transforms, what goes in comes out")
	require.Nil(t, f.status(t).Links[0].Backlog.DataLossInSeconds, "no data loss ahead without a backlog")
	ls := f.status(t).Links[0]
	require.EqualValues(t, 200, ls.RecordsIn, "the link's records in, as its topics'")
	require.Equal(t, ls.Bytes, ls.BytesIn, "without transforms, what goes in comes out")

	// The JSON is snake_case as documented.
	_, raw := f.get(t, "/api/v1/status", true)
	for _, key := range []string{`"links"`, `"state_since"`, `"records_per_second"`, `"backlog"`, `"age_seconds"`, `"drain_eta_seconds"`, `"data_loss_in_seconds"`, `"backlog_records"`, `"backlog_age_seconds"`, `"retention_seconds"`, `"wire_bytes"`, `"lost_records"`, `"events"`} {
		require.Contains(t, raw, key)
	}

	// Metrics exist and move.
	code, scrape := f.get(t, "/metrics", true)
	require.Equal(t, http.StatusOK, code)
	for _, series := range []string{
		`edgelink_build_info{go_version="` + goVersion(t, scrape) + `",version="v0.0.0-test"}`,
		`edgelink_ready`,
		`edgelink_link_state{link="up",state="disconnected"}`,
		`edgelink_link_state_seconds{link="up"}`,
		`edgelink_link_wire_bytes_total{link="up"}`,
		`edgelink_link_bytes_total{link="up"}`,
		`edgelink_link_transactions_total{link="up"}`,
		`edgelink_link_backlog_records{link="up"}`,
		`edgelink_link_backlog_bytes{link="up"}`,
		`edgelink_link_backlog_age_seconds{link="up"}`,
		`edgelink_link_drain_eta_seconds{link="up"}`,
		`edgelink_link_lost_records_total{link="up"}`,
		`edgelink_link_skipped_records_total{link="up",reason="refused"}`,
		`edgelink_link_skipped_records_total{link="up",reason="loop"}`,
		`edgelink_topic_backlog_records{link="up",topic="sensors.temp"}`,
		`go_goroutines`,
	} {
		require.GreaterOrEqual(t, metricValue(t, scrape, series), 0.0, "series %s missing from\n%s", series, scrape)
	}
	require.Equal(t, 0.0, metricValue(t, scrape, `edgelink_link_state{link="up",state="disconnected"}`))
	require.Equal(t, 1.0, metricValue(t, scrape, `edgelink_ready`))
	require.Equal(t, 200.0, metricValue(t, scrape, `edgelink_link_records_total{link="up"}`))
	require.Equal(t, 200.0, metricValue(t, scrape, `edgelink_topic_records_total{link="up",topic="sensors.temp"}`))
	liveOrCatching := metricValue(t, scrape, `edgelink_link_state{link="up",state="live"}`) + metricValue(t, scrape, `edgelink_link_state{link="up",state="catching-up"}`)
	require.Equal(t, 1.0, liveOrCatching)
	wire := metricValue(t, scrape, `edgelink_link_wire_bytes_total{link="up"}`)

	produce(t, src.ListenAddrs(), "sensors.temp", 300)
	testbed.Eventually(t, 30*time.Second, func() error {
		_, scrape := f.get(t, "/metrics", true)
		if v := metricValue(t, scrape, `edgelink_topic_records_total{link="up",topic="sensors.temp"}`); v != 500 {
			return fmt.Errorf("topic records %v", v)
		}
		if v := metricValue(t, scrape, `edgelink_link_records_total{link="up"}`); v != 500 {
			return fmt.Errorf("link records %v", v)
		}
		if v := metricValue(t, scrape, `edgelink_link_wire_bytes_total{link="up"}`); v <= wire {
			return fmt.Errorf("wire bytes did not move: %v", v)
		}
		return nil
	})
	require.Positive(t, f.status(t).Links[0].RecordsPerSecond+1, "rates are numbers")

	// The page renders the link, server-side.
	code, page := f.get(t, "/", true)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `data-link="up"`)
	require.Contains(t, page, "edge → cloud")
	code, js := f.get(t, "/static/app.js", false)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, js, "/api/v1/status")

	// Offset translation is exact.
	code, body = f.get(t, "/api/v1/links/up/translate?topic=sensors.temp&partition=0&offset=3", true)
	require.Equal(t, http.StatusOK, code, body)
	var tr observe.TranslateResponse
	require.NoError(t, json.Unmarshal([]byte(body), &tr))
	require.Equal(t, observe.TranslateResponse{
		Link: "up", SourceTopic: "sensors.temp", DestinationTopic: "plant-1.sensors.temp", Partition: 0,
		SourceOffset: 3, DestinationOffset: 3, Exact: true,
	}, tr)
	code, body = f.get(t, "/api/v1/links/nope/translate?topic=sensors.temp&partition=0&offset=3", true)
	require.Equal(t, http.StatusNotFound, code, body)
	code, body = f.get(t, "/api/v1/links/up/translate?topic=sensors.temp&partition=x", true)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "partition")

	// No control routes without a Control.
	code, _ = f.do(t, http.MethodPost, "/api/v1/links/up/cut", true, nil)
	require.Contains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, code)
}

// TestDataLossMetricFake: edgelink_link_data_loss_seconds is absent while
// no data loss is ahead, and during an outage with a backlog it is the
// source retention less the backlog's age.
func TestDataLossMetricFake(t *testing.T) {
	src := testbed.StartFake(t)
	dst := testbed.StartFake(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(src.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	resp, err := kadm.NewClient(cl).CreateTopic(t.Context(), 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "sensors.temp")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	f := start(t, parseConfig(t, src.ListenAddrs(), dst.ListenAddrs(), ""), nil)
	produce(t, src.ListenAddrs(), "sensors.temp", 10)
	testbed.Eventually(t, 30*time.Second, func() error {
		if l := f.status(t).Links[0]; len(l.Topics) != 1 || l.Topics[0].Records != 10 || l.Backlog.Records != 0 {
			return fmt.Errorf("topics %+v, backlog %d", l.Topics, l.Backlog.Records)
		}
		return nil
	})
	const series = `edgelink_link_data_loss_seconds{link="up"}`
	_, scrape := f.get(t, "/metrics", true)
	require.Equal(t, -1.0, metricValue(t, scrape, series), "absent without a backlog")

	stopped := time.Now()
	f.stopLink()
	// Once the link's last measurement is stale, the model estimates the
	// backlog from what the source gains.
	testbed.Eventually(t, 10*time.Second, func() error {
		if b := f.status(t).Links[0].Backlog; !b.Estimated {
			return fmt.Errorf("backlog %+v", b)
		}
		return nil
	})
	produce(t, src.ListenAddrs(), "sensors.temp", 5)
	var in float64
	testbed.Eventually(t, 10*time.Second, func() error {
		_, scrape := f.get(t, "/metrics", true)
		if in = metricValue(t, scrape, series); in < 0 {
			return fmt.Errorf("%s absent", series)
		}
		return nil
	})
	// The new records are at most as old as the last measurement, taken
	// before the link stopped, and at least the 3 s after which the
	// backlog is estimated.
	require.LessOrEqual(t, in, 3600-3.0)
	require.GreaterOrEqual(t, in, 3600-time.Since(stopped).Seconds()-2)
}

func goVersion(t *testing.T, scrape string) string {
	t.Helper()
	m := regexp.MustCompile(`edgelink_build_info\{go_version="([^"]+)"`).FindStringSubmatch(scrape)
	require.NotNil(t, m, "no build info in\n%s", scrape)
	return m[1]
}

// TestReadyz: an agent whose link has never reached its destination is
// not ready, and says why; once stopping, it is not ready either.
func TestReadyz(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
	cfg := parseConfig(t, src.ListenAddrs(), []string{"127.0.0.1:1"}, "")
	l := link.New(cfg, cfg.Links[0], fastOpts, logger(t))
	m := status.New(status.Options{Links: status.Static(cfg, l), Logger: logger(t)})
	srv, err := observe.Listen(t.Context(), observe.Options{HTTP: cfg.HTTP, Status: m, Logger: logger(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Run(ctx) })
	wg.Go(func() { m.Run(ctx) })
	wg.Go(func() { _ = srv.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	f := &fixture{srv: srv, client: http.DefaultClient}
	testbed.Eventually(t, 20*time.Second, func() error {
		if l.Status().State != link.StateDisconnected {
			return fmt.Errorf("state %s", l.Status().State)
		}
		return nil
	})
	code, body := f.get(t, "/readyz", false)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready: link up has not connected yet (disconnected)\n", body)
	ok, reason := m.Ready()
	require.False(t, ok)
	require.Contains(t, reason, "has not connected yet")
	require.NotEmpty(t, f.status(t).Links[0].LastError)

	m.Stopping()
	ok, reason = m.Ready()
	require.False(t, ok)
	require.Equal(t, "stopping", reason)
}

// TestNoLinksReady: an agent without links is ready.
func TestNoLinksReady(t *testing.T) {
	srv, err := observe.Listen(t.Context(), observe.Options{HTTP: config.HTTP{Listen: "127.0.0.1:0"}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	f := &fixture{srv: srv, client: http.DefaultClient}
	code, body := f.get(t, "/readyz", false)
	require.Equal(t, http.StatusOK, code, body)
	require.Empty(t, f.status(t).Links)
	cancel()
	require.NoError(t, <-done)
}

// TestTokenAndTLS: with TLS and a token, probes stay open, everything with
// data requires the token, and the page asks for it.
func TestTokenAndTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := testbed.WriteTLSFiles(dir, "127.0.0.1")
	require.NoError(t, err)
	cert, key, err := files.IssueCert(testbed.CertSpec{Name: "http", Hosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("  s3cret-token\n"), 0o600))

	src := testbed.StartFake(t, kfake.SeedTopics(1, "sensors.temp"))
	dst := testbed.StartFake(t)
	cfg := parseConfig(t, src.ListenAddrs(), dst.ListenAddrs(),
		fmt.Sprintf("  tls: {cert_file: %q, key_file: %q}\n  token_file: %q\n  pprof: true\n", cert, key, tokenFile))
	ctl := newFakeControl("up")
	f := start(t, cfg, ctl)
	require.True(t, strings.HasPrefix(f.srv.URL(), "https://127.0.0.1:"), f.srv.URL())
	require.True(t, f.srv.TokenRequired())
	f.token = "s3cret-token"

	// A client that does not trust the CA is refused.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL()+"healthz", nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		res.Body.Close()
	}
	require.ErrorContains(t, err, "certificate")

	pem, err := os.ReadFile(files.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	f.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}

	for _, path := range []string{"/healthz", "/readyz", "/static/app.js", "/static/style.css"} {
		code, body := f.get(t, path, false)
		require.NotEqual(t, http.StatusUnauthorized, code, "%s: %s", path, body)
	}
	for _, path := range []string{"/api/v1/status", "/metrics", "/api/v1/links/up/translate?topic=sensors.temp&partition=0&offset=0", "/debug/pprof/heap"} {
		code, body := f.get(t, path, false)
		require.Equal(t, http.StatusUnauthorized, code, "%s: %s", path, body)
		require.Contains(t, body, "bearer token")
		code, _ = f.do(t, http.MethodGet, path, false, map[string]string{"Authorization": "Bearer wrong"})
		require.Equal(t, http.StatusUnauthorized, code, path)
	}
	code, body := f.get(t, "/api/v1/status", true)
	require.Equal(t, http.StatusOK, code, body)
	require.NotContains(t, body, "s3cret-token")
	// http.pprof serves the runtime's profiles, behind the token.
	code, body = f.get(t, "/debug/pprof/heap?debug=1", true)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "heap profile")

	// The page without the token shows the login form and no data.
	code, page := f.get(t, "/", false)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "This agent requires a token")
	require.NotContains(t, page, `data-link="up"`)
	_, page = f.get(t, "/", true)
	require.Contains(t, page, `data-link="up"`)

	// Control actions need the token and a same-origin request.
	code, _ = f.do(t, http.MethodPost, "/api/v1/links/up/cut", false, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	require.False(t, ctl.IsCut("up"))
	code, _ = f.do(t, http.MethodPost, "/api/v1/links/up/cut", true, map[string]string{"Sec-Fetch-Site": "cross-site"})
	require.Equal(t, http.StatusForbidden, code)
	require.False(t, ctl.IsCut("up"))
	code, body = f.do(t, http.MethodPost, "/api/v1/links/up/cut", true, nil)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"link":"up","link_cut":true}`, body)
	require.True(t, ctl.IsCut("up"))
	st := f.status(t)
	require.True(t, st.Controls)
	require.NotNil(t, st.Links[0].LinkCut)
	require.True(t, *st.Links[0].LinkCut)
	code, _ = f.do(t, http.MethodPost, "/api/v1/links/up/restore", true, nil)
	require.Equal(t, http.StatusOK, code)
	require.False(t, ctl.IsCut("up"))
	code, _ = f.do(t, http.MethodPost, "/api/v1/links/nope/cut", true, nil)
	require.Equal(t, http.StatusNotFound, code)
}

func TestListenErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	for name, tc := range map[string]struct {
		http config.HTTP
		want string
	}{
		"missing token file": {config.HTTP{Listen: "127.0.0.1:0", TokenFile: filepath.Join(dir, "nope")}, "read http.token_file"},
		"empty token file":   {config.HTTP{Listen: "127.0.0.1:0", TokenFile: empty}, "is empty"},
		"missing cert":       {config.HTTP{Listen: "127.0.0.1:0", TLS: &config.HTTPTLS{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "k.pem")}}, "load http.tls certificate"},
		"bad address":        {config.HTTP{Listen: "256.0.0.1:0"}, "listen on 256.0.0.1:0 (http.listen)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := observe.Listen(t.Context(), observe.Options{HTTP: tc.http})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// fakeControl records cut and restore calls.
type fakeControl struct {
	mu    sync.Mutex
	links map[string]bool
}

func newFakeControl(names ...string) *fakeControl {
	c := &fakeControl{links: make(map[string]bool)}
	for _, n := range names {
		c.links[n] = false
	}
	return c
}

func (c *fakeControl) set(name string, cut bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.links[name]; !ok {
		return fmt.Errorf("link %q: %w", name, observe.ErrUnknownLink)
	}
	c.links[name] = cut
	return nil
}

func (c *fakeControl) Cut(name string) error     { return c.set(name, true) }
func (c *fakeControl) Restore(name string) error { return c.set(name, false) }
func (c *fakeControl) IsCut(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links[name]
}
