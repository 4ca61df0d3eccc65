package link_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// TestRealKafkaLinkOverSASLSSL mirrors edge -> cloud where the cloud takes
// only SASL_SSL with SCRAM-SHA-512 and mutual TLS, through a network with
// latency; the checker compares record by record.
func TestRealKafkaLinkOverSASLSSL(t *testing.T) {
	cs := testbed.StartKafkaClusters(t,
		testbed.Options{Name: "edge"},
		testbed.Options{Name: "cloud", Security: &testbed.Security{Users: map[string]string{"plant-1": "s3cret"}, MutualTLS: true}})
	edge, cloud := cs[0], cs[1]
	ctx := t.Context()
	ecl, err := edge.Client()
	require.NoError(t, err)
	defer ecl.Close()
	resp, err := kadm.NewClient(ecl).CreateTopic(ctx, 3, 1, nil, "sensors.temp")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	var recs []*kgo.Record
	for i := range 600 {
		recs = append(recs, &kgo.Record{Topic: "sensors.temp", Key: fmt.Appendf(nil, "m%d", i%7), Value: fmt.Appendf(nil, "reading-%d", i)})
	}
	require.NoError(t, ecl.ProduceSync(ctx, recs...).FirstErr())

	y := fmt.Sprintf(`site: plant-1
clusters:
  edge: {bootstrap: [%q]}
  cloud:
    bootstrap: [%q]
    tls: {ca_file: %q, cert_file: %q, key_file: %q}
    sasl: {mechanism: SCRAM-SHA-512, username: plant-1, password: "${CLOUD_PASSWORD}"}
links:
  - name: up
    from: edge
    to: cloud
    topics: {include: ['sensors\..*']}
    profile: wan
`, strings.Join(edge.Bootstrap(), ","), strings.Join(cloud.SASLBootstrap(), ","), cloud.TLS.CAFile, cloud.TLS.ClientCertFile, cloud.TLS.ClientKeyFile)
	cfg, err := config.ParseWithEnv("secure.yaml", []byte(y), func(k string) (string, bool) { return "s3cret", k == "CLOUD_PASSWORD" })
	require.NoError(t, err)
	wan := faultnet.New(nil)
	t.Cleanup(func() { _ = wan.Close() })
	wan.SetLatency(10*time.Millisecond, 0)
	opts := fastOpts
	opts.DestinationDialer = wan.Dialer()
	l, stop := runLink(t, cfg, opts)

	tlsCfg, err := cloud.TLS.ClientConfig()
	require.NoError(t, err)
	dcl, err := kgo.NewClient(kgo.SeedBrokers(cloud.SASLBootstrap()...), kgo.DialTLSConfig(tlsCfg),
		kgo.SASL(scram.Auth{User: "plant-1", Pass: "s3cret"}.AsSha512Mechanism()))
	require.NoError(t, err)
	defer dcl.Close()
	testbed.Eventually(t, time.Minute, func() error {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		rep, err := verify.Check(rctx, verify.Options{Source: ecl, Destination: dcl, Topics: []verify.Pair{{Source: "sensors.temp", Destination: "sensors.temp"}}})
		if err != nil {
			return err
		}
		if !rep.OK() || rep.DestinationRecords != 600 {
			return fmt.Errorf("%d of 600 mirrored; %s", rep.DestinationRecords, rep.Discrepancies())
		}
		return nil
	})
	require.Positive(t, wan.Stats().Up, "traffic went through the faulty network")
	require.NoError(t, stop())
	require.Equal(t, link.StateStopped, l.Status().State)
}
