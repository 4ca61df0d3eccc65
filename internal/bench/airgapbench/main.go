// Command airgapbench measures a link crossing an air gap in bundles
// between two real Apache Kafka clusters started by the test bed on this
// machine. It loads 1 KiB records into a source topic, then, per run, times
// the edgelink binary exporting all of them into a signed bundle directory
// (edgelink bundle export) and importing that bundle into the other cluster
// (edgelink bundle import), each as a process of its own whose CPU time and
// peak resident set it reads from /proc. It checks every import record by
// record against the source (package verify), runs once more with the
// bundle encrypted, and reports the medians.
//
//	go run ./internal/bench/airgapbench -volume 1GB -partitions 12 -runs 3 [-write BENCHMARKS.md] [-pprof DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/edgelink/edgelink/internal/config"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, o)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "airgapbench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	// volume is the payload (keys and values) to load, in bytes, as
	// given in volumeText; size the value size of a record.
	volume            int64
	volumeText        string
	size              int
	partitions, runs  int
	encrypted, warmup bool
	// chunkSize is the links' bundle.chunk_size, "" for the default.
	chunkSize string
	seed      uint64
	// edgelink is the binary to run; "" builds one.
	edgelink        string
	write, pprofDir string
	dir             string
	keep            bool
	timeout         time.Duration
	verbose         bool
	// command is how the bench was run, for the report.
	command string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("airgapbench", flag.ContinueOnError)
	fs.StringVar(&o.volumeText, "volume", "1GB", "payload (keys and values) to load and carry per run, e.g. 1GB, 200MB")
	fs.IntVar(&o.size, "size", 1024, "value size of a record, bytes")
	fs.IntVar(&o.partitions, "partitions", 12, "source partitions")
	fs.IntVar(&o.runs, "runs", 3, "runs (export then import); the report gives the medians")
	fs.BoolVar(&o.encrypted, "encrypted", true, "also run once with the bundle encrypted (age, encrypt_to and decrypt_with)")
	fs.BoolVar(&o.warmup, "warmup", true, "export and import a small topic first, not counted (the first import creates the destination's internal topics)")
	fs.StringVar(&o.chunkSize, "chunk-size", "", "the links' bundle.chunk_size, e.g. 64MiB (default: edgelink's)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the records' random bytes")
	fs.StringVar(&o.edgelink, "edgelink", "", "the edgelink binary to run (default: build ./cmd/edgelink)")
	fs.StringVar(&o.write, "write", "", "rewrite the bench's section of this markdown file (e.g. BENCHMARKS.md)")
	fs.StringVar(&o.pprofDir, "pprof", "", "also export and import once inside this process under the CPU profiler, and write the profiles into this directory")
	fs.StringVar(&o.dir, "dir", "", "where the bundles, keys, configuration and edgelink's logs go; it stays (default: a new temporary directory, removed at the end unless -keep)")
	fs.BoolVar(&o.keep, "keep", false, "keep the bundles and the working directory")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "the longest one export or import may take")
	fs.BoolVar(&o.verbose, "v", false, "let edgelink log at info level")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var err error
	if o.volume, err = config.ParseSize(o.volumeText); err != nil {
		return o, fmt.Errorf("-volume: %w", err)
	}
	if o.chunkSize != "" {
		if _, err := config.ParseSize(o.chunkSize); err != nil {
			return o, fmt.Errorf("-chunk-size: %w", err)
		}
	}
	if o.size < 1 || o.partitions < 1 || o.runs < 1 {
		return o, errors.New("-size, -partitions and -runs must be at least 1")
	}
	if o.volume < int64(o.size) {
		return o, fmt.Errorf("-volume %s is less than one record of -size %d", o.volumeText, o.size)
	}
	if o.timeout <= 0 {
		return o, errors.New("-timeout must be positive")
	}
	o.command = strings.TrimSpace("go run ./internal/bench/airgapbench " + strings.Join(args, " "))
	return o, nil
}
