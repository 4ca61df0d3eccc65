package fleet_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/fleet"
)

func addReport(t *testing.T, v *fleet.View, r fleet.Report, at time.Time) {
	t.Helper()
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.True(t, v.AddReport(r.Site+"/"+r.Instance, b, at))
}

// TestViewSites: the view merges the agents of a site, flags a site silent
// after three of its intervals, forgets an agent replaced by a newer one,
// counts the fleet, and hands pollers only what changed.
func TestViewSites(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	v := fleet.NewView(func() time.Time { return now })
	sims := fleet.SimFleet("site", 30, "v2", "v1", 7)
	for _, s := range sims {
		addReport(t, v, s.Report(now, 10*time.Second), now)
	}
	f := v.Fleet(0)
	require.Len(t, f.Sites, 30)
	require.Equal(t, 30, f.Summary.Sites)
	require.Equal(t, 3, f.Summary.ByState["catching-up"], "every 10th site lags")
	require.Equal(t, 1, f.Summary.ByState["disconnected"], "every 25th site is cut off")
	require.Equal(t, 1, f.Summary.Versions["v1"])
	require.Equal(t, "site-0010", f.Summary.ClosestToLoss[0].Site[:9], "a lagging site is closest to data loss")
	seq := f.Seq

	// A second agent at site-0001 shares its link.
	before, _ := v.Site("site-0001")
	second := sims[0].Report(now, 10*time.Second)
	second.Instance, second.Links[0].LagRecords = "other", 1000
	addReport(t, v, second, now)
	f = v.Fleet(seq)
	require.Len(t, f.Sites, 1, "only the changed site")
	st := f.Sites[0]
	require.Len(t, st.Agents, 2)
	require.Equal(t, before.Links[0].LagRecords+1000, st.Links[0].LagRecords, "lag adds up over the agents sharing a link")

	// 31 s later only site-0002 reported: every other site is silent.
	now = now.Add(31 * time.Second)
	addReport(t, v, sims[1].Report(now, 10*time.Second), now)
	v.Sweep()
	f = v.Fleet(0)
	require.Equal(t, 29, f.Summary.Stale)
	s2, ok := v.Site("site-0002")
	require.True(t, ok)
	require.False(t, s2.Stale)
	s1, _ := v.Site("site-0001")
	require.True(t, s1.Stale)
	require.InDelta(t, 31, s1.SilentSeconds, 0.01)

	// An agent that restarted (a new instance) replaces the old one once
	// the old one is silent.
	restarted := sims[0].Report(now, 10*time.Second)
	restarted.Instance = "restarted"
	addReport(t, v, restarted, now)
	s1, _ = v.Site("site-0001")
	require.False(t, s1.Stale)
	require.Len(t, s1.Agents, 1)
	require.Equal(t, "restarted", s1.Agents[0].Instance)
	require.Empty(t, v.Superseded(24*time.Hour), "kept for a day")
	now = now.Add(25 * time.Hour)
	addReport(t, v, restarted, now)
	require.ElementsMatch(t, []string{"site-0001/" + sims[0].Instance, "site-0001/other"}, v.Superseded(24*time.Hour),
		"the replaced agents of site-0001; silent sites keep their last report")

	// A tombstone removes an agent; a site without agents is gone.
	require.True(t, v.AddReport("site-0003/"+sims[2].Instance, nil, now))
	_, ok = v.Site("site-0003")
	require.False(t, ok)
}

func TestSortWorstFirst(t *testing.T) {
	loss := func(s float64) *float64 { return &s }
	sites := []fleet.Site{
		{Site: "a", State: "live"},
		{Site: "b", State: "catching-up", DataLossInSeconds: loss(7200)},
		{Site: "c", State: "catching-up", DataLossInSeconds: loss(60)},
		{Site: "d", State: "live", Stale: true},
		{Site: "e", State: "failed"},
	}
	fleet.SortWorstFirst(sites)
	var got []string
	for _, s := range sites {
		got = append(got, s.Site)
	}
	require.Equal(t, []string{"d", "e", "c", "b", "a"}, got)
}

func TestTargets(t *testing.T) {
	sel, err := fleet.ParseSelector("region=eu, tier=plant")
	require.NoError(t, err)
	tg := fleet.Target{Selector: sel}
	require.Equal(t, "selector/region=eu,tier=plant", tg.Key())
	require.True(t, tg.Matches("x", map[string]string{"region": "eu", "tier": "plant", "more": "y"}))
	require.False(t, tg.Matches("x", map[string]string{"region": "eu"}))
	require.True(t, fleet.Target{Site: "x"}.Matches("x", nil))
	require.False(t, fleet.Target{}.Matches("x", nil), "an empty selector selects nothing")
	for _, bad := range []string{"", "region", "=eu", "a=1,a=2"} {
		_, err := fleet.ParseSelector(bad)
		require.Error(t, err, bad)
	}
}

// TestValidate: fleet apply validates a document as a site would, leaving
// variables that are not set here to the sites.
func TestValidate(t *testing.T) {
	good := "clusters:\n  edge: {bootstrap: [\"${EDGE_BROKERS_NOT_SET_HERE}\"]}\n  cloud: {bootstrap: [\"127.0.0.1:9093\"]}\nlinks:\n  - {name: up, from: edge, to: cloud, topics: {include: [\"s.*\"]}, rename: \"{site}.{topic}\"}\n"
	require.NoError(t, fleet.Validate([]byte(good), ""))
	require.Error(t, fleet.Validate([]byte("clusters:\n  cloud: {bootstrap: [\"127.0.0.1\"]}\n"), ""))
	require.Error(t, fleet.Validate([]byte("fleet: {cluster: cloud}\nclusters:\n  cloud: {bootstrap: [\"127.0.0.1:1\"]}\n"), ""), "the fleet block is local")
}
