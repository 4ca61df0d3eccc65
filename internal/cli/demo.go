package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/demo"
	"github.com/edgelink/edgelink/internal/observe"
	"github.com/edgelink/edgelink/internal/status"
)

// demoFlags are the demo's options from the command line.
type demoFlags struct {
	rate     int
	duration time.Duration
	listen   string
	dataDir  string
	reset    bool
}

func newDemoCmd(g *globals) *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See edgelink work: edge and cloud clusters, a simulated plant, a link and the status page, in one process",
		Long: "Run a self-contained demo that needs nothing installed: two in-process\n" +
			"Kafka-protocol clusters, \"edge\" and \"cloud\", a simulated plant whose machines\n" +
			"write temperature and vibration readings and occasional alerts at the edge, and\n" +
			"the link telemetry-up replicating them to the cloud, exactly once, with the real\n" +
			"engine, run by two agents that share it as two `edgelink run` processes would.\n" +
			"Open the status page it prints: \"Cut link\" takes the simulated WAN between\n" +
			"edge and cloud down, so the backlog grows while the plant keeps writing;\n" +
			"\"Restore link\" brings it back and the backlog drains. \"Kill agent\" kills the\n" +
			"second agent as if its process died: within about 10 seconds the first takes\n" +
			"all its slots over; \"Start agent\" starts it again and it gets its share back.\n\n" +
			"Both clusters keep their data in --data-dir: a demo started again on the same\n" +
			"directory resumes (the cloud keeps what was replicated and the link continues\n" +
			"from its checkpoints there); --reset starts afresh. Logs go to demo.log in\n" +
			"that directory. Ctrl-C (or --duration) stops the demo cleanly and saves the\n" +
			"data.",
		Example: "  edgelink demo\n" +
			"  edgelink demo --rate 1000 --listen 127.0.0.1:8080\n" +
			"  edgelink demo --duration 2m --data-dir /tmp/edgelink-demo --reset",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g, f)
		},
	}
	cmd.Flags().IntVar(&f.rate, "rate", 200, "records per second the simulated plant writes (0: none)")
	cmd.Flags().DurationVar(&f.duration, "duration", 0, "stop after this long (0: run until Ctrl-C)")
	cmd.Flags().StringVar(&f.listen, "listen", config.DefaultHTTPListen, "address of the status page (host:port; port 0 picks a free one)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", defaultDemoDir(), "where the edge and cloud clusters keep their data")
	cmd.Flags().BoolVar(&f.reset, "reset", false, "remove the demo data in --data-dir first and start afresh")
	return cmd
}

// defaultDemoDir is the user's cache directory's edgelink/demo.
func defaultDemoDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "edgelink", "demo")
	}
	return filepath.Join(os.TempDir(), "edgelink-demo")
}

func runDemo(ctx context.Context, g *globals, f demoFlags) error {
	if f.rate < 0 {
		return usageError{fmt.Errorf("--rate %d: want 0 or more records per second", f.rate)}
	}
	if f.duration < 0 {
		return usageError{fmt.Errorf("--duration %s: want 0 (until Ctrl-C) or more", f.duration)}
	}
	if f.reset {
		if err := demo.Reset(f.dataDir); err != nil {
			return err
		}
	}
	if err := demo.Prepare(f.dataDir); err != nil {
		return err
	}
	logPath := filepath.Join(f.dataDir, "demo.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the demo log: %w", err)
	}
	defer logFile.Close()
	logger, err := (&globals{logLevel: g.logLevel, logFormat: g.logFormat, stderr: logFile}).logger()
	if err != nil {
		return err
	}

	ctx, stop := demoContext(ctx, g, f.duration)
	defer stop()
	d, err := demo.New(ctx, demo.Options{
		DataDir: f.dataDir, Listen: f.listen, Rate: f.rate, Version: Version(), Logger: logger,
	})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w (is another demo or agent running? choose another address with --listen, e.g. --listen 127.0.0.1:0)", err)
		}
		return err
	}
	printDemoIntro(g.stdout, d, f, logPath)

	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	term := newDemoTerminal(g.stdout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			term.final(d)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			fmt.Fprintf(g.stdout, "stopped; the data is saved in %s: run `edgelink demo` again to resume, with --reset to start afresh\n", f.dataDir)
			return nil
		case <-tick.C:
			term.update(d)
		}
	}
}

// demoContext ends on --duration, SIGINT or SIGTERM; a second signal exits
// at once.
func demoContext(parent context.Context, g *globals, duration time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	if duration > 0 {
		var cancelTimeout context.CancelFunc
		ctx, cancelTimeout = context.WithTimeout(ctx, duration)
		prev := cancel
		cancel = func() { cancelTimeout(); prev() }
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			fmt.Fprintln(g.stdout, "\nstopping: saving the clusters' data (Ctrl-C again to exit at once)")
			cancel()
		case <-stopped:
			return
		}
		select {
		case <-sigs:
			os.Exit(ExitFailure)
		case <-stopped:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(stopped)
		cancel()
	}
}

