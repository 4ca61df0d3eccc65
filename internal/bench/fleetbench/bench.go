package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/bench/procstat"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/testbed"
)

// run starts the cluster, the fed fleet, the counted sites and the
// service, and measures. The report holds whatever was measured, also
// when an error cut it short.
func run(ctx context.Context, o options) (rep *report, err error) {
	rep = &report{o: o, began: time.Now()}
	if err := os.MkdirAll(testbed.BaseDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	work, err := os.MkdirTemp(testbed.BaseDir(), "fleetbench-")
	if err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if o.keepLogs || err != nil {
			o.logger.Info("work directory kept", "dir", work)
			return
		}
		os.RemoveAll(work)
	}()
	rep.machine = procstat.Machine(ctx)
	rep.version = binaryVersion(ctx, o.edgelink)
	if rep.sim, err = simReportSizes(o.sites, o.interval); err != nil {
		return nil, err
	}

	o.logger.Info("starting Kafka")
	cluster, err := testbed.Start(ctx, testbed.Options{Name: "fleetbench", FullJIT: true, Heap: o.brokerHeap, Progress: os.Stderr})
	if err != nil {
		return nil, err
	}
	defer func() {
		cluster.Stop()
		if rerr := cluster.Remove(); rerr != nil {
			o.logger.Warn("remove cluster", "err", rerr)
		}
	}()
	seeds := cluster.Bootstrap()
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = fleet.CreateTopics(tctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, fleet.TopicsOf(""))
	if err == nil && o.wire {
		err = fleet.CreateTopics(tctx, []kgo.Opt{kgo.SeedBrokers(seeds...)}, fleet.TopicsOf(wirePrefix))
	}
	cancel()
	if err != nil {
		return nil, err
	}

	// The simulated fleet reports from now on; the service starts once
	// every site reported once.
	sims := fleet.SimFleet("site", o.sites, simVersion, simOldVersion, simSeed)
	fd, err := newFeed(seeds, fleet.TopicsOf("").Reports, sims, o.interval)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	fctx, stopFeed := context.WithCancel(ctx)
	defer func() {
		stopFeed()
		wg.Wait()
		if ferr := fd.error(); ferr != nil && err == nil {
			err = ferr
		}
	}()
	wg.Go(func() { fd.run(fctx) })
	o.logger.Info("publishing the simulated reports", "sites", o.sites, "interval", o.interval)

	var sites []*site
	defer func() {
		for _, s := range sites {
			s.stop()
		}
	}()
	if o.wire {
		siteLogger := o.logger
		if !o.keepLogs {
			siteLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
		for _, managed := range []bool{true, false} {
			name := "wire-unmanaged"
			if managed {
				name = "wire-managed"
			}
			s, err := startSite(ctx, work, name, seeds, o.interval, managed, siteLogger)
			if err != nil {
				return rep, err
			}
			sites = append(sites, s)
		}
	}
	if err := waitUntil(ctx, o.interval+30*time.Second, "a round of simulated reports", func() (bool, error) {
		return fd.rounds.Load() >= 1, fd.error()
	}); err != nil {
		return rep, err
	}

	cfg := filepath.Join(work, "cloud.yaml")
	if err := os.WriteFile(cfg, []byte(serviceConfig(seeds, o.pprofDir != "")), 0o644); err != nil {
		return rep, fmt.Errorf("write the service's configuration: %w", err)
	}
	began := time.Now()
	svc, err := startService(ctx, o.edgelink, cfg, filepath.Join(work, "fleet-serve.log"))
	if err != nil {
		return rep, err
	}
	defer func() {
		if serr := svc.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	if err := svc.waitReady(ctx, 2*time.Minute); err != nil {
		return rep, err
	}
	rep.ready = time.Since(began)
	if err := svc.waitSites(ctx, o.sites, time.Minute); err != nil {
		return rep, err
	}
	o.logger.Info("the fleet service is ready", "page", svc.url, "ready_after", rep.ready.Round(time.Millisecond))

	smp := &sampler{pid: svc.pid()}
	sctx, stopSampling := context.WithCancel(ctx)
	var swg sync.WaitGroup
	defer func() { stopSampling(); swg.Wait() }()
	swg.Go(func() { smp.run(sctx) })

	if err := pause(ctx, o.warmup, svc, fd); err != nil {
		return rep, err
	}

	// The quiet window: the reports alone.
	marks := func() []wireMark {
		ms := make([]wireMark, len(sites))
		for i, s := range sites {
			ms[i] = s.mark()
		}
		return ms
	}
	w0, a0, sent0 := marks(), smp.take(), fd.sent.Load()
	if o.quiet > 0 {
		o.logger.Info("measuring: the reports alone", "window", o.quiet)
		if err := pause(ctx, o.quiet, svc, fd); err != nil {
			return rep, err
		}
	}
	a1 := smp.take()
	if o.quiet > 0 {
		rep.quiet = smp.between(a0, a1)
	}

	// The loaded window: the reports and the API load.
	o.logger.Info("measuring: the reports and the API load", "window", o.duration,
		"viewers", o.viewers, "full_per_s", o.fullRate, "site_per_s", o.siteRate)
	var pwg sync.WaitGroup
	var perr error
	if o.pprofDir != "" {
		// The service's HTTP server writes an answer for 60 s at most.
		secs := max(min(int((o.duration-5*time.Second).Seconds()), 50), 1)
		pwg.Go(func() {
			perr = svc.saveProfile(ctx, fmt.Sprintf("profile?seconds=%d", secs), filepath.Join(o.pprofDir, "fleet-serve.cpu.pprof"))
		})
	}
	load := newAPILoad(svc.url, siteNames(sims))
	lctx, stopLoad := context.WithCancel(ctx)
	var lwg sync.WaitGroup
	lwg.Go(func() { load.run(lctx, o.viewers, o.fullRate, o.siteRate) })
	b0 := smp.take()
	err = pause(ctx, o.duration, svc, fd)
	b1 := smp.take()
	stopLoad()
	lwg.Wait()
	pwg.Wait()
	if err != nil {
		return rep, err
	}
	w1, sent1 := marks(), fd.sent.Load()
	rep.loaded = smp.between(b0, b1)
	rep.loadTook = time.Duration(svc.loaded.Load()) // logged just after it became ready
	rep.routes = load.stats(b1.at.Sub(b0.at))
	rep.feedRate = float64(sent1-sent0) / b1.at.Sub(a0.at).Seconds()
	if _, rep.hwm, err = procstat.Memory(svc.pid()); err != nil {
		return rep, err
	}
	if perr != nil {
		return rep, perr
	}
	if o.pprofDir != "" {
		if err := svc.saveProfile(ctx, "heap", filepath.Join(o.pprofDir, "fleet-serve.heap.pprof")); err != nil {
			return rep, err
		}
		o.logger.Info("profiles written", "dir", o.pprofDir)
	}
	comp, err := kgo.DefaultCompressor(kgo.ZstdCompression())
	if err != nil {
		return rep, fmt.Errorf("create zstd compressor: %w", err)
	}
	for i, s := range sites {
		r, err := s.result(w0[i], w1[i], comp)
		if err != nil {
			return rep, fmt.Errorf("site %s: %w", s.name, err)
		}
		rep.wire = append(rep.wire, r)
		if o.keepLogs {
			if err := os.WriteFile(filepath.Join(work, s.name+".report.json"), r.report, 0o644); err != nil {
				return rep, fmt.Errorf("write the report of %s: %w", s.name, err)
			}
		}
	}
	var f fleet.Fleet
	if _, err := svc.get(ctx, "/api/v1/fleet?since=1000000000000", &f); err != nil {
		return rep, err
	}
	rep.summary = f.Summary

	if o.paintLoads > 0 {
		o.logger.Info("measuring the page's first paint", "loads", o.paintLoads)
		rep.paints, rep.browser, err = firstPaints(ctx, svc.url, o.sites, o.paintLoads)
		switch {
		case errors.Is(err, errNoChromium):
			rep.paintNote = "not measured: " + err.Error()
			o.logger.Warn("first paint skipped", "err", err)
		case err != nil:
			return rep, err
		}
	}
	if err := svc.exited(); err != nil {
		return rep, err
	}
	rep.took = time.Since(rep.began)
	return rep, nil
}

// pause waits for d, failing early when the service exits or the feed
// fails.
func pause(ctx context.Context, d time.Duration, svc *service, fd *feed) error {
	end := time.Now().Add(d)
	for {
		if err := svc.exited(); err != nil {
			return err
		}
		if err := fd.error(); err != nil {
			return err
		}
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, time.Second)):
		}
	}
}

// waitUntil polls cond every 100 ms until it is true or fails, or
// timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
