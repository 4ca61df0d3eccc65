// Command mirrorbench measures one link's throughput between two real Apache
// Kafka clusters started by the test bed on this machine: it loads records
// into the source, then times the link copying all of them, for each delivery
// mode, several runs each, and prints the medians.
//
//	go run ./internal/bench/mirrorbench -records 500000 -size 1024 -partitions 12 -runs 3
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
)

// logLevel is the level of the links' logs.
var logLevel = slog.LevelWarn

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mirrorbench:", err)
		os.Exit(1)
	}
}

func run() error {
	records := flag.Int("records", 500_000, "records to load and copy per run")
	size := flag.Int("size", 1024, "value size in bytes")
	partitions := flag.Int("partitions", 12, "source partitions")
	runs := flag.Int("runs", 3, "runs per delivery mode")
	verbose := flag.Bool("v", false, "log the links' state changes")
	flag.Parse()
	if *verbose {
		logLevel = slog.LevelInfo
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pair, err := testbed.StartPair(ctx, testbed.Options{Name: "bench", FullJIT: true, Heap: "1g", Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { _ = pair.Stop() }()
	edge, cloud := pair.Edge, pair.Cloud
	if err := load(ctx, edge, "bench", *partitions, *records, *size); err != nil {
		return err
	}
	bytes := float64(*records) * float64(*size)
	fmt.Printf("one link, %d records of %d B (%.0f MB) in %d partitions; Kafka %s, both clusters on this machine\n",
		*records, *size, bytes/1e6, *partitions, testbed.KafkaVersion())
	fmt.Printf("%-14s %4s %10s %12s %9s\n", "delivery", "run", "seconds", "records/s", "MB/s")
	for _, mode := range []config.Delivery{config.DeliveryExactlyOnce, config.DeliveryAtLeastOnce} {
		var rates []float64
		for r := 1; r <= *runs; r++ {
			took, err := copyOnce(ctx, edge, cloud, mode, fmt.Sprintf("%s-%d", strings.ReplaceAll(string(mode), "-", ""), r), *records)
			if err != nil {
				return err
			}
			rate := float64(*records) / took.Seconds()
			rates = append(rates, rate)
			fmt.Printf("%-14s %4d %10.2f %12.0f %9.1f\n", mode, r, took.Seconds(), rate, rate*float64(*size)/1e6)
		}
		slices.Sort(rates)
		med := rates[len(rates)/2]
		fmt.Printf("%-14s %4s %10s %12.0f %9.1f\n", mode, "med", "", med, med*float64(*size)/1e6)
	}
	return nil
}

// load writes n records of size bytes round-robin over the partitions.
func load(ctx context.Context, c *testbed.Cluster, topic string, partitions, n, size int) error {
	cl, err := c.Client(kgo.ProducerLinger(10*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	value := make([]byte, size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	began := time.Now()
	var firstErr error
	var mu sync.Mutex
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%1000), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "loaded %d records in %s\n", n, time.Since(began).Round(time.Millisecond))
	return firstErr
}

// copyOnce runs a fresh link (its own name and mirror topic) until it has
// copied every record, and returns how long that took.
func copyOnce(ctx context.Context, edge, cloud *testbed.Cluster, mode config.Delivery, name string, n int) (time.Duration, error) {
	y := fmt.Sprintf(`clusters:
  edge: {bootstrap: [%q]}
  cloud: {bootstrap: [%q]}
links:
  - name: %s
    from: edge
    to: cloud
    topics: {include: [bench]}
    rename: "%s.{topic}"
    delivery: %s
`, strings.Join(edge.Bootstrap(), ","), strings.Join(cloud.Bootstrap(), ","), name, name, mode)
	cfg, err := config.Parse("bench.yaml", []byte(y))
	if err != nil {
		return 0, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	l := link.New(cfg, cfg.Links[0], link.Options{}, logger)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- l.Run(rctx) }()
	for l.Status().Records < int64(n) {
		select {
		case err := <-done:
			return 0, fmt.Errorf("link stopped early: %w", err)
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	took := time.Since(began)
	cancel()
	if err := <-done; err != nil {
		return 0, fmt.Errorf("stop link: %w", err)
	}
	return took, nil
}
