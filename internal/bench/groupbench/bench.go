package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/bench/benchbin"
	"github.com/edgelink/edgelink/internal/bench/procstat"
	"github.com/edgelink/edgelink/internal/testbed"
)

// bench holds what every run uses.
type bench struct {
	o    options
	pair *testbed.Pair
	dir  string
	bin  string
	// srcCl and dstCl are clients of the two clusters, srcAdm and dstAdm
	// their admin clients.
	srcCl, dstCl   *kgo.Client
	srcAdm, dstAdm *kadm.Client
	data           *dataset
	// configExample is the configuration of the last edgelink run.
	configExample string
}

// run runs the whole bench: clusters, data, edgelink's runs, MirrorMaker
// 2's, report.
func run(ctx context.Context, o options) (err error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	rep := &report{o: o, began: time.Now(), machine: procstat.Machine(ctx)}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "groupbench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
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
	if o.mm2 {
		// Fetched before anything is timed.
		if _, err := testbed.EnsureMirrorMakerRuntime(ctx, os.Stderr); err != nil {
			return err
		}
	}
	pair, err := testbed.StartPair(ctx, testbed.Options{Name: "grpbench", FullJIT: true, Heap: "1g", Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer func() { _ = pair.Stop() }()
	b := &bench{o: o, pair: pair, dir: dir, bin: bin}
	if b.srcCl, err = pair.Edge.Client(); err != nil {
		return err
	}
	defer b.srcCl.Close()
	if b.dstCl, err = pair.Cloud.Client(); err != nil {
		return err
	}
	defer b.dstCl.Close()
	b.srcAdm, b.dstAdm = kadm.NewClient(b.srcCl), kadm.NewClient(b.dstCl)

	if b.data, err = load(ctx, pair.Edge, o); err != nil {
		return err
	}
	rep.data = b.data
	for r := 1; r <= o.runs; r++ {
		res, err := b.edgelinkRun(ctx, r)
		if err != nil {
			return fmt.Errorf("run %d: %w", r, err)
		}
		rep.runs = append(rep.runs, res)
	}
	rep.config = b.configExample
	if o.mm2 {
		// Within the whole bench's time: MirrorMaker 2 runs at most until
		// 90 s (its stop, the check, the report) before the deadline.
		if dl, ok := ctx.Deadline(); ok {
			if left := time.Until(dl) - 90*time.Second; left < b.o.mm2Max {
				b.o.mm2Max = max(left, time.Minute)
				rep.o.mm2Max = b.o.mm2Max
				fmt.Fprintf(os.Stderr, "MirrorMaker 2 runs at most %s, within -timeout\n", b.o.mm2Max.Round(time.Second))
			}
		}
		if rep.mm2, err = b.mm2(ctx); err != nil {
			return fmt.Errorf("MirrorMaker 2: %w", err)
		}
	}
	rep.took = time.Since(rep.began)
	md := rep.markdown()
	fmt.Println()
	fmt.Print(md)
	if o.write != "" {
		if err := section.Write(o.write, md); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "wrote", o.write)
	}
	return nil
}
