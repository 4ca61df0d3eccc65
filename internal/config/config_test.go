package config_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.bad.yaml.err golden files")

// testEnv is the environment the testdata files are parsed with.
var testEnv = map[string]string{
	"SITE":           "plant-berlin",
	"CLOUD_USER":     "alice",
	"CLOUD_PASSWORD": "s3cret: #not-a-comment ${NOT_EXPANDED}",
	"CLOUD_BROKERS":  "b1.example.com:9093, b2.example.com:9093",
	"OAUTH_SECRET":   "oauth-s3cret",
	"HTTP_TOKEN":     "http-t0ken",
	"EMPTY":          "",
}

func lookup(env map[string]string) config.LookupFunc {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// parseFile parses a testdata file with testEnv, naming it by its base name
// so that messages do not depend on the machine.
func parseFile(t *testing.T, path string) (*config.Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return config.ParseWithEnv(filepath.Base(path), data, lookup(testEnv))
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, err := parseFile(t, path)
			require.NoError(t, err)
			require.NotNil(t, cfg)
			require.Equal(t, filepath.Base(path), cfg.File)
			require.NotEmpty(t, cfg.Clusters)
			require.Len(t, cfg.ClusterOrder, len(cfg.Clusters))
		})
	}
}

func TestMinimal(t *testing.T) {
	cfg, err := parseFile(t, "testdata/minimal.good.yaml")
	require.NoError(t, err)
	require.Equal(t, "", cfg.Site)
	require.Equal(t, []string{"edge"}, cfg.ClusterOrder)
	edge := cfg.Clusters["edge"]
	require.Equal(t, &config.Cluster{
		Name:      "edge",
		Bootstrap: []string{"127.0.0.1:9092"},
		ClientID:  config.DefaultClientID,
	}, edge)
	require.Empty(t, cfg.Links)
	require.Equal(t, "127.0.0.1:9644", cfg.HTTP.Listen)
}

func TestFull(t *testing.T) {
	cfg, err := parseFile(t, "testdata/full.good.yaml")
	require.NoError(t, err)
	require.Equal(t, "plant-berlin", cfg.Site)
	require.Equal(t, []string{"edge", "cloud", "backup", "oauth"}, cfg.ClusterOrder)

	edge := cfg.Clusters["edge"]
	require.Equal(t, []string{"127.0.0.1:9092", "[::1]:9092"}, edge.Bootstrap)
	require.Equal(t, "edge-agent", edge.ClientID)
	require.Nil(t, edge.TLS)
	require.Nil(t, edge.SASL)

	cloud := cfg.Clusters["cloud"]
	require.Equal(t, []string{"b1.example.com:9093", "b2.example.com:9093"}, cloud.Bootstrap)
	require.Equal(t, "edgelink", cloud.ClientID)
	wantTLS := &config.TLS{
		Enabled:    true,
		CAFile:     "/etc/edgelink/ca.pem",
		CertFile:   "/etc/edgelink/client.pem",
		KeyFile:    "/etc/edgelink/client-key.pem",
		ServerName: "kafka.example.com",
	}
	require.Equal(t, wantTLS, cloud.TLS)
	require.Equal(t, &config.SASL{
		Mechanism: config.MechanismSCRAMSHA512,
		Username:  "alice",
		// Expanded after YAML parsing: ": " and " #" stay in the value, and
		// the substituted value is not expanded again.
		Password: "s3cret: #not-a-comment ${NOT_EXPANDED}",
	}, cloud.SASL)

	backup := cfg.Clusters["backup"]
	require.Equal(t, []string{"backup-1.example.com:9093", "backup-2.example.com:9093"}, backup.Bootstrap)
	require.Equal(t, config.DefaultClientID, backup.ClientID, "an empty value means the default")
	require.Equal(t, wantTLS, backup.TLS, "an alias reuses the anchored block")
	require.Equal(t, &config.SASL{
		Mechanism:    config.MechanismPlain,
		Username:     "${NOT_A_VARIABLE}",
		PasswordFile: "/run/secrets/backup-password",
	}, backup.SASL)

	oauth := cfg.Clusters["oauth"]
	require.Equal(t, &config.TLS{Enabled: true}, oauth.TLS, "a tls block enables TLS unless it says otherwise")
	require.Equal(t, &config.SASL{
		Mechanism:    config.MechanismOAuthBearer,
		TokenURL:     "https://login.example.com/oauth2/token",
		ClientID:     "edgelink",
		ClientSecret: "oauth-s3cret",
		Scope:        "kafka",
	}, oauth.SASL)

	require.Len(t, cfg.Links, 3)
	up := cfg.Links[0]
	require.Equal(t, "telemetry-up", up.Name)
	require.Equal(t, "edge", up.From)
	require.Equal(t, "cloud", up.To)
	require.Equal(t, []string{`sensors\..*`, "alerts"}, up.Topics.Include)
	require.Equal(t, []string{`sensors\.debug`}, up.Topics.Exclude)
	require.Equal(t, "{site}.{topic}", up.Rename)
	require.Equal(t, config.StartEarliest, up.Start)
	require.Equal(t, config.DeliveryExactlyOnce, up.Delivery)
	require.Equal(t, "plant-berlin.sensors.temp", up.DestinationTopic(cfg.Site, "sensors.temp"))

	backupLink := cfg.Links[1]
	require.Equal(t, config.StartLatest, backupLink.Start, "enum values are case-insensitive")
	require.Equal(t, config.DeliveryAtLeastOnce, backupLink.Delivery)
	require.Equal(t, "{topic}", backupLink.Rename)

	tokens := cfg.Links[2]
	require.Equal(t, config.DefaultRename, tokens.Rename, "an empty rename means the default")
	require.Equal(t, config.StartEarliest, tokens.Start)
	require.Equal(t, config.DeliveryExactlyOnce, tokens.Delivery)

	require.Equal(t, ":0", cfg.HTTP.Listen)
	require.Equal(t, &config.HTTPTLS{CertFile: "/etc/edgelink/http.pem", KeyFile: "/etc/edgelink/http-key.pem"}, cfg.HTTP.TLS)
	require.Equal(t, "http-t0ken", cfg.HTTP.Token)
}

