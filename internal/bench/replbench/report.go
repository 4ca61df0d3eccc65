package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgelink/edgelink/internal/testbed"
)

// report collects the results of one invocation.
type report struct {
	o               options
	began           time.Time
	took            time.Duration
	machine         string
	edgelinkVersion string
	mm2Props        string
	datasets        []dataset
	results         []result
}

func (rep *report) add(r result) { rep.results = append(rep.results, r) }

// summary is the medians of one profile's stage over its runs. Each figure
// is the median of its own values.
type summary struct {
	profile, stage   string
	runs             int
	mbps, rps        float64
	startup, cpu     float64 // seconds
	cpuPerGB         float64
	rssMB            float64
	p50, p99         float64 // milliseconds; NaN when not measured
	latMissing       int
	check            string
	codec            string
	mbPerCPUs        float64
	hasLat, hasCheck bool
}

func (rep *report) summaries() []summary {
	var out []summary
	for _, d := range rep.datasets {
		for _, st := range rep.o.stages {
			var rs []result
			for _, r := range rep.results {
				if r.Profile == d.profile.name && r.Stage == st {
					rs = append(rs, r)
				}
			}
			if len(rs) == 0 {
				continue
			}
			out = append(out, summarize(d.profile.name, st, rs))
		}
	}
	return out
}

