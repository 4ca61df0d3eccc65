package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoAndStatus runs `edgelink demo` as a process, reads it with
// `edgelink status`, stops it with Ctrl-C (SIGINT), and starts it again on
// the same data, which resumes.
func TestDemoAndStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	addr := "127.0.0.1:" + freePort(t)
	url := "http://" + addr
	cmd := exec.Command(binary, "demo", "--listen", addr, "--data-dir", dir, "--rate", "300", "--duration", "2m")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	var st status.Snapshot
	var raw string
	testbed.Eventually(t, 30*time.Second, func() error {
		r := edgelink(t, nil, "status", "--url", url, "--json")
		if r.code != 0 {
			return fmt.Errorf("status exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		raw = r.stdout
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
		if len(st.Links) != 2 || st.Links[0].State != "live" || st.Links[0].Records == 0 || len(st.Links[0].Topics) == 0 {
			return fmt.Errorf("status %+v", st.Links)
		}
		// The demo's two agents share the link, each with its slots.
		if sh := st.Links[0].Sharing; sh == nil || len(sh.Agents) != 2 || len(sh.Agents[0].Slots) == 0 || len(sh.Agents[1].Slots) == 0 {
			return fmt.Errorf("sharing %+v", sh)
		}
		return nil
	})
	require.True(t, st.Controls)
	require.Contains(t, raw, `"agent_killed": false`)

	r := edgelink(t, nil, "status", "--url", url)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "edgelink ")
	require.Contains(t, r.stdout, "site plant-demo · ready")
	require.Regexp(t, `(?m)^telemetry-up\s+edge → cloud\s+live\s+`, r.stdout)
	require.Contains(t, r.stdout, "telemetry-up topics")
	// The status is agent A's: its topics are those of the partitions it
	// reads, which the two agents share.
	require.Regexp(t, `(?m)^\s+(sensors\.temp|sensors\.vibration|alerts)\s+plant-demo\.\S+\s+[1-3]\s+(1|10)\s+`, r.stdout)
	require.Regexp(t, `(?m)^telemetry-up agents \(group edgelink-plant-demo:telemetry-up, generation \d+, 6 slots\)$`, r.stdout)
	require.Regexp(t, `(?m)^\s+AGENT\s+HOST\s+PID\s+SLOTS\s+PARTITIONS$`, r.stdout)
	require.Regexp(t, `(?m)^\s+[0-9a-f]+ \(this agent\)\s+\S+\s+\d+\s+[0-5](,[0-5])*\s+[1-7]$`, r.stdout)
	require.Regexp(t, `(?m)^\s+[0-9a-f]+\s+\S+\s+\d+\s+[0-5](,[0-5])*\s+[1-7]$`, r.stdout, "the other agent")
	require.Contains(t, r.stdout, "telemetry-up recent events")

	out := stdout.String()
	require.Contains(t, out, "status page: "+url+"/")
	require.Contains(t, out, "data     "+dir+" (new)")
	require.Contains(t, out, "5 machines writing about 300 records/s to alerts, sensors.temp, sensors.vibration at the edge")
	require.Contains(t, out, "shared by agents A and B")
	require.Contains(t, out, "telemetry-rollup: sensors.temp rolled up at the edge into 10 s windows per machine")
	require.Contains(t, out, `"Kill agent" kills agent B`)
	require.FileExists(t, filepath.Join(dir, "demo.log"))

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case err := <-exited:
		require.NoError(t, err, "exit status after SIGINT; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo still running 30s after SIGINT; stdout:\n%s", stdout.String())
	}
	out = stdout.String()
	require.Contains(t, out, "stopping: saving the clusters' data")
	require.Contains(t, out, "stopped; the data is saved in "+dir)
	require.Regexp(t, `telemetry-up  \S+\s+replicated [\d,]+ .*  (A holds [0-6]/6 slots, )?agent B up\n`, out, "the final live line")
	require.Empty(t, stderr.String(), "the demo logs to its file")

	r = edgelink(t, nil, "status", "--url", url)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "no agent answers at "+url+"/api/v1/status")

	// Again on the same data: it resumes. --duration stops it.
	r = edgelink(t, nil, "demo", "--listen", "127.0.0.1:0", "--data-dir", dir, "--rate", "0", "--duration", "3s")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "(resumed: the cloud keeps what earlier runs replicated)")
	require.Contains(t, r.stdout, "plant    idle (--rate 0)")
	require.Contains(t, r.stdout, "stopped; the data is saved")

	// --reset starts afresh, and refuses a directory that is not a demo's.
	r = edgelink(t, nil, "demo", "--listen", "127.0.0.1:0", "--data-dir", dir, "--rate", "0", "--duration", "1s", "--reset")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "(new)")
	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "keep.txt"), []byte("x"), 0o600))
	r = edgelink(t, nil, "demo", "--data-dir", other, "--reset")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not removing "+other)
	require.FileExists(t, filepath.Join(other, "keep.txt"))
}

