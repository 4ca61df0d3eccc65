package cli_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/signing"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// TestCheckConnectFake: without an authorizer every permission is granted.
func TestCheckConnectFake(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(2, "sensors.temp", "alerts"))
	cloud := testbed.StartFake(t)
	cfg := writeFile(t, "edgelink.yaml", linkConfig(edge.ListenAddrs(), cloud.ListenAddrs()))
	r := edgelink(t, nil, "check", "--connect", "-c", cfg)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Regexp(t, `cluster cloud \(127\.0\.0\.1:\d+\): connected as User:ANONYMOUS \(plaintext, no authentication\)`, r.stdout)
	require.Contains(t, r.stdout, "sensors.temp -> plant-1.sensors.temp (to be created)")
	require.Contains(t, r.stdout, "source edge: 7 permissions granted to User:ANONYMOUS")
	require.Contains(t, r.stdout, "every link has the permissions it needs")

	r = edgelink(t, nil, "check", "--connect", "--connect-timeout", "2s", "-c",
		writeFile(t, "down.yaml", linkConfig(edge.ListenAddrs(), []string{"127.0.0.1:1"})))
	require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "cluster cloud (127.0.0.1:1): FAILED: connection refused")
	require.Contains(t, r.stdout, "destination cloud: not checked (unreachable)")
}

