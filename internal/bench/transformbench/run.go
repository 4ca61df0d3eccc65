package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/edgelink/edgelink/internal/bench/mdreport"
	"github.com/edgelink/edgelink/internal/bench/procstat"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/testbed"
)

// variant is one link set-up measured: its transforms.
type variant struct {
	name string
	// transforms is the link's transforms block (YAML, indented for a
	// link's keys), empty for none.
	transforms string
	// out is the records the variant writes of d.
	out func(d *dataset) int
	// filtered is the records it counts as filtered.
	filtered func(d *dataset) int
}

// variants are the links measured: no transforms, a filter keeping the
// readings above threshold, and an aggregate into one-minute windows per
// machine.
func variants(threshold float64) []variant {
	return []variant{
		{
			name:     "plain",
			out:      func(d *dataset) int { return d.records },
			filtered: func(*dataset) int { return 0 },
		},
		{
			name:       "filter",
			transforms: fmt.Sprintf("    transforms:\n      - filter: %s\n", filterExpr(threshold)),
			out:        func(d *dataset) int { return d.kept },
			filtered:   func(d *dataset) int { return d.records - d.kept },
		},
		{
			name: "aggregate",
			transforms: fmt.Sprintf(`    transforms:
      - aggregate:
          window: %s
          grace: %s
          key: json.machine
          values: {celsius: json.celsius}
          functions: [min, max, mean, count]
`, aggWindow, aggGrace),
			out:      func(d *dataset) int { return d.windows },
			filtered: func(*dataset) int { return 0 },
		},
	}
}

// filterExpr is the filter variant's expression.
func filterExpr(threshold float64) string {
	return fmt.Sprintf("json.celsius > %.1f", threshold)
}

// result is one run of one variant.
type result struct {
	variant string
	run     int
	profile string
	// took is from starting the link until every source record went
	// through it (Status().RecordsIn, counted when committed); copy from
	// the first committed record to then.
	took, copy time.Duration
	// cpu is the bench process's user plus system time meanwhile: the
	// link's, as the bench only polls its status.
	cpu time.Duration
	// st is the link's status once it stopped.
	st link.Status
	// check is "ok", or what the link wrote that it should not have.
	check string
	// eta is the median, over the backlog measurements with a backlog
	// during the run, of the link's DrainETA over the time the run then
	// actually took to finish (0 when none gave an ETA); etas counts the
	// measurements with a backlog, noETA those of them without an ETA.
	eta         float64
	etas, noETA int
}

func (r result) rate(records int) float64 { return float64(records) / r.took.Seconds() }

func (r result) copyRate(records int) float64 {
	if r.copy <= 0 {
		return 0
	}
	return float64(records) / r.copy.Seconds()
}

// bench holds what the runs share.
type bench struct {
	edge, cloud *testbed.Cluster
	data        *dataset
	logger      *slog.Logger
	// timeout bounds one run.
	timeout time.Duration
	// pprofDir, when set, receives a CPU profile of each run.
	pprofDir string
}

// runOnce runs a fresh link of variant v (its own name and mirror topic)
// with the network profile until every source record went through it,
// then stops it and deletes its mirror topic.
func (b *bench) runOnce(ctx context.Context, v variant, profile string, run int) (result, error) {
	name := fmt.Sprintf("tb-%s-%s-%d", v.name, profile, run)
	y := fmt.Sprintf(`clusters:
  edge: {bootstrap: [%q]}
  cloud: {bootstrap: [%q]}
links:
  - name: %s
    from: edge
    to: cloud
    topics: {include: [%q]}
    rename: "%s.{topic}"
    profile: %s
%s`, strings.Join(b.edge.Bootstrap(), ","), strings.Join(b.cloud.Bootstrap(), ","), name, b.data.topic, name, profile, v.transforms)
	cfg, err := config.Parse("bench.yaml", []byte(y))
	if err != nil {
		return result{}, err
	}
	res := result{variant: v.name, run: run, profile: profile}
	l := link.New(cfg, cfg.Links[0], link.Options{}, b.logger.With("link", name))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if b.pprofDir != "" {
		f, err := os.Create(filepath.Join(b.pprofDir, name+".pprof"))
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, err := procstat.CPU(os.Getpid())
	if err != nil {
		return res, err
	}
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- l.Run(rctx) }()
	total := int64(b.data.records)
	// measured holds, for each backlog measurement that found a backlog,
	// when the bench saw it and the link's DrainETA.
	type sample struct {
		at  time.Time
		eta time.Duration
	}
	var (
		first, lastAt time.Time
		measured      []sample
	)
	deadline := time.After(b.timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st := l.Status()
		if st.RecordsIn > 0 && first.IsZero() {
			first = time.Now()
		}
		if st.RecordsIn >= total {
			break
		}
		if st.BacklogAt != lastAt && st.BacklogRecords > 0 {
			lastAt = st.BacklogAt
			measured = append(measured, sample{time.Now(), st.DrainETA})
		}
		select {
		case err := <-done:
			return res, fmt.Errorf("link %s stopped early (%d of %d records in): %w", name, st.RecordsIn, total, err)
		case <-ctx.Done():
			return res, ctx.Err()
		case <-deadline:
			cancel()
			err := <-done
			st = l.Status()
			return res, errors.Join(fmt.Errorf("link %s: not done after %s: state %s, %d of %d records in, %d out, backlog %d, last error %q",
				name, b.timeout, st.State, st.RecordsIn, total, st.Records, st.BacklogRecords, st.LastError), err)
		case <-tick.C:
		}
	}
	end := time.Now()
	res.took, res.copy = end.Sub(began), end.Sub(first)
	cpu1, err := procstat.CPU(os.Getpid())
	if err != nil {
		return res, err
	}
	res.cpu = cpu1 - cpu0
	var ratios []float64
	for _, m := range measured {
		res.etas++
		if m.eta <= 0 {
			res.noETA++
			continue
		}
		ratios = append(ratios, m.eta.Seconds()/end.Sub(m.at).Seconds())
	}
	res.eta = mdreport.Median(ratios)
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("stop link %s: %w", name, err)
	}
	res.st = l.Status()
	res.check = check(res.st, b.data, v)
	return res, b.deleteTopic(ctx, name+"."+b.data.topic)
}

// check compares what a link wrote with what its variant must write.
func check(st link.Status, d *dataset, v variant) string {
	var bad []string
	if st.RecordsIn != int64(d.records) {
		bad = append(bad, fmt.Sprintf("%d records in, want %d", st.RecordsIn, d.records))
	}
	if want := v.out(d); st.Records != int64(want) {
		bad = append(bad, fmt.Sprintf("%d records out, want %d", st.Records, want))
	}
	if want := v.filtered(d); st.FilteredRecords != int64(want) {
		bad = append(bad, fmt.Sprintf("%d filtered, want %d", st.FilteredRecords, want))
	}
	if st.LateRecords != 0 {
		bad = append(bad, fmt.Sprintf("%d late", st.LateRecords))
	}
	if st.SkippedRecords != 0 || st.LostRecords != 0 {
		bad = append(bad, fmt.Sprintf("%d skipped, %d lost", st.SkippedRecords, st.LostRecords))
	}
	if len(bad) == 0 {
		return "ok"
	}
	return strings.Join(bad, "; ")
}

// deleteTopic deletes a run's mirror topic at the destination, so that the
// runs after it do not share the broker with it.
func (b *bench) deleteTopic(ctx context.Context, topic string) error {
	cl, err := b.cloud.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", topic, err)
	}
	return nil
}
