// Package status is the model of what a running agent is doing: per link,
// its state, counters, rates, backlog (estimated while the link cannot
// measure it), topics and recent events, and whether the agent is ready.
//
// A Model reads the links of a LinkSource (the agent) and keeps what the
// links themselves do not: throughput samples for rates, and, per link, the
// source's end offsets, followed so that a link's backlog keeps growing
// during an outage. Its Snapshot is what the status API serves
// (internal/observe renders it as JSON, the status page and Prometheus
// metrics) and what any other reporter publishes; nothing here speaks HTTP.
package status

import (
	"time"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
)

// LinkSource is the set of links a Model shows, and the configuration they
// run with. It may change while the model runs (agent.Agent applying a
// reloaded configuration): the model reads it on every snapshot, and
// starts and stops its per-link work as links come and go.
type LinkSource interface {
	// Current returns, as one consistent view, the configuration (the
	// site, each link's clusters; nil when unknown) and the links that
	// exist now, in configuration order.
	Current() (*config.Config, []*link.Link)
	// Changed returns a channel that is closed when Current next changes;
	// nil when it never does.
	Changed() <-chan struct{}
}

// Static returns a LinkSource that never changes: cfg and links.
func Static(cfg *config.Config, links ...*link.Link) LinkSource {
	return staticLinks{cfg: cfg, links: links}
}

type staticLinks struct {
	cfg   *config.Config
	links []*link.Link
}

func (s staticLinks) Current() (*config.Config, []*link.Link) { return s.cfg, s.links }
func (s staticLinks) Changed() <-chan struct{}                { return nil }

// Snapshot is the status of an agent at one time: the body of GET
// /api/v1/status. Field names are a stable contract (documented in
// README.md): fields may be added, never renamed or removed within v1.
type Snapshot struct {
	// Version is the agent's version.
	Version string `json:"version"`
	// Site is the configured site; empty when none.
	Site string `json:"site"`
	// Time is when the snapshot was taken; StartedAt when the model was
	// created (the agent started).
	Time      time.Time `json:"time"`
	StartedAt time.Time `json:"started_at"`
	// Ready is what /readyz answers; Reason says why not.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Controls is true when the cut and restore actions exist (the demo).
	// The model leaves it false: the HTTP server that offers the actions
	// sets it.
	Controls bool `json:"controls"`
	// Links holds every link in configuration order.
	Links []LinkStatus `json:"links"`
}

// LinkStatus is one link in a Snapshot.
type LinkStatus struct {
	Name string `json:"name"`
	// From and To are the source and destination cluster names.
	From string `json:"from"`
	To   string `json:"to"`
	// State is one of starting, catching-up, live, disconnected, failed,
	// stopped; StateSince is when the link entered it.
	State        string    `json:"state"`
	StateSince   time.Time `json:"state_since"`
	StateSeconds float64   `json:"state_seconds"`
	// ConnectedOnce is true once the link has connected to both clusters
	// (since the agent started); the state says whether it is connected now.
	ConnectedOnce bool   `json:"connected_once"`
	LastError     string `json:"last_error"`
	// Records and Bytes count records and payload bytes committed at the
	// destination since the agent started; WireBytes counts what was sent
	// to the destination brokers (framing and compression included).
	Records   int64 `json:"records"`
	Bytes     int64 `json:"bytes"`
	WireBytes int64 `json:"wire_bytes"`
	// RecordsIn and BytesIn count the source records and payload the link
	// took in: with transforms, what they reduced to Records and Bytes.
	RecordsIn    int64 `json:"records_in"`
	BytesIn      int64 `json:"bytes_in"`
	Transactions int64 `json:"transactions"`
	// RecordsPerSecond and BytesPerSecond are the rates over the last
	// few seconds.
	RecordsPerSecond float64 `json:"records_per_second"`
	BytesPerSecond   float64 `json:"bytes_per_second"`
	// LostRecords were deleted by source retention before they were
	// replicated; SkippedRecords were refused by the destination and
	// recorded (on_error: skip-and-record); SkippedLoops had been in the
	// destination cluster before (loop prevention).
	LostRecords    int64 `json:"lost_records"`
	SkippedRecords int64 `json:"skipped_records"`
	SkippedLoops   int64 `json:"skipped_loops"`
	// FilteredRecords were dropped by the link's filters (transforms);
	// LateRecords came after their window, interval or horizon.
	FilteredRecords int64 `json:"filtered_records"`
	LateRecords     int64 `json:"late_records"`
	Partitions      int   `json:"partitions"`
	// Backlog is what is left to replicate.
	Backlog Backlog `json:"backlog"`
	// Topics holds each replicated source topic, sorted by name.
	Topics []TopicProgress `json:"topics"`
	// Events holds the most recent events, newest first (at most 50).
	Events []Event `json:"events"`
	// Sharing shows how the agents running the link share it; absent
	// for a link that is not shared.
	Sharing *Sharing `json:"sharing,omitempty"`
	// Bundles is present for a link carried across an air gap in
	// bundles: the last bundle exported and the last receipt brought back
	// (acknowledged); the backlog is what the cloud has not acknowledged.
	Bundles *Bundles `json:"bundles,omitempty"`
	// Diode is present for a link through a data diode: its sender's or
	// its receiver's view.
	Diode *Diode `json:"diode,omitempty"`
	// Groups is present for a link that syncs consumer groups: where the
	// sync stands (see README, "Consumer groups").
	Groups *Groups `json:"groups,omitempty"`
	// LinkCut is present only with controls: whether the link's network
	// is cut. The model leaves it nil; the HTTP server with controls sets
	// it.
	LinkCut *bool `json:"link_cut,omitempty"`
}

