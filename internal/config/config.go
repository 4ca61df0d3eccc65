// Package config loads, expands, defaults and validates edgelink's YAML configuration.
//
// The file is read into a YAML node tree and walked field by field, so that
// every problem is reported with its file, line and column, the path of the
// field (such as "links[0].topics.include[1]") and a hint. All problems are
// collected in one pass and returned together as Errors.
//
// A ${VAR} in a value is replaced by the environment variable VAR after the
// YAML is parsed, so that substituted text (a password containing ": " or
// " #", say) cannot change the structure of the file. "$${" stands for a
// literal "${". Keys are never expanded. A variable that is not set is an
// error; one that is set but empty gives an empty value.
//
// An empty value (nothing, ~ or "") is the same as leaving the field out:
// optional fields take their defaults, required ones are reported.
//
// Secrets (SASL passwords, OAuth client secrets, the HTTP token) never appear in error
// messages; Config.Redacted hides them for printing.
//
// Every key is declared once, as a row of the schema in schema.go: its name,
// the field it fills, its default, constraints and hint. The rows drive
// decoding, the "unknown field" hints, redaction, and Config.YAML, which
// writes a configuration back out.
package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

// Defaults applied when a field is absent.
const (
	// DefaultClientID is the Kafka client ID used when a cluster sets none.
	DefaultClientID = "edgelink"
	// DefaultRename maps every source topic to a destination topic of the
	// same name.
	DefaultRename = "{topic}"
	// DefaultHTTPListen is the address of the metrics, health and status
	// server when http.listen is absent.
	DefaultHTTPListen = "127.0.0.1:9644"
)

// redacted replaces secrets in the output of Config.Redacted.
const redacted = "[redacted]"

// Config is a loaded, expanded, defaulted and validated configuration.
type Config struct {
	// File is the path the configuration was read from, as given to Load
	// or Parse.
	File string
	// Site identifies this edge location; empty when not set.
	Site string
	// Clusters holds every cluster by name.
	Clusters map[string]*Cluster
	// ClusterOrder lists the cluster names in file order.
	ClusterOrder []string
	// Links lists the links in file order; it may be empty.
	Links []*Link
	// HTTP configures the metrics, health and status server.
	HTTP HTTP
	// Fleet, when set, makes the agent report to the fleet and, if
	// managed, take configuration revisions from it; nil when absent.
	Fleet *Fleet
	// SiteLabels describe the site to the fleet (region, customer, …);
	// revisions may select sites by label. Nil when absent.
	SiteLabels map[string]string
}

// Fleet defaults.
const (
	// DefaultFleetInterval is how often an agent reports to the fleet.
	DefaultFleetInterval = 10 * time.Second
	// DefaultRevertAfter is how long a link a revision changed has to
	// become live before the agent returns to the last good revision.
	DefaultRevertAfter = 5 * time.Minute
	// DefaultFleetTopicPrefix starts the names of the fleet's topics in
	// the fleet cluster.
	DefaultFleetTopicPrefix = "__edgelink.fleet"
)

// Fleet is where an agent reports its status, and whether it takes its
// configuration from the fleet (see internal/fleet). The same block
// configures the fleet service and the fleet commands, which read
// Cluster and TopicPrefix.
type Fleet struct {
	// Cluster names the cluster (under clusters) that holds the fleet's
	// topics: the cloud cluster the sites already write to.
	Cluster string
	// Interval is how often the agent publishes its report.
	Interval time.Duration
	// Managed makes the agent apply configuration revisions signed by one
	// of TrustedKeys (public key files).
	Managed     bool
	TrustedKeys []string
	// RevertAfter is how long a link that a revision added or changed has
	// to become live before the agent returns to the last good revision.
	RevertAfter time.Duration
	// TopicPrefix starts the fleet's topic names.
	TopicPrefix string
}

// Cluster is a named Kafka-protocol cluster and how to connect to it.
type Cluster struct {
	// Name is the cluster's key under "clusters".
	Name string
	// Bootstrap lists the seed brokers as host:port; never empty.
	Bootstrap []string
	// ClientID is the Kafka client ID; DefaultClientID when absent.
	ClientID string
	// TLS is nil when the cluster has no tls block.
	TLS *TLS
	// SASL is nil when the cluster has no sasl block.
	SASL *SASL
}

