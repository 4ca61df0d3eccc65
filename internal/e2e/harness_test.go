package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// binary is the edgelink executable the scenarios run and kill.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgelink-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "edgelink")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/edgelink").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build edgelink: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agent is one `edgelink run` process.
type agent struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu   sync.Mutex
	logs []map[string]any
	raw  bytes.Buffer
}

func startAgent(t *testing.T, name, cfgPath string) *agent {
	t.Helper()
	return startProcess(t, name, nil, "run", "-c", cfgPath)
}

// startProcess starts the edgelink binary with args (and JSON logs), with
// env added to the test's environment.
func startProcess(t *testing.T, name string, env []string, args ...string) *agent {
	t.Helper()
	cmd := exec.Command(binary, append(args, "--log-format", "json")...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	a := &agent{t: t, name: name, cmd: cmd, done: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Go(func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var m map[string]any
			a.mu.Lock()
			a.raw.Write(line)
			a.raw.WriteByte('\n')
			if json.Unmarshal(line, &m) == nil {
				a.logs = append(a.logs, m)
			}
			a.mu.Unlock()
		}
	})
	go func() {
		readers.Wait()
		a.err = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		logged := -1 // the length of the log before the goroutine dump
		if t.Failed() {
			a.mu.Lock()
			logged = a.raw.Len()
			a.mu.Unlock()
			// A Go process dumps its goroutines on SIGQUIT: show where a
			// stuck agent is.
			_ = a.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-a.done:
			case <-time.After(3 * time.Second):
			}
		}
		a.kill()
		if dir := os.Getenv("EDGELINK_E2E_LOGS"); dir != "" { // whole logs, for a failure that needs more than the tail
			a.mu.Lock()
			_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+name+".log"), a.raw.Bytes(), 0o644)
			a.mu.Unlock()
		}
		if t.Failed() {
			a.mu.Lock()
			b := a.raw.Bytes()
			if logged < 0 || logged > len(b) {
				logged = len(b)
			}
			t.Logf("agent %s log (last 64 KB):\n%s", name, tailBytes(b[:logged], 64<<10))
			if len(b) > logged {
				t.Logf("agent %s after SIGQUIT (last 64 KB):\n%s", name, tailBytes(b[logged:], 64<<10))
			}
			a.mu.Unlock()
		}
	})
	return a
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// kill sends SIGKILL and waits for the process to exit.
func (a *agent) kill() {
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// stop sends SIGTERM and returns the exit code and how long the exit took.
func (a *agent) stop() (int, time.Duration) {
	began := time.Now()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		a.kill()
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		return ee.ExitCode(), time.Since(began)
	}
	return 0, time.Since(began)
}

// logsWith returns the agent's JSON log lines whose msg contains s.
func (a *agent) logsWith(s string) []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for _, m := range a.logs {
		if msg, _ := m["msg"].(string); strings.Contains(msg, s) {
			out = append(out, m)
		}
	}
	return out
}

func writeConfig(t *testing.T, edge, cloud *testbed.Cluster, linkYAML string) string {
	t.Helper()
	return writeConfigFor(t, edge.Bootstrap(), cloud.Bootstrap(), linkYAML)
}

// writeConfigFor writes an agent configuration with the given bootstrap
// servers for the edge and cloud clusters.
func writeConfigFor(t *testing.T, edge, cloud []string, linkYAML string) string {
	t.Helper()
	y := fmt.Sprintf(`site: plant-1
clusters:
  edge: {bootstrap: [%q]}
  cloud: {bootstrap: [%q]}
http: {listen: "127.0.0.1:0"}
links:
%s`, strings.Join(edge, ","), strings.Join(cloud, ","), linkYAML)
	p := filepath.Join(t.TempDir(), "edgelink.yaml")
	require.NoError(t, os.WriteFile(p, []byte(y), 0o600))
	return p
}

func createTopics(t *testing.T, c *testbed.Cluster, partitions int32, configs map[string]*string, topics ...string) {
	t.Helper()
	cl, err := c.Client()
	require.NoError(t, err)
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(t.Context(), partitions, 1, configs, topics...)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
}

// load writes keyed records with headers and a spread of sizes (mostly
// small, some up to 100 KB, a few up to 900 KB) across topics, and runs
// transactions of which every fourth is aborted.
type load struct {
	records   atomic.Int64
	aborted   atomic.Int64
	committed atomic.Int64
}

func recordSize(rng *rand.Rand, i int) int {
	switch {
	case i%2000 == 999:
		return 500<<10 + rng.IntN(400<<10) // up to 900 KB
	case i%50 == 7:
		return 1<<10 + rng.IntN(99<<10)
	default:
		return 10 + rng.IntN(990)
	}
}

func makeRecord(rng *rand.Rand, topic string, i int, tag string) *kgo.Record {
	v := make([]byte, recordSize(rng, i))
	for j := range v {
		v[j] = byte('a' + (i+j)%26)
	}
	r := &kgo.Record{Topic: topic, Value: v, Key: []byte(fmt.Sprintf("machine-%d", rng.IntN(40)))}
	switch i % 10 {
	case 3:
		r.Key = nil
	case 5:
		r.Value = nil
	}
	r.Headers = []kgo.RecordHeader{{Key: "seq", Value: []byte(fmt.Sprintf("%s-%d", tag, i))}, {Key: "unit", Value: []byte("C")}}
	return r
}

