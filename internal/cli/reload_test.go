package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
)

// logLine is one JSON log record of the agent.
type logLine map[string]any

// logsWith returns the agent's JSON log records whose msg starts with msg.
func logsWith(t *testing.T, stderr *syncBuffer, msg string) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if m, _ := l["msg"].(string); strings.HasPrefix(m, msg) {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits until the agent logged msg n times and returns the last.
func waitLog(t *testing.T, stderr *syncBuffer, msg string, n int) logLine {
	t.Helper()
	var found []logLine
	testbed.Eventually(t, 30*time.Second, func() error {
		if found = logsWith(t, stderr, msg); len(found) < n {
			return fmt.Errorf("%q logged %d times, want %d; log:\n%s", msg, len(found), n, stderr.String())
		}
		return nil
	})
	return found[n-1]
}

// strs turns a JSON list of strings (or null) into a []string.
func strs(v any) []string {
	list, _ := v.([]any)
	out := []string{}
	for _, s := range list {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

// mirrorCounter counts the committed records of destination topics.
type mirrorCounter struct {
	cl     *kgo.Client
	counts map[string]int
}

func newMirrorCounter(t *testing.T, seeds []string, topics ...string) *mirrorCounter {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topics...), kgo.ConsumeRegex(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(250*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return &mirrorCounter{cl: cl, counts: make(map[string]int)}
}

// wait polls until every topic of want holds its count, and fails if one
// holds more.
func (m *mirrorCounter) wait(t *testing.T, want map[string]int) {
	t.Helper()
	testbed.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		m.cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { m.counts[r.Topic]++ })
		for topic, n := range want {
			require.LessOrEqual(t, m.counts[topic], n, "duplicates in %s", topic)
			if m.counts[topic] < n {
				return fmt.Errorf("%s holds %d records, want %d", topic, m.counts[topic], n)
			}
		}
		return nil
	})
}

// TestRunReloadsOnSIGHUPFake runs `edgelink run` as a process: a SIGHUP
// after the file gained a link starts that link, and the running one goes
// on; a SIGHUP on an invalid file logs the errors `edgelink check` prints
// and changes nothing; SIGTERM then exits 0.
func TestRunReloadsOnSIGHUPFake(t *testing.T) {
	edge := testbed.StartFake(t, kfake.SeedTopics(1, "alerts", "extra"))
	cloud := testbed.StartFake(t)
	addr := "127.0.0.1:" + freePort(t)
	one := strings.Replace(linkConfig(edge.ListenAddrs(), cloud.ListenAddrs()),
		`  listen: "127.0.0.1:0"`, fmt.Sprintf("  listen: %q", addr), 1)
	two := strings.Replace(one, "http:\n", `  - name: extra-up
    from: edge
    to: cloud
    topics: {include: [extra]}
    rename: "{site}.x.{topic}"
http:
`, 1)
	require.NotEqual(t, one, two)
	path := writeFile(t, "edgelink.yaml", one)
	prod, err := kgo.NewClient(kgo.SeedBrokers(edge.ListenAddrs()...))
	require.NoError(t, err)
	defer prod.Close()
	produce := func(topic string, n int) {
		for i := range n {
			require.NoError(t, prod.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", topic, i)}).FirstErr())
		}
	}
	mirrors := newMirrorCounter(t, cloud.ListenAddrs(), `plant-1\..*`)

	cmd := exec.Command(binary, "run", "-c", path, "--log-format", "json")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	waitLog(t, &stderr, "edgelink running", 1)
	produce("alerts", 10)
	mirrors.wait(t, map[string]int{"plant-1.alerts": 10})

	// A link added to the file starts on SIGHUP; the running link is kept.
	require.NoError(t, os.WriteFile(path, []byte(two), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	l := waitLog(t, &stderr, "config reloaded", 1)
	require.Equal(t, "INFO", l["level"])
	require.Equal(t, []string{"extra-up"}, strs(l["added"]))
	require.Equal(t, []string{"up"}, strs(l["kept"]))
	require.Empty(t, strs(l["removed"]))
	require.Empty(t, strs(l["restarted"]))
	produce("extra", 7)
	produce("alerts", 5)
	mirrors.wait(t, map[string]int{"plant-1.alerts": 15, "plant-1.x.extra": 7})
	// The status API shows the new link too.
	testbed.Eventually(t, 10*time.Second, func() error {
		r := edgelink(t, nil, "status", "--url", "http://"+addr, "--json")
		if r.code != 0 {
			return fmt.Errorf("status exit %d: %s", r.code, r.stderr)
		}
		var st status.Snapshot
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
		if len(st.Links) != 2 || st.Links[1].Name != "extra-up" || st.Links[1].Records != 7 {
			return fmt.Errorf("links %+v", st.Links)
		}
		return nil
	})

	// An invalid file is refused with the errors check prints; the links
	// run on untouched.
	bad := strings.Replace(two, "    bootstrap:", "    bootstrp:", 1)
	require.NoError(t, os.WriteFile(path, []byte(bad), 0o600))
	check := edgelink(t, nil, "check", "-c", path)
	require.Equal(t, 2, check.code)
	require.True(t, strings.HasPrefix(check.stderr, "invalid configuration:\n"), check.stderr)
	want := strings.ReplaceAll(strings.TrimSpace(strings.TrimPrefix(check.stderr, "invalid configuration:\n")), "\n  ", "\n")
	require.Contains(t, want, `clusters.edge.bootstrp: unknown field (did you mean "bootstrap"?)`)
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	l = waitLog(t, &stderr, "configuration not reloaded", 1)
	require.Equal(t, "ERROR", l["level"])
	require.Equal(t, want, l["err"])
	produce("extra", 3)
	produce("alerts", 5)
	mirrors.wait(t, map[string]int{"plant-1.alerts": 20, "plant-1.x.extra": 10})
	require.Len(t, logsWith(t, &stderr, "config reloaded"), 1, "nothing applied")
	require.Empty(t, logsWith(t, &stderr, "stopping link"))

	began := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "exit status after SIGTERM; stderr:\n%s", stderr.String())
	require.Less(t, time.Since(began), 10*time.Second)
	waitLog(t, &stderr, "edgelink stopped", 1)
}
