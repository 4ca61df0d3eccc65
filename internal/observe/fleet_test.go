package observe_test

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/observe"
)

// simInterval is the report interval of the simulated sites: a site is
// stale after three of them without a report.
const simInterval = 10 * time.Second

// simFleet is a fleet view holding one report of each of n simulated
// sites, appended now.
type simFleet struct {
	view  *fleet.View
	sites []*fleet.SimSite
}

func newSimFleet(t *testing.T, prefix string, n int) *simFleet {
	t.Helper()
	f := &simFleet{view: fleet.NewView(nil), sites: fleet.SimFleet(prefix, n, "v1.4.0", "v1.3.2", 7)}
	now := time.Now()
	for _, s := range f.sites {
		f.report(t, s, now, now)
	}
	return f
}

// report adds the site's report taken at now, as the fleet cluster
// appended it at appended.
func (f *simFleet) report(t testing.TB, s *fleet.SimSite, now, appended time.Time) {
	t.Helper()
	b, err := s.Report(now, simInterval).Marshal()
	require.NoError(t, err)
	require.True(t, f.view.AddReport(s.Key(), b, appended))
}

// silence makes a site stale: its last report reached the fleet longer
// than three intervals ago.
func (f *simFleet) silence(t testing.TB, s *fleet.SimSite) {
	t.Helper()
	f.view.AddReport(s.Key(), nil, time.Now()) // forget its current report
	old := time.Now().Add(-4*simInterval - 5*time.Second)
	f.report(t, s, old, old)
}

// kinds returns the names of the sites of one kind.
func (f *simFleet) kinds(kind fleet.SimKind) []string {
	var out []string
	for _, s := range f.sites {
		if s.Kind == kind {
			out = append(out, s.Name)
		}
	}
	return out
}

// fleetHTTP is a client of a running FleetServer.
type fleetHTTP struct {
	srv   *observe.FleetServer
	token string
}

// serveFleet runs a fleet server for the view until the test ends.
func serveFleet(t *testing.T, view *fleet.View, hc config.HTTP) *fleetHTTP {
	t.Helper()
	if hc.Listen == "" {
		hc.Listen = "127.0.0.1:0"
	}
	srv, err := observe.ListenFleet(t.Context(), observe.FleetOptions{HTTP: hc, View: view, Logger: logger(t)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { require.NoError(t, srv.Run(t.Context())) })
	t.Cleanup(wg.Wait)
	return &fleetHTTP{srv: srv, token: hc.Token}
}

// get answers the status, the body and the Content-Type; with auth it
// sends the token.
func (c *fleetHTTP) get(t *testing.T, path string, auth bool) (code int, body, contentType string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, strings.TrimSuffix(c.srv.URL(), "/")+path, nil)
	require.NoError(t, err)
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b), res.Header.Get("Content-Type")
}

// decode GETs an API path that must answer 200 with JSON, into v.
func (c *fleetHTTP) decode(t *testing.T, path string, v any) {
	t.Helper()
	code, body, ct := c.get(t, path, true)
	require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	require.Equal(t, "application/json", ct)
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
}

func siteNames(sites []fleet.Site) []string {
	out := make([]string, len(sites))
	for i, s := range sites {
		out[i] = s.Site
	}
	return out
}

