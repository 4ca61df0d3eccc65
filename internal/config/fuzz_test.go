package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v4"

	"github.com/edgelink/edgelink/internal/config"
)

// FuzzParse checks that Parse never panics, that every error it reports has
// a position and a message, and that a configuration it accepts is valid and
// survives being written out and parsed again unchanged.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*")
	require.NoError(f, err)
	seeds = append(seeds, filepath.Join("..", "..", "examples", "edgelink.yaml"))
	for _, path := range seeds {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			continue
		}
		data, err := os.ReadFile(path)
		require.NoError(f, err)
		f.Add(data)
	}
	// Aliases that refer to themselves or fan out, and patterns at the
	// limits of the regular expression parser.
	for _, s := range []string{
		"clusters: &c {edge: {bootstrap: *c}}\n",
		"clusters: {edge: &e {bootstrap: [\"h:1\"], tls: *e}}\n",
		"links: &l [*l]\nclusters: {a: {bootstrap: [\"h:1\"]}}\n",
		"a: &a [x,x,x,x]\nb: &b [*a,*a,*a,*a]\nclusters: {a: {bootstrap: *b}}\n",
		"clusters: {a: {bootstrap: [h:1]}, b: {bootstrap: [h:2]}}\nlinks: [{name: x, from: a, to: b, topics: {include: [\"" + strings.Repeat("(", 1000) + strings.Repeat(")", 1000) + "\"]}}]\n",
		"clusters: {a: {bootstrap: [h:1]}, b: {bootstrap: [h:2]}}\nlinks: [{name: x, from: a, to: b, topics: {include: [\"a{1000}\"]}}]\n",
		"site: ${SITE}\nclusters: {a: {bootstrap: [\"${CLOUD_BROKERS}\"], sasl: {mechanism: plain, username: $${U}, password: $$${CLOUD_PASSWORD}}}}\n",
		"clusters: {a: {bootstrap: [h:1]}}\n---\n",
		"\ufeffclusters: {a: {bootstrap: [h:1]}}\n",
		// Every link setting, so that rendering covers them all.
		"clusters: {a: {bootstrap: [h:1]}, b: {bootstrap: [h:2]}}\nlinks: [{name: x, from: a, to: b, topics: {include: [t]}, on_error: skip-and-record, checkpoint_topic: cp, commit_interval: 250ms, discovery_interval: 1m, profile: wan, compression: gzip, bandwidth: 2Mbit/s, bandwidth_schedule: [{days: [mon, fri], from: \"22:00\", to: \"06:00\", rate: 512kbit/s}, {from: \"08:00\", to: \"09:30\", rate: unlimited}], priorities: [{match: alerts, priority: 10}], tuning: {dial_timeout: 3s, request_timeout: 4s, produce_timeout: 5s, fetch_max_wait: 60ms, batch_bytes: 256KiB, transaction_time: 2s}}]\nhttp: {pprof: true}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.ParseWithEnv("fuzz.yaml", data, lookup(testEnv))
		if err != nil {
			checkErrors(t, err)
			return
		}
		checkValid(t, cfg)
		again, err := config.ParseWithEnv("fuzz.yaml", render(t, cfg), lookup(nil))
		require.NoError(t, err, "the rendered configuration is invalid:\n%s", render(t, cfg))
		require.Equal(t, cfg, again)
	})
}

func checkErrors(t *testing.T, err error) {
	t.Helper()
	require.True(t, config.IsInvalid(err), "not a config error: %v", err)
	var errs config.Errors
	require.True(t, errors.As(err, &errs))
	require.NotEmpty(t, errs)
	for i, e := range errs {
		require.Equal(t, "fuzz.yaml", e.File)
		require.NotEmpty(t, e.Msg, "error without a message: %#v", e)
		require.GreaterOrEqual(t, e.Line, 0)
		require.GreaterOrEqual(t, e.Column, 0)
		if e.Line == 0 {
			require.Zero(t, e.Column)
			require.Empty(t, e.Field, "a field error without a position: %v", e)
		}
		if i > 0 {
			prev := errs[i-1]
			require.True(t, prev.Line < e.Line || prev.Line == e.Line && prev.Column <= e.Column, "errors out of order:\n%v", err)
		}
	}
}

// checkValid checks the invariants every accepted configuration keeps.
func checkValid(t *testing.T, cfg *config.Config) {
	t.Helper()
	require.NotEmpty(t, cfg.Clusters)
	require.Len(t, cfg.ClusterOrder, len(cfg.Clusters))
	for _, name := range cfg.ClusterOrder {
		c := cfg.Clusters[name]
		require.NotNil(t, c, name)
		require.Equal(t, name, c.Name)
		require.NotEmpty(t, c.Bootstrap)
		require.NotEmpty(t, c.ClientID)
		if c.SASL != nil {
			require.Contains(t, config.Mechanisms, c.SASL.Mechanism)
		}
	}
	names := map[string]bool{}
	for _, l := range cfg.Links {
		require.False(t, names[l.Name], "duplicate link %q", l.Name)
		names[l.Name] = true
		require.Contains(t, cfg.Clusters, l.From)
		require.Contains(t, cfg.Clusters, l.To)
		require.NotEqual(t, l.From, l.To)
		require.NotEmpty(t, l.Topics.Include)
		require.Len(t, l.Topics.IncludeRE, len(l.Topics.Include))
		require.Len(t, l.Topics.ExcludeRE, len(l.Topics.Exclude))
		require.Contains(t, l.Rename, "{topic}")
		require.Contains(t, []config.StartPosition{config.StartEarliest, config.StartLatest}, l.Start)
		require.Contains(t, []config.Delivery{config.DeliveryExactlyOnce, config.DeliveryAtLeastOnce}, l.Delivery)
	}
	require.NotEmpty(t, cfg.HTTP.Listen)
}

