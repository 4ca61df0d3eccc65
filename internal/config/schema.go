package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The schema: one block per mapping of the file, one row per key. A row
// holds everything about its key: the name in the file, the Go field it
// fills, the kind of value with its default and constraints, whether it is
// required, and the hint for a missing or empty value. The same rows drive
// decoding, defaults, the valid keys of "unknown field" hints, redaction
// (secret) and writing a Config back out.
//
// A new key is one new row. Keys are decoded in the order of the rows
// unless the block's decode hook says otherwise; the order decides which
// of two problems at the same position is reported first, and which of two
// equally close keys a "did you mean" hint offers. Rules between keys are
// the hooks at the end of this file.

// rootBlock is the whole file.
var rootBlock = block[Config]{
	what: "the configuration",
	keys: []key[Config]{
		{name: "site", value: func(c *Config) value {
			return &site{text{p: &c.Site, check: checkSite}}
		}},
		{name: "clusters", required: true, hint: "define at least one cluster", value: func(c *Config) value {
			return &clusters{m: &c.Clusters, order: &c.ClusterOrder, b: &clusterBlock}
		}},
		{name: "links", value: func(c *Config) value {
			return &listPtr[Link]{p: &c.Links, b: &linkBlock, want: "a list of links", empty: "empty link"}
		}},
		{name: "http", value: func(c *Config) value {
			return &sub[HTTP]{p: &c.HTTP, b: &httpBlock}
		}},
		{name: "fleet", value: func(c *Config) value {
			return &subPtr[Fleet]{p: &c.Fleet, b: &fleetBlock}
		}},
		{name: "site_labels", value: func(c *Config) value { return &labels{p: &c.SiteLabels} }},
	},
}

// fleetBlock is the fleet block: where the agent reports, and whether it
// takes its configuration from the fleet.
var fleetBlock = block[Fleet]{
	what: "the fleet",
	keys: []key[Fleet]{
		{name: "cluster", required: true, hint: "name the cloud cluster that holds the fleet's topics", value: func(f *Fleet) value {
			return &clusterRef{text{p: &f.Cluster}}
		}},
		{name: "interval", value: func(f *Fleet) value {
			return &duration{p: &f.Interval, def: DefaultFleetInterval, min: time.Second, max: 10 * time.Minute}
		}},
		{name: "managed", value: func(f *Fleet) value { return &flag{p: &f.Managed} }},
		{name: "trusted_keys", value: func(f *Fleet) value {
			return &files{p: &f.TrustedKeys, want: "a list of public key files (NAME.pub, from edgelink keygen)"}
		}},
		{name: "revert_after", value: func(f *Fleet) value {
			return &duration{p: &f.RevertAfter, def: DefaultRevertAfter, min: time.Second, max: 24 * time.Hour}
		}},
		{name: "topic_prefix", value: func(f *Fleet) value {
			return &text{p: &f.TopicPrefix, def: DefaultFleetTopicPrefix, check: checkTopicName}
		}},
	},
	check: checkManaged,
}

// clusterBlock is one cluster under "clusters"; its name is its key there.
var clusterBlock = block[Cluster]{
	what: "a cluster",
	keys: []key[Cluster]{
		{name: "bootstrap", required: true, hint: `list the cluster's brokers as host:port, e.g. ["broker1:9092"]`, value: func(c *Cluster) value {
			return &brokers{p: &c.Bootstrap}
		}},
		{name: "client_id", value: func(c *Cluster) value {
			return &text{p: &c.ClientID, def: DefaultClientID}
		}},
		{name: "tls", value: func(c *Cluster) value {
			return &subPtr[TLS]{p: &c.TLS, b: &tlsBlock}
		}},
		{name: "sasl", value: func(c *Cluster) value {
			return &subPtr[SASL]{p: &c.SASL, b: &saslBlock}
		}},
	},
}

// tlsBlock is a cluster's tls block.
var tlsBlock = block[TLS]{
	what: "TLS",
	keys: []key[TLS]{
		{name: "enabled", value: func(t *TLS) value { return &flag{p: &t.Enabled, def: true} }},
		{name: "insecure_skip_verify", value: func(t *TLS) value { return &flag{p: &t.InsecureSkipVerify} }},
		{name: "ca_file", value: func(t *TLS) value { return &text{p: &t.CAFile} }},
		{name: "cert_file", value: func(t *TLS) value { return &text{p: &t.CertFile} }},
		{name: "key_file", value: func(t *TLS) value { return &text{p: &t.KeyFile} }},
		{name: "server_name", value: func(t *TLS) value { return &text{p: &t.ServerName} }},
	},
	check: checkClientCert,
}