// TestFleetAPI: the fleet API answers the fields of the contract, the
// sites changed since a seq, filtered sites over a whole-fleet summary,
// one site in detail and the history.
func TestFleetAPI(t *testing.T) {
	f := newSimFleet(t, "site", 50)
	f.silence(t, f.sites[2])
	f.view.MarkLoaded()
	c := serveFleet(t, f.view, config.HTTP{})

	// The shape of the contract (DESIGN.md, "Fleet (cloud side)").
	_, body, _ := c.get(t, "/api/v1/fleet", true)
	var raw struct {
		Sites []map[string]json.RawMessage `json:"sites"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &raw))
	require.Len(t, raw.Sites, 50)
	for _, key := range []string{"site", "labels", "stale", "last_seen", "version", "links", "config", "state", "lag_records", "data_loss_in_seconds"} {
		require.Contains(t, raw.Sites[0], key)
	}
	var links []map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw.Sites[0]["links"], &links))
	require.NotEmpty(t, links)
	require.Contains(t, links[0], "name")
	require.Contains(t, links[0], "state")
	var cfg map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw.Sites[0]["config"], &cfg))
	for _, key := range []string{"applied_revision", "desired_revision", "refused_revision", "refused_reason"} {
		require.Contains(t, cfg, key)
	}

	// Gzipped for a client that takes it: the answer grows with the fleet.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, c.srv.URL()+"api/v1/fleet", nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "br;q=1.0, gzip;q=0.8")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
	zr, err := gzip.NewReader(res.Body)
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	var zipped fleet.Fleet
	require.NoError(t, json.Unmarshal(unzipped, &zipped))
	require.Len(t, zipped.Sites, 50)

	var all fleet.Fleet
	c.decode(t, "/api/v1/fleet", &all)
	require.True(t, all.Loaded)
	require.Equal(t, 50, all.Summary.Sites)
	require.Equal(t, 1, all.Summary.Stale)
	require.Equal(t, "site-0001", all.Sites[0].Site)
	require.True(t, all.Sites[2].Stale)
	require.Equal(t, map[string]string{"region": "eu-central", "tier": "plant"}, all.Sites[0].Labels)

	// ?since: nothing changed, then one site.
	var none fleet.Fleet
	c.decode(t, fmt.Sprintf("/api/v1/fleet?since=%d", all.Seq), &none)
	require.Empty(t, none.Sites)
	require.Equal(t, 50, none.Summary.Sites)
	f.report(t, f.sites[7], time.Now(), time.Now())
	var one fleet.Fleet
	c.decode(t, fmt.Sprintf("/api/v1/fleet?since=%d", all.Seq), &one)
	require.Equal(t, []string{"site-0008"}, siteNames(one.Sites))
	require.Greater(t, one.Seq, all.Seq)

	// Filters select sites; the summary stays the whole fleet's.
	for _, tc := range []struct {
		query string
		want  func(fleet.Site) bool
		n     int
	}{
		{"label=region=eu-west", func(s fleet.Site) bool { return s.Labels["region"] == "eu-west" }, 10},
		{"label=region=eu-west&label=tier=well", func(s fleet.Site) bool { return s.Labels["region"] == "eu-west" && s.Labels["tier"] == "well" }, 3},
		{"state=disconnected", func(s fleet.Site) bool { return s.State == "disconnected" }, len(f.kinds(fleet.SimDisconnected))},
		{"state=catching-up&state=disconnected", func(s fleet.Site) bool { return s.State != "live" }, len(f.kinds(fleet.SimDisconnected)) + len(f.kinds(fleet.SimLagging))},
		{"state=stale", func(s fleet.Site) bool { return s.Site == "site-0003" }, 1},
		{"q=SITE-001", func(s fleet.Site) bool { return strings.HasPrefix(s.Site, "site-001") }, 10},
		{"q=site-004&state=live", func(s fleet.Site) bool { return strings.HasPrefix(s.Site, "site-004") && s.State == "live" }, 9},
		{"label=region=mars", nil, 0},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var got fleet.Fleet
			c.decode(t, "/api/v1/fleet?"+tc.query, &got)
			require.Len(t, got.Sites, tc.n, "%v", siteNames(got.Sites))
			for _, s := range got.Sites {
				require.True(t, tc.want(s), s.Site)
			}
			require.Equal(t, all.Summary.Sites, got.Summary.Sites)
			require.Equal(t, all.Summary.ByState, got.Summary.ByState)
		})
	}
	for query, want := range map[string]string{
		"since=-1":      "since \\\"-1\\\"",
		"since=abc":     "want the seq",
		"state=broken":  "want one of failed, disconnected",
		"label=region":  "want label=KEY=VALUE",
		"label==plant":  "want label=KEY=VALUE",
		"state=stale&q": "", // an empty q is no filter
	} {
		code, body, _ := c.get(t, "/api/v1/fleet?"+query, true)
		if want == "" {
			require.Equal(t, http.StatusOK, code, body)
			continue
		}
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", query, body)
		require.Contains(t, body, want, query)
	}

	// One site, in detail.
	var d fleet.SiteDetail
	c.decode(t, "/api/v1/fleet/sites/site-0010", &d)
	require.Equal(t, "site-0010", d.Site.Site)
	require.Equal(t, "catching-up", d.State)
	require.Len(t, d.Links, 2)
	require.Equal(t, "telemetry-up", d.Links[0].Name)
	require.NotNil(t, d.Links[0].DataLossInSeconds)
	require.Len(t, d.Reports, 1)
	require.NotEmpty(t, d.Events)
	code, body, ct := c.get(t, "/api/v1/fleet/sites/nowhere", true)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "application/json", ct)
	require.JSONEq(t, `{"error": "no site \"nowhere\" in the fleet"}`, body)

	// The history, newest first.
	for i, kind := range []string{fleet.HistoryPublished, fleet.HistoryApplied, fleet.HistoryRefused} {
		e := fleet.HistoryEvent{Time: time.Now().Add(time.Duration(i) * time.Second), Kind: kind, Site: "site-0001", Revision: 3, By: "ops"}
		if kind == fleet.HistoryPublished {
			e.Site, e.Target = "", &fleet.Target{Site: "site-0001"}
		}
		b, err := json.Marshal(e)
		require.NoError(t, err)
		require.True(t, f.view.AddHistory(b, time.Now()))
	}
	var hist observe.HistoryResponse
	c.decode(t, "/api/v1/fleet/history", &hist)
	require.Len(t, hist.Events, 3)
	require.Equal(t, fleet.HistoryRefused, hist.Events[0].Kind)
	c.decode(t, "/api/v1/fleet/history?limit=1", &hist)
	require.Len(t, hist.Events, 1)
	code, _, _ = c.get(t, "/api/v1/fleet/history?limit=0", true)
	require.Equal(t, http.StatusBadRequest, code)
	c.decode(t, "/api/v1/fleet/sites/site-0001", &d)
	require.Len(t, d.History, 3)

	// The page: the counts, the filters and the table the script fills.
	code, page, ct := c.get(t, "/", false)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "text/html; charset=utf-8", ct)
	for _, id := range []string{`id="sites"`, `id="search"`, `id="state-filter"`, `id="label-filter"`, `id="detail"`, `id="count-stale"`, `id="count-catching-up"`, `id="count-failed"`, `<option value="disconnected">`} {
		require.Contains(t, page, id)
	}
	require.Contains(t, page, `<form id="login" class="login" hidden>`)
}

// TestFleetReadyz: the fleet service is ready once its view is loaded.
func TestFleetReadyz(t *testing.T) {
	view := fleet.NewView(nil)
	c := serveFleet(t, view, config.HTTP{})
	code, body, _ := c.get(t, "/readyz", false)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready: reading the fleet topics\n", body)
	code, body, _ = c.get(t, "/healthz", false)
	require.Equal(t, http.StatusOK, code, body)
	var f fleet.Fleet
	c.decode(t, "/api/v1/fleet", &f)
	require.False(t, f.Loaded)
	require.Empty(t, f.Sites)

	view.MarkLoaded()
	code, body, _ = c.get(t, "/readyz", false)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready\n", body)
}

// TestFleetToken: with a token, the probes and the page's static files
// stay open; the API, the metrics and the page's data require it.
func TestFleetToken(t *testing.T) {
	f := newSimFleet(t, "site", 3)
	f.view.MarkLoaded()
	c := serveFleet(t, f.view, config.HTTP{Token: "fleet-s3cret"})
	require.True(t, c.srv.TokenRequired())
	require.Regexp(t, `^http://127\.0\.0\.1:\d+/$`, c.srv.URL())
	require.Equal(t, strings.TrimSuffix(strings.TrimPrefix(c.srv.URL(), "http://"), "/"), c.srv.Addr().String())

	for _, path := range []string{"/healthz", "/readyz", "/static/fleet.js", "/static/fleet.css", "/static/common.js", "/static/style.css"} {
		code, body, _ := c.get(t, path, false)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}
	for _, path := range []string{"/api/v1/fleet", "/api/v1/fleet/sites/site-0001", "/api/v1/fleet/history", "/metrics"} {
		code, body, _ := c.get(t, path, false)
		require.Equal(t, http.StatusUnauthorized, code, "%s: %s", path, body)
		require.Contains(t, body, "bearer token")
		code, body, _ = c.get(t, path, true)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
		require.NotContains(t, body, "fleet-s3cret")
	}
	code, page, _ := c.get(t, "/", false)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "This fleet service requires a token")
	require.Contains(t, page, `data-authorized="false"`)
	_, page, _ = c.get(t, "/", true)
	require.Contains(t, page, `data-authorized="true"`)
}

