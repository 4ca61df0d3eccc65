package cli_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestFleetCommands: fleet apply publishes numbered, signed revisions and
// refuses what would not validate; fleet status prints the fleet worst
// first, filters it, and prints JSON.
func TestFleetCommands(t *testing.T) {
	cloud := testbed.StartFake(t).ListenAddrs()[0]
	dir := t.TempDir()
	cfg := writeFile(t, "cloud.yaml", fmt.Sprintf("clusters:\n  cloud: {bootstrap: [%q]}\nfleet: {cluster: cloud}\n", cloud))
	require.Equal(t, 0, edgelink(t, nil, "keygen", "--out", filepath.Join(dir, "ops")).code)
	key := filepath.Join(dir, "ops.key")

	// Three simulated sites report; one lags.
	cl, err := kgo.NewClient(kgo.SeedBrokers(cloud))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, fleet.CreateTopics(t.Context(), []kgo.Opt{kgo.SeedBrokers(cloud)}, fleet.TopicsOf("")))
	now := time.Now()
	for _, s := range fleet.SimFleet("plant", 10, "v2", "v1", 1) {
		v, err := json.Marshal(s.Report(now, 10*time.Second))
		require.NoError(t, err)
		require.NoError(t, cl.ProduceSync(t.Context(), &kgo.Record{Topic: fleet.TopicsOf("").Reports, Key: []byte(s.Key()), Value: v}).FirstErr())
	}

	doc := writeFile(t, "agent.yaml", "clusters:\n  edge: {bootstrap: [\"${EDGE}\"]}\n  cloud: {bootstrap: [\"127.0.0.1:9093\"]}\nlinks:\n  - {name: up, from: edge, to: cloud, topics: {include: [\"s.*\"]}}\n")
	r := edgelink(t, nil, "fleet", "apply", "-c", cfg, "--site", "plant-0001", "--key", key, "-f", doc, "-m", "first")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "published revision 1 for site plant-0001, signed by ops (ed25519:")
	r = edgelink(t, nil, "fleet", "apply", "-c", cfg, "--selector", "region=eu-west", "--key", key, "-f", doc)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "published revision 2 for sites with region=eu-west")

	bad := writeFile(t, "bad.yaml", "fleet: {cluster: cloud}\nclusters:\n  cloud: {bootstrap: [\"127.0.0.1\"]}\n")
	r = edgelink(t, nil, "fleet", "apply", "-c", cfg, "--site", "plant-0001", "--key", key, "-f", bad)
	require.Equal(t, 2, r.code, r.stdout)
	require.Contains(t, r.stderr, "bad.yaml:1:1: fleet: cannot be set by a fleet revision")
	require.Contains(t, r.stderr, "has no port")
	for _, args := range [][]string{
		{"--key", key, "-f", doc},
		{"--site", "a", "--selector", "b=c", "--key", key, "-f", doc},
		{"--site", "a", "-f", doc},
		{"--site", "a", "--key", key},
	} {
		r = edgelink(t, nil, append([]string{"fleet", "apply", "-c", cfg}, args...)...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}

	r = edgelink(t, nil, "fleet", "status", "-c", cfg)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "10 sites, 10 agents: 1 catching-up, 9 live; 0 silent")
	lines := strings.Split(r.stdout, "\n")
	require.True(t, strings.HasPrefix(lines[2], "SITE"), r.stdout)
	require.True(t, strings.HasPrefix(lines[3], "plant-0010"), "the lagging site comes first:\n%s", r.stdout)
	require.Contains(t, r.stdout, "1/1", "plant-0001 has revision 1 desired")

	r = edgelink(t, nil, "fleet", "status", "-c", cfg, "--site", "plant-000[12]", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var f fleet.Fleet
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &f))
	require.Len(t, f.Sites, 2)
	require.Equal(t, int64(1), f.Sites[0].Config.DesiredRevision)
	require.Equal(t, int64(2), f.Sites[1].Config.DesiredRevision, "plant-0002 is in eu-west")

	r = edgelink(t, nil, "fleet", "status", "-c", cfg, "--state", "catching-up")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "plant-0010")
	require.NotContains(t, r.stdout, "plant-0001 ")

	r = edgelink(t, nil, "fleet", "status", "-c", writeFile(t, "nofleet.yaml", "clusters:\n  cloud: {bootstrap: [\"127.0.0.1:1\"]}\n"))
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "has no fleet block")
}

// TestCheckFleet: check describes the fleet block and loads a managed
// agent's trusted keys.
func TestCheckFleet(t *testing.T) {
	dir := t.TempDir()
	require.Equal(t, 0, edgelink(t, nil, "keygen", "--out", filepath.Join(dir, "ops")).code)
	conf := func(keys string) string {
		return writeFile(t, "site.yaml", fmt.Sprintf("site: plant-a\nclusters:\n  cloud: {bootstrap: [\"127.0.0.1:9093\"]}\nfleet: {cluster: cloud, managed: true, trusted_keys: [%s]}\n", keys))
	}
	r := edgelink(t, nil, "check", "-c", conf(filepath.Join(dir, "ops.pub")))
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `fleet: reports to cloud every 10s; managed, trusting 1 key \(ed25519:[0-9a-f]{16}\), reverting after 5m0s`, r.stdout)
	r = edgelink(t, nil, "check", "-c", conf(filepath.Join(dir, "missing.pub")))
	require.Equal(t, 1, r.code, r.stdout)
	require.Contains(t, r.stderr, "fleet.trusted_keys")
	r = edgelink(t, nil, "check", "-c", conf(filepath.Join(dir, "ops.key")))
	require.Equal(t, 1, r.code, r.stdout)
}

// TestCheckTransforms: check lists a link's transforms, and reports a bad
// expression at its position with exit status 2.
func TestCheckTransforms(t *testing.T) {
	conf := func(filter string) string {
		return writeFile(t, "t.yaml", fmt.Sprintf(`clusters:
  edge: {bootstrap: ["127.0.0.1:9092"]}
  cloud: {bootstrap: ["127.0.0.1:9093"]}
links:
  - name: up
    from: edge
    to: cloud
    topics: {include: [s]}
    transforms:
      - filter: %s
      - project: {keep: [id, reading.temp]}
      - aggregate: {window: 1m, grace: 5s, key: json.id, values: {temp: json.reading.temp}, functions: [max, mean], to: "{topic}.1m"}
`, filter))
	}
	r := edgelink(t, nil, "check", "-c", conf(`json.temp > 80.0`))
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "    filter json.temp > 80.0\n    project: keep id, reading.temp\n"+
		"    aggregate: 1m0s windows (grace 5s) per key json.id, max, mean of temp = json.reading.temp, output to {topic}.1m\n"+
		"    state at most 64 MiB (max_state)\n")
	r = edgelink(t, nil, "check", "-c", conf(`json.temp > "hot" &&`))
	require.Equal(t, 2, r.code, r.stdout)
	require.Regexp(t, `t\.yaml:10:\d+: links\[0\]\.transforms\[0\]\.filter: invalid CEL expression: Syntax error`, r.stderr)
}
