package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/edgelink/edgelink/internal/bench/benchbin"
	"github.com/edgelink/edgelink/internal/bench/procstat"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/testbed"
)

// warmupRecords is the size of the warm-up topic: enough for the brokers'
// JIT compilers to settle, as on brokers that have run for a while.
const warmupRecords = 100_000

// run runs the whole bench: clusters, data, runs, report.
func run(ctx context.Context, o options) (err error) {
	rep := &report{o: o, began: time.Now(), machine: procstat.Machine(ctx)}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "airgapbench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A directory given with -dir is the caller's: it stays.
	if o.dir == "" && !o.keep {
		defer func() {
			if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
				err = rerr
			}
		}()
	} else {
		fmt.Fprintln(os.Stderr, "working directory (kept):", dir)
	}
	bin, err := benchbin.Prepare(ctx, o.edgelink, dir)
	if err != nil {
		return err
	}
	rep.version = benchbin.Version(ctx, bin)

	pair, err := testbed.StartPair(ctx, testbed.Options{Name: "agbench", FullJIT: true, Heap: "1g", Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { _ = pair.Stop() }()
	b := &bench{o: o, pair: pair, dir: dir, bin: bin, config: filepath.Join(dir, "edgelink.yaml")}
	if b.src, err = pair.Edge.Client(); err != nil {
		return err
	}
	defer b.src.Close()
	if b.dst, err = pair.Cloud.Client(); err != nil {
		return err
	}
	defer b.dst.Close()
	if err := b.makeKeys(ctx); err != nil {
		return err
	}
	y := configYAML(pair.Edge.Bootstrap(), pair.Cloud.Bootstrap(), b.keys, o.chunkSize, links(o.runs))
	if _, err := config.Parse(b.config, []byte(y)); err != nil {
		return fmt.Errorf("the bench's configuration: %w", err)
	}
	if err := os.WriteFile(b.config, []byte(y), 0o600); err != nil {
		return err
	}

	if b.data, err = load(ctx, pair.Edge, sourceTopic, o.partitions, recordsFor(o.volume, o.size), newGenerator(o.seed, o.size)); err != nil {
		return err
	}
	rep.data = b.data
	byName := make(map[string]link)
	for _, l := range links(o.runs) {
		byName[l.name] = l
	}
	if o.warmup {
		if _, err := load(ctx, pair.Edge, warmupTopic, o.partitions, warmupRecords, newGenerator(o.seed+1, o.size)); err != nil {
			return err
		}
		res, err := b.carry(ctx, byName["warmup"], 0, warmupRecords)
		if err != nil {
			return err
		}
		if res.check != "ok" {
			return fmt.Errorf("warm-up: %w: %s", errCheck, res.check)
		}
		fmt.Fprintf(os.Stderr, "warm-up (not counted): export %.2f s, import %.2f s\n", res.exp.wall.Seconds(), res.imp.wall.Seconds())
	}

	rep.printData(os.Stdout)
	printHeader(os.Stdout)
	want := int64(b.data.records)
	var failed []string
	do := func(l link, run int) error {
		res, err := b.carry(ctx, l, run, want)
		if err != nil {
			return err
		}
		printRun(os.Stdout, res, b.data)
		if res.check != "ok" {
			failed = append(failed, l.name+": "+res.check)
		}
		rep.runs = append(rep.runs, res)
		return nil
	}
	for r := 1; r <= o.runs; r++ {
		if err := do(byName[fmt.Sprintf("p%d", r)], r); err != nil {
			return err
		}
	}
	if o.encrypted {
		if err := do(byName["e1"], 1); err != nil {
			return err
		}
	}
	if o.pprofDir != "" {
		if rep.profile, err = b.profile(ctx, byName["prof"], want); err != nil {
			return err
		}
	}
	rep.took = time.Since(rep.began)
	fmt.Println()
	fmt.Print(rep.markdown())
	if len(failed) > 0 {
		return fmt.Errorf("%w: %v", errCheck, failed)
	}
	if o.write != "" {
		if err := section.Write(o.write, rep.markdown()); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", o.write)
	}
	return nil
}