// render writes cfg back out as YAML, with every value spelled out.
func render(t *testing.T, cfg *config.Config) []byte {
	t.Helper()
	clusters := mapping()
	for _, name := range cfg.ClusterOrder {
		c := cfg.Clusters[name]
		cl := mapping(
			"bootstrap", strs(c.Bootstrap),
			"client_id", str(c.ClientID),
		)
		if c.TLS != nil {
			cl.Content = append(cl.Content, str("tls"), mapping(
				"enabled", boolean(c.TLS.Enabled),
				"ca_file", str(c.TLS.CAFile),
				"cert_file", str(c.TLS.CertFile),
				"key_file", str(c.TLS.KeyFile),
				"server_name", str(c.TLS.ServerName),
				"insecure_skip_verify", boolean(c.TLS.InsecureSkipVerify),
			))
		}
		if s := c.SASL; s != nil {
			cl.Content = append(cl.Content, str("sasl"), mapping(
				"mechanism", str(s.Mechanism),
				"username", str(s.Username),
				"password", str(s.Password),
				"password_file", str(s.PasswordFile),
				"token_url", str(s.TokenURL),
				"client_id", str(s.ClientID),
				"client_secret", str(s.ClientSecret),
				"client_secret_file", str(s.ClientSecretFile),
				"scope", str(s.Scope),
			))
		}
		clusters.Content = append(clusters.Content, str(name), cl)
	}
	links := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, l := range cfg.Links {
		prios := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, p := range l.Priorities {
			prios.Content = append(prios.Content, mapping("match", str(p.Match), "priority", str(strconv.Itoa(p.Weight))))
		}
		windows := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, w := range l.BandwidthSchedule {
			days := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for _, d := range w.Days {
				days.Content = append(days.Content, str(strings.ToLower(d.String()[:3])))
			}
			rate := "unlimited"
			if w.Rate > 0 {
				rate = strconv.FormatInt(w.Rate, 10) + "B/s"
			}
			windows.Content = append(windows.Content, mapping(
				"days", days,
				"from", str(fmt.Sprintf("%02d:%02d", w.From/60, w.From%60)),
				"to", str(fmt.Sprintf("%02d:%02d", w.To/60, w.To%60)),
				"rate", str(rate),
			))
		}
		bandwidth := ""
		if l.Bandwidth > 0 {
			bandwidth = strconv.FormatInt(l.Bandwidth, 10) + "B/s"
		}
		batch := ""
		if l.Tuning.BatchBytes > 0 {
			batch = strconv.Itoa(l.Tuning.BatchBytes)
		}
		links.Content = append(links.Content, mapping(
			"name", str(l.Name),
			"from", str(l.From),
			"to", str(l.To),
			"topics", mapping("include", strs(l.Topics.Include), "exclude", strs(l.Topics.Exclude)),
			"rename", str(l.Rename),
			"start", str(string(l.Start)),
			"delivery", str(string(l.Delivery)),
			"on_error", str(string(l.OnError)),
			"checkpoint_topic", str(l.CheckpointTopic),
			"commit_interval", str(l.CommitInterval.String()),
			"discovery_interval", str(l.DiscoveryInterval.String()),
			"profile", str(string(l.Profile)),
			"compression", str(l.Compression),
			"priorities", prios,
			"bandwidth", str(bandwidth),
			"bandwidth_schedule", windows,
			"tuning", mapping(
				"dial_timeout", dur(l.Tuning.DialTimeout),
				"request_timeout", dur(l.Tuning.RequestTimeout),
				"produce_timeout", dur(l.Tuning.ProduceTimeout),
				"fetch_max_wait", dur(l.Tuning.FetchMaxWait),
				"transaction_time", dur(l.Tuning.TransactionTime),
				"batch_bytes", str(batch),
			),
		))
	}
	httpBlock := mapping(
		"listen", str(cfg.HTTP.Listen),
		"token", str(cfg.HTTP.Token),
		"token_file", str(cfg.HTTP.TokenFile),
		"pprof", boolean(cfg.HTTP.Pprof),
	)
	if cfg.HTTP.TLS != nil {
		httpBlock.Content = append(httpBlock.Content, str("tls"), mapping(
			"cert_file", str(cfg.HTTP.TLS.CertFile),
			"key_file", str(cfg.HTTP.TLS.KeyFile),
		))
	}
	root := mapping(
		"site", str(cfg.Site),
		"clusters", clusters,
		"links", links,
		"http", httpBlock,
	)
	out, err := yaml.Dump(root)
	require.NoError(t, err)
	return out
}

// mapping builds a mapping node from key, value pairs, leaving out empty
// strings (which mean "absent").
func mapping(kv ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1].(*yaml.Node)
		if v.Kind == yaml.ScalarNode && v.Tag == "!!str" && v.Value == "" {
			continue
		}
		m.Content = append(m.Content, str(kv[i].(string)), v)
	}
	return m
}

// str builds a string node, escaping "${" so it is not expanded.
func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.ReplaceAll(s, "${", "$${")}
}

// dur renders a duration, or nothing for zero (the default).
func dur(d time.Duration) *yaml.Node {
	if d == 0 {
		return str("")
	}
	return str(d.String())
}

func strs(list []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range slices.Clone(list) {
		n.Content = append(n.Content, str(s))
	}
	return n
}

func boolean(b bool) *yaml.Node {
	v := "false"
	if b {
		v = "true"
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v}
}