// TLS configures TLS for connections to a cluster.
type TLS struct {
	// Enabled turns TLS on. It defaults to true when the tls block is
	// present, so that "tls: {ca_file: ...}" means what it says.
	Enabled bool
	// CAFile is a PEM file of CA certificates; empty means the system pool.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// for mutual TLS; both or neither are set.
	CertFile, KeyFile string
	// ServerName overrides the host name used to verify the server.
	ServerName string
	// InsecureSkipVerify disables verification of the server certificate.
	InsecureSkipVerify bool
}

// SASL mechanisms, as stored in SASL.Mechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
	MechanismOAuthBearer = "OAUTHBEARER"
)

// Mechanisms lists the supported SASL mechanisms.
var Mechanisms = []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512, MechanismOAuthBearer}

// SASL configures SASL authentication to a cluster.
type SASL struct {
	// Mechanism is one of Mechanisms, upper-case.
	Mechanism string
	// Username and either Password or PasswordFile are set for PLAIN and
	// SCRAM; they are empty for OAUTHBEARER.
	Username, Password, PasswordFile string
	// TokenURL and ClientID are set for OAUTHBEARER (OAuth 2 client
	// credentials); at most one of ClientSecret and ClientSecretFile is set.
	// Scope is optional. All are empty for PLAIN and SCRAM.
	TokenURL, ClientID, ClientSecret, ClientSecretFile, Scope string
}

// StartPosition is where a link starts reading a partition it has never
// replicated before.
type StartPosition string

// Start positions.
const (
	// StartEarliest starts from the oldest record still retained.
	StartEarliest StartPosition = "earliest"
	// StartLatest starts from the end, replicating only new records.
	StartLatest StartPosition = "latest"
)

// Delivery is a link's delivery guarantee.
type Delivery string

// Delivery guarantees.
const (
	// DeliveryExactlyOnce writes each record exactly once, using
	// transactions at the destination.
	DeliveryExactlyOnce Delivery = "exactly-once"
	// DeliveryAtLeastOnce may write a record more than once after a failure.
	DeliveryAtLeastOnce Delivery = "at-least-once"
)

// OnError is what a link does with a record the destination refuses (too
// large, invalid) or cannot take.
type OnError string

// Error policies.
const (
	// OnErrorStop stops the link with a clear error; nothing is skipped.
	OnErrorStop OnError = "stop"
	// OnErrorSkip skips the refused record, logs its exact coordinates and
	// the reason, counts it, and writes a record of it to the link's
	// skipped-records topic at the destination, in the same transaction.
	OnErrorSkip OnError = "skip-and-record"
)

// Profile tunes a link's clients for the network between its clusters.
type Profile string

// Network profiles.
const (
	// ProfileLAN: both clusters close by; snappy, short timeouts.
	ProfileLAN Profile = "lan"
	// ProfileWAN: an ordinary wide-area link; zstd, moderate timeouts.
	ProfileWAN Profile = "wan"
	// ProfileSatellite: slow, high-latency links (1-2 Mbit/s, 600 ms round
	// trip); zstd, long timeouts.
	ProfileSatellite Profile = "satellite"
)

// Compressions lists the destination compression codecs a link may use.
var Compressions = []string{"zstd", "lz4", "snappy", "gzip", "none"}

// Default intervals of a link.
const (
	// DefaultCommitInterval is how long a destination transaction collects
	// records before it commits.
	DefaultCommitInterval = 100 * time.Millisecond
	// DefaultDiscoveryInterval is how often a link lists the source topics
	// to find new topics, new partitions and config changes.
	DefaultDiscoveryInterval = 10 * time.Second
)

// DefaultCheckpointTopic is the compacted topic at the destination that holds
// links' checkpoints when a link does not name its own.
const DefaultCheckpointTopic = "__edgelink.checkpoints"