// saslBlock is a cluster's sasl block. Which keys apply depends on the
// mechanism: see decodeSASL.
var saslBlock = block[SASL]{
	what: "SASL",
	keys: []key[SASL]{
		{name: "mechanism", required: true, hint: "use one of " + strings.Join(Mechanisms, ", "), value: func(s *SASL) value {
			return &mechanism{p: &s.Mechanism}
		}},
		// The hint names the mechanism: see decodeSASL.
		{name: "username", required: true, value: func(s *SASL) value { return &text{p: &s.Username} }},
		{name: "password", secret: true, excludes: "password_file", value: func(s *SASL) value {
			return &text{p: &s.Password, nonEmpty: true}
		}},
		{name: "password_file", excludes: "password", value: func(s *SASL) value {
			return &text{p: &s.PasswordFile, nonEmpty: true}
		}},
		{name: "token_url", required: true, hint: `mechanism OAUTHBEARER needs the OAuth 2 token endpoint, e.g. "https://login.example.com/oauth2/token"`, value: func(s *SASL) value {
			return &text{p: &s.TokenURL, check: checkTokenURL}
		}},
		{name: "client_id", required: true, hint: "mechanism OAUTHBEARER needs the OAuth 2 client ID", value: func(s *SASL) value {
			return &text{p: &s.ClientID}
		}},
		{name: "client_secret", secret: true, value: func(s *SASL) value { return &text{p: &s.ClientSecret} }},
		{name: "client_secret_file", value: func(s *SASL) value { return &text{p: &s.ClientSecretFile} }},
		{name: "scope", value: func(s *SASL) value { return &text{p: &s.Scope} }},
	},
	decode: decodeSASL,
}