func summarize(prof, stage string, rs []result) summary {
	s := summary{profile: prof, stage: stage, runs: len(rs), codec: rs[len(rs)-1].Codec}
	pick := func(f func(r result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	s.mbps = pick(result.mbps)
	s.rps = pick(result.rps)
	s.startup = pick(func(r result) float64 { return r.Startup.Seconds() })
	s.cpu = pick(func(r result) float64 { return r.CPU.Seconds() })
	s.cpuPerGB = pick(func(r result) float64 { return r.CPU.Seconds() / (float64(r.Bytes) / 1e9) })
	s.mbPerCPUs = pick(func(r result) float64 { return float64(r.Bytes) / 1e6 / max(r.CPU.Seconds(), 0.01) })
	s.rssMB = pick(func(r result) float64 { return float64(r.PeakRSS) / (1 << 20) })
	if rs[0].Latency != nil {
		s.hasLat = true
		s.p50 = pick(func(r result) float64 { return ms(r.Latency.p50) })
		s.p99 = pick(func(r result) float64 { return ms(r.Latency.p99) })
		for _, r := range rs {
			s.latMissing += r.Latency.missing
		}
	}
	if rs[0].Check != nil {
		s.hasCheck = true
		var dups, lost, reordered int64
		for _, r := range rs {
			dups += r.Check.dups
			lost += r.Check.lost
			reordered += r.Check.reordered
		}
		s.check = "exact"
		if dups+lost+reordered > 0 {
			s.check = fmt.Sprintf("%d dup, %d lost, %d reordered", dups, lost, reordered)
		}
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func latencyText(l *latencies) string {
	if l == nil {
		return "-"
	}
	t := fmt.Sprintf("p50 %s p99 %s max %s", l.p50.Round(100*time.Microsecond), l.p99.Round(100*time.Microsecond), l.max.Round(time.Millisecond))
	if l.missing > 0 {
		t += fmt.Sprintf(" (%d of %d missing)", l.missing, l.sent)
	}
	return t
}

func checkText(t *tally) string {
	if t == nil {
		return "-"
	}
	return t.String()
}

// columns of the results table, shared by the text and markdown forms.
var columns = []string{"profile", "replicator", "MB/s", "records/s", "start-up s", "CPU s", "CPU s/GB", "MB per CPU s", "peak RSS MB", "p50 ms", "p99 ms", "copy check"}

func (s summary) row() []string {
	lat := func(v float64) string {
		if !s.hasLat {
			return "–"
		}
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	check := "–"
	if s.hasCheck {
		check = s.check
	}
	return []string{
		s.profile, s.stage,
		fmt.Sprintf("%.1f", s.mbps), fmt.Sprintf("%.0f", s.rps),
		fmt.Sprintf("%.2f", s.startup), fmt.Sprintf("%.2f", s.cpu), fmt.Sprintf("%.2f", s.cpuPerGB),
		fmt.Sprintf("%.0f", s.mbPerCPUs), fmt.Sprintf("%.0f", s.rssMB), lat(s.p50), lat(s.p99), check,
	}
}

// ratio is one profile's comparison figures; NaN when a stage is missing.
type ratio struct {
	profile string
	// eosMM2 and aloMM2 compare throughput, eosCPU and aloCPU MB per CPU
	// second with MirrorMaker 2's; eosRaw and aloRaw compare throughput
	// with the raw consumer's, eosLimit and aloLimit with the slower of the
	// raw consumer and producer.
	eosMM2, aloMM2, eosCPU, aloCPU, eosRaw, aloRaw, eosLimit, aloLimit float64
}

func (rep *report) ratios() []ratio {
	by := make(map[string]map[string]summary)
	for _, s := range rep.summaries() {
		if by[s.profile] == nil {
			by[s.profile] = make(map[string]summary)
		}
		by[s.profile][s.stage] = s
	}
	div := func(m map[string]summary, a, b string, f func(summary) float64) float64 {
		x, okA := m[a]
		y, okB := m[b]
		if !okA || !okB || f(y) == 0 {
			return nan
		}
		return f(x) / f(y)
	}
	thr := func(s summary) float64 { return s.mbps }
	eff := func(s summary) float64 { return s.mbPerCPUs }
	var out []ratio
	for _, d := range rep.datasets {
		m := by[d.profile.name]
		if m == nil {
			continue
		}
		r := ratio{profile: d.profile.name}
		// edgelink with the first agent count listed (one, by default).
		n := rep.o.agentCounts()[0]
		eos, alo := agentStage(stageEOS, n), agentStage(stageALO, n)
		r.eosMM2, r.aloMM2 = div(m, eos, stageMM2, thr), div(m, alo, stageMM2, thr)
		r.eosCPU, r.aloCPU = div(m, eos, stageMM2, eff), div(m, alo, stageMM2, eff)
		r.eosRaw, r.aloRaw = div(m, eos, stageRawConsume, thr), div(m, alo, stageRawConsume, thr)
		limit := nan
		if c, ok := m[stageRawConsume]; ok {
			limit = c.mbps
			if p, ok := m[stageRawProduce]; ok {
				limit = min(limit, p.mbps)
			}
		}
		if e, ok := m[eos]; ok {
			r.eosLimit = e.mbps / limit
		} else {
			r.eosLimit = nan
		}
		if a, ok := m[alo]; ok {
			r.aloLimit = a.mbps / limit
		} else {
			r.aloLimit = nan
		}
		out = append(out, r)
	}
	return out
}

var nan = func() float64 { var z float64; return z / z }()

var ratioColumns = []string{"profile", "EOS / MM2 MB/s", "ALO / MM2 MB/s", "EOS / MM2 MB per CPU s", "ALO / MM2 MB per CPU s", "EOS / raw consume", "ALO / raw consume", "EOS / raw limit", "ALO / raw limit"}

func (r ratio) row() []string {
	f := func(v float64) string {
		if v != v {
			return "–"
		}
		return fmt.Sprintf("%.2f×", v)
	}
	return []string{r.profile, f(r.eosMM2), f(r.aloMM2), f(r.eosCPU), f(r.aloCPU), f(r.eosRaw), f(r.aloRaw), f(r.eosLimit), f(r.aloLimit)}
}

// printTable prints every run and the medians.
func (rep *report) printTable(w io.Writer) {
	if len(rep.results) == 0 {
		return
	}
	if rep.o.shared() {
		fmt.Fprintln(w, "\n"+sharedText)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\nevery run:")
	fmt.Fprintln(tw, "profile\tstage\trun\tMB/s\trecords/s\tstart-up s\tcopy s\tCPU s\tRSS MB\tslots held\tcodec\tlatency\tcopy check\t")
	for _, r := range rep.results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t%s\t\n", r.Profile, r.Stage, r.Run,
			r.mbps(), r.rps(), r.Startup.Seconds(), r.Copy.Seconds(), r.CPU.Seconds(), r.PeakRSS>>20, heldText(r.Held), r.Codec,
			latencyText(r.Latency), checkText(r.Check))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nmedians of %d run(s):\n", rep.o.runs)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(columns, "\t")+"\t")
	for _, s := range rep.summaries() {
		fmt.Fprintln(tw, strings.Join(s.row(), "\t")+"\t")
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nratios (of medians%s):\n", ratioAgents(rep.o))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(ratioColumns, "\t")+"\t")
	for _, r := range rep.ratios() {
		fmt.Fprintln(tw, strings.Join(r.row(), "\t")+"\t")
	}
	_ = tw.Flush()
}

// sharedText says how the figures of several agents sharing a link are
// made, for the report's header.
const sharedText = `"edgelink-… ×N": N edgelink processes (one site, the same configuration but
for their HTTP listeners) share the link. start-up runs from starting the
first to the first record at the destination, the copy until every record is
there; CPU is the sum of the processes' CPU time, peak RSS the sum of each
process's own peak; slots held are each agent's slots when the copy was
complete.`

// heldText is the slots each agent held, as 3+3.
func heldText(held []int) string {
	if len(held) == 0 {
		return "–"
	}
	s := make([]string, len(held))
	for i, n := range held {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, "+")
}

// ratioAgents says which agent count the ratios take edgelink's figures
// from, when it is not one.
func ratioAgents(o options) string {
	if n := o.agentCounts()[0]; n > 1 {
		return fmt.Sprintf("; edgelink with %d agents", n)
	}
	return ""
}

// Markers delimit the section of BENCHMARKS.md that the bench rewrites;
// everything outside them is left alone.
const (
	beginMarker = "<!-- replbench:begin (generated by make bench; edit the generator, not this text) -->"
	endMarker   = "<!-- replbench:end -->"
)

// writeMarkdown replaces the bench section of path (or appends one).
func (rep *report) writeMarkdown(path string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	section := rep.markdown()
	text := string(old)
	if i := strings.Index(text, beginMarker); i >= 0 {
		j := strings.Index(text[i:], endMarker)
		if j < 0 {
			return fmt.Errorf("%s: %q without %q", path, beginMarker, endMarker)
		}
		text = text[:i] + section + text[i+j+len(endMarker):]
	} else {
		text = strings.TrimRight(text, "\n") + "\n\n" + section + "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.o
	fmt.Fprintln(&b, beginMarker)
	fmt.Fprintln(&b, "## edgelink, MirrorMaker 2 and the raw limit (`make bench`)")
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Measured %s on %s.\n", rep.began.UTC().Format("2006-01-02"), rep.machine)
	fmt.Fprintln(&b, "Both Kafka clusters, the replicator under test and the bench share the machine.")
	fmt.Fprintln(&b, "The whole invocation took "+rep.took.Round(time.Second).String()+".")
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "- Apache Kafka %s, two single-node KRaft clusters (heap %s, full JIT), started by the test bed;\n", testbed.KafkaVersion(), o.brokerHeap)
	fmt.Fprintf(&b, "- MirrorMaker 2 %s (dedicated mode, `org.apache.kafka.connect.mirror.MirrorMaker`, 2 GiB heap as `connect-mirror-maker.sh`, full JIT);\n", testbed.MirrorMakerVersion())
	if rep.edgelinkVersion != "" {
		fmt.Fprintf(&b, "- %s;\n", rep.edgelinkVersion)
	}
	fmt.Fprintf(&b, "- the raw stages: franz-go %s, built with %s.\n", franzVersion(), runtime.Version())
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Command:")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "```sh")
	fmt.Fprintf(&b, "make bench   # = %s\n", o.command)
	fmt.Fprintln(&b, "```")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Data (one source topic per profile, loaded once, then copied by every stage of every run):")
	fmt.Fprintln(&b)
	for _, d := range rep.datasets {
		fmt.Fprintf(&b, "- `%s`: %s; %d records of %d B (8-byte key, %d-byte value), %.2f GB, %d partitions.\n",
			d.profile.name, d.profile.about, d.records, keySize+d.profile.size, d.profile.size, float64(d.bytes())/1e9, d.partitions)
	}
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Values are JSON-like telemetry ending in a random hex blob, drawn in turn from 16 MiB of distinct")
	fmt.Fprintln(&b, "values, so no batch repeats itself: zstd about halves a 1 KiB value, lz4 and snappy (no entropy")
	fmt.Fprintln(&b, "coder) gain only the JSON around the blob.")
	fmt.Fprintln(&b)
	if o.shared() {
		fmt.Fprintln(&b, strings.ReplaceAll(sharedText, "\n", " "))
		fmt.Fprintln(&b)
	}
	fmt.Fprintf(&b, "Medians of %d run(s) (each figure is the median of its own values):\n\n", o.runs)
	mdTable(&b, columns, func(yield func([]string)) {
		for _, s := range rep.summaries() {
			yield(s.row())
		}
	})
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Ratios of the medians (edgelink exactly-once = EOS, at-least-once = ALO%s; the raw limit is the slower of raw-consume and raw-produce):\n", ratioAgents(o))
	fmt.Fprintln(&b)
	mdTable(&b, ratioColumns, func(yield func([]string)) {
		for _, r := range rep.ratios() {
			yield(r.row())
		}
	})
	fmt.Fprintln(&b)
	fmt.Fprint(&b, methodText(o))
	if rep.mm2Props != "" {
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "MirrorMaker 2 ran with this `mm2.properties` (the source alias is renamed `edge` here; each run used a fresh one, so each started from scratch):")
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "```properties")
		fmt.Fprint(&b, rep.mm2Props)
		fmt.Fprintln(&b, "```")
	}
	fmt.Fprintln(&b, endMarker)
	return b.String()
}

func mdTable(b *strings.Builder, head []string, rows func(func([]string))) {
	fmt.Fprintln(b, "| "+strings.Join(head, " | ")+" |")
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
		if i >= 2 {
			sep[i] = "---:"
		}
	}
	fmt.Fprintln(b, "|"+strings.Join(sep, "|")+"|")
	rows(func(r []string) { fmt.Fprintln(b, "| "+strings.Join(r, " | ")+" |") })
}

// methodText says how every column is measured.
func methodText(o options) string {
	return fmt.Sprintf(`How it is measured:

- Every stage runs as a process of its own: the raw stages as a child of
  the bench, edgelink as `+"`edgelink run -c`"+` with one link and default
  settings (profile lan: snappy to the destination, 1 MiB batches), MirrorMaker 2
  as its JVM. All three write snappy batches with acks=all to the destination.
- **raw-consume** reads every record of the source topic with a plain franz-go
  consumer and discards it; **raw-produce** writes the same records (same
  keys, values and partitions) to a new destination topic with a plain
  franz-go producer (snappy, 1 MiB batches). Together they bound what any copier
  can do on this machine.
- **MB/s** and **records/s** count keys plus values (10^6 bytes per MB) over
  the copy window: from the first record committed at the destination to the
  last (for raw-consume: first to last record read). The destination is
  watched by listing its last stable offsets every 50 ms and reading only the
  last records of each partition, so the watch costs almost nothing.
  **start-up** is from starting the process to the first committed record
  (connecting, creating topics, JVM and Connect start-up).
- **CPU s** is the process's user plus system time during the copy window
  (from /proc/<pid>/stat, the process and its descendants); **CPU s/GB**
  divides it by the payload; **MB per CPU s** is the payload copied per CPU
  second. **peak RSS** is the largest of VmHWM and the sampled resident
  set of the process tree (every 100 ms), to the end of the latency phase.
  For N edgelink agents sharing the link ("edgelink-eos ×N"), start-up
  runs from starting the first agent, CPU is the sum of the agents' CPU
  time and peak RSS the sum of each agent's own peak.
- **p50/p99 latency**: after the copy, with the same replicator process
  still running, a producer writes %d records/s (of the profile's size,
  round-robin over the partitions) to a second source topic, created after
  the copy, that the replicator selects and finds by its periodic topic
  discovery (edgelink's default 10 s; MirrorMaker 2's
  refresh.topics.interval.seconds = 5). Each value starts with its send
  time; a read_committed consumer at the destination takes the arrival time
  of each record. Records are counted for %s, from %s after the first one
  arrived. The latency is producer, source broker, replicator, destination
  broker and (for exactly-once) the commit together.
- **copy check**: after the replicator stops, the whole copy is read back
  (read_committed) and every partition must hold keys 0..n-1 in source order;
  "exact" means no record lost, duplicated or reordered in any run.
- Medians over runs; runs interleave the stages (run 1 of every stage, then
  run 2, ...), so that a noisy minute hurts all of them alike. Destination
  topics are deleted after each stage.
`, o.latency.rate, o.latency.duration, o.latency.warmup)
}

// binaryVersion describes the edgelink binary from its build information.
func binaryVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return "edgelink " + bin
	}
	var rev, modified, goVer string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasSuffix(f[0], ":") && goVer == "" {
			goVer = f[1]
		}
		if len(f) >= 2 && f[0] == "build" {
			if v, ok := strings.CutPrefix(f[1], "vcs.revision="); ok {
				rev = v
			}
			if v, ok := strings.CutPrefix(f[1], "vcs.modified="); ok {
				modified = v
			}
		}
	}
	s := "edgelink"
	if rev == "" {
		// No version control stamp (-buildvcs=false, or built outside a
		// checkout): ask the binary, and say which checkout it was built in.
		if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
			first, _, _ := strings.Cut(string(out), "\n")
			s = strings.TrimSpace(first)
		}
		if s == "edgelink dev" {
			s += checkoutVersion(ctx)
		}
	}
	if rev != "" {
		s += " at commit " + rev[:min(len(rev), 12)]
		if modified == "true" {
			s += " (with uncommitted changes in the working tree)"
		}
	}
	if goVer != "" {
		s += ", built with " + goVer
	}
	return s
}

// checkoutVersion describes the git checkout of the working directory (make
// bench builds bin/edgelink from it just before): its commit and how many of
// its Go source files differ from it.
func checkoutVersion(ctx context.Context) string {
	head, err := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := " (bin/edgelink as built from the checkout at commit " + strings.TrimSpace(string(head))
	status, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--", "cmd", "internal", "go.mod", "go.sum").Output()
	if err != nil {
		return s + ")"
	}
	changed := 0
	for line := range strings.Lines(string(status)) {
		if strings.HasSuffix(strings.TrimSpace(line), ".go") || strings.Contains(line, "go.mod") || strings.Contains(line, "go.sum") {
			changed++
		}
	}
	if changed > 0 {
		s += fmt.Sprintf(", %d Go source files differing from it", changed)
	}
	return s + ")"
}

// franzVersion is the franz-go version this binary was built with.
func franzVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				return d.Version
			}
		}
	}
	return "(unknown version)"
}