// Link is a one-way replication flow from one cluster to another.
type Link struct {
	// Name is unique among links.
	Name string
	// From and To name the source and destination clusters; they differ.
	From, To string
	// Topics selects the source topics to replicate.
	Topics Topics
	// OnError is the policy for records the destination refuses;
	// OnErrorStop when absent.
	OnError OnError
	// CheckpointTopic is the destination topic that holds the link's
	// checkpoints; DefaultCheckpointTopic when absent.
	CheckpointTopic string
	// Profile tunes timeouts and compression for the network; ProfileLAN
	// when absent.
	Profile Profile
	// Compression overrides the profile's destination compression codec;
	// empty when absent.
	Compression string
	// Bandwidth is the budget, in bytes per second, for what the link sends
	// to the destination cluster; 0 (absent) means unlimited.
	Bandwidth int64
	// BandwidthSchedule holds budgets for times of day that replace
	// Bandwidth while they apply; the first window that contains the time
	// wins. See BandwidthAt.
	BandwidthSchedule []BandwidthWindow
	// Priorities weigh topics against each other while the link has a
	// backlog; the first whose pattern matches a topic applies. See
	// PriorityOf.
	Priorities []Priority
	// Tuning overrides single settings of the profile; a zero field keeps
	// the profile's value.
	Tuning Tuning
	// CommitInterval and DiscoveryInterval: see DefaultCommitInterval and
	// DefaultDiscoveryInterval, which apply when they are absent.
	CommitInterval, DiscoveryInterval time.Duration
	// Rename maps a source topic to its destination topic, with the
	// placeholders {topic} and {site}; DefaultRename when absent.
	Rename string
	// Start is StartEarliest when absent.
	Start StartPosition
	// Delivery is DeliveryExactlyOnce when absent.
	Delivery Delivery
	// Slots is the number of slots the link's partitions map to: the
	// unit the agents sharing the link hand each other, each with its
	// own destination transactions. DefaultSlots when absent.
	Slots int
	// Membership tunes how the agents sharing the link notice each other.
	Membership Membership
	// Transforms apply in order to every record of the link at the
	// source side, before the WAN; empty when absent.
	Transforms []Transform
	// MaxState bounds the memory of the link's stateful transform, in
	// bytes (DefaultMaxState when absent): a link that would exceed it
	// stops rather than drop anything.
	MaxState int
	// Bundle, when set, carries the link across an air gap on a disk
	// (edgelink bundle export, import, ack): edgelink run does not
	// replicate it. Nil when absent.
	Bundle *Bundle
	// Diode, when set, makes edgelink run send the link one way over UDP
	// through a data diode, never connecting to To; edgelink diode
	// receive writes it to To. Nil when absent.
	Diode *Diode
	// Groups, when set, copies the committed offsets of the source's
	// consumer groups it selects to the destination, translated exactly
	// through the mirror's provenance. Nil when absent.
	Groups *Groups
}

// DefaultGroupInterval is how often a link syncs its consumer groups when
// groups.interval is absent.
const DefaultGroupInterval = 10 * time.Second

// Groups selects the consumer groups whose offsets a link syncs.
type Groups struct {
	// IDs selects group ids by regular expression, as Topics selects
	// topics (include and exclude).
	IDs Topics
	// Interval is the time between two syncs (DefaultGroupInterval when
	// absent).
	Interval time.Duration
}

// AirGapped reports whether the link crosses an air gap (a bundle or a
// diode) instead of connecting its two clusters.
func (l *Link) AirGapped() bool { return l.Bundle != nil || l.Diode != nil }

// DefaultChunkSize is the largest chunk file of a bundle when chunk_size
// is absent.
const DefaultChunkSize = 256 << 20

// Bundle holds what carrying a link on a disk needs. The site signs what
// it exports and may encrypt it; the cloud trusts some signers and holds
// the keys that decrypt.
type Bundle struct {
	// SigningKey is the site's private key file (NAME.key from edgelink
	// keygen) that signs its exports.
	SigningKey string
	// TrustedKeys are the public key files whose bundles an import
	// accepts.
	TrustedKeys []string
	// EncryptTo lists age recipients (age1...) an export encrypts to, or
	// files holding them one per line; empty: not encrypted.
	EncryptTo []string
	// DecryptWith lists files holding the age identities an import
	// decrypts with.
	DecryptWith []string
	// ChunkSize bounds a bundle's chunk files (DefaultChunkSize when
	// absent): 4GiB less a byte fits FAT32.
	ChunkSize int64
}

// Diode holds what sending a link through a data diode needs.
type Diode struct {
	// SendTo is the UDP address (host:port) the sender sends to.
	SendTo string
	// KeyFile holds the 256-bit key shared by sender and receiver
	// (edgelink keygen --diode).
	KeyFile string
	// Rate is the most the sender sends, in bytes per second on the wire
	// (repeats and parity included); 0 (absent) means unlimited.
	Rate int64
	// Redundancy says what the sender adds so that the receiver heals
	// losses without a return path: forward error correction and timed
	// repeats, e.g. "fec 16+4, repeat 2s 20s" (DefaultRedundancy when
	// absent).
	Redundancy string
}