// TestCheckPrintRedactsSecrets: check --print shows the whole effective
// configuration, loadable again, with every secret redacted.
func TestCheckPrintRedactsSecrets(t *testing.T) {
	full, err := filepath.Abs("../config/testdata/full.good.yaml")
	require.NoError(t, err)
	env := []string{
		"SITE=plant-berlin", "CLOUD_USER=alice", "CLOUD_PASSWORD=pw-" + scramPassword,
		"CLOUD_BROKERS=b1.example.com:9093", "OAUTH_SECRET=" + oauthSecret, "HTTP_TOKEN=" + httpToken,
	}
	r := edgelink(t, env, "check", "--print", "-c", full)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	for _, secret := range []string{scramPassword, oauthSecret, httpToken} {
		require.NotContains(t, r.stdout+r.stderr, secret)
	}
	_, dump, ok := strings.Cut(r.stdout, "\n\n")
	require.True(t, ok, r.stdout)
	require.Equal(t, 3, strings.Count(dump, "[redacted]"), dump)
	require.Contains(t, dump, "password_file: /run/secrets/backup-password")
	require.Contains(t, dump, "username: $${NOT_A_VARIABLE}")

	want, err := config.ParseWithEnv("x.yaml", mustRead(t, full), func(k string) (string, bool) {
		for _, kv := range env {
			if name, v, _ := strings.Cut(kv, "="); name == k {
				return v, true
			}
		}
		return "", false
	})
	require.NoError(t, err)
	got, err := config.ParseWithEnv("x.yaml", []byte(dump), nil)
	require.NoError(t, err, dump)
	require.Equal(t, want.Redacted(), got.Redacted())
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// Secrets of TestRealKafkaCheck: none may appear in any output.
const (
	scramPassword = "s3cret-Pw"
	oauthSecret   = "oauth-Secr3t"
	wrongPassword = "wr0ng-Pw"
	httpToken     = "http-T0ken"
)

// TestRealKafkaCheck runs against one real Kafka cluster with an authorizer
// (StandardAuthorizer), mutual TLS, SCRAM and OAUTHBEARER (tokens from an
// identity provider started in the test):
//
//   - check --connect names exactly the ACLs each link lacks, as kafka-acls.sh
//     commands; granting exactly those makes check pass and both links (SCRAM
//     and OAUTHBEARER) replicate, checked record by record;
//   - wrong password, unknown CA, expired client and server certificates,
//     host name mismatch, a SASL mechanism the broker does not enable: each
//     has its own message, at check --connect and in a running link's status;
//   - no secret appears in any output, log or status.
func TestRealKafkaCheck(t *testing.T) {
	testbed.RequireKafka(t)
	idp := testbed.StartOAuthServer(t, "edgelink-plant-1", oauthSecret, "plant-1", 10*time.Minute)
	props := map[string]string{
		"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		// The controller, the brokers and the test's own PLAINTEXT clients.
		"super.users": "User:ANONYMOUS",
	}
	for k, v := range idp.BrokerProps() {
		props[k] = v
	}
	c := testbed.StartKafka(t, testbed.Options{
		Name: "secure",
		Security: &testbed.Security{
			Users:      map[string]string{"plant-1": scramPassword},
			Mechanisms: []string{"SCRAM-SHA-512", "PLAIN", "OAUTHBEARER"},
			MutualTLS:  true,
		},
		Props:    props,
		JVMProps: idp.BrokerJVMProps(),
	})
	ctx := t.Context()
	admCl, err := c.Client()
	require.NoError(t, err)
	t.Cleanup(admCl.Close)
	adm := kadm.NewClient(admCl)
	resp, err := adm.CreateTopic(ctx, 3, 1, nil, "sensors.temp")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	var recs []*kgo.Record
	for i := range 300 {
		r := &kgo.Record{Topic: "sensors.temp", Value: fmt.Appendf(nil, "reading-%d", i)}
		if i%3 != 0 {
			r.Key = fmt.Appendf(nil, "m%d", i%7)
		}
		recs = append(recs, r)
	}
	require.NoError(t, admCl.ProduceSync(ctx, recs...).FirstErr())

	// Everything any part of the test printed or logged, checked for secrets
	// at the end.
	var seen safeBuffer
	t.Cleanup(func() {
		out := seen.String()
		for _, s := range []string{scramPassword, oauthSecret, wrongPassword, httpToken} {
			require.NotContains(t, out, s, "a secret appears in the output")
		}
	})
	env := []string{"CLOUD_PASSWORD=" + scramPassword, "OAUTH_SECRET=" + oauthSecret, "WRONG_PASSWORD=" + wrongPassword, "HTTP_TOKEN=" + httpToken}
	expand := func(k string) (string, bool) {
		for _, kv := range env {
			if name, v, _ := strings.Cut(kv, "="); name == k {
				return v, true
			}
		}
		return "", false
	}
	sasl := strings.Join(c.SASLBootstrap(), ",")
	mtls := fmt.Sprintf("ca_file: %q, cert_file: %q, key_file: %q", c.TLS.CAFile, c.TLS.ClientCertFile, c.TLS.ClientKeyFile)

	t.Run("permissions", func(t *testing.T) {
		y := fmt.Sprintf(`site: plant-1
clusters:
  edge: {bootstrap: [%q]}
  cloud:
    bootstrap: [%q]
    tls: {%s}
    sasl: {mechanism: SCRAM-SHA-512, username: plant-1, password: "${CLOUD_PASSWORD}"}
  cloud-oauth:
    bootstrap: [%q]
    tls: {%s}
    sasl: {mechanism: OAUTHBEARER, token_url: %q, client_id: edgelink-plant-1, client_secret: "${OAUTH_SECRET}"}
links:
  - name: up
    from: edge
    to: cloud
    topics: {include: ['sensors\..*']}
    rename: "{site}.{topic}"
    groups: {include: ["app-.*"]}
  - name: up-oauth
    from: edge
    to: cloud-oauth
    topics: {include: ['sensors\.temp']}
    rename: "oauth.{topic}"
    on_error: skip-and-record
http: {token: "${HTTP_TOKEN}"}
fleet: {cluster: cloud, managed: true, trusted_keys: [%q]}
`, strings.Join(c.Bootstrap(), ","), sasl, mtls, sasl, mtls, idp.TokenURL, opsKey(t))
		file := writeFile(t, "edgelink.yaml", y)
		// plant-1 may already describe and write its own topics, no more.
		_, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:plant-1").
			Topics("plant-1.").ResourcePatternType(kadm.ACLPatternPrefixed).
			Operations(kadm.OpDescribe, kadm.OpWrite))
		require.NoError(t, err)

		cloud := c.SASLBootstrap()[0]
		grantAs := func(pattern, op, resource, name string) string {
			return fmt.Sprintf("kafka-acls.sh --bootstrap-server %s --command-config admin.properties --add --allow-principal User:plant-1 --operation %s --%s %s --resource-pattern-type %s", cloud, op, resource, name, pattern)
		}
		grant := func(op, resource, name string) string { return grantAs("literal", op, resource, name) }
		want := []string{
			// cloud, for link up: required, then needed later.
			grant("DescribeConfigs", "topic", "plant-1.sensors.temp"),
			grant("Create", "topic", "plant-1.sensors.temp"),
			grant("Read", "topic", "plant-1.sensors.temp"),
			grant("Describe", "topic", "__edgelink.checkpoints"),
			grant("Create", "topic", "__edgelink.checkpoints"),
			grant("Read", "topic", "__edgelink.checkpoints"),
			grant("Write", "topic", "__edgelink.checkpoints"),
			grantAs("prefixed", "Read", "group", "app-"),
			grantAs("prefixed", "Write", "transactional-id", "edgelink-plant-1:up-"),
			grant("AlterConfigs", "topic", "plant-1.sensors.temp"),
			grant("Alter", "topic", "plant-1.sensors.temp"),
			// cloud, for the fleet: report, follow the configuration channel.
			grant("Describe", "topic", "__edgelink.fleet.reports"),
			grant("Create", "topic", "__edgelink.fleet.reports"),
			grant("Describe", "topic", "__edgelink.fleet.config"),
			grant("Create", "topic", "__edgelink.fleet.config"),
			grant("Describe", "topic", "__edgelink.fleet.state"),
			grant("Create", "topic", "__edgelink.fleet.state"),
			grant("Describe", "topic", "__edgelink.fleet.history"),
			grant("Create", "topic", "__edgelink.fleet.history"),
			grant("Write", "topic", "__edgelink.fleet.reports"),
			grant("Read", "topic", "__edgelink.fleet.config"),
			grant("Read", "topic", "__edgelink.fleet.state"),
			grant("Write", "topic", "__edgelink.fleet.state"),
			grant("Write", "topic", "__edgelink.fleet.history"),
			// cloud-oauth (the same Kafka cluster, another name), for link up-oauth.
			grant("Describe", "topic", "oauth.sensors.temp"),
			grant("DescribeConfigs", "topic", "oauth.sensors.temp"),
			grant("Create", "topic", "oauth.sensors.temp"),
			grant("Write", "topic", "oauth.sensors.temp"),
			grant("Read", "topic", "oauth.sensors.temp"),
			grant("Describe", "topic", "__edgelink.checkpoints"),
			grant("Create", "topic", "__edgelink.checkpoints"),
			grant("Read", "topic", "__edgelink.checkpoints"),
			grant("Write", "topic", "__edgelink.checkpoints"),
			grant("Describe", "topic", "__edgelink.skipped"),
			grant("Create", "topic", "__edgelink.skipped"),
			grant("Write", "topic", "__edgelink.skipped"),
			grantAs("prefixed", "Write", "transactional-id", "edgelink-plant-1:up-oauth-"),
			grant("AlterConfigs", "topic", "oauth.sensors.temp"),
			grant("Alter", "topic", "oauth.sensors.temp"),
		}
		var r result
		testbed.Eventually(t, 10*time.Second, func() error { // ACLs reach the broker through the metadata log
			r = edgelink(t, env, "check", "--connect", "-c", file)
			if got := aclCommands(r.stdout); !slices.Equal(got, want) {
				return fmt.Errorf("exit %d, ACLs printed:\n%s\nstdout:\n%s\nstderr:\n%s", r.code, strings.Join(got, "\n"), r.stdout, r.stderr)
			}
			return nil
		})
		seen.WriteString(r.stdout + r.stderr)
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stdout, "connected as User:plant-1 (SASL SCRAM-SHA-512, TLS with client certificate)")
		require.Contains(t, r.stdout, "connected as User:plant-1 (SASL OAUTHBEARER, TLS with client certificate)")
		require.Contains(t, r.stdout, "source edge: 5 permissions granted to User:ANONYMOUS", "link up: its 3 topic permissions, the group of its agents and the groups it syncs")
		require.Contains(t, r.stdout, "destination cloud: 9 permissions of 13 MISSING for User:plant-1:")
		require.Contains(t, r.stdout, "ALLOW User:plant-1 Write on transactional id edgelink-plant-1:up- (prefixed): to write exactly once, in transactions")
		require.Contains(t, r.stdout, "ALLOW User:plant-1 Create on topic plant-1.sensors.temp (literal): to create the mirror topic")
		require.Contains(t, r.stdout, "destination cloud: 2 permissions needed later, when the source topics change, missing for User:plant-1:")
		require.Contains(t, r.stderr, "permissions missing on destination cluster cloud")
		require.Contains(t, r.stdout, "fleet (cloud):\n  cluster cloud: 13 permissions of 13 MISSING for User:plant-1:")
		require.Contains(t, r.stdout, "ALLOW User:plant-1 Read on topic __edgelink.fleet.config (literal): to read the site's configuration revisions")

		// Granting exactly what check printed is enough.
		for _, cmd := range aclCommands(r.stdout) {
			_, err := adm.CreateACLs(ctx, parseACLCommand(t, cmd))
			require.NoError(t, err)
		}
		testbed.Eventually(t, 10*time.Second, func() error {
			r = edgelink(t, env, "check", "--connect", "-c", file)
			if r.code != 0 {
				return fmt.Errorf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			return nil
		})
		seen.WriteString(r.stdout + r.stderr)
		require.Contains(t, r.stdout, "destination cloud: 13 permissions granted to User:plant-1")
		require.Contains(t, r.stdout, "cluster cloud: 13 permissions granted to User:plant-1")
		require.Contains(t, r.stdout, "every link has the permissions it needs")

		cfg, err := config.ParseWithEnv(file, []byte(y), expand)
		require.NoError(t, err)
		logger := slog.New(slog.NewTextHandler(&seen, &slog.HandlerOptions{Level: slog.LevelDebug}))
		var links []*link.Link
		var wg sync.WaitGroup
		lctx, stop := context.WithCancel(context.Background())
		defer func() { stop(); wg.Wait() }()
		for _, lc := range cfg.Links {
			l := link.New(cfg, lc, link.Options{CommitInterval: 30 * time.Millisecond, DiscoveryInterval: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}, logger)
			links = append(links, l)
			wg.Go(func() { _ = l.Run(lctx) })
		}
		for _, dst := range []string{"plant-1.sensors.temp", "oauth.sensors.temp"} {
			testbed.Eventually(t, time.Minute, func() error {
				vctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				rep, err := verify.Check(vctx, verify.Options{Source: admCl, Destination: admCl, Topics: []verify.Pair{{Source: "sensors.temp", Destination: dst}}})
				if err != nil {
					return err
				}
				if !rep.OK() || rep.DestinationRecords != 300 {
					return fmt.Errorf("%s: %d of 300 mirrored; %s; link status %+v", dst, rep.DestinationRecords, rep.Discrepancies(), links[0].Status())
				}
				return nil
			})
		}
		// check --connect beside running links disturbs nothing: its
		// transactional id probe fences no one.
		r = edgelink(t, env, "check", "--connect", "-c", file)
		seen.WriteString(r.stdout + r.stderr)
		require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
		require.NoError(t, admCl.ProduceSync(ctx, &kgo.Record{Topic: "sensors.temp", Key: []byte("after-check"), Value: []byte("x")}).FirstErr())
		for _, l := range links {
			testbed.Eventually(t, 20*time.Second, func() error {
				s := l.Status()
				if s.Records != 301 || s.State != link.StateLive {
					return fmt.Errorf("link %s: %d records, state %s, last error %q", s.Name, s.Records, s.State, s.LastError)
				}
				return nil
			})
			st, err := json.Marshal(l.Status())
			require.NoError(t, err)
			seen.WriteString(string(st))
		}
	})

	t.Run("failures", func(t *testing.T) {
		dir := t.TempDir()
		otherCA, err := testbed.WriteTLSFiles(filepath.Join(dir, "other"), "127.0.0.1")
		require.NoError(t, err)
		expiredCert, expiredKey, err := c.TLS.IssueCert(testbed.CertSpec{
			Name: "expired-client", Client: true,
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		})
		require.NoError(t, err)
		// The broker's own certificate is valid; an endpoint with an expired
		// one stands in for a broker whose certificate was not renewed.
		expiredServer := expiredTLSEndpoint(t, c.TLS)
		cases := []struct {
			name, cluster string
			// want is in check's output and in a running link's last error;
			// wantRun, when set, replaces it for the link.
			want, wantRun []string
		}{
			{
				"wrong-password", fmt.Sprintf(`{bootstrap: [%q], tls: {%s}, sasl: {mechanism: SCRAM-SHA-512, username: plant-1, password: "${WRONG_PASSWORD}"}}`, sasl, mtls),
				[]string{"SASL authentication failed: the broker rejected the user name or password: check sasl.username and sasl.password"},
				nil,
			},
			{
				"unknown-ca", fmt.Sprintf(`{bootstrap: [%q], tls: {ca_file: %q, cert_file: %q, key_file: %q}, sasl: {mechanism: SCRAM-SHA-512, username: plant-1, password: "${CLOUD_PASSWORD}"}}`,
					sasl, otherCA.CAFile, c.TLS.ClientCertFile, c.TLS.ClientKeyFile),
				[]string{"the broker's certificate is signed by an unknown authority: set tls.ca_file to the PEM file of the CA that signed it (CN=edgelink test CA)"},
				nil,
			},
			{
				"expired-client-cert", fmt.Sprintf(`{bootstrap: [%q], tls: {ca_file: %q, cert_file: %q, key_file: %q}, sasl: {mechanism: SCRAM-SHA-512, username: plant-1, password: "${CLOUD_PASSWORD}"}}`,
					sasl, c.TLS.CAFile, expiredCert, expiredKey),
				[]string{"the client certificate (tls.cert_file) is outside its validity period: renew tls.cert_file and tls.key_file", "expired-client.pem expired at"},
				nil,
			},
			{
				"expired-server-cert", fmt.Sprintf(`{bootstrap: [%q], tls: {%s}, sasl: {mechanism: SCRAM-SHA-512, username: plant-1, password: "${CLOUD_PASSWORD}"}}`, expiredServer, mtls),
				[]string{"the broker's certificate has expired or is not yet valid", "renew the broker's certificate, or check this machine's clock"},
				nil,
			},
			{
				"host-mismatch", fmt.Sprintf(`{bootstrap: [%q], tls: {%s, server_name: broker.example.com}, sasl: {mechanism: SCRAM-SHA-512, username: plant-1, password: "${CLOUD_PASSWORD}"}}`, sasl, mtls),
				[]string{`the broker's certificate does not name host "broker.example.com": it is valid for localhost, 127.0.0.1: use one of these names in bootstrap, or set tls.server_name`},
				nil,
			},
			{
				"mechanism-disabled", fmt.Sprintf(`{bootstrap: [%q], tls: {%s}, sasl: {mechanism: SCRAM-SHA-256, username: plant-1, password: "${CLOUD_PASSWORD}"}}`, sasl, mtls),
				[]string{"SASL mechanism not enabled on the broker: cluster mechanism-disabled uses SCRAM-SHA-256 but its broker enables only SCRAM-SHA-512, PLAIN, OAUTHBEARER"},
				nil,
			},
		}
		var y strings.Builder
		fmt.Fprintf(&y, "site: plant-1\nclusters:\n  edge: {bootstrap: [%q]}\n", strings.Join(c.Bootstrap(), ","))
		for _, tc := range cases {
			fmt.Fprintf(&y, "  %s: %s\n", tc.name, tc.cluster)
		}
		y.WriteString("links:\n")
		for _, tc := range cases {
			fmt.Fprintf(&y, "  - {name: to-%s, from: edge, to: %s, topics: {include: ['sensors\\..*']}, rename: \"%s.{topic}\"}\n", tc.name, tc.name, tc.name)
		}
		file := writeFile(t, "failures.yaml", y.String())

		r := edgelink(t, env, "check", "--connect", "--connect-timeout", "10s", "-c", file)
		seen.WriteString(r.stdout + r.stderr)
		require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
		for _, tc := range cases {
			line := regexp.MustCompile(`(?m)^cluster ` + tc.name + ` \(.*$`).FindString(r.stdout)
			require.NotEmpty(t, line, "no line for cluster %s in:\n%s", tc.name, r.stdout)
			require.Contains(t, line, ": FAILED: ")
			for _, w := range tc.want {
				require.Contains(t, line, w, tc.name)
			}
		}

		// The same failures at run time, in each link's status and logs.
		cfg, err := config.ParseWithEnv(file, []byte(y.String()), expand)
		require.NoError(t, err)
		var logs safeBuffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		lctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer func() { stop(); wg.Wait(); seen.WriteString(logs.String()) }()
		for i, tc := range cases {
			l := link.New(cfg, cfg.Links[i], link.Options{MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}, logger)
			wg.Go(func() { _ = l.Run(lctx) })
			want := tc.want
			if tc.wantRun != nil {
				want = tc.wantRun
			}
			t.Run(tc.name, func(t *testing.T) {
				testbed.Eventually(t, 30*time.Second, func() error {
					s := l.Status()
					for _, w := range want {
						if s.State != link.StateDisconnected || !strings.Contains(s.LastError, w) {
							return fmt.Errorf("state %s, last error %q, want %q", s.State, s.LastError, w)
						}
					}
					return nil
				})
				st, err := json.Marshal(l.Status())
				require.NoError(t, err)
				seen.WriteString(string(st))
				// The text handler escapes quotes.
				require.Contains(t, strings.ReplaceAll(logs.String(), `\"`, `"`), want[0])
			})
		}
	})
}