// linkBlock is one item of "links".
var linkBlock = block[Link]{
	what: "a link",
	keys: []key[Link]{
		{name: "name", required: true, hint: "give the link a unique name, e.g. telemetry-up", value: func(l *Link) value {
			return &linkName{text{p: &l.Name, check: checkLinkName}}
		}},
		{name: "from", required: true, hint: "name the source cluster", value: func(l *Link) value {
			return &clusterRef{text{p: &l.From}}
		}},
		{name: "to", required: true, hint: "name the destination cluster", value: func(l *Link) value {
			return &clusterRef{text{p: &l.To}}
		}, check: checkNotSource},
		{name: "topics", required: true, hint: `select topics to replicate, e.g. topics: {include: ["sensors\\..*"]}`, value: func(l *Link) value {
			return &sub[Topics]{p: &l.Topics, b: &topicsBlock}
		}},
		{name: "rename", value: func(l *Link) value {
			return &rename{text{p: &l.Rename, def: DefaultRename}}
		}},
		{name: "start", value: func(l *Link) value {
			return &enum[StartPosition]{p: &l.Start, def: StartEarliest, values: []StartPosition{StartEarliest, StartLatest}}
		}},
		{name: "delivery", value: func(l *Link) value {
			return &enum[Delivery]{p: &l.Delivery, def: DeliveryExactlyOnce, values: []Delivery{DeliveryExactlyOnce, DeliveryAtLeastOnce}}
		}},
		{name: "on_error", value: func(l *Link) value {
			return &enum[OnError]{p: &l.OnError, def: OnErrorStop, values: []OnError{OnErrorStop, OnErrorSkip}}
		}},
		{name: "profile", value: func(l *Link) value {
			return &enum[Profile]{p: &l.Profile, def: ProfileLAN, values: []Profile{ProfileLAN, ProfileWAN, ProfileSatellite}}
		}},
		{name: "compression", value: func(l *Link) value {
			return &enum[string]{p: &l.Compression, values: Compressions}
		}},
		{name: "bandwidth", value: func(l *Link) value { return &rate{p: &l.Bandwidth} }},
		{name: "bandwidth_schedule", value: func(l *Link) value {
			return &list[BandwidthWindow]{p: &l.BandwidthSchedule, b: &windowBlock, want: `a list of windows, e.g. [{from: "08:00", to: "18:00", rate: 512kbit/s}]`}
		}},
		{name: "priorities", value: func(l *Link) value {
			return &list[Priority]{p: &l.Priorities, b: &priorityBlock, want: `a list of priorities, e.g. [{match: "alerts", priority: 10}]`}
		}},
		{name: "tuning", value: func(l *Link) value { return &sub[Tuning]{p: &l.Tuning, b: &tuningBlock} }},
		{name: "commit_interval", value: func(l *Link) value {
			return &duration{p: &l.CommitInterval, def: DefaultCommitInterval, min: time.Millisecond, max: time.Minute}
		}},
		{name: "discovery_interval", value: func(l *Link) value {
			return &duration{p: &l.DiscoveryInterval, def: DefaultDiscoveryInterval, min: 100 * time.Millisecond, max: time.Hour}
		}},
		{name: "checkpoint_topic", value: func(l *Link) value {
			return &text{p: &l.CheckpointTopic, def: DefaultCheckpointTopic, check: checkTopicName}
		}},
		{name: "slots", value: func(l *Link) value {
			return &integer{p: &l.Slots, def: DefaultSlots, min: 1, max: MaxSlots, note: "the most agents that can share the link; change it only with every agent of the site stopped (see README)"}
		}},
		{name: "membership", value: func(l *Link) value { return &sub[Membership]{p: &l.Membership, b: &membershipBlock} }},
		{name: "transforms", value: func(l *Link) value {
			return &list[Transform]{p: &l.Transforms, b: &transformBlock, want: `a list of transforms, e.g. [{filter: "json.temp > 80.0"}]`}
		}, check: checkOneStateful},
		{name: "max_state", value: func(l *Link) value {
			return &size{p: &l.MaxState, min: 1 << 20, max: 64 << 30, note: "the memory of the link's downsample, dedupe or aggregate"}
		}},
		{name: "bundle", excludes: "diode", value: func(l *Link) value { return &subPtr[Bundle]{p: &l.Bundle, b: &bundleBlock} }, check: checkAirGap},
		{name: "diode", excludes: "bundle", value: func(l *Link) value { return &subPtr[Diode]{p: &l.Diode, b: &diodeBlock} }, check: checkAirGap},
		{name: "groups", value: func(l *Link) value { return &subPtr[Groups]{p: &l.Groups, b: &groupsBlock} }, check: checkGroups},
	},
}

// groupsBlock is a link's consumer group sync.
var groupsBlock = block[Groups]{
	what: "the consumer group sync",
	keys: []key[Groups]{
		{name: "include", required: true, hint: `list regular expressions of group ids to sync, e.g. include: ["billing-.*"]`, value: func(g *Groups) value {
			return &patterns{p: &g.IDs.Include, re: &g.IDs.IncludeRE, nonEmpty: true}
		}},
		{name: "exclude", value: func(g *Groups) value { return &patterns{p: &g.IDs.Exclude, re: &g.IDs.ExcludeRE} }},
		{name: "interval", value: func(g *Groups) value {
			return &duration{p: &g.Interval, def: DefaultGroupInterval, min: 100 * time.Millisecond, max: 24 * time.Hour}
		}},
	},
}

// checkGroups refuses a group sync where the agent cannot reach both
// clusters: across an air gap no offsets can be read at one end and
// written at the other.
func checkGroups(m *mapping[Link], e entry) {
	if m.t.Groups != nil && m.t.AirGapped() {
		m.d.fail(e.pos(), e.path, "a link across an air gap cannot sync consumer groups: no agent reaches both of its clusters",
			"remove groups from this link")
	}
}

// bundleBlock is a link's bundle block: how its bundles are signed,
// trusted and encrypted.
var bundleBlock = block[Bundle]{
	what: "the bundle settings",
	keys: []key[Bundle]{
		{name: "signing_key", value: func(b *Bundle) value { return &text{p: &b.SigningKey} }},
		{name: "trusted_keys", value: func(b *Bundle) value {
			return &files{p: &b.TrustedKeys, want: "a list of public key files (NAME.pub, from edgelink keygen)"}
		}},
		{name: "encrypt_to", value: func(b *Bundle) value {
			return &files{p: &b.EncryptTo, want: "a list of age recipients (age1...) or files holding them"}
		}},
		{name: "decrypt_with", value: func(b *Bundle) value {
			return &files{p: &b.DecryptWith, want: "a list of files holding age identities (AGE-SECRET-KEY-1...)"}
		}},
		{name: "chunk_size", value: func(b *Bundle) value {
			return &size64{p: &b.ChunkSize, def: DefaultChunkSize, min: 1 << 20, max: 1 << 40, note: "4GiB less a byte fits FAT32"}
		}},
	},
}