// Diode is one end of a link through a data diode.
type Diode struct {
	// Role is "sender" or "receiver"; Session the sender's session id.
	Role    string `json:"role"`
	Session string `json:"session,omitempty"`
	// Datagrams and Bytes sent or received (repeats included).
	Datagrams int64 `json:"datagrams"`
	Bytes     int64 `json:"bytes"`
	// At the sender: Repeats sent, RepeatsSkipped (fallen out of the
	// repeat buffer first), Parity datagrams sent.
	Repeats        int64 `json:"repeats,omitempty"`
	RepeatsSkipped int64 `json:"repeats_skipped,omitempty"`
	Parity         int64 `json:"parity,omitempty"`
	// At the receiver: Forged datagrams dropped (failed authentication),
	// Recovered rebuilt from parity, Duplicates dropped, Unrecoverable
	// parity groups.
	Forged        int64 `json:"forged"`
	Recovered     int64 `json:"recovered"`
	Duplicates    int64 `json:"duplicates"`
	Unrecoverable int64 `json:"unrecoverable"`
	// LastHeartbeat is when the receiver last heard the sender; Silent
	// is true once it missed heartbeats (or never heard one).
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	Silent        bool       `json:"silent"`
	// Gaps are the ranges missing now, waiting for repeats; GapsLost the
	// ranges given up (their records are in lost_records).
	Gaps                []DiodeGap `json:"gaps"`
	GapsLost            int64      `json:"gaps_lost"`
	RepairWindowSeconds float64    `json:"repair_window_seconds"`
}

// DiodeGap is a range of a partition's offsets [from, to] a diode
// receiver misses, since when it knows.
type DiodeGap struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	From      int64     `json:"from"`
	To        int64     `json:"to"`
	Since     time.Time `json:"since"`
}

// Bundles is where a link carried in bundles stands at its site.
type Bundles struct {
	LastExport  *BundleExport  `json:"last_export"`
	LastReceipt *BundleReceipt `json:"last_receipt"`
}

// BundleExport is a bundle exported at the site.
type BundleExport struct {
	Sequence int64     `json:"sequence"`
	ID       string    `json:"id"`
	At       time.Time `json:"at"`
	Records  int64     `json:"records"`
	Bytes    int64     `json:"bytes"`
	Dir      string    `json:"dir"`
	// Complete is false when the export was cut at --max-bytes.
	Complete bool `json:"complete"`
}

// BundleReceipt is the receipt of the last bundle the cloud imported, as
// acknowledged at the site.
type BundleReceipt struct {
	Sequence int64     `json:"sequence"`
	ID       string    `json:"id"`
	Imported time.Time `json:"imported"`
	Acked    time.Time `json:"acked"`
	Records  int64     `json:"records"`
}