func TestHTTPTokenFile(t *testing.T) {
	cfg, err := config.ParseWithEnv("t.yaml", []byte(`clusters: {a: {bootstrap: ["h:1"]}}
http: {token_file: /run/secrets/http-token}
`), lookup(nil))
	require.NoError(t, err)
	require.Equal(t, "/run/secrets/http-token", cfg.HTTP.TokenFile)
	require.Empty(t, cfg.HTTP.Token)
	require.Nil(t, cfg.HTTP.TLS)
	require.Equal(t, config.DefaultHTTPListen, cfg.HTTP.Listen)
}

func TestTwoLinks(t *testing.T) {
	cfg, err := parseFile(t, "testdata/two_links.good.yaml")
	require.NoError(t, err)
	require.Len(t, cfg.Links, 2)
	up, down := cfg.Links[0], cfg.Links[1]
	require.Equal(t, [2]string{"edge", "cloud"}, [2]string{up.From, up.To})
	require.Equal(t, [2]string{"cloud", "edge"}, [2]string{down.From, down.To})
	require.Equal(t, "ship-7.telemetry", up.DestinationTopic(cfg.Site, "telemetry"))
	require.Equal(t, "commands.ship-7.reboot", down.DestinationTopic(cfg.Site, "commands.ship-7.reboot"))
	require.Equal(t, "0.0.0.0:9644", cfg.HTTP.Listen)
}

func TestExample(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "edgelink.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	cfg, err := config.ParseWithEnv("edgelink.yaml", data, lookup(map[string]string{
		"CLOUD_USER":     "plant-berlin",
		"CLOUD_PASSWORD": "secret",
	}))
	require.NoError(t, err)
	require.Equal(t, "plant-berlin", cfg.Site)
	require.Equal(t, []string{"edge", "cloud"}, cfg.ClusterOrder)
	require.Equal(t, []string{"127.0.0.1:9092"}, cfg.Clusters["edge"].Bootstrap)
	cloud := cfg.Clusters["cloud"]
	require.NotNil(t, cloud.TLS)
	require.True(t, cloud.TLS.Enabled)
	require.Equal(t, config.MechanismSCRAMSHA512, cloud.SASL.Mechanism)
	require.Equal(t, "plant-berlin", cloud.SASL.Username)
	require.Equal(t, "secret", cloud.SASL.Password)

	require.Len(t, cfg.Links, 2)
	up, down := cfg.Links[0], cfg.Links[1]
	require.Equal(t, "telemetry-up", up.Name)
	require.Equal(t, "edge", up.From)
	require.Equal(t, "cloud", up.To)
	require.True(t, up.Topics.Match("sensors.temperature"))
	require.True(t, up.Topics.Match("alerts"))
	require.False(t, up.Topics.Match("sensors.debug"))
	require.Equal(t, "plant-berlin.sensors.temperature", up.DestinationTopic(cfg.Site, "sensors.temperature"))
	require.Equal(t, "commands-down", down.Name)
	require.Equal(t, "cloud", down.From)
	require.Equal(t, "edge", down.To)
	require.Equal(t, config.StartLatest, down.Start)
	require.Equal(t, "127.0.0.1:9644", cfg.HTTP.Listen)

	// Without the variables, the sample names what is missing.
	_, err = config.ParseWithEnv("edgelink.yaml", data, lookup(nil))
	require.ErrorContains(t, err, "environment variable CLOUD_USER is not set")
	require.ErrorContains(t, err, "environment variable CLOUD_PASSWORD is not set")
}