func TestListenFleetErrors(t *testing.T) {
	_, err := observe.ListenFleet(t.Context(), observe.FleetOptions{HTTP: config.HTTP{Listen: "127.0.0.1:0"}})
	require.ErrorContains(t, err, "without a fleet view")
	_, err = observe.ListenFleet(t.Context(), observe.FleetOptions{HTTP: config.HTTP{Listen: "256.0.0.1:0"}, View: fleet.NewView(nil)})
	require.ErrorContains(t, err, "listen on 256.0.0.1:0 (http.listen)")
}

// TestFleetMetrics: the fleet's aggregates, and per-site series for at
// most 100 sites, those needing attention, worst first; a site that
// recovers leaves no series behind.
func TestFleetMetrics(t *testing.T) {
	f := newSimFleet(t, "site", 500)
	// 60 healthy sites fall silent: with the lagging and disconnected
	// ones, more than 100 sites need attention.
	var silenced []string
	for _, s := range f.sites {
		if s.Kind == fleet.SimHealthy && len(silenced) < 60 {
			f.silence(t, s)
			silenced = append(silenced, s.Name)
		}
	}
	f.view.MarkLoaded()
	c := serveFleet(t, f.view, config.HTTP{})
	lagging, disconnected := f.kinds(fleet.SimLagging), f.kinds(fleet.SimDisconnected)
	attention := len(silenced) + len(lagging) + len(disconnected)
	require.Greater(t, attention, observe.MaxSiteSeries)

	scrape := func() string {
		code, body, _ := c.get(t, "/metrics", true)
		require.Equal(t, http.StatusOK, code, body)
		return body
	}
	m := scrape()
	var sum fleet.Fleet
	c.decode(t, "/api/v1/fleet", &sum)
	s := sum.Summary
	for series, want := range map[string]float64{
		`edgelink_fleet_loaded`:                              1,
		`edgelink_fleet_sites{state="live"}`:                 float64(s.ByState["live"]),
		`edgelink_fleet_sites{state="catching-up"}`:          float64(len(lagging)),
		`edgelink_fleet_sites{state="disconnected"}`:         float64(len(disconnected)),
		`edgelink_fleet_sites{state="failed"}`:               0,
		`edgelink_fleet_sites_stale`:                         float64(len(silenced)),
		`edgelink_fleet_agents_by_version{version="v1.4.0"}`: float64(s.Versions["v1.4.0"]),
		`edgelink_fleet_agents_by_version{version="v1.3.2"}`: float64(s.Versions["v1.3.2"]),
		`edgelink_fleet_links`:                               1000,
		`edgelink_fleet_config_refused_sites`:                0,
		`edgelink_fleet_config_pending_sites`:                0,
		`edgelink_fleet_attention_sites`:                     float64(attention),
	} {
		require.Equal(t, want, metricValue(t, m, series), series)
	}
	require.Equal(t, float64(s.LagRecords), metricValue(t, m, "edgelink_fleet_lag_records"))
	require.Equal(t, float64(s.LostRecords), metricValue(t, m, "edgelink_fleet_lost_records"))
	require.Greater(t, metricValue(t, m, "edgelink_fleet_report_bytes_avg"), 500.0)

	// Per-site series: 100 sites, those closest to data loss first (every
	// lagging one), none of the healthy ones.
	sitesOf := func(m, metric string) []string {
		var out []string
		for _, g := range regexp.MustCompile(`(?m)^`+metric+`\{site="([^"]+)"\} `).FindAllStringSubmatch(m, -1) {
			out = append(out, g[1])
		}
		return out
	}
	lagSites := sitesOf(m, "edgelink_fleet_site_lag_records")
	require.Len(t, lagSites, observe.MaxSiteSeries)
	require.ElementsMatch(t, lagSites, sitesOf(m, "edgelink_fleet_site_silent_seconds"))
	require.Subset(t, lagSites, lagging)
	require.Subset(t, lagSites, disconnected)
	require.Subset(t, sitesOf(m, "edgelink_fleet_site_data_loss_seconds"), lagging)
	closest := sum.Summary.ClosestToLoss[0]
	require.Equal(t, closest.DataLossInSeconds, metricValue(t, m, `edgelink_fleet_site_data_loss_seconds{site="`+closest.Site+`"}`))
	require.Less(t, metricValue(t, m, `edgelink_fleet_site_data_loss_seconds{site="`+closest.Site+`"}`), 24*3600.0)
	shown := 0
	for _, name := range silenced {
		if v := metricValue(t, m, `edgelink_fleet_site_silent_seconds{site="`+name+`"}`); v >= 0 {
			require.Greater(t, v, 3*simInterval.Seconds(), name)
			shown++
		}
	}
	require.Equal(t, observe.MaxSiteSeries-len(lagging)-len(disconnected), shown)

	// A silent site that reports again leaves the per-site series; with
	// fewer than 100 sites needing attention, all of them have series.
	for _, name := range silenced[:30] {
		for _, sim := range f.sites {
			if sim.Name == name {
				f.report(t, sim, time.Now(), time.Now())
			}
		}
	}
	m = scrape()
	require.Equal(t, float64(attention-30), metricValue(t, m, "edgelink_fleet_attention_sites"))
	require.Len(t, sitesOf(m, "edgelink_fleet_site_lag_records"), attention-30)
	require.NotContains(t, sitesOf(m, "edgelink_fleet_site_lag_records"), silenced[0])
	require.Equal(t, -1.0, metricValue(t, m, `edgelink_fleet_site_silent_seconds{site="`+silenced[0]+`"}`))
	require.Equal(t, float64(len(silenced)-30), metricValue(t, m, "edgelink_fleet_sites_stale"))
}