// diodeBlock is a link's diode block: where and how the sender sends.
var diodeBlock = block[Diode]{
	what: "the diode settings",
	keys: []key[Diode]{
		{name: "send_to", value: func(d *Diode) value { return &text{p: &d.SendTo} }},
		{name: "key_file", required: true, hint: "create the shared key with edgelink keygen --diode --out NAME and give both sides the file", value: func(d *Diode) value {
			return &text{p: &d.KeyFile, nonEmpty: true}
		}},
		{name: "rate", value: func(d *Diode) value { return &rate{p: &d.Rate, unlimited: true} }},
		{name: "redundancy", value: func(d *Diode) value { return &text{p: &d.Redundancy, def: DefaultRedundancy} }},
	},
}

// checkAirGap reports what a link across an air gap cannot do: a stateful
// transform rebuilds its state by reading its source again after a
// crash, which the far side of the gap cannot ask for.
func checkAirGap(m *mapping[Link], e entry) {
	if slices.ContainsFunc(m.t.Transforms, Transform.Stateful) {
		m.d.fail(e.pos(), e.path, "a link across an air gap cannot have a downsample, dedupe or aggregate",
			"run the stateful transform on a link at the site and carry its output topic across the gap")
	}
}

// transformBlock is one item of a link's transforms: exactly one of its
// kinds.
var transformBlock = block[Transform]{
	what: "a transform",
	keys: []key[Transform]{
		{name: "filter", excludes: "project", value: func(t *Transform) value { return &expression{p: &t.Filter} }},
		{name: "project", excludes: "filter", value: func(t *Transform) value { return &subPtr[Projection]{p: &t.Project, b: &projectionBlock} }},
		{name: "downsample", value: func(t *Transform) value { return &subPtr[Downsample]{p: &t.Downsample, b: &downsampleBlock} }},
		{name: "dedupe", value: func(t *Transform) value { return &subPtr[Dedupe]{p: &t.Dedupe, b: &dedupeBlock} }},
		{name: "aggregate", value: func(t *Transform) value { return &subPtr[Aggregate]{p: &t.Aggregate, b: &aggregateBlock} }},
	},
	check: checkTransformKind,
}

// downsampleBlock keeps the first record per key per interval.
var downsampleBlock = block[Downsample]{
	what: "a downsample",
	keys: []key[Downsample]{
		{name: "key", required: true, hint: `e.g. key: json.machine`, value: func(t *Downsample) value { return &expression{p: &t.Key, any: true} }},
		{name: "every", required: true, hint: "e.g. every: 10s", value: func(t *Downsample) value {
			return &duration{p: &t.Every, min: time.Millisecond, max: 24 * time.Hour}
		}},
		{name: "to", value: func(t *Downsample) value { return &rename{text{p: &t.To}} }},
		{name: "late", value: func(t *Downsample) value { return &rename{text{p: &t.Late}} }},
	},
}

// dedupeBlock drops records whose key was seen within the horizon.
var dedupeBlock = block[Dedupe]{
	what: "a dedupe",
	keys: []key[Dedupe]{
		{name: "key", required: true, hint: `e.g. key: json.id`, value: func(t *Dedupe) value { return &expression{p: &t.Key, any: true} }},
		{name: "horizon", required: true, hint: "e.g. horizon: 10m", value: func(t *Dedupe) value {
			return &duration{p: &t.Horizon, min: time.Millisecond, max: 7 * 24 * time.Hour}
		}},
		{name: "to", value: func(t *Dedupe) value { return &rename{text{p: &t.To}} }},
		{name: "late", value: func(t *Dedupe) value { return &rename{text{p: &t.Late}} }},
	},
}