func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 20)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, err := parseFile(t, path)
			require.Error(t, err)
			require.Nil(t, cfg)
			require.True(t, config.IsInvalid(err))
			var errs config.Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1, "each bad file has exactly one problem:\n%v", err)

			golden := path + ".err"
			got := err.Error() + "\n"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test -update to create the golden file")
			require.Equal(t, string(want), got)
		})
	}
}

func TestGoldensHaveFiles(t *testing.T) {
	goldens, err := filepath.Glob("testdata/*.bad.yaml.err")
	require.NoError(t, err)
	for _, g := range goldens {
		_, err := os.Stat(strings.TrimSuffix(g, ".err"))
		require.NoError(t, err, "golden %s has no input file", g)
	}
}

func TestSeveralProblems(t *testing.T) {
	data := []byte(`site: plant berlin
clusters:
  edge:
    bootstrap: ["127.0.0.1:9092"]
  cloud:
    bootstrp: ["cloud.example.com:9092"]
    sasl:
      mechanism: PLAIN
      password: ${CLOUD_SECRET}
links:
  - name: up
    from: egde
    to: cloud
    topics:
      include: ["sensors\\.("]
    delivery: exactly_once
  - name: up
    from: edge
    to: edge
    topics: {include: [".*"]}
    rename: "{site}"
http:
  listen: "9644"
  port: 9644
`)
	_, err := config.ParseWithEnv("edgelink.yaml", data, lookup(nil))
	require.Error(t, err)
	want := strings.Join([]string{
		`edgelink.yaml:1:7: site: invalid site name "plant berlin" (use 1 to 63 letters, digits, ".", "_" and "-", starting with a letter or digit; the site becomes part of topic names)`,
		`edgelink.yaml:6:5: clusters.cloud.bootstrp: unknown field (did you mean "bootstrap"?)`,
		`edgelink.yaml:8:7: clusters.cloud.sasl.username: missing required field (mechanism PLAIN needs a username)`,
		`edgelink.yaml:9:17: clusters.cloud.sasl.password: environment variable CLOUD_SECRET is not set (export it, or write $${CLOUD_SECRET} for a literal)`,
		`edgelink.yaml:12:11: links[0].from: unknown cluster "egde" (did you mean "edge"?)`,
		`edgelink.yaml:15:17: links[0].topics.include[0]: invalid regular expression "sensors\.(": missing closing ) (check the pattern's syntax; backslashes must be doubled inside double quotes)`,
		`edgelink.yaml:16:15: links[0].delivery: unknown value "exactly_once" (did you mean "exactly-once"?)`,
		`edgelink.yaml:17:11: links[1].name: duplicate link name "up" (first used on line 11; link names must be unique)`,
		`edgelink.yaml:19:9: links[1].to: "edge" is also the source cluster (a link must connect two different clusters)`,
		`edgelink.yaml:21:13: links[1].rename: "{site}" does not contain {topic} (without it every topic is written to the same destination topic; e.g. "{site}.{topic}")`,
		`edgelink.yaml:23:11: http.listen: "9644" is not a host:port address (write ":9644" to listen on all interfaces, or "127.0.0.1:9644")`,
		`edgelink.yaml:24:3: http.port: unknown field (valid keys: listen, pprof, tls, token, token_file)`,
	}, "\n")
	require.Equal(t, want, err.Error())

	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 12)
	var first *config.Error
	require.ErrorAs(t, err, &first)
	require.Equal(t, errs[0], first)
	require.Equal(t, 1, first.Line)
	require.Equal(t, "site", first.Field)
}