// DefaultRedundancy is a diode's redundancy when absent.
const DefaultRedundancy = "fec 16+4, repeat 2s 20s"

// Transform is one transform of a link: exactly one of its kinds is set.
// The configuration holds them as written, validated (an expression
// compiles and type-checks); the link compiles them again when it starts
// (see internal/transform).
type Transform struct {
	// Filter keeps the records for which the CEL expression is true.
	Filter string
	// Project rewrites a JSON value to the paths it keeps or drops.
	Project *Projection
	// Downsample, Dedupe and Aggregate keep state per source partition
	// (at most one of them per link).
	Downsample *Downsample
	Dedupe     *Dedupe
	Aggregate  *Aggregate
}

// ExpandTopic fills a topic template's {topic} and {site}.
func ExpandTopic(tmpl, site, topic string) string { return expandTopic(tmpl, site, topic) }

// Stateful reports whether t keeps state across records.
func (t Transform) Stateful() bool {
	return t.Downsample != nil || t.Dedupe != nil || t.Aggregate != nil
}

// Downsample keeps the first record per key per event-time interval
// ([n*Every, (n+1)*Every) of the record's timestamp).
type Downsample struct {
	// Key is a CEL expression; its value, as text, is the key.
	Key   string
	Every time.Duration
	Outputs
}

// Outputs are where a stateful transform's output and its late records go
// other than down the link's transforms to its mirror topic: topic
// templates with {site} and {topic}, "" for none.
type Outputs struct {
	// To sends the transform's output (the records it keeps, an
	// aggregate's windows) to this topic; the records that went into it
	// then go on down the transforms unchanged (the raw stream).
	To string
	// Late sends the records the transform finds late to this topic;
	// they are counted either way.
	Late string
}

// Dedupe drops a record whose key was seen within Horizon of its
// timestamp (event time).
type Dedupe struct {
	Key     string
	Horizon time.Duration
	Outputs
}

// Aggregate rolls records up into tumbling event-time windows per source
// partition and key.
type Aggregate struct {
	// Window is the windows' length; Grace how long past a window's end
	// (in event time) records are still taken into it.
	Window, Grace time.Duration
	Key           string
	// Values are CEL expressions giving numbers, by name.
	Values map[string]string
	// Functions apply to every value, in AggregateFunctions' order.
	Functions []string
	Outputs
}

// Outputs returns the outputs of t's stateful transform (zero when none).
func (t Transform) Outputs() Outputs {
	switch {
	case t.Downsample != nil:
		return t.Downsample.Outputs
	case t.Dedupe != nil:
		return t.Dedupe.Outputs
	case t.Aggregate != nil:
		return t.Aggregate.Outputs
	}
	return Outputs{}
}

// DerivedTopics returns the destination topics a link writes for source
// topic beside its mirror topic: its stateful transform's to and late
// topics.
func (l *Link) DerivedTopics(site, topic string) []string {
	var out []string
	for _, t := range l.Transforms {
		o := t.Outputs()
		for _, tmpl := range []string{o.To, o.Late} {
			if tmpl != "" {
				out = append(out, expandTopic(tmpl, site, topic))
			}
		}
	}
	return out
}

// expandTopic fills a topic template's {topic} and {site}.
func expandTopic(tmpl, site, topic string) string {
	return strings.NewReplacer("{topic}", topic, "{site}", site).Replace(tmpl)
}

// AggregateFunctions are the functions an aggregate can apply, in the
// order they appear in its output.
var AggregateFunctions = []string{"min", "max", "mean", "count", "sum", "first", "last"}

// DefaultMaxState bounds the state of a link's stateful transform.
const DefaultMaxState = 64 << 20

// Projection keeps (Keep) or drops (Drop) JSON paths of a record's value.
type Projection struct {
	Keep, Drop []string
}

// Slot counts.
const (
	// DefaultSlots is a link's number of slots when absent: enough for
	// two or three agents to share it evenly and for commits to overlap.
	DefaultSlots = 6
	// MaxSlots bounds a link's number of slots.
	MaxSlots = 256
)

