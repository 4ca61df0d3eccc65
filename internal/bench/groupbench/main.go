// Command groupbench measures a link's consumer group sync between two real
// Apache Kafka clusters started by the test bed on this machine, and
// compares its translation with MirrorMaker 2's checkpoint connector on the
// same data.
//
// It loads a source topic with small records written by transactional
// producers that commit some transactions and abort others, so that the
// source's offsets have gaps (aborted records, transaction markers) and a
// mirror's offsets differ from them. Per run it commits thousands of
// consumer groups at the source at random offsets (some caught up at the
// end), runs the edgelink binary (`edgelink run -c`) with a link that
// copies the topic and syncs the groups, times the sync from its status
// API, and checks every group's every partition at the destination against
// the exact offset, computed from the mirror itself (every mirrored record
// carries its source offset). Then MirrorMaker 2, with its checkpoint
// connector syncing group offsets, runs once on the same topic with groups
// at the same offsets, and its translations are checked the same way (each
// record's value names it, so its mirror tells its source offset).
//
//	go run ./internal/bench/groupbench -edgelink bin/edgelink -groups 10000 -runs 3 [-write BENCHMARKS.md]
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
		fmt.Fprintln(os.Stderr, "groupbench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	partitions, records, groups, runs int
	// endShare is the share of groups committed at the end of every
	// partition (caught up); abortShare the share of transactions aborted;
	// maxTxn the most records of one transaction; producers how many
	// transactional producers load the topic at once.
	endShare, abortShare float64
	maxTxn, producers    int
	// commitWorkers bounds the bench's own commits at once.
	commitWorkers int
	// interval is the link's groups.interval; syncTimeout the longest a
	// run waits for a full round after the link caught up.
	interval, syncTimeout time.Duration
	// mm2 runs MirrorMaker 2 as well; mm2Max bounds its run, mm2Settle is
	// how long its translations must stay the same to count as done,
	// mm2Poll how often they are read, mm2Tasks its tasks.max.
	mm2                        bool
	mm2Max, mm2Settle, mm2Poll time.Duration
	mm2Tasks                   int
	seed                       uint64
	// edgelink is the binary to run; "" builds one.
	edgelink        string
	write, pprofDir string
	dir             string
	keep            bool
	// timeout bounds the whole invocation.
	timeout time.Duration
	verbose bool
	// command is how the bench was run, for the report.
	command string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("groupbench", flag.ContinueOnError)
	fs.IntVar(&o.partitions, "partitions", 12, "partitions of the source topic")
	fs.IntVar(&o.records, "records", 200_000, "records committed at the source (aborted ones come on top)")
	fs.IntVar(&o.groups, "groups", 10_000, "consumer groups committed at the source per run, each on every partition")
	fs.IntVar(&o.runs, "runs", 3, "edgelink runs, each with fresh groups; the report gives the medians")
	fs.Float64Var(&o.endShare, "end-share", 0.1, "share of the groups committed at the end of every partition (caught up)")
	fs.Float64Var(&o.abortShare, "abort-share", 0.2, "share of the load's transactions that abort")
	fs.IntVar(&o.maxTxn, "max-txn", 200, "most records of one transaction (each has 1 to max-txn, uniformly)")
	fs.IntVar(&o.producers, "producers", 4, "transactional producers loading the topic at once")
	fs.IntVar(&o.commitWorkers, "commit-workers", 32, "the bench's own group commits at once")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "the link's groups.interval")
	fs.DurationVar(&o.syncTimeout, "sync-timeout", 2*time.Minute, "the longest a run waits for a full sync round after the link caught up")
	fs.BoolVar(&o.mm2, "mm2", true, "also run MirrorMaker 2 with its checkpoint connector on the same data")
	fs.DurationVar(&o.mm2Max, "mm2-max", 4*time.Minute, "the longest MirrorMaker 2 runs")
	fs.DurationVar(&o.mm2Settle, "mm2-settle", 30*time.Second, "MirrorMaker 2 is done when its mirror caught up and its group offsets stayed the same this long")
	fs.DurationVar(&o.mm2Poll, "mm2-poll", 5*time.Second, "how often the bench reads MirrorMaker 2's group offsets at the destination")
	fs.IntVar(&o.mm2Tasks, "mm2-tasks", 12, "MirrorMaker 2's tasks.max")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the load and of the groups' offsets")
	fs.StringVar(&o.edgelink, "edgelink", "", "the edgelink binary to run (default: build ./cmd/edgelink)")
	fs.StringVar(&o.write, "write", "", "rewrite the bench's section of this markdown file (e.g. BENCHMARKS.md)")
	fs.StringVar(&o.pprofDir, "pprof", "", "write a CPU profile of edgelink (from /debug/pprof) over run 1's first full sync round into this directory")
	fs.StringVar(&o.dir, "dir", "", "where configuration, logs and MirrorMaker 2's files go; it stays (default: a new temporary directory, removed at the end unless -keep)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "the longest the whole bench may take")
	fs.BoolVar(&o.verbose, "v", false, "let edgelink log at info level")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case o.partitions < 1 || o.records < 1 || o.groups < 1 || o.runs < 1:
		return o, errors.New("-partitions, -records, -groups and -runs must be at least 1")
	case o.groups > 99_999:
		return o, errors.New("-groups must be at most 99999")
	case o.endShare < 0 || o.endShare > 1 || o.abortShare < 0 || o.abortShare >= 1:
		return o, errors.New("-end-share must be within [0, 1] and -abort-share within [0, 1)")
	case o.maxTxn < 1 || o.producers < 1 || o.commitWorkers < 1 || o.mm2Tasks < 1:
		return o, errors.New("-max-txn, -producers, -commit-workers and -mm2-tasks must be at least 1")
	case o.interval < 100*time.Millisecond:
		return o, errors.New("-interval must be at least 100ms (edgelink's least groups.interval)")
	case o.syncTimeout <= 0 || o.timeout <= 0 || o.mm2Max <= 0 || o.mm2Settle <= 0 || o.mm2Poll <= 0:
		return o, errors.New("-sync-timeout, -timeout, -mm2-max, -mm2-settle and -mm2-poll must be positive")
	}
	o.command = strings.TrimSpace("go run ./internal/bench/groupbench " + strings.Join(args, " "))
	return o, nil
}
