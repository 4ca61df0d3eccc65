package cli_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/cli"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

func TestVerify(t *testing.T) {
	edge := testbed.StartFake(t, kfake.ClusterID("edge-cluster"), kfake.SeedTopics(2, "sensors.temp", "sensors.debug", "alerts", "other"))
	cloud := testbed.StartFake(t, kfake.ClusterID("cloud-cluster"), kfake.SeedTopics(2, "plant-1.sensors.temp", "plant-1.alerts"))
	client := func(addrs []string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		return cl
	}
	src, dst := client(edge.ListenAddrs()), client(cloud.ListenAddrs())
	ctx := t.Context()

	// Selected topics are mirrored by hand; the others are not.
	var records []*kgo.Record
	for i, topic := range []string{"sensors.temp", "alerts", "sensors.temp", "sensors.debug", "other", "alerts"} {
		for p := range int32(2) {
			records = append(records, &kgo.Record{
				Topic: topic, Partition: p, Key: []byte{byte(i)}, Value: []byte("reading"),
				Headers: []kgo.RecordHeader{{Key: "unit", Value: []byte("C")}},
			})
		}
	}
	require.NoError(t, src.ProduceSync(ctx, records...).FirstErr())
	copyOf := func(r *kgo.Record) *kgo.Record {
		return &kgo.Record{
			Topic: "plant-1." + r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
			Headers: append(slices.Clone(r.Headers), provenance.Origin{ClusterID: "edge-cluster", Site: "plant-1", Partition: r.Partition, Offset: r.Offset}.Header()),
		}
	}
	var copies []*kgo.Record
	for _, r := range records {
		if r.Topic == "sensors.temp" || r.Topic == "alerts" {
			copies = append(copies, copyOf(r))
		}
	}
	require.NoError(t, dst.ProduceSync(ctx, copies...).FirstErr())

	cfg := writeFile(t, "edgelink.yaml", linkConfig(edge.ListenAddrs(), cloud.ListenAddrs()))
	run := func(args ...string) result {
		var stdout, stderr bytes.Buffer
		code := cli.Main(ctx, args, &stdout, &stderr)
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}

	r := run("verify", "-c", cfg, "--link", "up")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "link up: edge -> cloud, 2 topics\n  alerts -> plant-1.alerts\n  sensors.temp -> plant-1.sensors.temp\n")
	require.Contains(t, r.stdout, "checked 2 topics, 4 partitions: 8 source records, 8 destination records\n"+
		"lost 0, duplicated 0, reordered 0, corrupted 0, phantom 0, foreign 0\n")
	require.Contains(t, r.stdout, "\nOK\n")
	require.Empty(t, r.stderr)

	// One duplicate.
	require.NoError(t, dst.ProduceSync(ctx, copyOf(records[3])).FirstErr())
	r = run("verify", "-c", cfg, "--link", "up", "--examples", "1")
	require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "lost 0, duplicated 1, reordered 0")
	require.Contains(t, r.stdout, "examples:\n  duplicated alerts[1] offset 0 at plant-1.alerts[1] offset 2: extra copy (first copy at destination offset 0)\n")
	require.Equal(t, "edgelink: link up: destination differs from source: 1 duplicated\n", r.stderr)

	r = run("verify", "-c", cfg, "--link", "up", "--examples", "0")
	require.Equal(t, 1, r.code)
	require.NotContains(t, r.stdout, "examples:")

	// A record nobody mirrored: foreign, unless allowed.
	require.NoError(t, dst.ProduceSync(ctx, &kgo.Record{Topic: "plant-1.sensors.temp", Value: []byte("manual")}).FirstErr())
	r = run("verify", "-c", cfg, "--link", "up", "--allow-foreign")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, ": 1 duplicated\n")
	require.Contains(t, r.stdout, "foreign 1 (allowed)")
	r = run("verify", "-c", cfg, "--link", "up")
	require.Contains(t, r.stderr, ": 1 duplicated, 1 foreign\n")

	unreachable := writeFile(t, "unreachable.yaml", linkConfig([]string{"127.0.0.1:1"}, cloud.ListenAddrs()))
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown link", []string{"verify", "-c", cfg, "--link", "down"}, 2, `no link "down" in ` + cfg + " (links: up)"},
		{"no link", []string{"verify", "-c", cfg}, 2, "--link is required (links in " + cfg + ": up)"},
		{"no config", []string{"verify", "--link", "up"}, 2, "pass -c FILE"},
		{"bad timeout", []string{"verify", "-c", cfg, "--link", "up", "--timeout", "0s"}, 2, "--timeout 0s: want a positive duration"},
		{"bad examples", []string{"verify", "-c", cfg, "--link", "up", "--examples", "-1"}, 2, "--examples -1: want 0 or more"},
		{"stray argument", []string{"verify", "-c", cfg, "up"}, 2, "takes no arguments"},
		{"unreachable source", []string{"verify", "-c", unreachable, "--link", "up", "--timeout", "2s"}, 1, "list topics of cluster edge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(tc.args...)
			require.Equal(t, tc.code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Contains(t, r.stderr, tc.stderr)
		})
	}
}
