package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/cli"
	"github.com/edgelink/edgelink/internal/signing"
)

func TestKeygen(t *testing.T) {
	run := func(args ...string) result {
		var stdout, stderr bytes.Buffer
		code := cli.Main(t.Context(), args, &stdout, &stderr)
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	base := filepath.Join(t.TempDir(), "ops-anna")

	r := run("keygen", "--out", base)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Empty(t, r.stderr)
	if runtime.GOOS != "windows" {
		for path, mode := range map[string]os.FileMode{base + ".key": 0o600, base + ".pub": 0o644} {
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, mode, fi.Mode().Perm(), path)
		}
	}
	pub, err := signing.LoadPublic(base + ".pub")
	require.NoError(t, err)
	s, err := signing.LoadPrivate(base + ".key")
	require.NoError(t, err)
	require.Equal(t, pub, s.Public())
	require.Equal(t, "private key: "+base+".key\n"+
		"public key:  "+base+".pub\n"+
		"key id:      "+signing.Fingerprint(pub)+"\n"+
		"Copy "+base+".pub to the agents and list it in their fleet.trusted_keys; keep "+base+".key off the sites.\n",
		r.stdout)
	require.Regexp(t, regexp.MustCompile(`key id: +ed25519:[0-9a-f]{16}\n`), r.stdout)
	key, pubPEM := readKeyFile(t, base+".key"), readKeyFile(t, base+".pub")

	// A second run refuses to overwrite the pair and leaves it alone.
	r = run("keygen", "--out", base)
	require.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Empty(t, r.stdout)
	require.Equal(t, "edgelink: refusing to overwrite "+base+".key: file already exists "+
		"(keys are never replaced: choose another --out, or move the old pair away)\n", r.stderr)
	require.Equal(t, key, readKeyFile(t, base+".key"))
	require.Equal(t, pubPEM, readKeyFile(t, base+".pub"))
}

func TestKeygenUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no --out", []string{"keygen"}, 2, "edgelink: no key name: pass --out NAME (writes NAME.key and NAME.pub)\n"},
		{"stray argument", []string{"keygen", "ops"}, 2, `edgelink: edgelink keygen takes no arguments, got ["ops"] (did you mean --out ops?)` + "\n"},
		{"extension", []string{"keygen", "--out", "ops.key"}, 2, "edgelink: --out ops.key: give the name without extension: --out ops writes ops.key and ops.pub\n"},
		{"no directory", []string{"keygen", "-o", filepath.Join(dir, "missing", "ops")}, 1, "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cli.Main(t.Context(), tc.args, &stdout, &stderr)
			require.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
			require.Contains(t, stderr.String(), tc.stderr)
			require.Empty(t, stdout.String())
		})
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing written")
}

func readKeyFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
