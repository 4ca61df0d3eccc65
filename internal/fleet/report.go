package fleet

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/status"
)

// ReportFormat is the format version of a Report; a reader skips reports of
// a newer major format it does not know.
const ReportFormat = 1

// Bounds that keep a report small whatever the site: its size is what
// every site pays on its WAN at every interval.
const (
	// maxReportEvents is how many recent events (all links together) a
	// report carries, of those at most maxEventAge old: a quiet site's
	// reports carry none, instead of the same old ones at every interval.
	maxReportEvents = 10
	maxEventAge     = time.Hour
	// maxReportLinks is how many links a report details; a site with
	// more reports the rest in Report.MoreLinks.
	maxReportLinks = 64
	// maxMessage bounds an event message or an error in a report.
	maxMessage = 300
)

// Report is one agent's status as published to the fleet: the value of a
// record in the reports topic. Field names are a stable contract within
// format 1: fields may be added, never renamed or removed.
type Report struct {
	Format int `json:"format"`
	// Site, Labels: the site the agent runs for and its site_labels.
	Site   string            `json:"site"`
	Labels map[string]string `json:"labels"`
	// Instance identifies the agent process among those of the site; Host
	// and PID say where it runs.
	Instance string `json:"instance"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Version  string `json:"version"`
	// Time is when the report was taken, by the agent's clock; StartedAt
	// when the agent started. IntervalSeconds is the agent's fleet.interval:
	// the fleet counts a site as silent after three intervals without a
	// report.
	Time            time.Time `json:"time"`
	StartedAt       time.Time `json:"started_at"`
	IntervalSeconds float64   `json:"interval_seconds"`
	// Stopping is true in the last report of an agent that shut down.
	Stopping bool   `json:"stopping"`
	Ready    bool   `json:"ready"`
	Reason   string `json:"reason,omitempty"`
	// Links holds the agent's links in configuration order (at most 64;
	// MoreLinks counts the rest).
	Links     []LinkReport `json:"links"`
	MoreLinks int          `json:"more_links,omitempty"`
	// Config is the state of the site's configuration channel.
	Config ConfigState `json:"config"`
	// Certificates are the certificates the agent uses (cluster CA and
	// client certificates, the HTTP server's), soonest expiry first.
	Certificates []Certificate `json:"certificates"`
	// LastError is the most recent error of any link, or of the fleet
	// connection itself.
	LastError string `json:"last_error"`
	// Events are the most recent events of all links (of the last hour, at
	// most 10), newest first.
	Events []ReportEvent `json:"events"`
}

// LinkReport is one link in a Report.
type LinkReport struct {
	Name  string `json:"name"`
	From  string `json:"from"`
	To    string `json:"to"`
	State string `json:"state"`
	// StateSince is when the link entered State.
	StateSince time.Time `json:"state_since"`
	// LagRecords is the number of source records not yet replicated;
	// LagSeconds the age of the oldest of them; DrainSeconds the time
	// to replicate them at the recent rate (0 when unknown).
	LagRecords   int64   `json:"lag_records"`
	LagSeconds   float64 `json:"lag_seconds"`
	DrainSeconds float64 `json:"drain_seconds"`
	// LagEstimated is true while the link cannot measure its lag.
	LagEstimated bool `json:"lag_estimated"`
	// DataLossInSeconds is the time until source retention deletes a
	// record not yet replicated; 0 means records are being lost now; null
	// without a backlog or with unlimited retention.
	DataLossInSeconds *float64 `json:"data_loss_in_seconds"`
	// Records and Bytes count what the agent committed since it started.
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// LostRecords were deleted by source retention before they were
	// replicated; SkippedRecords were refused by the destination and
	// recorded.
	LostRecords    int64 `json:"lost_records"`
	SkippedRecords int64 `json:"skipped_records"`
	// RecordsPerSecond and BytesPerSecond are the recent rates;
	// BudgetBytesPerSecond is the link's bandwidth budget now (0:
	// unlimited).
	RecordsPerSecond     float64 `json:"records_per_second"`
	BytesPerSecond       float64 `json:"bytes_per_second"`
	BudgetBytesPerSecond int64   `json:"budget_bytes_per_second"`
	Partitions           int     `json:"partitions"`
	// Slots: the slots this agent holds of SlotCount, and how many
	// agents share the link (0 when the link is not shared yet).
	Slots     []int  `json:"slots"`
	SlotCount int    `json:"slot_count"`
	Agents    int    `json:"agents"`
	LastError string `json:"last_error"`
}

// ReportEvent is one event of a link in a Report.
type ReportEvent struct {
	Time    time.Time `json:"time"`
	Link    string    `json:"link"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// ConfigState is where a site's configuration channel stands: the JSON
// "config" of a site, in reports and in the fleet API.
type ConfigState struct {
	// Managed is true when the agent takes revisions from the fleet.
	Managed bool `json:"managed"`
	// AppliedRevision is the revision the agent runs (0: its local file).
	AppliedRevision int64 `json:"applied_revision"`
	// GoodRevision is the last revision whose changed links all became
	// live (0: the local file): where the agent returns to when a newer
	// one fails. It lags AppliedRevision while that one is watched.
	GoodRevision int64 `json:"good_revision"`
	// DesiredRevision is the newest revision for the site the agent saw.
	DesiredRevision int64 `json:"desired_revision"`
	// RefusedRevision and RefusedReason: the last revision the agent
	// refused (bad signature, untrusted key, invalid, older than the
	// current one) or reverted (a changed link not live in time), and why.
	RefusedRevision int64  `json:"refused_revision"`
	RefusedReason   string `json:"refused_reason"`
	// Reverted is true when the refused revision had been applied and the
	// agent returned to AppliedRevision.
	Reverted bool `json:"reverted"`
	// AppliedAt and AppliedBy: when the applied revision was applied, and
	// who signed it (key name and id).
	AppliedAt *time.Time `json:"applied_at,omitempty"`
	AppliedBy string     `json:"applied_by,omitempty"`
}

// Certificate is a certificate an agent uses, with its expiry.
type Certificate struct {
	// Use says what the certificate is for, such as "cluster cloud CA".
	Use      string    `json:"use"`
	File     string    `json:"file"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
	// Error is set when the file could not be read; NotAfter is then zero.
	Error string `json:"error,omitempty"`
}

// ReportInput is what Build makes a report of, besides the status.
type ReportInput struct {
	Snapshot status.Snapshot
	// Config is the configuration the agent runs.
	Config *config.Config
	// Instance, Host and PID identify the agent.
	Instance, Host string
	PID            int
	Interval       time.Duration
	ConfigState    ConfigState
	Certificates   []Certificate
	// FleetError is the fleet connection's last error, if any.
	FleetError string
	Stopping   bool
}

// Build returns the report of in, bounded in size (see the max*
// constants).
func Build(in ReportInput) Report {
	snap := in.Snapshot
	r := Report{
		Format: ReportFormat, Site: snap.Site, Instance: in.Instance, Host: in.Host, PID: in.PID,
		Version: snap.Version, Time: snap.Time, StartedAt: snap.StartedAt,
		IntervalSeconds: in.Interval.Seconds(), Stopping: in.Stopping,
		Ready: snap.Ready, Reason: clip(snap.Reason),
		Links: []LinkReport{}, Config: in.ConfigState, Certificates: in.Certificates, Events: []ReportEvent{},
		LastError: clip(in.FleetError),
	}
	if r.Certificates == nil {
		r.Certificates = []Certificate{}
	}
	if in.Config != nil {
		r.Labels = in.Config.SiteLabels
	}
	for i, ls := range snap.Links {
		if i >= maxReportLinks {
			r.MoreLinks = len(snap.Links) - maxReportLinks
			break
		}
		lr := LinkReport{
			Name: ls.Name, From: ls.From, To: ls.To, State: ls.State, StateSince: ls.StateSince,
			LagRecords: ls.Backlog.Records, LagSeconds: ls.Backlog.AgeSeconds, DrainSeconds: ls.Backlog.DrainETASeconds,
			LagEstimated: ls.Backlog.Estimated, DataLossInSeconds: dataLossIn(ls),
			Records: ls.Records, Bytes: ls.Bytes, LostRecords: ls.LostRecords, SkippedRecords: ls.SkippedRecords,
			RecordsPerSecond: round3(ls.RecordsPerSecond), BytesPerSecond: round3(ls.BytesPerSecond),
			Partitions: ls.Partitions, Slots: []int{}, LastError: clip(ls.LastError),
		}
		if lc := in.Config.Link(ls.Name); lc != nil {
			lr.BudgetBytesPerSecond = lc.BandwidthAt(snap.Time.Local())
		}
		if sh := ls.Sharing; sh != nil {
			lr.Slots, lr.SlotCount, lr.Agents = sh.Held, sh.SlotCount, len(sh.Agents)
		}
		r.Links = append(r.Links, lr)
		for _, e := range ls.Events {
			if snap.Time.Sub(e.Time) > maxEventAge {
				continue
			}
			r.Events = append(r.Events, ReportEvent{Time: e.Time, Link: ls.Name, Kind: e.Kind, Message: clip(e.Message)})
		}
		if ls.LastError != "" && r.LastError == "" && ls.State != "live" {
			r.LastError = clip(ls.Name + ": " + ls.LastError)
		}
	}
	sort.SliceStable(r.Events, func(i, j int) bool { return r.Events[i].Time.After(r.Events[j].Time) })
	if len(r.Events) > maxReportEvents {
		r.Events = r.Events[:maxReportEvents]
	}
	return r
}

// dataLossIn returns a link's time until data loss in seconds, nil when
// none is in sight.
func dataLossIn(ls status.LinkStatus) *float64 {
	if ls.Backlog.DataLossInSeconds == nil {
		return nil
	}
	v := *ls.Backlog.DataLossInSeconds
	return &v
}

// clip shortens s to maxMessage bytes (at a rune boundary).
func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

func round3(f float64) float64 {
	return float64(int64(f*1000+0.5)) / 1000
}

// Marshal encodes a report as the value of a reports record.
func (r Report) Marshal() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return b, nil
}

// Certificates reads the certificates cfg uses: each cluster's CA and
// client certificate, and the HTTP server's. They are sorted by expiry,
// soonest first; a file that cannot be read is listed with its error.
func Certificates(cfg *config.Config) []Certificate {
	if cfg == nil {
		return []Certificate{}
	}
	var out []Certificate
	add := func(use, file string) {
		if file == "" {
			return
		}
		out = append(out, readCertificate(use, file))
	}
	for _, name := range cfg.ClusterOrder {
		c := cfg.Clusters[name]
		if c == nil || c.TLS == nil {
			continue
		}
		add("cluster "+name+" CA", c.TLS.CAFile)
		add("cluster "+name+" client", c.TLS.CertFile)
	}
	if t := cfg.HTTP.TLS; t != nil {
		add("http server", t.CertFile)
	}
	slices.SortStableFunc(out, func(a, b Certificate) int {
		switch {
		case a.Error != "" && b.Error == "":
			return -1
		case a.Error == "" && b.Error != "":
			return 1
		}
		return a.NotAfter.Compare(b.NotAfter)
	})
	if out == nil {
		out = []Certificate{}
	}
	return out
}

// readCertificate returns the first certificate of a PEM file that expires
// soonest.
func readCertificate(use, file string) Certificate {
	c := Certificate{Use: use, File: file}
	data, err := os.ReadFile(file)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	found := false
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			c.Error = "parse certificate: " + err.Error()
			continue
		}
		if !found || cert.NotAfter.Before(c.NotAfter) {
			c.NotAfter, c.Subject, c.Error = cert.NotAfter.UTC(), cert.Subject.String(), ""
			found = true
		}
	}
	if !found && c.Error == "" {
		c.Error = "no certificate in the file"
	}
	return c
}