// aggregateBlock rolls records up into tumbling event-time windows.
var aggregateBlock = block[Aggregate]{
	what: "an aggregate",
	keys: []key[Aggregate]{
		{name: "window", required: true, hint: "e.g. window: 1m", value: func(t *Aggregate) value {
			return &duration{p: &t.Window, min: time.Millisecond, max: 7 * 24 * time.Hour}
		}},
		{name: "grace", value: func(t *Aggregate) value {
			return &duration{p: &t.Grace, min: 0, max: 7 * 24 * time.Hour}
		}},
		{name: "key", required: true, hint: `e.g. key: json.machine`, value: func(t *Aggregate) value { return &expression{p: &t.Key, any: true} }},
		{name: "values", required: true, hint: "e.g. values: {temp: json.temp}", value: func(t *Aggregate) value { return &expressions{p: &t.Values} }},
		{name: "functions", value: func(t *Aggregate) value { return &functions{p: &t.Functions} }},
		{name: "to", value: func(t *Aggregate) value { return &rename{text{p: &t.To}} }},
		{name: "late", value: func(t *Aggregate) value { return &rename{text{p: &t.Late}} }},
	},
}

// projectionBlock is a projection: the JSON paths it keeps or drops.
var projectionBlock = block[Projection]{
	what: "a projection",
	keys: []key[Projection]{
		{name: "keep", excludes: "drop", value: func(p *Projection) value { return &jsonPaths{p: &p.Keep} }},
		{name: "drop", excludes: "keep", value: func(p *Projection) value { return &jsonPaths{p: &p.Drop, drop: true} }},
	},
	check: checkProjection,
}

// membershipBlock tunes how agents sharing a link notice each other.
var membershipBlock = block[Membership]{
	what: "membership",
	keys: []key[Membership]{
		{name: "session_timeout", value: func(m *Membership) value {
			return &duration{p: &m.SessionTimeout, def: DefaultSessionTimeout, min: 6 * time.Second, max: 5 * time.Minute}
		}},
		{name: "heartbeat_interval", value: func(m *Membership) value {
			return &duration{p: &m.HeartbeatInterval, def: DefaultHeartbeatInterval, min: 100 * time.Millisecond, max: time.Minute}
		}},
		{name: "rebalance_timeout", value: func(m *Membership) value {
			return &duration{p: &m.RebalanceTimeout, def: DefaultRebalanceTimeout, min: time.Second, max: 5 * time.Minute}
		}},
	},
}

// topicsBlock is a link's topic selection.
var topicsBlock = block[Topics]{
	what: "topic selection",
	keys: []key[Topics]{
		{name: "include", required: true, hint: `list regular expressions of topics to replicate, e.g. include: ["sensors\\..*"]`, value: func(t *Topics) value {
			return &patterns{p: &t.Include, re: &t.IncludeRE, nonEmpty: true}
		}},
		{name: "exclude", value: func(t *Topics) value { return &patterns{p: &t.Exclude, re: &t.ExcludeRE} }},
	},
}

// priorityBlock is one item of a link's priorities.
var priorityBlock = block[Priority]{
	what: "a priority",
	keys: []key[Priority]{
		{name: "match", required: true, hint: `a regular expression of topics, e.g. match: "alerts.*"`, value: func(p *Priority) value {
			return &pattern{p: &p.Match, re: &p.MatchRE}
		}},
		{name: "priority", required: true, hint: fmt.Sprintf("a weight from 1 to %d; topics no priority matches weigh %d", MaxPriority, DefaultPriority), value: func(p *Priority) value {
			return &integer{p: &p.Weight, def: DefaultPriority, min: 1, max: MaxPriority, note: "higher means a larger share of the link"}
		}},
	},
}

// windowBlock is one item of a link's bandwidth_schedule.
var windowBlock = block[BandwidthWindow]{
	what: "a bandwidth window",
	keys: []key[BandwidthWindow]{
		{name: "days", value: func(w *BandwidthWindow) value { return &days{p: &w.Days} }},
		{name: "from", required: true, hint: `a time of day such as "08:00"`, value: func(w *BandwidthWindow) value {
			return &timeOfDay{p: &w.From}
		}},
		{name: "to", required: true, hint: `a time of day such as "08:00"`, value: func(w *BandwidthWindow) value {
			return &timeOfDay{p: &w.To}
		}, check: checkWindowNotEmpty},
		{name: "rate", required: true, hint: "a rate such as 512kbit/s, or unlimited", value: func(w *BandwidthWindow) value {
			return &rate{p: &w.Rate, unlimited: true}
		}},
	},
	// days comes first in hints ("dates" is taken for "days", not "rate")
	// but is decoded last.
	decode: func(m *mapping[BandwidthWindow]) {
		m.decode("from", "to", "rate")
		m.rest()
	},
}