// TestDemoBusyAddress: a taken status page address fails with a hint.
func TestDemoBusyAddress(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	r := edgelink(t, nil, "demo", "--listen", ln.Addr().String(), "--data-dir", filepath.Join(t.TempDir(), "d"), "--duration", "1s")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "address already in use")
	require.Contains(t, r.stderr, "choose another address with --listen")

	r = edgelink(t, nil, "demo", "--rate", "-1")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--rate -1")
}

// TestRunServesStatus: `edgelink run` serves the status API and metrics at
// http.listen, with TLS and a token; `edgelink status -c` finds it from the
// same configuration, and without the token or the CA it is refused with
// advice.
func TestRunServesStatus(t *testing.T) {
	dir := t.TempDir()
	files, err := testbed.WriteTLSFiles(dir, "127.0.0.1")
	require.NoError(t, err)
	cert, key, err := files.IssueCert(testbed.CertSpec{Name: "http", Hosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	edge := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	cloud := testbed.StartFake(t)
	addr := "127.0.0.1:" + freePort(t)
	y := strings.Replace(linkConfig(edge.ListenAddrs(), cloud.ListenAddrs()),
		`  listen: "127.0.0.1:0"`,
		fmt.Sprintf("  listen: %q\n  token: ${HTTP_TOKEN}\n  tls: {cert_file: %q, key_file: %q}", addr, cert, key), 1)
	cfg := writeFile(t, "edgelink.yaml", y)

	cmd := exec.Command(binary, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "HTTP_TOKEN=t0ken")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()

	env := []string{"HTTP_TOKEN=t0ken"}
	var r result
	testbed.Eventually(t, 30*time.Second, func() error {
		r = edgelink(t, env, "status", "-c", cfg)
		if r.code != 0 || !strings.Contains(r.stdout, "· ready ·") {
			return fmt.Errorf("status exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		return nil
	})
	require.Regexp(t, `(?m)^up\s+edge → cloud\s+(live|catching-up)\s+`, r.stdout)
	require.Contains(t, stderr.String(), "status_page=https://"+addr+"/")

	url := "https://" + addr
	r = edgelink(t, nil, "status", "--url", url)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "the agent's certificate is not trusted: pass its CA with --ca-file")
	r = edgelink(t, nil, "status", "--url", url, "--ca-file", files.CAFile)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "requires a token: pass --token, set $EDGELINK_TOKEN")
	r = edgelink(t, []string{"EDGELINK_TOKEN=wrong"}, "status", "--url", url, "--ca-file", files.CAFile)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "refused the token")
	r = edgelink(t, []string{"EDGELINK_TOKEN=t0ken"}, "status", "--url", url, "--ca-file", files.CAFile, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, `"name": "up"`)
	require.NotContains(t, r.stdout, "t0ken")

	r = edgelink(t, nil, "status", "--url", "ftp://x")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, `--url "ftp://x": want http://HOST:PORT`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), stderr.String())
	require.Contains(t, stderr.String(), "edgelink stopped")
}
