package demo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/demo"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// running is a demo running until the test ends (or stop is called).
type running struct {
	*demo.Demo
	stop func() error
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startDemo runs a demo on dir at rate records per second.
func startDemo(t *testing.T, dir string, rate int) *running {
	t.Helper()
	d, err := demo.New(t.Context(), demo.Options{
		DataDir: dir, Listen: "127.0.0.1:0", Rate: rate, Version: "dev",
		Logger: logger(t), SampleInterval: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("demo did not stop within 30s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return &running{Demo: d, stop: stop}
}

func get(t *testing.T, url string) string {
	t.Helper()
	return request(t, http.MethodGet, url)
}

func post(t *testing.T, url string) string {
	t.Helper()
	return request(t, http.MethodPost, url)
}

// request sends an empty request and returns the body of a 200 answer.
func request(t *testing.T, method, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s: %s", url, b)
	return string(b)
}

func linkStatus(t *testing.T, d *running) status.LinkStatus {
	t.Helper()
	return namedLinkStatus(t, d, demo.LinkName)
}

// namedLinkStatus returns one of the demo's two links' status.
func namedLinkStatus(t *testing.T, d *running, name string) status.LinkStatus {
	t.Helper()
	var st status.Snapshot
	require.NoError(t, json.Unmarshal([]byte(get(t, d.URL()+"api/v1/status")), &st))
	require.Len(t, st.Links, 2)
	for _, l := range st.Links {
		if l.Name == name {
			return l
		}
	}
	require.FailNow(t, "no link "+name)
	return status.LinkStatus{}
}

// metric returns one series' value from a scrape of /metrics.
func metric(t *testing.T, d *running, series string) float64 {
	t.Helper()
	scrape := get(t, d.URL()+"metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(scrape)
	require.NotNil(t, m, "series %s missing from\n%s", series, scrape)
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	return v
}

// TestDemoOutageAndResume runs the demo through an outage and a restart:
// the link replicates, "cut" disconnects it while the backlog (status API
// and metrics) grows, "restore" drains the backlog to zero, and a demo
// started again on the same data directory resumes and completes the
// mirror, which then holds every record the plant wrote exactly once.
func TestDemoOutageAndResume(t *testing.T) {
	dir := t.TempDir()
	d := startDemo(t, dir, 400)
	require.False(t, d.Resumed())
	const lk = `{link="` + demo.LinkName + `"}`

	testbed.Eventually(t, 30*time.Second, func() error {
		if l := linkStatus(t, d); l.State != "live" || l.Records < 400 {
			return fmt.Errorf("state %s, %d records replicated", l.State, l.Records)
		}
		return nil
	})
	records := metric(t, d, "edgelink_link_records_total"+lk)
	require.Positive(t, records)
	// The rollup link sends a record per machine and 10 s window: a
	// small part of what goes into it.
	testbed.Eventually(t, 40*time.Second, func() error {
		r := namedLinkStatus(t, d, demo.RollupLinkName)
		if r.Records == 0 || r.BytesIn < 5*r.Bytes {
			return fmt.Errorf("rollup: %d windows, %d bytes out of %d in (%d records in)", r.Records, r.Bytes, r.BytesIn, r.RecordsIn)
		}
		return nil
	})
	require.Equal(t, 1.0, metric(t, d, `edgelink_link_state{link="telemetry-up",state="live"}`))
	require.Equal(t, 1.0, metric(t, d, "edgelink_link_connected"+lk))
	require.Equal(t, 0.0, metric(t, d, "edgelink_link_backlog_estimated"+lk))
	testbed.Eventually(t, 10*time.Second, func() error {
		if v := metric(t, d, "edgelink_link_records_total"+lk); v <= records {
			return fmt.Errorf("records_total still %v", v)
		}
		// Per-topic figures follow the link's backlog measurements.
		for _, topic := range []string{demo.TopicTemperature, demo.TopicVibration} {
			if v := metric(t, d, `edgelink_topic_records_total{link="telemetry-up",topic="`+topic+`"}`); v <= 0 {
				return fmt.Errorf("%s: topic records_total %v", topic, v)
			}
		}
		return nil
	})

	// Cut: the link disconnects and the backlog grows while the plant writes.
	cutAt := time.Now()
	require.JSONEq(t, `{"link":"telemetry-up","link_cut":true}`, post(t, d.URL()+"api/v1/links/telemetry-up/cut"))
	require.True(t, d.IsCut())
	testbed.Eventually(t, 30*time.Second, func() error {
		if l := linkStatus(t, d); l.State != "disconnected" {
			return fmt.Errorf("state %s", l.State)
		}
		return nil
	})
	t.Logf("disconnected %s after the cut", time.Since(cutAt).Round(time.Millisecond))
	var before int64
	testbed.Eventually(t, 10*time.Second, func() error {
		l := linkStatus(t, d)
		before = l.Backlog.Records
		if !l.Backlog.Estimated || before < 200 {
			return fmt.Errorf("backlog %d (estimated %v)", before, l.Backlog.Estimated)
		}
		return nil
	})
	testbed.Eventually(t, 10*time.Second, func() error {
		if b := metric(t, d, "edgelink_link_backlog_records"+lk); b < float64(before)+200 {
			return fmt.Errorf("backlog %v, was %d", b, before)
		}
		return nil
	})
	require.Equal(t, 1.0, metric(t, d, `edgelink_link_state{link="telemetry-up",state="disconnected"}`))
	require.Equal(t, 1.0, metric(t, d, "edgelink_link_backlog_estimated"+lk))
	require.Positive(t, metric(t, d, "edgelink_link_backlog_age_seconds"+lk))
	cutRecords := linkStatus(t, d).Records

	// Restore: the backlog drains to zero.
	restoreAt := time.Now()
	require.JSONEq(t, `{"link":"telemetry-up","link_cut":false}`, post(t, d.URL()+"api/v1/links/telemetry-up/restore"))
	testbed.Eventually(t, 60*time.Second, func() error {
		if l := linkStatus(t, d); l.State != "live" || l.Backlog.Records != 0 || l.Backlog.Estimated {
			return fmt.Errorf("state %s, backlog %d (estimated %v)", l.State, l.Backlog.Records, l.Backlog.Estimated)
		}
		return nil
	})
	t.Logf("backlog drained %s after the restore", time.Since(restoreAt).Round(time.Millisecond))
	l := linkStatus(t, d)
	// Agent A replicated its share of the backlog: the estimate during the
	// outage follows every source partition, A reads only those of its
	// slots (the mirror check below covers both agents).
	require.Greater(t, l.Records, cutRecords)
	var kinds []string
	for _, e := range l.Events {
		kinds = append(kinds, e.Kind+": "+e.Message)
	}
	require.Contains(t, strings.Join(kinds, "\n"), "→ disconnected", "the outage is among the events")

	require.NoError(t, d.stop())
	written := d.Written()
	require.Positive(t, written)

	// A second demo on the same data resumes; without a workload it
	// replicates what the first left behind, and then the mirror is exact.
	d2 := startDemo(t, dir, 0)
	require.True(t, d2.Resumed())
	requireMirror(t, d2, written)
}

// requireMirror waits until the cloud of a demo started at rate 0 holds
// every record the plant wrote (written) exactly once. Each agent's status
// covers only the partitions it reads, so the mirror itself is checked,
// until it is complete.
func requireMirror(t *testing.T, d *running, written int64) {
	t.Helper()
	src, err := kgo.NewClient(kgo.SeedBrokers(d.EdgeAddrs()...))
	require.NoError(t, err)
	defer src.Close()
	dst, err := kgo.NewClient(kgo.SeedBrokers(d.CloudAddrs()...))
	require.NoError(t, err)
	defer dst.Close()
	var pairs []verify.Pair
	for _, p := range demo.Topics() {
		pairs = append(pairs, verify.Pair{Source: p[0], Destination: p[1]})
	}
	var rep *verify.Report
	testbed.Eventually(t, 60*time.Second, func() error {
		var err error
		rep, err = verify.Check(t.Context(), verify.Options{Source: src, Destination: dst, Topics: pairs, Timeout: time.Minute})
		require.NoError(t, err)
		// Records still on their way count as lost; nothing else is.
		require.Zero(t, rep.Duplicated+rep.Reordered+rep.Corrupted+rep.Phantom+rep.Foreign, "%s", rep)
		if !rep.OK() || rep.DestinationRecords != written {
			return fmt.Errorf("the cloud holds %d of %d records: %s", rep.DestinationRecords, written, rep)
		}
		return nil
	})
	require.Equal(t, written, rep.SourceRecords, "the edge holds what the plant wrote")
	require.Equal(t, written, rep.DestinationRecords, "the cloud holds every record once")
}

// apiStatus is the status API's answer, with the state of the controls.
func apiStatus(t *testing.T, d *running) observe.LinkResponse {
	t.Helper()
	var st observe.StatusResponse
	require.NoError(t, json.Unmarshal([]byte(get(t, d.URL()+"api/v1/status")), &st))
	require.Len(t, st.Links, 2)
	for _, l := range st.Links {
		if l.Name == demo.LinkName {
			return l
		}
	}
	require.FailNow(t, "no link "+demo.LinkName)
	return observe.LinkResponse{}
}

// shared checks that n agents share the link, each with slots, and that
// agent A holds its slots open.
func shared(l status.LinkStatus, n int) error {
	sh := l.Sharing
	switch {
	case sh == nil:
		return fmt.Errorf("not shared yet (state %s)", l.State)
	case len(sh.Agents) != n:
		return fmt.Errorf("generation %d: %d agents, want %d", sh.Generation, len(sh.Agents), n)
	}
	for _, so := range sh.Slots {
		if so.Owner == "" {
			return fmt.Errorf("generation %d: slot %d in motion", sh.Generation, so.Slot)
		}
	}
	for _, a := range sh.Agents {
		if len(a.Slots) == 0 {
			return fmt.Errorf("generation %d: agent %s has no slot", sh.Generation, a.Instance)
		}
		if a.Self && !slices.Equal(a.Slots, sh.Held) {
			return fmt.Errorf("generation %d: this agent owns slots %v, holds %v open", sh.Generation, a.Slots, sh.Held)
		}
	}
	return nil
}

// TestDemoKillAgent kills the second agent through the status API: agent
// A, which the status shows, takes all the slots over within the session
// timeout plus a rebalance, and its backlog, now covering every partition,
// returns to zero. The second agent started again gets its share back,
// and the cloud holds every record the plant wrote exactly once.
func TestDemoKillAgent(t *testing.T) {
	dir := t.TempDir()
	d := startDemo(t, dir, 300)
	api := d.URL() + "api/v1/links/" + demo.LinkName + "/"

	testbed.Eventually(t, 30*time.Second, func() error {
		l := linkStatus(t, d)
		if l.State != "live" {
			return fmt.Errorf("state %s", l.State)
		}
		return shared(l, 2)
	})
	l := apiStatus(t, d)
	require.NotNil(t, l.AgentKilled)
	require.False(t, *l.AgentKilled)
	require.Equal(t, 6, l.Sharing.SlotCount)
	require.Less(t, len(l.Sharing.Held), 6)

	// Kill: A takes every slot over.
	killedAt := time.Now()
	require.JSONEq(t, `{"link":"telemetry-up","agent_killed":true}`, post(t, api+"kill-agent"))
	require.True(t, d.AgentKilled())
	require.True(t, *apiStatus(t, d).AgentKilled)
	require.JSONEq(t, `{"link":"telemetry-up","agent_killed":true}`, post(t, api+"kill-agent"), "killing a killed agent does nothing")
	var maxBacklog int64
	testbed.Eventually(t, 20*time.Second-time.Since(killedAt), func() error {
		l := linkStatus(t, d)
		maxBacklog = max(maxBacklog, l.Backlog.Records)
		if l.Sharing == nil || len(l.Sharing.Held) != 6 {
			return fmt.Errorf("this agent holds %+v", l.Sharing)
		}
		return shared(l, 1)
	})
	t.Logf("all slots held %s after the kill", time.Since(killedAt).Round(time.Millisecond))

	// The backlog, measured over every partition now, returns to zero.
	testbed.Eventually(t, 30*time.Second, func() error {
		l := linkStatus(t, d)
		maxBacklog = max(maxBacklog, l.Backlog.Records)
		measured := 0
		for _, tp := range l.Topics {
			measured += tp.Partitions
		}
		if l.State != "live" || measured != 7 || l.Backlog.Records != 0 || l.Backlog.Estimated {
			return fmt.Errorf("state %s, backlog %d over %d partitions", l.State, l.Backlog.Records, measured)
		}
		return nil
	})
	t.Logf("backlog back to zero %s after the kill (it reached %d)", time.Since(killedAt).Round(time.Millisecond), maxBacklog)
	var takeovers []string
	for _, e := range linkStatus(t, d).Events {
		if e.Kind == "slots" && strings.Contains(e.Message, "taken over") {
			takeovers = append(takeovers, e.Message)
		}
	}
	require.NotEmpty(t, takeovers, "the events say which slots this agent took over")

	// Start: the second agent rejoins and gets its share back.
	startedAt := time.Now()
	require.JSONEq(t, `{"link":"telemetry-up","agent_killed":false}`, post(t, api+"start-agent"))
	require.False(t, d.AgentKilled())
	testbed.Eventually(t, 30*time.Second, func() error { return shared(linkStatus(t, d), 2) })
	t.Logf("shared again %s after the start", time.Since(startedAt).Round(time.Millisecond))
	require.False(t, *apiStatus(t, d).AgentKilled)

	require.NoError(t, d.stop())
	written := d.Written()
	require.Positive(t, written)
	// Without the plant, a demo on the same data completes the mirror.
	requireMirror(t, startDemo(t, dir, 0), written)
}

// TestDemoDataDir: a directory that holds something else is refused, and
// Reset removes only demo data.
func TestDemoDataDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(dir+"/notes.txt", []byte("mine"), 0o600))
	_, err := demo.New(t.Context(), demo.Options{DataDir: dir, Listen: "127.0.0.1:0"})
	require.ErrorContains(t, err, "holds no demo data")
	require.ErrorContains(t, demo.Reset(dir), "not removing")
	require.FileExists(t, dir+"/notes.txt")

	fresh := t.TempDir() + "/demo"
	d, err := demo.New(t.Context(), demo.Options{DataDir: fresh, Listen: "127.0.0.1:0"})
	require.NoError(t, err)
	d.Close()
	require.NoError(t, demo.Reset(fresh))
	require.NoDirExists(t, fresh)
	require.NoError(t, demo.Reset(fresh), "nothing to remove is fine")
}