// Sharing is how the agents running a link (same configuration, same
// site) share its slots, as this agent's membership last saw it.
type Sharing struct {
	// Group is the consumer group on the source cluster the agents share
	// the link through; Generation its generation, Since when it began.
	Group      string    `json:"group"`
	Generation int32     `json:"generation"`
	Since      time.Time `json:"since"`
	// SlotCount is the link's number of slots; Held the slots this agent
	// holds open now.
	SlotCount int   `json:"slot_count"`
	Held      []int `json:"held"`
	// Agents are the agents sharing the link, this one marked self.
	Agents []AgentShare `json:"agents"`
	// Slots holds every slot: its owner and its source partitions.
	Slots []SlotOwner `json:"slots"`
}

// AgentShare is one agent sharing a link.
type AgentShare struct {
	Instance   string `json:"instance"`
	Host       string `json:"host"`
	PID        int    `json:"pid"`
	Self       bool   `json:"self"`
	Slots      []int  `json:"slots"`
	Partitions int    `json:"partitions"`
}

// SlotOwner is one slot of a link.
type SlotOwner struct {
	Slot int `json:"slot"`
	// Owner is the owning agent's instance; empty while the slot moves.
	Owner      string   `json:"owner"`
	Partitions []string `json:"partitions"`
}

// Backlog is a link's replication lag.
type Backlog struct {
	// Records is the number of source offsets not yet replicated.
	Records int64 `json:"records"`
	// Bytes estimates their payload.
	Bytes int64 `json:"bytes"`
	// AgeSeconds approximates the age of the oldest unreplicated record.
	AgeSeconds float64 `json:"age_seconds"`
	// DrainETASeconds estimates the time to replicate the backlog at the
	// recent rate; 0 when unknown or without a backlog.
	DrainETASeconds float64 `json:"drain_eta_seconds"`
	// DataLossInSeconds is the time until the source's retention deletes
	// records not replicated yet, should the link not replicate them
	// first: the least over the topics with a backlog of retention_seconds
	// less backlog_age_seconds; 0 when records are being deleted
	// unreplicated now; null when unknown or none (no backlog, or no topic
	// with both a retention by age and a known backlog age).
	DataLossInSeconds *float64 `json:"data_loss_in_seconds"`
	// MeasuredAt is when the link last measured the backlog; null before
	// the first measurement.
	MeasuredAt *time.Time `json:"measured_at"`
	// Estimated is true while the link cannot measure its backlog (an
	// outage): Records is then the last measurement plus what the source
	// gained since.
	Estimated bool `json:"estimated"`
}

// TopicProgress is one replicated source topic.
type TopicProgress struct {
	Source         string `json:"source"`
	Destination    string `json:"destination"`
	Partitions     int    `json:"partitions"`
	Priority       int    `json:"priority"`
	Records        int64  `json:"records"`
	Bytes          int64  `json:"bytes"`
	RecordsIn      int64  `json:"records_in"`
	BytesIn        int64  `json:"bytes_in"`
	BacklogRecords int64  `json:"backlog_records"`
	// BacklogAgeSeconds approximates the age of the topic's oldest
	// unreplicated record; 0 without a backlog or when unknown (nothing
	// replicated yet from its partitions with a backlog).
	BacklogAgeSeconds float64 `json:"backlog_age_seconds"`
	// RetentionSeconds is how long the source topic keeps records (its
	// retention.ms); null when it does not delete them by age (retention.ms
	// -1, or cleanup.policy compact only) or it is unknown.
	RetentionSeconds *float64 `json:"retention_seconds"`
}

// Event is something notable that happened to a link.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is one of state, topic, lost, skipped, error.
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Groups is where a link's consumer group sync stands, as of its last
// round.
type Groups struct {
	// Selected counts the source groups the link selects; Synced those
	// whose offsets of this agent's partitions are at the destination;
	// Committed the offsets the last round wrote.
	Selected  int `json:"selected"`
	Synced    int `json:"synced"`
	Committed int `json:"committed"`
	// Active counts groups left alone because members consume at the
	// destination; Pending group partitions consumed past what the link
	// replicated (synced once it has).
	Active  int `json:"active"`
	Pending int `json:"pending"`
	// LastSync is when the last round ended; TookSeconds how long it took.
	LastSync    *time.Time `json:"last_sync,omitempty"`
	TookSeconds float64    `json:"took_seconds"`
	// LastError is the last round's error, if it failed.
	LastError string `json:"last_error,omitempty"`
}
