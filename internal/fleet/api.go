package fleet

import "time"

// The fleet API's JSON (GET /api/v1/fleet and /api/v1/fleet/sites/{site}).
// Field names are a stable contract within v1: fields may be added, never
// renamed or removed.

// Fleet is the body of GET /api/v1/fleet.
type Fleet struct {
	// Time is when the fleet service answered; Seq the view's change
	// counter: ask again with ?since=<seq> for the sites changed since.
	Time  time.Time `json:"time"`
	Seq   int64     `json:"seq"`
	Since int64     `json:"since"`
	// Loaded is false while the service is still reading the topics.
	Loaded  bool    `json:"loaded"`
	Summary Summary `json:"summary"`
	// Sites are the sites changed after Since (all of them without it),
	// by name.
	Sites []Site `json:"sites"`
}

// Summary counts the whole fleet.
type Summary struct {
	Sites  int `json:"sites"`
	Agents int `json:"agents"`
	Links  int `json:"links"`
	// ByState counts sites by state (failed, disconnected, starting,
	// catching-up, live, stopped, idle); Stale counts the silent ones.
	ByState map[string]int `json:"by_state"`
	Stale   int            `json:"stale"`
	// Refused counts sites whose newest revision was refused or reverted;
	// Pending managed sites that have not applied their newest revision.
	Refused int `json:"refused"`
	Pending int `json:"pending"`
	// Versions counts agents by version.
	Versions    map[string]int `json:"versions"`
	LagRecords  int64          `json:"lag_records"`
	LostRecords int64          `json:"lost_records"`
	// ClosestToLoss lists the sites with the least time until data loss
	// (at most 10), soonest first.
	ClosestToLoss []LossEntry `json:"closest_to_loss"`
}

// LossEntry is a site and its time until data loss.
type LossEntry struct {
	Site              string  `json:"site"`
	DataLossInSeconds float64 `json:"data_loss_in_seconds"`
}

// Site is one site of the fleet: its agents' latest reports merged.
type Site struct {
	Site   string            `json:"site"`
	Labels map[string]string `json:"labels"`
	// State is the worst state of the site's links (see Summary.ByState).
	State string `json:"state"`
	// Stale is true when no agent of the site reported for three of its
	// intervals; LastSeen is when the fleet cluster received the last
	// report, SilentSeconds how long ago that was.
	Stale         bool      `json:"stale"`
	LastSeen      time.Time `json:"last_seen"`
	SilentSeconds float64   `json:"silent_seconds"`
	// Version is the version of the agent that reported last.
	Version string         `json:"version"`
	Agents  []AgentSummary `json:"agents"`
	Links   []SiteLink     `json:"links"`
	Config  ConfigState    `json:"config"`
	// LagRecords sums the links' lag; LagSeconds is the oldest lag;
	// DataLossInSeconds the soonest time until data loss (null: none in
	// sight).
	LagRecords        int64    `json:"lag_records"`
	LagSeconds        float64  `json:"lag_seconds"`
	DataLossInSeconds *float64 `json:"data_loss_in_seconds"`
	LostRecords       int64    `json:"lost_records"`
	SkippedRecords    int64    `json:"skipped_records"`
	// ClockSkewSeconds is the site's clock minus the fleet cluster's.
	ClockSkewSeconds *float64 `json:"clock_skew_seconds"`
	// CertificateExpiry is the soonest expiry of the site's certificates.
	CertificateExpiry *time.Time `json:"certificate_expiry"`
	LastError         string     `json:"last_error"`
	// Seq is the view's change counter when the site last changed.
	Seq int64 `json:"seq"`
}

// AgentSummary is one agent of a site.
type AgentSummary struct {
	Instance  string    `json:"instance"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	LastSeen  time.Time `json:"last_seen"`
	StartedAt time.Time `json:"started_at"`
	Stopping  bool      `json:"stopping"`
	Ready     bool      `json:"ready"`
}

// SiteLink is one link of a site, over all the agents sharing it.
type SiteLink struct {
	Name                 string    `json:"name"`
	From                 string    `json:"from"`
	To                   string    `json:"to"`
	State                string    `json:"state"`
	StateSince           time.Time `json:"state_since"`
	LagRecords           int64     `json:"lag_records"`
	LagSeconds           float64   `json:"lag_seconds"`
	DrainSeconds         float64   `json:"drain_seconds"`
	LagEstimated         bool      `json:"lag_estimated"`
	DataLossInSeconds    *float64  `json:"data_loss_in_seconds"`
	Records              int64     `json:"records"`
	LostRecords          int64     `json:"lost_records"`
	SkippedRecords       int64     `json:"skipped_records"`
	RecordsPerSecond     float64   `json:"records_per_second"`
	BytesPerSecond       float64   `json:"bytes_per_second"`
	BudgetBytesPerSecond int64     `json:"budget_bytes_per_second"`
	Partitions           int       `json:"partitions"`
	SlotCount            int       `json:"slot_count"`
	// Agents counts the agents running the link.
	Agents    int    `json:"agents"`
	LastError string `json:"last_error"`
}

// SiteDetail is the body of GET /api/v1/fleet/sites/{site}: the site, each
// agent's full latest report, recent events and the configuration history
// (revisions published for the site and its outcomes), newest first.
type SiteDetail struct {
	Site
	Reports []Report       `json:"reports"`
	Events  []ReportEvent  `json:"events"`
	History []HistoryEvent `json:"history"`
}

// History event kinds.
const (
	// HistoryPublished: fleet apply published a revision.
	HistoryPublished = "published"
	// HistoryApplied: a site applied a revision.
	HistoryApplied = "applied"
	// HistoryRefused: a site refused a revision.
	HistoryRefused = "refused"
	// HistoryReverted: a site returned from a revision to the last good
	// one.
	HistoryReverted = "reverted"
)

// HistoryEvent is a record of the history topic: the audit trail.
type HistoryEvent struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"`
	// Site is set for outcomes at a site; Target for published revisions.
	Site     string  `json:"site,omitempty"`
	Target   *Target `json:"target,omitempty"`
	Revision int64   `json:"revision"`
	// By is who signed the revision (published) or the agent instance
	// (outcomes).
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
	Hash   string `json:"hash,omitempty"`
	// Envelope is the signed revision (published events only), so that
	// the history keeps every revision ever published.
	Envelope *Envelope `json:"envelope,omitempty"`
}
