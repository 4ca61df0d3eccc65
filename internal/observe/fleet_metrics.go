package observe

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/internal/fleet"
)

// MaxSiteSeries bounds the per-site series of the fleet service's metrics:
// only the sites needing attention get them, at most this many, worst
// first. A fleet of thousands of sites thus costs Prometheus a few hundred
// series however large it grows, and a site that recovers leaves no series
// behind (the metrics are computed at each scrape).
const MaxSiteSeries = 100

// attentionWindow: a site whose time until data loss is below it needs
// attention.
const attentionWindow = 24 * 60 * 60 // seconds

// The fleet service's metrics. Labels are bounded: state (the fixed site
// states), version (the agent versions running), site (at most
// MaxSiteSeries sites).
var (
	descFleetLoaded = prometheus.NewDesc("edgelink_fleet_loaded",
		"1 once the fleet service read the fleet's topics to their end (see /readyz), else 0.", nil, nil)
	descFleetSites = prometheus.NewDesc("edgelink_fleet_sites",
		"Sites by state (the worst state of their links).", []string{"state"}, nil)
	descFleetStale = prometheus.NewDesc("edgelink_fleet_sites_stale",
		"Sites silent for three of their report intervals.", nil, nil)
	descFleetVersions = prometheus.NewDesc("edgelink_fleet_agents_by_version",
		"Agents reporting, by version.", []string{"version"}, nil)
	descFleetLinks = prometheus.NewDesc("edgelink_fleet_links",
		"Links over all sites.", nil, nil)
	descFleetLag = prometheus.NewDesc("edgelink_fleet_lag_records",
		"Source records not yet replicated, over all sites.", nil, nil)
	descFleetLost = prometheus.NewDesc("edgelink_fleet_lost_records",
		"Records lost to source retention before they were replicated, over all sites, as the agents count them since they started.", nil, nil)
	descFleetRefused = prometheus.NewDesc("edgelink_fleet_config_refused_sites",
		"Sites whose newest configuration revision was refused or reverted.", nil, nil)
	descFleetPending = prometheus.NewDesc("edgelink_fleet_config_pending_sites",
		"Managed sites that have not applied their newest configuration revision yet.", nil, nil)
	descFleetReportBytes = prometheus.NewDesc("edgelink_fleet_report_bytes_avg",
		"Average size of a report read (key and value), in bytes.", nil, nil)
	descFleetAttention = prometheus.NewDesc("edgelink_fleet_attention_sites",
		"Sites needing attention: stale, failed, disconnected or failed over, or less than 24 h from data loss (the per-site series cover at most 100 of them).", nil, nil)
	descSiteDataLoss = prometheus.NewDesc("edgelink_fleet_site_data_loss_seconds",
		"Time until source retention deletes records the site has not replicated; 0 when it is deleting them now; absent when none is in sight. Only for the sites needing attention, at most 100.", []string{"site"}, nil)
	descSiteLag = prometheus.NewDesc("edgelink_fleet_site_lag_records",
		"Source records the site has not replicated yet. Only for the sites needing attention, at most 100.", []string{"site"}, nil)
	descSiteSilent = prometheus.NewDesc("edgelink_fleet_site_silent_seconds",
		"Time since the site's last report. Only for the sites needing attention, at most 100.", []string{"site"}, nil)
)

// fleetCollector renders the fleet view as metrics when Prometheus
// scrapes.
type fleetCollector struct {
	view   *fleet.View
	states []string
}

// Describe implements prometheus.Collector.
func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descFleetLoaded, descFleetSites, descFleetStale, descFleetVersions, descFleetLinks, descFleetLag, descFleetLost,
		descFleetRefused, descFleetPending, descFleetReportBytes, descFleetAttention, descSiteDataLoss, descSiteLag, descSiteSilent,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	f := c.view.Fleet(0)
	sum := f.Summary
	gauge(descFleetLoaded, boolValue(f.Loaded))
	for _, st := range c.states {
		gauge(descFleetSites, float64(sum.ByState[st]), st)
	}
	gauge(descFleetStale, float64(sum.Stale))
	for v, n := range sum.Versions {
		gauge(descFleetVersions, float64(n), v)
	}
	gauge(descFleetLinks, float64(sum.Links))
	gauge(descFleetLag, float64(sum.LagRecords))
	gauge(descFleetLost, float64(sum.LostRecords))
	gauge(descFleetRefused, float64(sum.Refused))
	gauge(descFleetPending, float64(sum.Pending))
	_, avg := c.view.WireStats()
	gauge(descFleetReportBytes, avg)
	attention := needAttention(f.Sites)
	gauge(descFleetAttention, float64(len(attention)))
	for _, s := range attention[:min(len(attention), MaxSiteSeries)] {
		if s.DataLossInSeconds != nil {
			gauge(descSiteDataLoss, *s.DataLossInSeconds, s.Site)
		}
		gauge(descSiteLag, float64(s.LagRecords), s.Site)
		gauge(descSiteSilent, s.SilentSeconds, s.Site)
	}
}

// needsAttention reports whether a site needs an operator: it is silent,
// failed, disconnected or failed over, or less than a day from losing data.
func needsAttention(s fleet.Site) bool {
	return s.Stale || s.State == "failed" || s.State == "disconnected" || s.State == "failed-over" ||
		(s.DataLossInSeconds != nil && *s.DataLossInSeconds < attentionWindow)
}

// needAttention returns the sites needing attention, worst first: the
// soonest data loss first (sites without one in sight after those with
// one), then failed, disconnected and the rest, then the longest silent.
func needAttention(sites []fleet.Site) []fleet.Site {
	out := slices.DeleteFunc(slices.Clone(sites), func(s fleet.Site) bool { return !needsAttention(s) })
	loss := func(s fleet.Site) float64 {
		if s.DataLossInSeconds == nil {
			return math.Inf(1)
		}
		return *s.DataLossInSeconds
	}
	rank := func(s fleet.Site) int {
		switch s.State {
		case "failed":
			return 0
		case "disconnected":
			return 1
		case "failed-over":
			return 2
		}
		return 3
	}
	slices.SortFunc(out, func(a, b fleet.Site) int {
		return cmp.Or(
			cmp.Compare(loss(a), loss(b)),
			cmp.Compare(rank(a), rank(b)),
			cmp.Compare(b.SilentSeconds, a.SilentSeconds),
			strings.Compare(a.Site, b.Site),
		)
	})
	return out
}