// produce writes n plain records spread over topics, as fast as the cluster takes them.
func (l *load) produce(ctx context.Context, t *testing.T, c *testbed.Cluster, topics []string, n int, seed uint64) error {
	cl, err := c.Client(kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(20000))
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(seed, 1))
	var firstErr atomic.Pointer[error]
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		cl.Produce(ctx, makeRecord(rng, topics[i%len(topics)], i, "p"), func(_ *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			l.records.Add(1)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// transact writes txns transactions of per records to topic; every fourth aborts.
func (l *load) transact(ctx context.Context, c *testbed.Cluster, topic string, txns, per int, seed uint64) error {
	cl, err := c.Client(kgo.TransactionalID(fmt.Sprintf("load-%d", seed)))
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(seed, 2))
	for x := range txns {
		if err := cl.BeginTransaction(); err != nil {
			return err
		}
		for i := range per {
			cl.Produce(ctx, makeRecord(rng, topic, x*per+i, "t"), nil)
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		commit := kgo.TryCommit
		if x%4 == 3 {
			commit = kgo.TryAbort
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			return err
		}
		if commit == kgo.TryCommit {
			l.committed.Add(int64(per))
		} else {
			l.aborted.Add(int64(per))
		}
	}
	return nil
}

// checkUntilClean runs the checker until it reports no discrepancy or the
// deadline passes, and returns the last report.
func checkUntilClean(t *testing.T, edge, cloud *testbed.Cluster, pairs []verify.Pair, timeout time.Duration, expected map[string]map[int32][]verify.Range) *verify.Report {
	t.Helper()
	src, err := edge.Client()
	require.NoError(t, err)
	defer src.Close()
	dst, err := cloud.Client()
	require.NoError(t, err)
	defer dst.Close()
	deadline := time.Now().Add(timeout)
	for {
		rep, err := verify.Check(t.Context(), verify.Options{Source: src, Destination: dst, Topics: pairs, ExpectedLost: expected})
		require.NoError(t, err)
		if rep.OK() || time.Now().After(deadline) {
			t.Logf("checker:\n%s", rep)
			return rep
		}
		if rep.Duplicated+rep.Reordered+rep.Corrupted+rep.Phantom > 0 {
			t.Logf("checker (not converging):\n%s", rep)
			explainDuplicates(t, cloud, rep)
			return rep // waiting cannot repair these
		}
		time.Sleep(2 * time.Second)
	}
}

func requireClean(t *testing.T, rep *verify.Report) {
	t.Helper()
	require.Zero(t, rep.Lost, "lost")
	require.Zero(t, rep.Duplicated, "duplicated")
	require.Zero(t, rep.Reordered, "reordered")
	require.Zero(t, rep.Corrupted, "corrupted")
	require.Zero(t, rep.Phantom, "phantom (aborted or control records replicated)")
	require.True(t, rep.OK(), "%s", rep)
}

// explainDuplicates logs, for the first duplicated example, the destination
// batches around both copies as a read_uncommitted reader sees them: each
// batch's producer, epoch, and whether it is transactional or a marker. It
// tells a transaction written twice from two transactions committed twice.
func explainDuplicates(t *testing.T, cloud *testbed.Cluster, rep *verify.Report) {
	t.Helper()
	var ex *verify.Example
	for i := range rep.Examples {
		if rep.Examples[i].Kind == verify.KindDuplicated {
			ex = &rep.Examples[i]
			break
		}
	}
	if ex == nil {
		return
	}
	from := max(ex.DestinationOffset-200, 0)
	cl, err := cloud.Client(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{ex.Destination: {ex.Partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		t.Logf("explain duplicates: %v", err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "destination %s[%d] from offset %d, read uncommitted (runs of records of one producer epoch):\n", ex.Destination, ex.Partition, from)
	var run struct {
		first, last int64
		pid         int64
		epoch       int16
		txn, ctl    bool
		n           int
	}
	flush := func() {
		if run.n > 0 {
			fmt.Fprintf(&b, "  %d-%d producer %d epoch %d transactional=%v control=%v (%d)\n", run.first, run.last, run.pid, run.epoch, run.txn, run.ctl, run.n)
		}
	}
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if done {
				return
			}
			txn, ctl := r.Attrs.IsTransactional(), r.Attrs.IsControl()
			if run.n == 0 || r.ProducerID != run.pid || r.ProducerEpoch != run.epoch || txn != run.txn || ctl != run.ctl || ctl {
				flush()
				run.first, run.pid, run.epoch, run.txn, run.ctl, run.n = r.Offset, r.ProducerID, r.ProducerEpoch, txn, ctl, 0
			}
			run.last = r.Offset
			run.n++
			if r.Offset > ex.DestinationOffset+200 {
				done = true
			}
		})
		if done {
			break
		}
	}
	flush()
	t.Log(b.String())
}
