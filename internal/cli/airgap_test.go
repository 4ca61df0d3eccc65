package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/cli"
	"github.com/edgelink/edgelink/internal/diode"
)

// TestAirGapCheckAndUsage: keygen writes a diode key; check loads every key
// an air-gapped link names and says how the link crosses; the bundle and
// diode commands refuse a link that is not set up for them.
func TestAirGapCheckAndUsage(t *testing.T) {
	run := func(args ...string) result {
		var stdout, stderr bytes.Buffer
		code := cli.Main(t.Context(), args, &stdout, &stderr)
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	dir := t.TempDir()
	site, shared := filepath.Join(dir, "rig-7"), filepath.Join(dir, "diode")
	r := run("keygen", "--out", site)
	require.Zero(t, r.code, r.stderr)
	r = run("keygen", "--diode", "--out", shared)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "diode key: "+shared+".key")
	fi, err := os.Stat(shared + ".key")
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, err = diode.LoadKeyFile(shared + ".key")
	require.NoError(t, err)
	r = run("keygen", "--diode", "--out", shared)
	require.Equal(t, 1, r.code, "a key is never replaced")

	cfg := filepath.Join(dir, "edgelink.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, `site: rig-7
clusters:
  edge: {bootstrap: ["127.0.0.1:1"]}
  cloud: {bootstrap: ["127.0.0.1:2"]}
links:
  - name: logs
    from: edge
    to: cloud
    topics: {include: ['logs\..*']}
    bundle: {signing_key: %[1]s.key, trusted_keys: [%[1]s.pub], chunk_size: 1GiB}
  - name: telemetry
    from: edge
    to: cloud
    topics: {include: ['telemetry\..*']}
    diode: {send_to: "10.0.0.2:9999", key_file: %[2]s.key, rate: 10MB/s}
  - name: plain
    from: edge
    to: cloud
    topics: {include: ['x']}
`, site, shared), 0o600))
	r = run("check", "-c", cfg)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "    crosses an air gap in bundles (chunks of at most 1.0 GiB)\n")
	require.Contains(t, r.stdout, "    exports signed by rig-7 (ed25519:")
	require.Contains(t, r.stdout, "    imports bundles signed by ed25519:")
	require.Contains(t, r.stdout, "    crosses an air gap through a data diode to 10.0.0.2:9999 at 9.5 MiB/s, redundancy fec 16+4, repeat 2s 20s\n")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bundle", "export", "-c", cfg, "--link", "plain", "--out", filepath.Join(dir, "b")}, "link plain has no bundle block"},
		{[]string{"bundle", "export", "-c", cfg, "--link", "logs"}, "no bundle directory: pass --out DIR"},
		{[]string{"bundle", "export", "-c", cfg, "--link", "logs", "--out", filepath.Join(dir, "b"), "--max-bytes", "lots"}, "--max-bytes lots"},
		{[]string{"bundle", "import", "-c", cfg, "--link", "logs"}, "needs the bundle directories"},
		{[]string{"bundle", "ack", "-c", cfg, "--link", "logs"}, "takes one receipt file"},
		{[]string{"diode", "receive", "-c", cfg, "--link", "logs", "--listen", "127.0.0.1:0"}, "link logs has no diode block"},
		{[]string{"diode", "receive", "-c", cfg, "--link", "telemetry"}, "pass --listen HOST:PORT"},
	} {
		r := run(tc.args...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stderr)
		require.Contains(t, r.stderr, tc.want, "%v", tc.args)
	}
}
