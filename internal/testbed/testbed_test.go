package testbed_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/edgelink/edgelink/internal/testbed"
)

// consumeAll reads n records from topic (all partitions, from the start).
func consumeAll(ctx context.Context, t *testing.T, seeds []string, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records from %s: %v", len(out), n, topic, err)
		}
		for _, e := range fs.Errors() {
			t.Logf("fetch %s[%d]: %v", e.Topic, e.Partition, e.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func createTopic(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, partitions int32, rf int16) {
	t.Helper()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, rf, nil, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
}

// TestRealKafkaKcatProduceFranzConsume proves the test bed runs a real broker
// that a third-party client (kcat, librdkafka) and franz-go both talk to.
func TestRealKafkaKcatProduceFranzConsume(t *testing.T) {
	c := testbed.StartKafka(t, testbed.Options{Name: "kcat"})
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is not installed (make test installs it with apt-get): %v", err)
	}
	ctx := t.Context()
	admin, err := c.Client()
	require.NoError(t, err)
	defer admin.Close()
	const topic, n = "kcat-e2e", 1000
	createTopic(ctx, t, admin, topic, 3, 1)

	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "key-%d|value-%d-%s\n", i%50, i, strings.Repeat("x", i%97))
	}
	// Idempotent, so that a retried batch cannot overtake a later one (the
	// order per key is asserted below).
	cmd := exec.CommandContext(ctx, kcat, "-P", "-b", strings.Join(c.Bootstrap(), ","), "-t", topic, "-K", "|", "-X", "enable.idempotence=true")
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "kcat: %s", out)

	recs := consumeAll(ctx, t, c.Bootstrap(), topic, n)
	require.Len(t, recs, n)
	lastByKey := map[string]int{}
	seen := map[int]bool{}
	for _, r := range recs {
		var i int
		_, err := fmt.Sscanf(string(r.Value), "value-%d-", &i)
		require.NoError(t, err, "value %q", r.Value)
		require.Equal(t, fmt.Sprintf("key-%d", i%50), string(r.Key))
		require.Equal(t, fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%97)), string(r.Value))
		require.False(t, seen[i], "record %d read twice", i)
		seen[i] = true
		if prev, ok := lastByKey[string(r.Key)]; ok {
			require.Less(t, prev, i, "order of key %s", r.Key)
		}
		lastByKey[string(r.Key)] = i
	}
	require.Len(t, seen, n)
}

// TestRealKafkaThreeBrokers starts one 3-node cluster and shows that a
// replicated topic keeps serving after its leader is killed.
func TestRealKafkaThreeBrokers(t *testing.T) {
	c := testbed.StartKafka(t, testbed.Options{Name: "trio", Brokers: 3})
	require.Len(t, c.Bootstrap(), 3)
	ctx := t.Context()
	cl, err := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(20))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createTopic(ctx, t, cl, "rf3", 1, 3)

	produce := func(v string) {
		t.Helper()
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "rf3", Value: []byte(v)}).FirstErr())
	}
	produce("before")
	md, err := adm.Metadata(ctx, "rf3")
	require.NoError(t, err)
	p := md.Topics["rf3"].Partitions[0]
	require.Len(t, p.Replicas, 3)
	leader := c.Broker(int(p.Leader))
	require.NotNil(t, leader)
	leader.Kill()
	testbed.Eventually(t, 30*time.Second, func() error {
		md, err := adm.Metadata(ctx, "rf3")
		if err != nil {
			return err
		}
		if l := md.Topics["rf3"].Partitions[0].Leader; l == p.Leader || l < 0 {
			return fmt.Errorf("leader still %d", l)
		}
		return nil
	})
	produce("after")
	recs := consumeAll(ctx, t, c.Bootstrap(), "rf3", 2)
	require.Equal(t, "before", string(recs[0].Value))
	require.Equal(t, "after", string(recs[1].Value))

	// The killed broker rejoins.
	require.NoError(t, leader.Start())
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, c.WaitReady(wctx))
}

