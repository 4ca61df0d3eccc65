package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgelink/edgelink/internal/bench/mdreport"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/testbed"
)

// report collects the results of one invocation.
type report struct {
	o                options
	began            time.Time
	took             time.Duration
	machine, version string
	// sim is the median size of a simulated site's report.
	sim reportSizes
	// ready is how long the service took to answer /readyz; loadTook how
	// long it logged reading the topics took.
	ready, loadTook time.Duration
	quiet, loaded   usage
	// hwm is the service's peak resident set over its whole life.
	hwm int64
	// feedRate is the simulated reports published per second over both
	// windows.
	feedRate float64
	// summary is the service's fleet summary after the windows.
	summary   fleet.Summary
	routes    []routeStats
	paints    []time.Duration
	browser   string
	paintNote string
	wire      []wireResult
}

// row is one line of a table, as text cells.
type row []string

func (rep *report) usageRows() []row {
	var out []row
	add := func(name string, u usage) {
		if u.window == 0 {
			return
		}
		out = append(out, row{
			name, fmt.Sprintf("%.0f s", u.window.Seconds()),
			fmt.Sprintf("%.1f%%", u.cpuPct), fmt.Sprintf("%.1f%%", u.cpuMaxPct),
			mb(u.rssPeak), mb(u.rssEnd),
		})
	}
	add("reports alone", rep.quiet)
	add("reports + API load", rep.loaded)
	return out
}

var usageColumns = []string{"window", "length", "CPU (of one core)", "CPU, busiest 10 s", "RSS peak MB", "RSS at the end MB"}

func (rep *report) routeRows() []row {
	var out []row
	for _, r := range rep.routes {
		out = append(out, row{
			r.route, strconv.Itoa(r.requests), fmt.Sprintf("%.1f", r.perSecond), strconv.Itoa(r.errors),
			msText(r.p50), msText(r.p95), msText(r.max), kb(int64(r.bytes)),
		})
	}
	return out
}

var routeColumns = []string{"route", "requests", "per s", "errors", "median ms", "p95 ms", "max ms", "median answer KB (gzip)"}

func (rep *report) wireRows() []row {
	var out []row
	for _, w := range rep.wire {
		kind := "unmanaged (reports only)"
		if w.managed {
			kind = "managed (reports + config channel)"
		}
		perReport := float64(w.up) / float64(max(w.reports, 1))
		out = append(out, row{
			kind, fmt.Sprintf("%d in %.0f s", w.reports, w.window.Seconds()), fmt.Sprintf("%.0f", perReport),
			fmt.Sprintf("%.2f", w.perDayUp/1e6), fmt.Sprintf("%.2f", w.perDayDown/1e6),
			fmt.Sprintf("%.2f", (w.perDayUp+w.perDayDown)/1e6), strconv.FormatInt(w.connections, 10),
			strconv.Itoa(w.reportJSON), strconv.Itoa(w.zstd),
		})
	}
	return out
}

var wireColumns = []string{"uplink", "reports", "bytes up per report", "up MB/day", "down MB/day", "total MB/day", "connections opened", "report JSON B", "report zstd B"}

func (rep *report) paintText() string {
	if len(rep.paints) == 0 {
		if rep.paintNote != "" {
			return rep.paintNote
		}
		return "not measured"
	}
	s := slices.Clone(rep.paints)
	slices.Sort(s)
	loads := make([]string, len(rep.paints))
	for i, p := range rep.paints {
		loads[i] = strconv.FormatInt(p.Milliseconds(), 10)
	}
	return fmt.Sprintf("median %d ms, max %d ms (%d loads: %s ms)", s[len(s)/2].Milliseconds(), s[len(s)-1].Milliseconds(), len(s), strings.Join(loads, ", "))
}

// seconds writes d in seconds to the hundredth: 10 s, 0.22 s.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(10*time.Millisecond).Seconds(), 'f', -1, 64) + " s"
}