// Membership timing of the agents sharing a link (Kafka's group protocol
// on the link's source cluster): an agent that stops heartbeating for
// SessionTimeout is presumed dead and its slots move.
type Membership struct {
	SessionTimeout, HeartbeatInterval, RebalanceTimeout time.Duration
}

// Default membership timing: a killed agent's slots move within about
// SessionTimeout plus a rebalance.
const (
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultRebalanceTimeout  = 10 * time.Second
)

// DefaultPriority is the weight of a topic that no priority pattern matches.
const DefaultPriority = 1

// MaxPriority is the largest priority (weight) a topic may have.
const MaxPriority = 1000

// Priority gives the topics matching a pattern a weight. While topics of
// several weights have records waiting, each weight's topics get a share
// of the link in proportion to it: with alerts at 10 and everything else at
// the default 1, alerts get 10/11 of the link until their backlog is gone,
// and the rest is never starved.
type Priority struct {
	// Match is the pattern as written; MatchRE is it compiled and anchored.
	Match   string
	MatchRE *regexp.Regexp
	// Weight is from 1 to MaxPriority.
	Weight int
}

// PriorityOf returns the weight of a source topic: that of the first
// priority whose pattern matches it, or DefaultPriority.
func (l *Link) PriorityOf(topic string) int {
	for _, p := range l.Priorities {
		if p.MatchRE.MatchString(topic) {
			return p.Weight
		}
	}
	return DefaultPriority
}

// BandwidthWindow is a bandwidth budget for a time of day, in the agent's
// local time zone.
type BandwidthWindow struct {
	// Days lists the weekdays the window applies on; empty means every day.
	Days []time.Weekday
	// From and To are minutes after midnight; the window covers [From, To).
	// A window with To <= From runs past midnight (22:00 to 06:00), and
	// belongs to the day it starts on.
	From, To int
	// Rate is the budget in bytes per second; 0 means unlimited.
	Rate int64
}

// contains reports whether t falls in the window.
func (w BandwidthWindow) contains(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	if w.To <= w.From && m < w.To {
		day = (day + 6) % 7 // the early hours belong to the previous day's window
	}
	if len(w.Days) > 0 && !slices.Contains(w.Days, day) {
		return false
	}
	if w.To > w.From {
		return m >= w.From && m < w.To
	}
	return m >= w.From || m < w.To
}

// BandwidthAt returns the link's budget in bytes per second at time t (in
// t's location): that of the first schedule window containing t, or
// Bandwidth. 0 means unlimited.
func (l *Link) BandwidthAt(t time.Time) int64 {
	for _, w := range l.BandwidthSchedule {
		if w.contains(t) {
			return w.Rate
		}
	}
	return l.Bandwidth
}

// Tuning overrides a profile's settings; zero fields keep the profile's.
type Tuning struct {
	// DialTimeout bounds opening a connection, TLS handshake included.
	DialTimeout time.Duration
	// RequestTimeout is how long a request may go unanswered beyond its own
	// wait before the connection counts as dead (a black hole).
	RequestTimeout time.Duration
	// ProduceTimeout is how long a broker may take to acknowledge a write.
	ProduceTimeout time.Duration
	// FetchMaxWait is how long the source may hold a fetch waiting for data.
	FetchMaxWait time.Duration
	// BatchBytes is the largest batch the producer sends to one partition.
	BatchBytes int
	// TransactionTime is the target time for sending one transaction:
	// transactions are sized to what the link sent in that time recently,
	// so that a slow link commits often and a priority topic waits little.
	TransactionTime time.Duration
}

// Topics selects topics by regular expression. Each pattern must match the
// whole topic name.
type Topics struct {
	// Include and Exclude are the patterns as written; Include is never empty.
	Include, Exclude []string
	// IncludeRE and ExcludeRE are the compiled patterns, anchored as
	// ^(?:pattern)$.
	IncludeRE, ExcludeRE []*regexp.Regexp
}

// Match reports whether topic is matched by some include pattern and by no
// exclude pattern.
func (t Topics) Match(topic string) bool {
	included := false
	for _, re := range t.IncludeRE {
		if re.MatchString(topic) {
			included = true
			break
		}
	}
	if !included {
		return false
	}
	for _, re := range t.ExcludeRE {
		if re.MatchString(topic) {
			return false
		}
	}
	return true
}

// DestinationTopic returns the name that topic gets at the link's
// destination, by filling in the link's Rename template.
func (l *Link) DestinationTopic(site, topic string) string {
	rename := l.Rename
	if rename == "" {
		rename = DefaultRename
	}
	return expandTopic(rename, site, topic)
}

