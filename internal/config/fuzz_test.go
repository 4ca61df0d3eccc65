package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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
	out, err := cfg.YAML()
	require.NoError(t, err)
	return out
}