func TestLoad(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.yaml")
		_, err := config.Load(path)
		require.ErrorIs(t, err, os.ErrNotExist)
		require.False(t, config.IsInvalid(err))
		require.Equal(t, "read config "+path+": open "+path+": no such file or directory", err.Error())
	})
	t.Run("good file", func(t *testing.T) {
		cfg, err := config.Load("testdata/minimal.good.yaml")
		require.NoError(t, err)
		require.Equal(t, "testdata/minimal.good.yaml", cfg.File)
	})
	t.Run("bad file names the path", func(t *testing.T) {
		_, err := config.Load("testdata/self_link.bad.yaml")
		require.True(t, config.IsInvalid(err))
		require.True(t, strings.HasPrefix(err.Error(), "testdata/self_link.bad.yaml:7:9: "), err.Error())
	})
	t.Run("process environment", func(t *testing.T) {
		t.Setenv("EDGELINK_TEST_BROKER", "127.0.0.1:19092")
		cfg, err := config.Parse("edgelink.yaml", []byte("clusters: {edge: {bootstrap: [\"${EDGELINK_TEST_BROKER}\"]}}\n"))
		require.NoError(t, err)
		require.Equal(t, []string{"127.0.0.1:19092"}, cfg.Clusters["edge"].Bootstrap)
	})
}

func TestIsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"other", errors.New("boom"), false},
		{"errors", config.Errors{{Msg: "x"}}, true},
		{"error", &config.Error{Msg: "x"}, true},
		{"wrapped", errors.Join(errors.New("check"), config.Errors{{Msg: "x"}}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, config.IsInvalid(tc.err))
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "hunter2-Sup3r"
	for _, tc := range []struct {
		name string
		sasl string
	}{
		{"malformed password", `{mechanism: PLAIN, username: u, password: "` + secret + `${"}`},
		{"malformed client secret", `{mechanism: OAUTHBEARER, token_url: "https://idp/token", client_id: c, client_secret: "` + secret + `${X"}`},
		{"password with password_file", `{mechanism: PLAIN, username: u, password: ` + secret + `, password_file: /p}`},
		{"password with OAUTHBEARER", `{mechanism: OAUTHBEARER, token_url: "https://idp/token", client_id: c, password: ` + secret + `}`},
		{"client secret with PLAIN", `{mechanism: PLAIN, username: u, password: p, client_secret: ` + secret + `}`},
		{"both client secrets", `{mechanism: OAUTHBEARER, token_url: "https://idp/token", client_id: c, client_secret_file: /s, client_secret: ` + secret + `}`},
		{"password from env, bad mechanism", `{mechanism: PLAN, username: u, password: "${SECRET}"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := "clusters:\n  cloud:\n    bootstrap: [\"h:1\"]\n    sasl: " + tc.sasl + "\n"
			_, err := config.ParseWithEnv("edgelink.yaml", []byte(data), lookup(map[string]string{"SECRET": secret}))
			require.Error(t, err)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestRedacted(t *testing.T) {
	cfg, err := parseFile(t, "testdata/full.good.yaml")
	require.NoError(t, err)
	red := cfg.Redacted()
	require.Equal(t, "[redacted]", red.Clusters["cloud"].SASL.Password)
	require.Equal(t, "[redacted]", red.Clusters["oauth"].SASL.ClientSecret)
	require.Equal(t, "", red.Clusters["backup"].SASL.Password, "an absent secret stays empty")
	require.Equal(t, "/run/secrets/backup-password", red.Clusters["backup"].SASL.PasswordFile)
	require.Equal(t, "alice", red.Clusters["cloud"].SASL.Username)
	require.Equal(t, "[redacted]", red.HTTP.Token)
	require.Equal(t, "http-t0ken", cfg.HTTP.Token)
	red.HTTP.TLS.CertFile = "changed"
	require.Equal(t, "/etc/edgelink/http.pem", cfg.HTTP.TLS.CertFile)

	// The original is untouched and shares nothing mutable with the copy.
	require.Equal(t, "s3cret: #not-a-comment ${NOT_EXPANDED}", cfg.Clusters["cloud"].SASL.Password)
	require.Equal(t, "oauth-s3cret", cfg.Clusters["oauth"].SASL.ClientSecret)
	red.Clusters["edge"].Bootstrap[0] = "changed:1"
	red.Clusters["cloud"].TLS.CAFile = "changed"
	red.Links[0].Topics.Include[0] = "changed"
	red.Links[0].Name = "changed"
	red.ClusterOrder[0] = "changed"
	require.Equal(t, "127.0.0.1:9092", cfg.Clusters["edge"].Bootstrap[0])
	require.Equal(t, "/etc/edgelink/ca.pem", cfg.Clusters["cloud"].TLS.CAFile)
	require.Equal(t, `sensors\..*`, cfg.Links[0].Topics.Include[0])
	require.Equal(t, "telemetry-up", cfg.Links[0].Name)
	require.Equal(t, "edge", cfg.ClusterOrder[0])

	var nilCfg *config.Config
	require.Nil(t, nilCfg.Redacted())
}

func TestTopicsMatch(t *testing.T) {
	data := []byte(`clusters:
  a: {bootstrap: ["h:1"]}
  b: {bootstrap: ["h:2"]}
links:
  - name: l
    from: a
    to: b
    topics:
      include: ['sensors\..*', alerts, 'x|y']
      exclude: ['sensors\.debug', '.*\.tmp']
`)
	cfg, err := config.ParseWithEnv("edgelink.yaml", data, lookup(nil))
	require.NoError(t, err)
	topics := cfg.Links[0].Topics
	for topic, want := range map[string]bool{
		"sensors.temp":       true,
		"sensors.":           true,
		"sensors.debug":      false,
		"sensors.debug.more": true,
		"sensors.a.tmp":      false,
		"sensorsXtemp":       false,
		"alerts":             true,
		"alerts2":            false,
		"my-alerts":          false,
		"x":                  true,
		"y":                  true,
		"xy":                 false,
		"":                   false,
	} {
		require.Equal(t, want, topics.Match(topic), "topic %q", topic)
	}
	require.False(t, config.Topics{}.Match("anything"), "no include patterns select nothing")
}

func TestDestinationTopic(t *testing.T) {
	for _, tc := range []struct {
		rename, site, topic, want string
	}{
		{"", "s", "t", "t"},
		{"{topic}", "s", "orders", "orders"},
		{"{site}.{topic}", "plant-berlin", "sensors.temp", "plant-berlin.sensors.temp"},
		{"{topic}.from-{site}", "ship", "a", "a.from-ship"},
		{"mirror.{topic}", "", "a", "mirror.a"},
	} {
		t.Run(tc.rename, func(t *testing.T) {
			l := &config.Link{Rename: tc.rename}
			require.Equal(t, tc.want, l.DestinationTopic(tc.site, tc.topic))
		})
	}
}

func TestSiteFromEmptyVariable(t *testing.T) {
	data := []byte(`site: ${SITE}
clusters:
  a: {bootstrap: ["h:1"]}
  b: {bootstrap: ["h:2"]}
links:
  - {name: l, from: a, to: b, topics: {include: [".*"]}, rename: "{site}.{topic}"}
`)
	_, err := config.ParseWithEnv("edgelink.yaml", data, lookup(map[string]string{"SITE": ""}))
	require.EqualError(t, err, `edgelink.yaml:6:66: links[0].rename: {site} is used but the top-level site is not set (set site, e.g. site: plant-berlin, or remove {site})`)

	cfg, err := config.ParseWithEnv("edgelink.yaml", data, lookup(map[string]string{"SITE": "plant-7"}))
	require.NoError(t, err)
	require.Equal(t, "plant-7.t", cfg.Links[0].DestinationTopic(cfg.Site, "t"))
}

func TestLinkTuningDefaultsAndValues(t *testing.T) {
	base := `clusters:
  edge: {bootstrap: ["127.0.0.1:9092"]}
  cloud: {bootstrap: ["127.0.0.1:9093"]}
links:
  - name: up
    from: edge
    to: cloud
    topics: {include: ["alerts"]}
`
	cfg, err := config.Parse("t.yaml", []byte(base))
	require.NoError(t, err)
	l := cfg.Links[0]
	require.Equal(t, config.DefaultCommitInterval, l.CommitInterval)
	require.Equal(t, config.DefaultDiscoveryInterval, l.DiscoveryInterval)
	require.Equal(t, config.OnErrorStop, l.OnError)
	require.Equal(t, config.DefaultCheckpointTopic, l.CheckpointTopic)

	cfg, err = config.Parse("t.yaml", []byte(base+"    commit_interval: 250ms\n    discovery_interval: 2s\n    on_error: skip-and-record\n    checkpoint_topic: site.checkpoints\n"))
	require.NoError(t, err)
	l = cfg.Links[0]
	require.Equal(t, 250*time.Millisecond, l.CommitInterval)
	require.Equal(t, 2*time.Second, l.DiscoveryInterval)
	require.Equal(t, config.OnErrorSkip, l.OnError)
	require.Equal(t, "site.checkpoints", l.CheckpointTopic)
}

func TestPrioritiesScheduleAndTuning(t *testing.T) {
	data := []byte(`clusters:
  edge: {bootstrap: ["127.0.0.1:9092"]}
  cloud: {bootstrap: ["127.0.0.1:9093"]}
links:
  - name: up
    from: edge
    to: cloud
    topics: {include: [".*"]}
    bandwidth: 2Mbit/s
    bandwidth_schedule:
      - {days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00", rate: 512kbit/s}
      - {from: "22:00", to: "06:00", rate: unlimited}
    priorities:
      - {match: "alerts.*", priority: 10}
      - {match: "raw", priority: 2}
    profile: satellite
    tuning:
      dial_timeout: 3s
      request_timeout: 4s
      produce_timeout: 5s
      fetch_max_wait: 250ms
      batch_bytes: 256KiB
      transaction_time: 500ms
`)
	cfg, err := config.Parse("t.yaml", data)
	require.NoError(t, err)
	l := cfg.Links[0]
	require.Equal(t, 10, l.PriorityOf("alerts.fire"))
	require.Equal(t, 2, l.PriorityOf("raw"))
	require.Equal(t, config.DefaultPriority, l.PriorityOf("rawer"))
	require.Equal(t, config.Tuning{
		DialTimeout: 3 * time.Second, RequestTimeout: 4 * time.Second, ProduceTimeout: 5 * time.Second,
		FetchMaxWait: 250 * time.Millisecond, BatchBytes: 256 << 10, TransactionTime: 500 * time.Millisecond,
	}, l.Tuning)

	at := func(day time.Weekday, hh, mm int) time.Time {
		// 2026-11-22 is a Sunday.
		return time.Date(2026, 11, 22+int(day), hh, mm, 0, 0, time.UTC)
	}
	require.Equal(t, int64(64000), l.BandwidthAt(at(time.Monday, 8, 0)))
	require.Equal(t, int64(64000), l.BandwidthAt(at(time.Friday, 17, 59)))
	require.Equal(t, int64(250000), l.BandwidthAt(at(time.Friday, 18, 0)))
	require.Equal(t, int64(250000), l.BandwidthAt(at(time.Saturday, 12, 0)), "the weekday window does not apply on Saturday")
	require.Equal(t, int64(0), l.BandwidthAt(at(time.Saturday, 23, 0)), "past-midnight window, evening")
	require.Equal(t, int64(0), l.BandwidthAt(at(time.Sunday, 5, 59)), "past-midnight window, early hours")
	require.Equal(t, int64(250000), l.BandwidthAt(at(time.Sunday, 6, 0)))
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"65536": 65536, "256KiB": 256 << 10, "1 MiB": 1 << 20, "2MB": 2e6, "1kb": 1000} {
		got, err := config.ParseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "-1", "1.5MiB", "3 parsecs", "99999999999GiB"} {
		_, err := config.ParseSize(in)
		require.Error(t, err, in)
	}
}

func TestGroups(t *testing.T) {
	cfg, err := parseFile(t, "testdata/groups.good.yaml")
	require.NoError(t, err)
	g := cfg.Links[0].Groups
	require.NotNil(t, g)
	require.Equal(t, 5*time.Second, g.Interval)
	for id, want := range map[string]bool{"billing-eu": true, "audit": true, "billing-test-1": false, "audit-2": false, "reports": false} {
		require.Equal(t, want, g.IDs.Match(id), id)
	}
	d := cfg.Links[1].Groups
	require.Equal(t, config.DefaultGroupInterval, d.Interval)
	require.True(t, d.IDs.Match("anything"))
	two, err := parseFile(t, "testdata/two_links.good.yaml")
	require.NoError(t, err)
	require.Nil(t, two.Links[0].Groups, "no groups block: no sync")
}