func printDemoIntro(w io.Writer, d *demo.Demo, f demoFlags, logPath string) {
	data := "new"
	if d.Resumed() {
		data = "resumed: the cloud keeps what earlier runs replicated"
	}
	var topics []string
	for _, t := range demo.Topics() {
		topics = append(topics, t[0])
	}
	fmt.Fprintf(w, "edgelink demo: an edge site replicating to the cloud, all in this process\n")
	fmt.Fprintf(w, "  data     %s (%s)\n", f.dataDir, data)
	if f.rate > 0 {
		fmt.Fprintf(w, "  plant    %d machines writing about %d records/s to %s at the edge\n", demo.Machines(), f.rate, strings.Join(topics, ", "))
	} else {
		fmt.Fprintf(w, "  plant    idle (--rate 0): the link replicates what the edge already holds\n")
	}
	fmt.Fprintf(w, "  link     %s: edge → cloud, exactly once, as %s.<topic>, shared by agents A and B\n", demo.LinkName, demo.Site)
	fmt.Fprintf(w, "  link     %s: %s rolled up at the edge into 10 s windows per machine, as %s.%s.10s\n", demo.RollupLinkName, demo.TopicTemperature, demo.Site, demo.TopicTemperature)
	fmt.Fprintf(w, "  logs     %s\n", logPath)
	fmt.Fprintf(w, "\n  status page: %s\n", d.URL())
	fmt.Fprintf(w, "  \"Cut link\" there takes the WAN down; \"Restore link\" brings it back.\n")
	fmt.Fprintf(w, "  \"Kill agent\" kills agent B: A takes its slots over; \"Start agent\" brings B back. Ctrl-C stops.\n")
	fmt.Fprintf(w, "  fleet page:  %s\n", d.FleetURL())
	fmt.Fprintf(w, "  this site among %d simulated ones: some lagging, one cut off, one silent, one on an older version.\n\n", demo.SimulatedSites)
}

// demoTerminal prints the link's events as they happen and a compact live
// line: rewritten in place on a terminal, every 10 seconds otherwise.
type demoTerminal struct {
	w        io.Writer
	tty      bool
	printed  map[status.Event]bool // events printed and still in the status
	lastLine time.Time
	started  time.Time
}

func newDemoTerminal(w io.Writer) *demoTerminal {
	t := &demoTerminal{w: w, started: time.Now(), printed: make(map[status.Event]bool)}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			t.tty = true
		}
	}
	return t
}

func (t *demoTerminal) update(d *demo.Demo) {
	st := d.Status()
	if len(st.Links) == 0 {
		return
	}
	l := st.Links[0]
	clear := ""
	if t.tty {
		clear = "\r\033[K"
	}
	current := make(map[status.Event]bool, len(l.Events))
	for i := len(l.Events) - 1; i >= 0; i-- { // oldest first
		e := l.Events[i]
		current[e] = true
		if t.printed[e] || e.Time.Before(t.started) {
			continue
		}
		fmt.Fprintf(t.w, "%s%s  %-7s %s\n", clear, e.Time.Local().Format("15:04:05"), e.Kind, e.Message)
	}
	t.printed = current
	line := demoLine(l, d.Written(), d.AgentKilled())
	switch {
	case t.tty:
		fmt.Fprint(t.w, clear+line)
	case time.Since(t.lastLine) >= 10*time.Second:
		fmt.Fprintln(t.w, line)
		t.lastLine = time.Now()
	}
}

// final ends the live line.
func (t *demoTerminal) final(d *demo.Demo) {
	if t.tty {
		fmt.Fprint(t.w, "\r\033[K")
	}
	if st := d.Status(); len(st.Links) > 0 {
		fmt.Fprintln(t.w, demoLine(st.Links[0], d.Written(), d.AgentKilled()))
	}
}

// demoLine is the live line: agent A's view of the link (state, records
// it replicated and its rate, its lag, the slots it holds), what the plant
// wrote, the WAN and agent B.
func demoLine(l status.LinkStatus, written int64, killed bool) string {
	wan := "up"
	if l.LinkCut != nil && *l.LinkCut {
		wan = "CUT"
	}
	lag := fmt.Sprintf("lag %s records", observe.FormatCount(l.Backlog.Records))
	if l.Backlog.Records > 0 {
		lag += fmt.Sprintf(", %s behind", observe.FormatSeconds(l.Backlog.AgeSeconds))
	}
	agents := "agent B up"
	if killed {
		agents = "agent B KILLED"
	}
	if sh := l.Sharing; sh != nil {
		agents = fmt.Sprintf("A holds %d/%d slots, %s", len(sh.Held), sh.SlotCount, agents)
	}
	return fmt.Sprintf("%s  %-12s replicated %s (%s/s)  %s  plant wrote %s  wan %s  %s",
		l.Name, l.State, observe.FormatCount(l.Records), observe.FormatCount(int64(math.Round(l.RecordsPerSecond))), lag,
		observe.FormatCount(written), wan, agents)
}