// aclCommands returns the kafka-acls.sh lines of check's output.
func aclCommands(stdout string) []string {
	var out []string
	for line := range strings.Lines(stdout) {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "kafka-acls.sh ") {
			out = append(out, l)
		}
	}
	return out
}

// parseACLCommand turns a printed kafka-acls.sh command into the ACL it creates.
func parseACLCommand(t *testing.T, cmd string) *kadm.ACLBuilder {
	t.Helper()
	f := strings.Fields(cmd)
	arg := func(name string) string {
		i := slices.Index(f, name)
		require.Positive(t, i, "%s in %s", name, cmd)
		return f[i+1]
	}
	pattern := kadm.ACLPatternLiteral
	if arg("--resource-pattern-type") == "prefixed" {
		pattern = kadm.ACLPatternPrefixed
	}
	b := kadm.NewACLs().Allow(arg("--allow-principal")).ResourcePatternType(pattern)
	var op kmsg.ACLOperation
	for o := kmsg.ACLOperationRead; o <= kmsg.ACLOperationIdempotentWrite; o++ {
		if kafka.OperationName(o) == arg("--operation") {
			op = o
		}
	}
	require.NotZero(t, op, cmd)
	b.Operations(op)
	switch {
	case slices.Contains(f, "--topic"):
		b.Topics(arg("--topic"))
	case slices.Contains(f, "--transactional-id"):
		b.TransactionalIDs(arg("--transactional-id"))
	case slices.Contains(f, "--group"):
		b.Groups(arg("--group"))
	default:
		t.Fatalf("no resource in %s", cmd)
	}
	return b
}

// expiredTLSEndpoint listens on 127.0.0.1 with a certificate from the
// cluster's CA that expired yesterday, and returns its address.
func expiredTLSEndpoint(t *testing.T, files *testbed.TLSFiles) string {
	t.Helper()
	certFile, keyFile, err := files.IssueCert(testbed.CertSpec{
		Name: "expired-server", Hosts: []string{"127.0.0.1", "localhost"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	})
	require.NoError(t, err)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tl := tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := tl.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = conn.Close() }()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_ = conn.(*tls.Conn).Handshake() // the client refuses the certificate
			})
		}
	})
	t.Cleanup(func() { _ = tl.Close(); wg.Wait() })
	return l.Addr().String()
}

// safeBuffer is a bytes.Buffer for concurrent writers.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) WriteString(p string) {
	_, _ = s.Write([]byte(p))
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// opsKey writes an operator's key pair and returns its public key file.
func opsKey(t *testing.T) string {
	t.Helper()
	base := filepath.Join(t.TempDir(), "ops")
	require.NoError(t, signing.WriteKeyPair(base))
	return base + ".pub"
}
