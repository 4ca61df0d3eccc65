// Command replbench compares edgelink with MirrorMaker 2 and with the raw
// limit of a Kafka client on this machine, on the same data, in one run.
//
// It starts two single-node Apache Kafka clusters with the test bed, loads
// a dataset into a 12-partition topic at the source for each data profile,
// and then, run after run, measures one replicator after the other copying
// all of it to the destination:
//
//   - raw-consume: a franz-go consumer reading everything and discarding it;
//   - raw-produce: a franz-go producer writing the same records to the destination;
//   - edgelink-eos and edgelink-alo: the edgelink binary (`edgelink run -c`),
//     exactly-once and at-least-once; with -agents N, N such processes of
//     one site share the link (stage "edgelink-eos ×N");
//   - mm2: Apache Kafka's MirrorMaker 2 in dedicated mode.
//
// Every stage runs as a process of its own, so that its CPU time and peak
// memory are its own. After copying, each replicator carries a fixed-rate
// load for measuring end-to-end latency. The report gives medians over the
// runs and can be written into BENCHMARKS.md.
//
//	go run ./internal/bench/replbench -edgelink bin/edgelink -volume 1GB -runs 3 -write BENCHMARKS.md
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		childMain(role, os.Args[1:])
	}
	if err := cliMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "replbench:", err)
		os.Exit(1)
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Stages, in the order each run measures them.
const (
	stageRawConsume = "raw-consume"
	stageRawProduce = "raw-produce"
	stageEOS        = "edgelink-eos"
	stageALO        = "edgelink-alo"
	stageMM2        = "mm2"
	// stageBaseEOS and stageBaseALO run another edgelink binary (-baseline),
	// right after the binary under test, to compare two builds in one run.
	stageBaseEOS = "baseline-eos"
	stageBaseALO = "baseline-alo"
)

var allStages = []string{stageRawConsume, stageRawProduce, stageEOS, stageALO, stageMM2}

// agentStage names the edgelink stage st run by n agents sharing its link:
// st itself for one agent, "st ×n" for more.
func agentStage(st string, n int) string {
	if n <= 1 {
		return st
	}
	return fmt.Sprintf("%s ×%d", st, n)
}

// splitStage returns the stage and the number of agents of a stage name
// made by agentStage.
func splitStage(name string) (st string, agents int) {
	st, n, ok := strings.Cut(name, " ×")
	if !ok {
		return name, 1
	}
	agents, err := strconv.Atoi(n)
	if err != nil || agents < 1 {
		return name, 1
	}
	return st, agents
}

// isEdgelink reports whether st runs an edgelink binary.
func isEdgelink(st string) bool {
	return st == stageEOS || st == stageALO || st == stageBaseEOS || st == stageBaseALO
}

// expandStages returns the stages each run measures: the edgelink stages
// once per agent count (with the baseline's beside them when there is one),
// the others as they are.
func expandStages(stages []string, agents []int, baseline bool) []string {
	var out []string
	for _, s := range stages {
		if s != stageEOS && s != stageALO {
			out = append(out, s)
			continue
		}
		base := map[string]string{stageEOS: stageBaseEOS, stageALO: stageBaseALO}[s]
		for _, n := range agents {
			out = append(out, agentStage(s, n))
			if baseline {
				out = append(out, agentStage(base, n))
			}
		}
	}
	return out
}

