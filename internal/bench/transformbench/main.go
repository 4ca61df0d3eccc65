// Command transformbench measures what a link's transforms cost and save
// between two real Apache Kafka clusters started by the test bed on this
// machine. It loads JSON sensor readings shaped like the demo's telemetry
// into a source topic, then times a link copying all of them with no
// transforms, with a filter keeping about 1% and with a one-minute
// aggregate per machine: side by side, the variants' runs interleaved,
// medians of several runs. It reports each variant's payload and wire bytes
// to the destination (also once with the wan profile), and runs the Go
// benchmarks of the stateful transforms' memory at 100,000 keys.
//
//	go run ./internal/bench/transformbench -records 1000000 -partitions 12 -runs 3 [-write BENCHMARKS.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/edgelink/edgelink/internal/bench/procstat"
	"github.com/edgelink/edgelink/internal/testbed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "transformbench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	records, partitions, machines, runs int
	threshold                           float64
	seed                                uint64
	wan, state, warmup                  bool
	write, pprofDir                     string
	timeout                             time.Duration
	verbose                             bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("transformbench", flag.ContinueOnError)
	fs.IntVar(&o.records, "records", 1_000_000, "readings to load and copy per run")
	fs.IntVar(&o.partitions, "partitions", 12, "source partitions")
	fs.IntVar(&o.machines, "machines", 200, "machines, each reading once a second of event time")
	fs.IntVar(&o.runs, "runs", 3, "runs per variant; the report gives the medians")
	fs.Float64Var(&o.threshold, "threshold", 79.0, "the filter keeps readings above this many °C (79.0 keeps about 1%)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the simulated readings")
	fs.BoolVar(&o.wan, "wan", true, "also run each variant once with profile wan (zstd) for its bytes")
	fs.BoolVar(&o.warmup, "warmup", true, "run one plain link first, not counted (the first link creates the checkpoint topic)")
	fs.BoolVar(&o.state, "state", true, "run the stateful transforms' Go benchmarks at 100,000 keys")
	fs.StringVar(&o.write, "write", "", "rewrite the bench's section of this markdown file (e.g. BENCHMARKS.md)")
	fs.StringVar(&o.pprofDir, "pprof", "", "write a CPU profile of each run into this directory")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "the longest one run may take")
	fs.BoolVar(&o.verbose, "v", false, "log the links' state changes")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.records < 1 || o.partitions < 1 || o.machines < 1 || o.runs < 1 {
		return o, fmt.Errorf("-records, -partitions, -machines and -runs must be at least 1")
	}
	return o, nil
}

func run() error {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := &report{
		o: o, began: time.Now(), machine: procstat.Machine(ctx),
		command: strings.TrimSpace("go run ./internal/bench/transformbench " + strings.Join(os.Args[1:], " ")),
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return err
		}
	}
	if o.state {
		// First, while the clusters do not run yet.
		fmt.Fprintln(os.Stderr, "running", strings.Join(stateCommand, " "))
		if rep.state, err = runStateBench(ctx); err != nil {
			return err
		}
	}

	pair, err := testbed.StartPair(ctx, testbed.Options{Name: "tbench", FullJIT: true, Heap: "1g", Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { _ = pair.Stop() }()
	// The readings end about now: their timestamps are recent, well within
	// the topics' retention.
	secs := (o.records + o.machines - 1) / o.machines
	start := time.Now().Add(-time.Duration(secs) * time.Second).Truncate(time.Minute)
	data, err := load(ctx, pair.Edge, "telemetry", o.partitions, newTelemetry(o.machines, o.records, start, o.seed), o.threshold)
	if err != nil {
		return err
	}
	rep.data = data
	b := &bench{
		edge: pair.Edge, cloud: pair.Cloud, data: data, timeout: o.timeout, pprofDir: o.pprofDir,
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	vs := variants(o.threshold)
	rep.variants = vs
	rep.printData(os.Stdout)
	printHeader(os.Stdout)
	if o.warmup {
		res, err := b.runOnce(ctx, vs[0], "lan", 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "warm-up run (not counted): %.2f s\n", res.took.Seconds())
	}
	// Run r of every variant, then run r+1: a noisy minute hurts all of
	// them alike. Each run starts with another variant, so that none is
	// always first after a pause.
	for r := 1; r <= o.runs; r++ {
		for i := range vs {
			v := vs[(i+r-1)%len(vs)]
			res, err := b.runOnce(ctx, v, "lan", r)
			if err != nil {
				return err
			}
			rep.runs = append(rep.runs, res)
			printRun(os.Stdout, res, data)
		}
	}
	if o.wan {
		for _, v := range vs {
			res, err := b.runOnce(ctx, v, "wan", 1)
			if err != nil {
				return err
			}
			rep.wan = append(rep.wan, res)
			printRun(os.Stdout, res, data)
		}
	}
	rep.took = time.Since(rep.began)
	fmt.Println()
	fmt.Print(rep.markdown())
	if o.write != "" {
		if err := rep.writeMarkdown(o.write); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", o.write)
	}
	return nil
}
