// Command fleetbench measures the fleet service (`edgelink fleet serve`) at
// 1,000 sites reporting every 10 s, on one real Apache Kafka broker started
// by the test bed on this machine.
//
// The bench publishes the reports of simulated sites (fleet.SimFleet), each
// every -interval, spread evenly over the interval, then starts the
// edgelink binary's fleet service as a process of its own and, once it
// shows every site, measures over two windows:
//
//   - quiet: the reports alone (-quiet);
//   - loaded: the reports and an API load like a handful of open fleet
//     pages: every 2 s a GET /api/v1/fleet?since=SEQ per viewer, a full
//     GET /api/v1/fleet every second and a few GET
//     /api/v1/fleet/sites/{site} per second, gzip accepted (-duration).
//
// It reports the service's CPU (% of one core over each window), its
// resident memory, the API's latencies per route, the fleet page's first
// paint in headless Chromium and, from two real agents' uplinks (one
// managed, one not) dialed through an in-process network that counts their
// bytes, what one site costs on the wire per day.
//
//	go run ./internal/bench/fleetbench -edgelink bin/edgelink -sites 1000 -interval 10s -duration 3m -write BENCHMARKS.md
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
)

func main() {
	if err := cliMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}

// options configure one bench invocation.
type options struct {
	// edgelink is the binary whose fleet service is measured.
	edgelink string
	sites    int
	interval time.Duration
	// warmup runs after the service shows every site, before measuring;
	// quiet is the window with the reports alone, duration the window
	// with the API load too.
	warmup, quiet, duration time.Duration
	// viewers poll the fleet as open pages do; fullRate and siteRate are
	// full fleet and site detail requests per second.
	viewers            int
	fullRate, siteRate float64
	// paintLoads is how many times the page is loaded in Chromium; 0
	// skips the first paint.
	paintLoads int
	// wire runs the two uplinks whose bytes are counted.
	wire       bool
	brokerHeap string
	// write names a markdown file whose fleet section is replaced.
	write string
	// pprofDir, when set, receives a CPU profile of the service over (up
	// to 50 s of) the loaded window and a heap profile at its end.
	pprofDir string
	keepLogs bool
	// command is the command line as the report shows it.
	command string
	logger  *slog.Logger
}

func cliMain(args []string) error {
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	edgelink := fs.String("edgelink", "bin/edgelink", "edgelink binary whose fleet service is measured")
	sites := fs.Int("sites", 1000, "simulated sites reporting")
	interval := fs.Duration("interval", 10*time.Second, "report interval of every site (fleet.interval)")
	warmup := fs.Duration("warmup", 15*time.Second, "time after the service shows every site before measuring")
	quiet := fs.Duration("quiet", time.Minute, "window measured with the reports alone, before the API load (0 skips it)")
	duration := fs.Duration("duration", 3*time.Minute, "window measured with the reports and the API load")
	viewers := fs.Int("viewers", 5, "open fleet pages simulated: each asks GET /api/v1/fleet?since=SEQ every 2 s")
	fullRate := fs.Float64("full-rate", 1, "full GET /api/v1/fleet per second")
	siteRate := fs.Float64("site-rate", 3, "GET /api/v1/fleet/sites/{site} per second")
	paint := fs.Int("paint-loads", 5, "loads of the fleet page in headless Chromium for its first paint (0 skips)")
	wire := fs.Bool("wire", true, "count the bytes of a managed and an unmanaged agent's uplink over the windows")
	heap := fs.String("broker-heap", "1g", "JVM heap of the Kafka broker")
	write := fs.String("write", "", "markdown file (BENCHMARKS.md) whose \"Fleet service\" section is replaced with the results")
	pprofDir := fs.String("pprof", "", "directory for a CPU profile of the service over the loaded window (50 s at most) and a heap profile at its end (turns on the service's http.pprof)")
	verbose := fs.Bool("v", false, "log in detail and keep the work directory (configuration, service log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := options{
		edgelink: *edgelink, sites: *sites, interval: *interval, warmup: *warmup, quiet: *quiet, duration: *duration,
		viewers: *viewers, fullRate: *fullRate, siteRate: *siteRate, paintLoads: *paint, wire: *wire,
		brokerHeap: *heap, write: *write, pprofDir: *pprofDir, keepLogs: *verbose,
		command: "go run ./internal/bench/fleetbench " + strings.Join(args, " "),
	}
	switch {
	case o.sites < 1:
		return fmt.Errorf("-sites must be at least 1")
	case o.interval < time.Second:
		return fmt.Errorf("-interval must be at least 1s")
	case o.duration < 10*time.Second:
		return fmt.Errorf("-duration must be at least 10s")
	case o.quiet < 0 || o.warmup < 0 || o.viewers < 0 || o.fullRate < 0 || o.siteRate < 0 || o.paintLoads < 0:
		return fmt.Errorf("-quiet, -warmup, -viewers, -full-rate, -site-rate and -paint-loads cannot be negative")
	}
	if _, err := os.Stat(o.edgelink); err != nil {
		return fmt.Errorf("-edgelink: %w (run make build)", err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