// tuningBlock is a link's overrides of its profile; zero keeps the
// profile's value.
var tuningBlock = block[Tuning]{
	what: "tuning",
	keys: []key[Tuning]{
		{name: "dial_timeout", value: func(t *Tuning) value {
			return &duration{p: &t.DialTimeout, min: 100 * time.Millisecond, max: 5 * time.Minute}
		}},
		{name: "request_timeout", value: func(t *Tuning) value {
			return &duration{p: &t.RequestTimeout, min: 100 * time.Millisecond, max: 5 * time.Minute}
		}},
		{name: "produce_timeout", value: func(t *Tuning) value {
			return &duration{p: &t.ProduceTimeout, min: 100 * time.Millisecond, max: 5 * time.Minute}
		}},
		{name: "fetch_max_wait", value: func(t *Tuning) value {
			return &duration{p: &t.FetchMaxWait, min: 10 * time.Millisecond, max: 30 * time.Second}
		}},
		{name: "transaction_time", value: func(t *Tuning) value {
			return &duration{p: &t.TransactionTime, min: 10 * time.Millisecond, max: 30 * time.Second}
		}},
		{name: "batch_bytes", value: func(t *Tuning) value {
			return &size{p: &t.BatchBytes, min: 1 << 10, max: 64 << 20, note: "the broker's message.max.bytes must allow it"}
		}},
	},
}

// httpBlock is the http block.
var httpBlock = block[HTTP]{
	what: "the HTTP server",
	keys: []key[HTTP]{
		{name: "listen", value: func(h *HTTP) value {
			return &text{p: &h.Listen, def: DefaultHTTPListen, check: checkListen}
		}},
		{name: "tls", value: func(h *HTTP) value { return &subPtr[HTTPTLS]{p: &h.TLS, b: &httpTLSBlock} }},
		{name: "token", secret: true, excludes: "token_file", hint: `set a long random token, e.g. token: "${EDGELINK_HTTP_TOKEN}", or leave token out to serve without one`, value: func(h *HTTP) value {
			return &text{p: &h.Token, nonEmpty: true}
		}},
		{name: "token_file", excludes: "token", hint: "the path of a file holding the token, or leave token_file out to serve without one", value: func(h *HTTP) value {
			return &text{p: &h.TokenFile, nonEmpty: true}
		}},
		{name: "pprof", value: func(h *HTTP) value { return &flag{p: &h.Pprof} }},
	},
}

// httpTLSBlock is the http.tls block.
var httpTLSBlock = block[HTTPTLS]{
	what: "the HTTP server's TLS",
	keys: []key[HTTPTLS]{
		{name: "cert_file", required: true, hint: "HTTPS needs both cert_file and key_file (PEM)", value: func(t *HTTPTLS) value {
			return &text{p: &t.CertFile}
		}},
		{name: "key_file", required: true, hint: "HTTPS needs both cert_file and key_file (PEM)", value: func(t *HTTPTLS) value {
			return &text{p: &t.KeyFile}
		}},
	},
}

// Rules between keys.

// checkTransformKind reports a transform of no kind.
func checkTransformKind(m *mapping[Transform]) {
	var kinds []string
	for _, k := range []string{"filter", "project", "downsample", "dedupe", "aggregate"} {
		e, ok := m.fields[k]
		if !ok {
			continue
		}
		if isNull(e.val) {
			m.d.fail(e.pos(), e.path, k+" has no settings", "give it its settings, as the README's Transforms section shows, or remove it")
			return
		}
		kinds = append(kinds, k)
	}
	switch {
	case len(kinds) == 0:
		m.d.fail(m.e.pos(), m.e.path, "a transform needs a kind", `use filter: "<CEL>", project: {keep: [paths]} / {drop: [paths]}, downsample, dedupe or aggregate`)
	case len(kinds) > 1 && !slices.Equal(kinds, []string{"filter", "project"}): // that pair is reported by excludes
		m.d.fail(m.e.pos(), m.e.path, "a transform has one kind, this one has "+strings.Join(kinds, " and "), "write each as its own item of the list, in the order they apply")
	}
}