// parseAgents parses -agents: agent counts, comma-separated, each at least
// one and none twice.
func parseAgents(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not an agent count (want 1, 2 or a list such as 1,2,3)", strings.TrimSpace(f))
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%d agents listed twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// options configure one bench invocation.
type options struct {
	profiles   []profile
	volume     int64 // payload bytes per profile
	runs       int
	partitions int
	// stages are the stage names each run measures, edgelink stages once
	// per agent count (see expandStages).
	stages []string
	// agents are the numbers of edgelink processes sharing the link that
	// the edgelink stages measure; none means one.
	agents []int
	// edgelink is the binary to run; empty builds one from this module.
	edgelink string
	// baseline, when set, is another edgelink binary measured beside it.
	baseline string
	latency  latencyPlan
	// verify reads every copy back and checks it record by record.
	verify bool
	// stageTimeout bounds one stage's copy.
	stageTimeout time.Duration
	// brokerHeap is each broker's JVM heap.
	brokerHeap string
	// idleTopics is the number of empty topics every replicator selects
	// besides the dataset.
	idleTopics int
	// discovery, when set, is how often the replicators look for new
	// topics (edgelink's discovery_interval, MirrorMaker 2's
	// refresh.topics.interval.seconds); the latency phase waits for it.
	discovery time.Duration
	// quickJIT runs every JVM (brokers, MirrorMaker 2) with the quick C1
	// compiler only: faster to start, slower to run; for smoke tests.
	quickJIT bool
	// write names a markdown file whose bench section is replaced.
	write string
	// pprofDir, when set, receives CPU and heap profiles of an extra,
	// in-process edgelink copy per profile and delivery mode.
	pprofDir string
	// keepLogs keeps the work directory (configurations and logs) and logs
	// edgelink at info level.
	keepLogs bool
	// wan, when enabled, puts a simulated WAN between the replicators and
	// the destination.
	wan wanPlan
	// command is the command line as the report shows it.
	command string

	progress io.Writer
	logger   *slog.Logger
}

// agentCounts returns the agent counts of the edgelink stages.
func (o options) agentCounts() []int {
	if len(o.agents) == 0 {
		return []int{1}
	}
	return o.agents
}

// shared reports whether some edgelink stage runs more than one agent.
func (o options) shared() bool {
	return slices.ContainsFunc(o.agentCounts(), func(n int) bool { return n > 1 })
}

func cliMain(args []string) error {
	fs := flag.NewFlagSet("replbench", flag.ContinueOnError)
	profNames := fs.String("profiles", "1kb,100b,zstd", "data profiles, comma-separated: 1kb (1 KiB values), 100b (100-byte values), zstd (1 KiB values, zstd-compressed source batches)")
	volume := fs.String("volume", "1GB", "payload (keys and values) loaded and copied per profile, e.g. 2GB, 500MB")
	runs := fs.Int("runs", 3, "runs per stage; the report gives the medians")
	partitions := fs.Int("partitions", 12, "partitions of the source topic")
	stages := fs.String("stages", strings.Join(allStages, ","), "stages to measure, comma-separated")
	agents := fs.String("agents", "1", "edgelink processes (same site, same configuration) sharing the link in the edgelink stages; a comma-separated list (1,2,3) measures each count in the same runs, as edgelink-eos, edgelink-eos ×2, ...")
	edgelink := fs.String("edgelink", "", "edgelink binary to measure (default: build one from this module)")
	baseline := fs.String("baseline", "", "another edgelink binary (an earlier build) measured beside -edgelink in the same runs, as baseline-eos and baseline-alo")
	rate := fs.Int("latency-rate", 1000, "records per second of the latency load")
	latDur := fs.Duration("latency-duration", 10*time.Second, "how long the latency load is measured (after its warm-up)")
	warmup := fs.Duration("latency-warmup", 3*time.Second, "latency load sent before measuring")
	verify := fs.Bool("verify", true, "read every copy back and check it record by record (outside the timed window)")
	timeout := fs.Duration("stage-timeout", 30*time.Minute, "longest a stage may take to copy the dataset")
	heap := fs.String("broker-heap", "1g", "JVM heap of each Kafka broker")
	write := fs.String("write", "", "markdown file (BENCHMARKS.md) whose bench section is replaced with the results")
	pprofDir := fs.String("pprof", "", "directory for CPU and heap profiles of an extra in-process edgelink copy per profile")
	idle := fs.Int("idle-topics", 0, "empty source topics every replicator selects besides the dataset (a link whose other topics are quiet)")
	wanRTT := fs.Duration("wan-rtt", 0, "simulate a WAN towards the destination with this round trip (e.g. 600ms); replicators then use WAN settings (edgelink's wan profile, MirrorMaker 2's producer tuned for the link) and the latency phase is skipped")
	wanRate := fs.String("wan-rate", "50Mbit/s", "bandwidth of the simulated WAN")
	verbose := fs.Bool("v", false, "log progress in detail, and keep the edgelink logs (at info level) in the work directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := options{
		runs: *runs, partitions: *partitions, edgelink: *edgelink, baseline: *baseline,
		latency: latencyPlan{rate: *rate, warmup: *warmup, duration: *latDur},
		verify:  *verify, stageTimeout: *timeout, idleTopics: *idle, brokerHeap: *heap, write: *write, pprofDir: *pprofDir,
		command:  "go run ./internal/bench/replbench " + strings.Join(args, " "),
		progress: os.Stderr,
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
		o.keepLogs = true
	}
	o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var err error
	if *wanRTT > 0 {
		o.wan.rtt = *wanRTT
		if o.wan.rate, err = parseWANRate(*wanRate); err != nil {
			return fmt.Errorf("-wan-rate: %w", err)
		}
		if o.wan.rate <= 0 {
			return fmt.Errorf("-wan-rate: want a rate such as 50Mbit/s")
		}
	}
	if o.volume, err = parseBytes(*volume); err != nil {
		return fmt.Errorf("-volume: %w", err)
	}
	for name := range strings.SplitSeq(*profNames, ",") {
		p, err := profileNamed(strings.TrimSpace(name))
		if err != nil {
			return fmt.Errorf("-profiles: %w", err)
		}
		o.profiles = append(o.profiles, p)
	}
	if o.agents, err = parseAgents(*agents); err != nil {
		return fmt.Errorf("-agents: %w", err)
	}
	var picked []string
	for s := range strings.SplitSeq(*stages, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allStages, s) {
			return fmt.Errorf("-stages: unknown stage %q (want some of %s)", s, strings.Join(allStages, ", "))
		}
		picked = append(picked, s)
	}
	o.stages = expandStages(picked, o.agents, o.baseline != "")
	if o.runs < 1 || o.partitions < 1 || o.latency.rate < 1 {
		return fmt.Errorf("-runs, -partitions and -latency-rate must be at least 1")
	}
	ctx, stop := signalContext()
	defer stop()
	rep, err := run(ctx, o)
	if rep != nil {
		rep.printTable(os.Stdout)
	}
	if err != nil {
		return err
	}
	if o.write != "" {
		if err := rep.writeMarkdown(o.write); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote the results into %s\n", o.write)
	}
	return nil
}

// parseBytes parses a size such as 2GB, 500MB, 1.5GiB or 4096.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10},
		{"MiB", 1 << 20},
		{"GiB", 1 << 30},
		{"KB", 1e3},
		{"MB", 1e6},
		{"GB", 1e9},
		{"kB", 1e3},
		{"B", 1},
	}
	mult := 1.0
	num := strings.TrimSpace(s)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%q is not a size (try 2GB or 500MB)", s)
	}
	return int64(f * mult), nil
}
