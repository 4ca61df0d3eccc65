package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

// binary is the edgelink executable built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgelink-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "edgelink")
	out, err := exec.Command("go", "build", "-o", binary, "../../cmd/edgelink").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build edgelink: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// edgelink runs the binary with args and extra environment variables.
func edgelink(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// The process environment, less the variables the tests control.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOUD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run edgelink %v: %v", args, err)
	}
	return r
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestVersion(t *testing.T) {
	r := edgelink(t, nil, "version")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "edgelink ")
	require.Contains(t, r.stdout, "franz-go")
}

func TestCheckExitCodes(t *testing.T) {
	example, err := filepath.Abs("../../examples/edgelink.yaml")
	require.NoError(t, err)
	bad := writeFile(t, "bad.yaml", "clusters:\n  edge:\n    bootstrp: [\"127.0.0.1:9092\"]\n")
	for _, tc := range []struct {
		name   string
		env    []string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"shipped example", []string{"CLOUD_USER=u", "CLOUD_PASSWORD=p"}, []string{"check", "-c", example}, 0, "valid (2 clusters, 2 links)", ""},
		{"empty variables", []string{"CLOUD_USER=", "CLOUD_PASSWORD="}, []string{"check", "-c", example}, 2, "", "sasl.username"},
		{"unset variable", nil, []string{"check", "-c", example}, 2, "", "environment variable CLOUD_USER is not set"},
		{"unknown key", nil, []string{"check", "-c", bad}, 2, "", `bad.yaml:3:5: clusters.edge.bootstrp: unknown field (did you mean "bootstrap"?)`},
		{"missing file", nil, []string{"check", "-c", "/nonexistent/edgelink.yaml"}, 1, "", "read config /nonexistent/edgelink.yaml"},
		{"no -c", nil, []string{"check"}, 2, "", "pass -c FILE"},
		{"stray argument", nil, []string{"check", "edgelink.yaml"}, 2, "", "did you mean -c edgelink.yaml?"},
		{"unknown flag", nil, []string{"check", "--bogus"}, 2, "", "unknown flag: --bogus"},
		{"unknown command", nil, []string{"bogus"}, 2, "", `unknown command "bogus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := edgelink(t, tc.env, tc.args...)
			require.Equal(t, tc.code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			require.Contains(t, r.stdout, tc.stdout)
			require.Contains(t, r.stderr, tc.stderr)
		})
	}
}

// linkConfig is a two-cluster configuration with one link edge -> cloud.
func linkConfig(edge, cloud []string) string {
	return fmt.Sprintf(`site: plant-1
clusters:
  edge:
    bootstrap: [%q]
  cloud:
    bootstrap: [%q]
links:
  - name: up
    from: edge
    to: cloud
    topics:
      include: ["sensors\\..*", "alerts"]
      exclude: ["sensors\\.debug"]
    rename: "{site}.{topic}"
http:
  listen: "127.0.0.1:0"
`, strings.Join(edge, ","), strings.Join(cloud, ","))
}

func TestRunSurveysFakeClusters(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.temp", "sensors.debug", "alerts", "other"))
	cloud := testbed.StartFake(t, kfake.SeedTopics(3, "plant-1.alerts"))
	cfg := writeFile(t, "edgelink.yaml", linkConfig(edge.ListenAddrs(), cloud.ListenAddrs()))
	r := edgelink(t, nil, "run", "--dry-run", "-c", cfg)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "link up: edge -> cloud selects 2 topics")
	require.Contains(t, r.stdout, "alerts (3 partitions) -> plant-1.alerts: exists at destination with 3 partitions")
	require.Contains(t, r.stdout, "sensors.temp (3 partitions) -> plant-1.sensors.temp: missing at destination")
	require.NotContains(t, r.stdout, "sensors.debug (")
	require.Contains(t, r.stdout, "dry run: no records were replicated")
}

func TestRunUnreachableCluster(t *testing.T) {
	edge := testbed.StartFake(t)
	cfg := writeFile(t, "edgelink.yaml", linkConfig(edge.ListenAddrs(), []string{"127.0.0.1:1"}))
	r := edgelink(t, nil, "run", "--dry-run", "-c", cfg, "--connect-timeout", "2s")
	require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "cluster cloud (127.0.0.1:1): UNREACHABLE")
	require.Contains(t, r.stderr, "cluster cloud:")
}

func TestRealKafkaRunSurvey(t *testing.T) {
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "edge"}, testbed.Options{Name: "cloud"})
	edge, cloud := cs[0], cs[1]
	ctx := t.Context()
	for _, c := range []struct {
		cluster *testbed.Cluster
		topics  []string
	}{{edge, []string{"sensors.temp", "sensors.debug", "alerts"}}, {cloud, []string{"plant-1.alerts"}}} {
		cl, err := c.cluster.Client()
		require.NoError(t, err)
		resp, err := kadm.NewClient(cl).CreateTopics(ctx, 6, 1, nil, c.topics...)
		require.NoError(t, err)
		require.NoError(t, resp.Error())
		cl.Close()
	}
	cfg := writeFile(t, "edgelink.yaml", linkConfig(edge.Bootstrap(), cloud.Bootstrap()))
	r := edgelink(t, nil, "run", "--dry-run", "-c", cfg)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "link up: edge -> cloud selects 2 topics")
	require.Contains(t, r.stdout, "alerts (6 partitions) -> plant-1.alerts: exists at destination with 6 partitions")
	require.Contains(t, r.stdout, "sensors.temp (6 partitions) -> plant-1.sensors.temp: missing at destination")
	require.Regexp(t, `cluster edge \(127\.0\.0\.1:\d+\): id \S+, 1 broker, controller 1, 3 topics`, r.stdout)
}

// TestRunTranslateVerifyAndStopFake runs the agent as a process against two
// kfake clusters, translates an offset, verifies the mirror and stops the
// agent with SIGTERM.
func TestRunTranslateVerifyAndStopFake(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	cloud := testbed.StartFake(t)
	cfg := writeFile(t, "edgelink.yaml", linkConfig(edge.ListenAddrs(), cloud.ListenAddrs()))
	prod, err := kgo.NewClient(kgo.SeedBrokers(edge.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer prod.Close()
	for i := range 20 {
		require.NoError(t, prod.ProduceSync(t.Context(), &kgo.Record{Topic: "alerts", Partition: 1, Value: []byte(fmt.Sprint(i))}).FirstErr())
	}

	cmd := exec.Command(binary, "run", "-c", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	testbed.Eventually(t, 20*time.Second, func() error {
		r := edgelink(t, nil, "verify", "-c", cfg, "--link", "up")
		if r.code != 0 {
			return fmt.Errorf("verify exit %d: %s", r.code, r.stdout)
		}
		return nil
	})

	r := edgelink(t, nil, "offsets", "translate", "-c", cfg, "--link", "up", "--topic", "alerts", "--partition", "1", "--offset", "7", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var tr struct {
		Destination string `json:"destination_topic"`
		Offset      int64  `json:"destination_offset"`
		Exact       bool   `json:"exact"`
		Pending     bool   `json:"pending"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &tr), r.stdout)
	require.Equal(t, "plant-1.alerts", tr.Destination)
	require.True(t, tr.Exact)
	require.False(t, tr.Pending)
	// The mirror record at that offset is source record 7.
	cons, err := kgo.NewClient(kgo.SeedBrokers(cloud.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"plant-1.alerts": {1: kgo.NewOffset().At(tr.Offset)}}))
	require.NoError(t, err)
	defer cons.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	recs := cons.PollFetches(ctx).Records()
	require.NotEmpty(t, recs)
	require.Equal(t, "7", string(recs[0].Value))

	r = edgelink(t, nil, "offsets", "translate", "-c", cfg, "--link", "up", "--topic", "alerts", "--partition", "1", "--offset", "20")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "not replicated yet")

	began := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "exit status after SIGTERM; stderr:\n%s", stderr.String())
	require.Less(t, time.Since(began), 10*time.Second)
	require.Contains(t, stderr.String(), "edgelink stopped")

	// Failing over: records the source took since are left behind.
	for i := range 3 {
		require.NoError(t, prod.ProduceSync(t.Context(), &kgo.Record{Topic: "alerts", Partition: 1, Value: []byte(fmt.Sprint("late-", i))}).FirstErr())
	}
	r = edgelink(t, nil, "failover", "-c", cfg, "--link", "up", "--dry-run")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "link up checked (dry run: nothing fenced)")
	require.Contains(t, r.stdout, "source answered: 3 records left behind")
	require.Regexp(t, `alerts\s+1\s+20\s+23\s+3\s`, r.stdout)
	t.Logf("edgelink failover --dry-run:\n%s", r.stdout)
	r = edgelink(t, nil, "failover", "-c", cfg, "--link", "up", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var rep struct {
		Fenced     bool  `json:"fenced"`
		LeftBehind int64 `json:"left_behind"`
		Partitions []struct {
			Partition  int32 `json:"partition"`
			Replicated int64 `json:"replicated"`
			LeftBehind int64 `json:"left_behind"`
		} `json:"partitions"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	require.True(t, rep.Fenced)
	require.Equal(t, int64(3), rep.LeftBehind)

	// Failing back: the 3 records go to quarantine at the source; the
	// cloud wrote nothing. Once done, there is nothing to fail back.
	r = edgelink(t, nil, "failback", "-c", cfg, "--link", "up")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "3 records left behind at the source quarantined; 0 records written at the destination copied back")
	require.Regexp(t, `alerts\s+1\s+20\s+23\s+3\s`, r.stdout)
	require.Contains(t, r.stdout, "__edgelink.quarantine.up.alerts")
	t.Logf("edgelink failback:\n%s", r.stdout)
	r = edgelink(t, nil, "failback", "-c", cfg, "--link", "up")
	require.Equal(t, 1, r.code, r.stdout)
	require.Contains(t, r.stderr, "has not failed over")
}