// HTTP configures the metrics, health and status server.
type HTTP struct {
	// Listen is a host:port address; port 0 picks any free port.
	// DefaultHTTPListen when absent.
	Listen string
	// TLS, when set, serves HTTPS with this certificate and key.
	TLS *HTTPTLS
	// Token, when set, is the bearer token that the status API, the status
	// page, /metrics and control actions require. At most one of Token and
	// TokenFile is set; TokenFile names a file holding the token (read when
	// the server starts; surrounding white space is ignored).
	Token, TokenFile string
	// Pprof serves Go's runtime profiles under /debug/pprof/ (behind the
	// token, when one is set).
	Pprof bool
}

// HTTPTLS is the certificate and key (PEM files) of the HTTP server.
type HTTPTLS struct {
	CertFile, KeyFile string
}

// Load reads the configuration file at path and parses it with Parse.
// An error reading the file is returned wrapped; problems in its contents
// are returned as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses, expands, defaults and validates a configuration, replacing
// ${VAR} references from the process environment. filename is used in error
// messages and stored as Config.File. Every problem found is returned at
// once, as Errors.
func Parse(filename string, data []byte) (*Config, error) {
	return ParseWithEnv(filename, data, os.LookupEnv)
}

// ParseWithEnv is Parse with ${VAR} references looked up by lookup instead of
// os.LookupEnv.
func ParseWithEnv(filename string, data []byte, lookup LookupFunc) (*Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	d := &decoder{file: filename, data: data, lookup: lookup, refs: refs{links: map[string]int{}}}
	cfg := d.decode()
	if len(d.errs) > 0 {
		sortErrors(d.errs)
		return nil, d.errs
	}
	return cfg, nil
}

// Link returns the link called name, or nil; c may be nil.
func (c *Config) Link(name string) *Link {
	if c == nil {
		return nil
	}
	for _, l := range c.Links {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Redacted returns a deep copy of c with secrets (the keys the schema marks
// secret: SASL passwords, client secrets and the HTTP token) replaced by
// "[redacted]", suitable for printing.
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	out := *c
	rootBlock.redact(&out)
	return &out
}

// YAML writes c out as YAML that Parse reads back into an equal Config
// (File aside): every setting spelled out, defaults included, and "${"
// written as "$${" so that nothing is expanded. Secrets are written as they
// are; write c.Redacted() to print a configuration.
func (c *Config) YAML() ([]byte, error) {
	if c == nil {
		return nil, errors.New("render configuration: no configuration")
	}
	out, err := yaml.Dump(rootBlock.encode(c))
	if err != nil {
		return nil, fmt.Errorf("render configuration: %w", err)
	}
	return out, nil
}

// rateUnits are the units ParseRate accepts, in bytes per second (decimal
// prefixes, as network rates are quoted).
var rateUnits = map[string]float64{
	"bit/s": 1.0 / 8, "kbit/s": 1e3 / 8, "mbit/s": 1e6 / 8, "gbit/s": 1e9 / 8,
	"b/s": 1, "kb/s": 1e3, "mb/s": 1e6, "gb/s": 1e9,
}

// ParseRate parses a rate such as "2Mbit/s", "512 kbit/s" or "1MB/s" into
// bytes per second. Units are case-insensitive except that a "b" standing
// alone or before "/s" means bytes and "bit" means bits.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if unit == "" {
		return 0, fmt.Errorf("rate %q has no unit", s)
	}
	if strings.HasSuffix(unit, "bps") { // 2Mbps
		unit = strings.TrimSuffix(unit, "bps") + "bit/s"
	}
	mult, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("rate %q has an unknown unit %q", s, t[i:])
	}
	var v float64
	if _, err := fmt.Sscanf(num, "%g", &v); err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q is not a positive number", s)
	}
	r := int64(v * mult)
	if r < 1 {
		return 0, fmt.Errorf("rate %q is below one byte per second", s)
	}
	return r, nil
}

// sizeUnits are the units ParseSize accepts, in bytes.
var sizeUnits = map[string]int64{
	"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

// ParseSize parses a size such as "512KiB", "1MB" or "65536" into bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has an unknown unit %q", s, t[i:])
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q is not a positive whole number", s)
	}
	if v > (1<<40)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return v * mult, nil
}