// checkOneStateful reports a link with more than one stateful transform:
// their state is rebuilt from one position of the source.
func checkOneStateful(m *mapping[Link], e entry) {
	n := 0
	for _, t := range m.t.Transforms {
		if t.Stateful() {
			n++
		}
	}
	if n > 1 {
		m.d.fail(e.pos(), e.path, "a link has at most one downsample, dedupe or aggregate", "run the others on a second link reading the first one's output")
	}
}

// checkProjection reports a projection that neither keeps nor drops.
func checkProjection(m *mapping[Projection]) {
	if !m.has("keep") && !m.has("drop") {
		m.d.fail(m.e.pos(), m.e.path, "a projection needs keep or drop", "e.g. project: {keep: [id, reading.temp]}")
	}
}

// checkManaged reports a managed agent that trusts no key: it could never
// accept a revision.
func checkManaged(m *mapping[Fleet]) {
	if m.t.Managed && len(m.t.TrustedKeys) == 0 {
		e, ok := m.fields["managed"]
		if !ok {
			return
		}
		m.d.fail(e.val, e.path, "a managed agent needs trusted_keys", "list the public keys (NAME.pub from edgelink keygen) whose revisions this site accepts")
	}
}

// checkNotSource reports a link whose destination is its source.
func checkNotSource(m *mapping[Link], to entry) {
	if m.good["from"] && m.t.From == m.t.To {
		m.d.fail(to.val, to.path, quote(m.t.To)+" is also the source cluster", "a link must connect two different clusters")
	}
}

// checkWindowNotEmpty reports a bandwidth window that starts when it ends.
func checkWindowNotEmpty(m *mapping[BandwidthWindow], to entry) {
	if m.good["from"] && m.t.From == m.t.To {
		m.d.fail(to.val, to.path, "the window is empty", "from and to must differ; a window with to before from runs past midnight")
	}
}

// checkClientCert reports a client certificate without its key, or a key
// without its certificate.
func checkClientCert(m *mapping[TLS]) {
	const hint = "cert_file and key_file must be given together"
	t := m.t
	switch {
	case t.CertFile != "" && t.KeyFile == "" && !m.has("key_file"):
		m.missing("key_file", hint)
	case t.CertFile != "" && t.KeyFile == "":
		m.d.fail(m.fields["key_file"].pos(), m.fields["key_file"].path, "must not be empty", hint)
	case t.KeyFile != "" && t.CertFile == "" && !m.has("cert_file"):
		m.missing("cert_file", hint)
	case t.KeyFile != "" && t.CertFile == "":
		m.d.fail(m.fields["cert_file"].pos(), m.fields["cert_file"].path, "must not be empty", hint)
	}
}

// The SASL keys each mechanism uses besides mechanism: OAUTHBEARER the
// OAuth 2 client credentials, the others a username and password.
var (
	saslOAuthKeys    = []string{"token_url", "client_id", "client_secret", "client_secret_file", "scope"}
	saslPasswordKeys = []string{"username", "password", "password_file"}
)

// decodeSASL decodes the mechanism and then the keys it uses; keys that
// belong to other mechanisms are reported, not decoded.
func decodeSASL(m *mapping[SASL]) {
	if !m.decode("mechanism") {
		return
	}
	mech := m.t.Mechanism
	unused, hint := saslOAuthKeys, "it is only used with mechanism OAUTHBEARER"
	if mech == MechanismOAuthBearer {
		unused, hint = saslPasswordKeys, "OAUTHBEARER authenticates with token_url, client_id and client_secret"
	}
	for _, name := range unused {
		if e, ok := m.fields[name]; ok {
			m.d.fail(e.key, e.path, "not used with mechanism "+mech, hint)
		}
	}
	if mech == MechanismOAuthBearer {
		m.decode("token_url", "client_id", "client_secret", "client_secret_file")
		// Unlike password and password_file, both secrets are decoded
		// before their conflict is reported.
		m.conflict("client_secret", "client_secret_file")
		m.decode("scope")
		return
	}
	m.decodeHint("username", "mechanism "+mech+" needs a username")
	if !m.has("password") && !m.has("password_file") {
		m.missing("password", "mechanism "+mech+" needs password or password_file")
	}
	m.decode("password", "password_file")
}