// TestRealKafkaSASLSSL connects over SASL_SSL with SCRAM-SHA-512 and mutual
// TLS, and shows that a wrong password and a missing client certificate fail.
func TestRealKafkaSASLSSL(t *testing.T) {
	c := testbed.StartKafka(t, testbed.Options{Name: "secure", Security: &testbed.Security{
		Users:     map[string]string{"edge": "edge-secret"},
		MutualTLS: true,
	}})
	ctx := t.Context()
	tlsCfg, err := c.TLS.ClientConfig()
	require.NoError(t, err)
	secure := func(user, pass string, withCert bool) (*kgo.Client, error) {
		cfg := tlsCfg.Clone()
		if !withCert {
			cfg.Certificates = nil
		}
		return kgo.NewClient(
			kgo.SeedBrokers(c.SASLBootstrap()...),
			kgo.DialTLSConfig(cfg),
			kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
			kgo.RequestRetries(0),
			kgo.RetryTimeout(5*time.Second),
		)
	}
	cl, err := secure("edge", "edge-secret", true)
	require.NoError(t, err)
	defer cl.Close()
	createTopic(ctx, t, cl, "secure", 1, 1)
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: []byte("hello")}).FirstErr())
	tlsOpt := kgo.DialTLSConfig(tlsCfg)
	recs := consumeAll(ctx, t, c.SASLBootstrap(), "secure", 1, tlsOpt,
		kgo.SASL(scram.Auth{User: "edge", Pass: "edge-secret"}.AsSha512Mechanism()))
	require.Equal(t, "hello", string(recs[0].Value))

	for _, tc := range []struct {
		name, pass string
		cert       bool
		want       string
	}{
		{"wrong password", "nope", true, "SASL"},
		{"no client certificate", "edge-secret", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, err := secure("edge", tc.pass, tc.cert)
			require.NoError(t, err)
			defer bad.Close()
			pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			err = bad.Ping(pctx)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestRealKafkaNoOrphanJVM kills -9 a process that owns a broker and checks
// that the broker's JVM dies with it.
func TestRealKafkaNoOrphanJVM(t *testing.T) {
	testbed.RequireKafka(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOwnsBroker$", "-test.v")
	cmd.Env = append(os.Environ(), "EDGELINK_TESTBED_HELPER=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	pid := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "JVM_PID="); ok {
			pid, err = strconv.Atoi(v)
			require.NoError(t, err)
			break
		}
	}
	require.NotZero(t, pid, "helper never reported its broker")
	require.NoError(t, syscall.Kill(pid, 0), "broker JVM should be alive")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	testbed.Eventually(t, 20*time.Second, func() error {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		// A zombie is dead too: it only waits for its new parent to reap it.
		if st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil && bytes.Contains(st, []byte(") Z ")) {
			return nil
		}
		return fmt.Errorf("JVM %d still alive after its owner was killed", pid)
	})
}

// TestHelperOwnsBroker is run by TestRealKafkaNoOrphanJVM in a child process.
func TestHelperOwnsBroker(t *testing.T) {
	if os.Getenv("EDGELINK_TESTBED_HELPER") != "1" {
		t.Skip("helper process for TestRealKafkaNoOrphanJVM")
	}
	c, err := testbed.Start(t.Context(), testbed.Options{Name: "orphan"})
	require.NoError(t, err)
	fmt.Printf("JVM_PID=%d\n", c.Brokers[0].PID())
	time.Sleep(2 * time.Minute) // killed by the parent long before
}

// TestFakeProduceConsume shows the fast path: an in-process kfake cluster.
func TestFakeProduceConsume(t *testing.T) {
	f := testbed.StartFake(t, kfake.SeedTopics(1, "fast"))
	ctx := t.Context()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.ListenAddrs()...), kgo.DefaultProduceTopic("fast"))
	require.NoError(t, err)
	defer cl.Close()
	for i := range 100 {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")}).FirstErr())
	}
	recs := consumeAll(ctx, t, f.ListenAddrs(), "fast", 100)
	for i, r := range recs {
		require.Equal(t, strconv.Itoa(i), string(r.Key))
	}
}