func msText(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
func mb(b int64) string             { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }
func kb(b int64) string             { return fmt.Sprintf("%.1f", float64(b)/1e3) }

// printTable prints the figures.
func (rep *report) printTable(w io.Writer) {
	fmt.Fprintf(w, "\nfleet service, %d sites reporting every %s:\n", rep.o.sites, rep.o.interval)
	table(w, usageColumns, rep.usageRows())
	if rep.ready > 0 {
		fmt.Fprintf(w, "ready after %s (topics read in %s); peak RSS over its life (VmHWM) %s MB; %.1f simulated reports/s\n",
			rep.ready.Round(time.Millisecond), rep.loadTook.Round(time.Millisecond), mb(rep.hwm), rep.feedRate)
	}
	if len(rep.routes) > 0 {
		fmt.Fprintln(w, "\nAPI under load:")
		table(w, routeColumns, rep.routeRows())
	}
	fmt.Fprintf(w, "\nfirst paint of %d sites: %s\n", rep.o.sites, rep.paintText())
	if len(rep.wire) > 0 {
		fmt.Fprintln(w, "\none site's uplink on the wire:")
		table(w, wireColumns, rep.wireRows())
	}
	fmt.Fprintf(w, "simulated report: median %d B JSON, %d B zstd\n", rep.sim.json, rep.sim.zstd)
}

func table(w io.Writer, head []string, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	_ = tw.Flush()
}

// Markers delimit the section of BENCHMARKS.md that the bench rewrites;
// everything outside them is left alone.
const (
	beginMarker = "<!-- fleetbench:begin (generated by make bench-fleet; edit the generator, not this text) -->"
	endMarker   = "<!-- fleetbench:end -->"
)

// section is the part of BENCHMARKS.md the bench writes.
var section = mdreport.Section{Begin: beginMarker, End: endMarker}

// writeMarkdown replaces the fleet section of path (or appends one).
func (rep *report) writeMarkdown(path string) error {
	return section.Write(path, rep.markdown())
}

func (rep *report) markdown() string {
	var b strings.Builder
	o := rep.o
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("%s", beginMarker)
	p("## Fleet service")
	p("")
	p("The fleet service (`edgelink fleet serve`) with %s sites reporting every %s. Measured %s on %s.",
		count(o.sites), seconds(o.interval), rep.began.UTC().Format("2006-01-02"), rep.machine)
	p("One run: latencies are its medians and p95s, CPU and memory its window averages and peaks. The")
	p("machine is shared and has 2 cores, which the Kafka broker, the fleet service, the bench (the simulated")
	p("sites, the API load, two real agents) and, for the first paint, Chromium all use: the figures are an")
	p("upper bound of what the service needs, and noisy. The whole invocation took %s.", rep.took.Round(time.Second))
	p("")
	p("- Apache Kafka %s, one single-node KRaft broker (heap %s, full JIT), started by the test bed;", testbed.KafkaVersion(), o.brokerHeap)
	p("- %s;", rep.version)
	if rep.browser != "" {
		p("- %s, headless, for the first paint.", rep.browser)
	}
	p("")
	p("Command:")
	p("")
	p("```sh")
	p("make bench-fleet   # = %s", o.command)
	p("```")
	p("")
	p("The sites are `fleet.SimFleet`'s: two links each, every 10th lagging, every 25th disconnected, one")
	p("in 20 on an older version; their reports have a real report's fields (median %s B of JSON, %s B", count(rep.sim.json), count(rep.sim.zstd))
	p("compressed with zstd). The bench publishes them as agents do, one report per site every %s,", seconds(o.interval))
	p("each its own zstd batch, evenly spread (%.1f reports/s measured), to the compacted reports topic.", rep.feedRate)
	p("")
	p("**The service.** CPU is the process's user plus system time over the window, in %% of one core;")
	p("the busiest 10 s is the highest over any 10 s of the window. RSS is sampled every second.")
	p("")
	mdTable(&b, usageColumns, rep.usageRows())
	p("")
	p("It answered `/readyz` %s after it started, having read the fleet's topics in %s; its peak", seconds(rep.ready), seconds(rep.loadTook))
	p("resident set over its whole life (VmHWM, start-up included) was %s MB. After the windows it showed", mb(rep.hwm))
	p("%s sites, %d of them silent.", count(rep.summary.Sites), rep.summary.Stale)
	p("")
	p("**The API under load**, during the loaded window: %d viewers polling as an open fleet page does", o.viewers)
	p("(the whole fleet, then `?since=SEQ` every 2 s), %g full `GET /api/v1/fleet` and %g", o.fullRate, o.siteRate)
	p("`GET /api/v1/fleet/sites/{site}` (a random site) per second, all with `Accept-Encoding: gzip` over")
	p("keep-alive connections. Latency runs from sending the request to the last byte of the answer.")
	p("")
	mdTable(&b, routeColumns, rep.routeRows())
	p("")
	p("**The page's first paint** at %s sites: %s. Each load navigates a headless Chromium", count(o.sites), rep.paintText())
	p("tab (1280×720) to the page; the page records in `window.__fleetFirstPaint` the time from")
	p("navigation start to the frame that painted its first rows (as the page tests read it). Measured")
	p("after the windows, with the reports still arriving.")
	p("")
	if len(rep.wire) > 0 {
		p("**One site on the wire per day.** Two real agents in the bench process (`agent.New`, two links")
		p("each from an in-process edge, a trickle of records on one), each with its fleet uplink")
		p("(`fleet.NewUplink`, fleet.interval %s), whose connections to the fleet cluster pass through", seconds(o.interval))
		p("an in-process network (`faultnet`) that counts the bytes both ways: Kafka's framing, metadata,")
		p("produce and fetch requests and their answers, without TCP/IP headers or TLS. The bytes over both")
		p("windows (%.0f s) are scaled to a day. The managed site also follows the config and state topics", rep.wire[0].window.Seconds())
		p("(a fetch held up to 10 s by the broker when there is nothing new); no revision was published.")
		p("")
		mdTable(&b, wireColumns, rep.wireRows())
		p("")
		w := rep.wire[0]
		p("The report's JSON is the uplink's report at the end of the window: %d links, %d events (a report", w.links, w.events)
		p("carries the links' events of the last hour, at most 10; here their start-up), %d certificates; zstd", w.certificates)
		p("is the same report compressed as the uplink's producer compresses its batches. Without its events")
		p("(an agent with no event in the last hour) it compresses to %d B, %d B less per report, about", w.quietZstd, w.zstd-w.quietZstd)
		p("%.1f MB a day less than the figures above. The simulated sites' reports are lighter (median %s B,", float64(w.zstd-w.quietZstd)*86400/o.interval.Seconds()/1e6, count(rep.sim.json))
		p("%s B zstd): they carry at most one event.", count(rep.sim.zstd))
	}
	p("%s", endMarker)
	return b.String()
}

func mdTable(b *strings.Builder, head []string, rows []row) {
	fmt.Fprintln(b, "| "+strings.Join(head, " | ")+" |")
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
		if i >= 1 {
			sep[i] = "---:"
		}
	}
	fmt.Fprintln(b, "|"+strings.Join(sep, "|")+"|")
	for _, r := range rows {
		fmt.Fprintln(b, "| "+strings.Join(r, " | ")+" |")
	}
}

// count writes n with thousands separators: 1,000.
func count(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// binaryVersion describes the edgelink binary: what it says of itself and,
// for a development build, the checkout it was built from (make bench-fleet
// builds bin/edgelink just before).
func binaryVersion(ctx context.Context, bin string) string {
	s := "edgelink " + bin
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil {
		first, _, _ := strings.Cut(string(out), "\n")
		s = strings.TrimSpace(first)
	}
	head, err := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return s + " (" + bin + ")"
	}
	s += fmt.Sprintf(" (%s as built from the checkout at commit %s", bin, strings.TrimSpace(string(head)))
	status, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--", "cmd", "internal", "go.mod", "go.sum").Output()
	if err == nil {
		changed := 0
		for line := range strings.Lines(string(status)) {
			if strings.HasSuffix(strings.TrimSpace(line), ".go") {
				changed++
			}
		}
		if changed > 0 {
			s += fmt.Sprintf(", %d Go source files differing from it", changed)
		}
	}
	s += ")"
	if out, err := exec.CommandContext(ctx, "go", "version", bin).Output(); err == nil {
		if _, v, ok := strings.Cut(strings.TrimSpace(string(out)), ": "); ok {
			s += ", built with " + v
		}
	}
	return s
}
