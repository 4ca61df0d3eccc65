package testbed

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EnvKafka names the variable that controls real-Kafka tests: "required"
// makes them run and fail when Kafka cannot start; unset skips them.
const EnvKafka = "EDGELINK_KAFKA"

// RequireKafka skips t unless real-Kafka tests are enabled.
func RequireKafka(t testing.TB) {
	t.Helper()
	switch v := os.Getenv(EnvKafka); v {
	case "required":
	case "":
		t.Skipf("real Apache Kafka test skipped: run `make test`, or set %s=required (needs java and mvn)", EnvKafka)
	default:
		t.Fatalf("%s=%q: want \"required\" or unset", EnvKafka, v)
	}
}

// StartKafka starts a real Kafka cluster for t (after [RequireKafka]) and
// stops it when t ends. A failed test keeps the broker logs and names them.
func StartKafka(t testing.TB, opts Options) *Cluster {
	t.Helper()
	return StartKafkaClusters(t, opts)[0]
}

// StartKafkaClusters starts independent clusters in parallel; see [StartKafka].
func StartKafkaClusters(t testing.TB, opts ...Options) []*Cluster {
	t.Helper()
	RequireKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := make([]*Cluster, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		if o.Progress == nil {
			o.Progress = logWriter{t}
		}
		wg.Go(func() { out[i], errs[i] = Start(ctx, o) })
	}
	wg.Wait()
	for _, c := range out {
		if c == nil {
			continue
		}
		t.Cleanup(func() {
			c.Stop()
			if t.Failed() {
				t.Logf("%s: broker logs kept in %s", c.Name, c.Dir)
				return
			}
			if err := c.Remove(); err != nil {
				t.Logf("%v", err)
			}
		})
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("start real Kafka: %v", err)
		}
	}
	return out
}

// StartFake starts an in-process kfake cluster and shuts it down when t ends.
func StartFake(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Eventually calls fn until it returns nil, failing t with fn's last error
// when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
