package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgelink/edgelink/internal/bench/procstat"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/status"
	"github.com/edgelink/edgelink/internal/testbed"
)

// result is one stage's measurement in one run.
type result struct {
	Profile string
	Stage   string
	Run     int
	// Records and Bytes (keys plus values) are the dataset copied.
	Records, Bytes int64
	// Startup runs from starting the process (the first, for agents
	// sharing a link) to the first record committed at the destination
	// (read, for raw-consume); Copy from there to the last.
	Startup, Copy time.Duration
	// CPU is the process's CPU time during Copy; CPUTotal from its start
	// to the last record. For agents sharing a link, the sum of theirs.
	CPU, CPUTotal time.Duration
	// PeakRSS is the process's peak resident memory in bytes; for agents
	// sharing a link, the sum of each one's peak.
	PeakRSS int64
	// Held is the number of slots each edgelink agent held when the copy
	// was complete, as its status API showed it.
	Held []int
	// Latency is measured after the copy, for replicators only.
	Latency *latencies
	// Check is the record-by-record read of the copy, when verified.
	Check *tally
	// Codec is the compression of the batches written to the destination.
	Codec string
	// WireBytes is what crossed the simulated WAN towards the destination
	// from the start of the process to the last record (with -wan-rtt).
	WireBytes int64
}

// mbps is the copy's payload throughput in MB (10^6 bytes) per second.
func (r result) mbps() float64 { return float64(r.Bytes) / 1e6 / r.Copy.Seconds() }

// rps is the copy's records per second.
func (r result) rps() float64 { return float64(r.Records) / r.Copy.Seconds() }

// bench holds what every stage shares.
type bench struct {
	o        options
	src, dst *testbed.Cluster
	srcCl    *kgo.Client
	dstCl    *kgo.Client
	work     string
	edgelink string
	seq      int
	// mm2Props is the configuration of the last MirrorMaker 2 run, for the report.
	mm2Props string
	// idle are empty source topics every replicator selects too.
	idle []string
	// net is the simulated WAN (with -wan-rtt) and proxies its forwarders.
	net     *faultnet.Network
	proxies []*faultnet.Proxy
}

// run starts the clusters and measures every profile, run and stage. The
// report holds whatever was measured, also when an error cut it short.
func run(ctx context.Context, o options) (*report, error) {
	began := time.Now()
	rep := &report{o: o, began: began}
	if err := os.MkdirAll(testbed.BaseDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	work, err := os.MkdirTemp(testbed.BaseDir(), "replbench-")
	if err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	b := &bench{o: o, work: work, edgelink: o.edgelink}
	keepWork := o.keepLogs
	defer func() {
		if keepWork {
			o.logger.Info("logs kept", "dir", work)
			return
		}
		os.RemoveAll(work)
	}()
	if b.edgelink == "" && (wants(o.stages, stageEOS) || wants(o.stages, stageALO) || o.pprofDir != "") {
		if b.edgelink, err = buildEdgelink(ctx, work); err != nil {
			return nil, err
		}
	}
	if b.edgelink != "" {
		rep.edgelinkVersion = binaryVersion(ctx, b.edgelink)
		// A copy, so that a rebuild of the original during a long bench
		// cannot mix two versions in one report.
		if b.edgelink, err = copyFile(b.edgelink, filepath.Join(work, "bin", "edgelink")); err != nil {
			return nil, err
		}
	}
	if wants(o.stages, stageMM2) {
		if _, err := testbed.EnsureMirrorMakerRuntime(ctx, o.progress); err != nil {
			return nil, err
		}
	}
	if err := b.startClusters(ctx); err != nil {
		return nil, err
	}
	defer b.stopClusters()
	rep.machine = procstat.Machine(ctx)
	for _, p := range o.profiles {
		records := max(o.volume/int64(keySize+p.size), int64(o.partitions))
		d := dataset{profile: p, partitions: o.partitions, records: records}
		if err := b.profile(ctx, d, rep); err != nil {
			keepWork = true
			return rep, fmt.Errorf("profile %s: %w", p.name, err)
		}
	}
	rep.mm2Props = b.mm2Props
	rep.took = time.Since(began)
	return rep, nil
}

// wants reports whether stages hold s, with any number of agents.
func wants(stages []string, s string) bool {
	return slices.ContainsFunc(stages, func(name string) bool {
		st, _ := splitStage(name)
		return st == s
	})
}

func (b *bench) startClusters(ctx context.Context) error {
	var (
		cs   [2]*testbed.Cluster
		errs [2]error
		wg   sync.WaitGroup
	)
	if b.o.wan.enabled() {
		b.net = newWAN(b.o.wan)
	}
	for i, name := range []string{"edge", "cloud"} {
		opts := testbed.Options{
			Name: "replbench-" + name, FullJIT: !b.o.quickJIT, Heap: b.o.brokerHeap, Progress: b.o.progress,
		}
		if name == "cloud" && b.net != nil {
			opts.Proxy = wanProxy(b.net, &b.proxies)
		}
		wg.Go(func() { cs[i], errs[i] = testbed.Start(ctx, opts) })
	}
	wg.Wait()
	b.src, b.dst = cs[0], cs[1]
	if err := errors.Join(errs[:]...); err != nil {
		b.stopClusters()
		return err
	}
	var err error
	fresh := kgo.MetadataMinAge(metadataAge)
	if b.srcCl, err = b.src.Client(fresh); err != nil {
		b.stopClusters()
		return err
	}
	if b.dstCl, err = b.dst.Client(fresh); err != nil {
		b.stopClusters()
		return err
	}
	return nil
}

func (b *bench) stopClusters() {
	for _, cl := range []*kgo.Client{b.srcCl, b.dstCl} {
		if cl != nil {
			cl.Close()
		}
	}
	for _, p := range b.proxies {
		_ = p.Close()
	}
	if b.net != nil {
		_ = b.net.Close()
	}
	for _, c := range []*testbed.Cluster{b.src, b.dst} {
		if c != nil {
			c.Stop()
			if err := c.Remove(); err != nil {
				b.o.logger.Warn("remove cluster", "err", err)
			}
		}
	}
}

// profile loads one profile's dataset and measures every run and stage on it.
func (b *bench) profile(ctx context.Context, d dataset, rep *report) error {
	topic := "bench-" + d.profile.name
	if err := load(ctx, b.src.Bootstrap(), topic, d, b.o.progress); err != nil {
		return err
	}
	rep.datasets = append(rep.datasets, d)
	b.idle = b.idle[:0]
	for i := range b.o.idleTopics {
		t := fmt.Sprintf("idle-%d-%s", i+1, d.profile.name)
		if err := createTopic(ctx, b.srcCl, t, d.partitions); err != nil {
			return err
		}
		b.idle = append(b.idle, t)
	}
	for run := 1; run <= b.o.runs; run++ {
		for _, st := range b.o.stages {
			b.o.logger.Info("stage", "profile", d.profile.name, "run", run, "stage", st)
			r, err := b.stage(ctx, st, d, topic, run)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", run, st, err)
			}
			rep.add(r)
			b.o.logger.Info("measured", "profile", d.profile.name, "run", run, "stage", st,
				"MB/s", fmt.Sprintf("%.1f", r.mbps()), "records/s", fmt.Sprintf("%.0f", r.rps()),
				"startup", r.Startup.Round(time.Millisecond), "cpu", r.CPU.Round(time.Millisecond),
				"rss_MB", r.PeakRSS>>20, "slots_held", heldText(r.Held), "latency", latencyText(r.Latency), "check", checkText(r.Check), "codec", r.Codec)
			if b.o.wan.enabled() {
				drain := r.Startup + r.Copy
				b.o.logger.Info("over the WAN", "profile", d.profile.name, "run", run, "stage", st, "wan", b.o.wan.String(),
					"drain", drain.Round(100*time.Millisecond), "wire_MB", fmt.Sprintf("%.1f", float64(r.WireBytes)/1e6),
					"wire_per_payload", fmt.Sprintf("%.3f", float64(r.WireBytes)/float64(r.Bytes)),
					"utilisation", fmt.Sprintf("%.1f%%", 100*float64(r.WireBytes)/drain.Seconds()/float64(b.o.wan.rate)))
			}
			if err := b.cleanup(ctx, topic); err != nil {
				return err
			}
		}
	}
	if b.o.pprofDir != "" {
		if err := b.profileEdgelink(ctx, d, topic); err != nil {
			return err
		}
		if err := b.cleanup(ctx, topic); err != nil {
			return err
		}
	}
	return deleteTopics(ctx, b.srcCl, append([]string{topic}, b.idle...)...)
}

func (b *bench) stage(ctx context.Context, name string, d dataset, topic string, run int) (result, error) {
	r := result{Profile: d.profile.name, Stage: name, Run: run}
	st, agents := splitStage(name)
	var err error
	switch st {
	case stageRawConsume:
		err = b.rawConsume(ctx, d, topic, &r)
	case stageRawProduce:
		err = b.rawProduce(ctx, d, topic, run, &r)
	case stageEOS, stageALO:
		err = b.edgelinkStage(ctx, b.edgelink, d, topic, run, agents, st == stageEOS, &r)
	case stageBaseEOS, stageBaseALO:
		err = b.edgelinkStage(ctx, b.o.baseline, d, topic, run, agents, st == stageBaseEOS, &r)
	case stageMM2:
		err = b.mm2Stage(ctx, d, topic, run, &r)
	}
	if err != nil {
		return r, err
	}
	if r.Check != nil && (r.Check.lost > 0 || r.Check.reordered > 0 || (st == stageEOS || st == stageBaseEOS || st == stageRawProduce) && r.Check.dups > 0) {
		return r, fmt.Errorf("the copy is wrong: %s", r.Check)
	}
	return r, nil
}

func (b *bench) rawConsume(ctx context.Context, d dataset, topic string, r *result) error {
	rep, began, err := spawnChild(ctx, roleConsume, b.o.progress, childArgs(b.src.Bootstrap(), topic, d)...)
	if err != nil {
		return err
	}
	if rep.Records != d.records {
		return fmt.Errorf("read %d records, want %d", rep.Records, d.records)
	}
	fillChild(r, rep, began)
	return nil
}

func (b *bench) rawProduce(ctx context.Context, d dataset, topic string, run int, r *result) error {
	dest := fmt.Sprintf("raw-r%d.%s", run, topic)
	if err := createTopic(ctx, b.dstCl, dest, d.partitions); err != nil {
		return err
	}
	if err := waitTopic(ctx, b.dst.Bootstrap(), dest, d.partitions, time.Minute); err != nil {
		return err
	}
	rep, began, err := spawnChild(ctx, roleProduce, b.o.progress, childArgs(b.dst.Bootstrap(), dest, d, "-compression", destCodec)...)
	if err != nil {
		return err
	}
	fillChild(r, rep, began)
	r.Codec = rep.Codec
	if b.o.verify {
		t, err := verifyCopy(ctx, b.dst.Bootstrap(), dest, d.perPartition())
		if err != nil {
			return err
		}
		r.Check = &t
	}
	return nil
}

func fillChild(r *result, rep childReport, began time.Time) {
	r.Records, r.Bytes = rep.Records, rep.Bytes
	r.Startup = rep.First.Sub(began)
	r.Copy = max(rep.Last.Sub(rep.First), time.Millisecond)
	r.CPU = rep.CPULast - rep.CPUFirst
	r.CPUTotal = rep.CPULast
	r.PeakRSS = rep.MaxRSS
}

// metadataAge is the metadata age of the bench's own clients: it asks about
// topics just created, and franz-go refreshes metadata at most every 5s by
// default.
const metadataAge = 100 * time.Millisecond

// destCodec is the compression every writer uses towards the destination:
// edgelink's lan profile default, set for MirrorMaker 2 and the raw producer too.
const destCodec = "snappy"

// replica is a running replicator: one process, or several edgelink
// agents sharing a link.
type replica struct {
	pids []int
	// exited returns an error once a process has exited.
	exited func() error
	// stop ends the processes gracefully (SIGTERM, then SIGKILL after a
	// grace period) and reports a bad exit.
	stop func() error
	// status holds the edgelink agents' status API addresses (host:port),
	// none for MirrorMaker 2.
	status []string
}

// together returns replicas as one: all their processes, exited as soon as
// one has exited, stopped all at once.
func together(rs []replica) replica {
	g := replica{
		exited: func() error {
			for _, r := range rs {
				if err := r.exited(); err != nil {
					return err
				}
			}
			return nil
		},
		stop: func() error {
			errs := make([]error, len(rs))
			var wg sync.WaitGroup
			for i, r := range rs {
				wg.Go(func() { errs[i] = r.stop() })
			}
			wg.Wait()
			return errors.Join(errs...)
		},
	}
	for _, r := range rs {
		g.pids = append(g.pids, r.pids...)
		g.status = append(g.status, r.status...)
	}
	return g
}

// measure follows a replicator copying d to dest: it times the copy and
// samples the CPU and memory of its processes, then measures latency
// through the topics srcLat -> dstLat, stops the replicator and verifies
// the copy.
func (b *bench) measure(ctx context.Context, d dataset, began time.Time, rp replica, dest, srcLat, dstLat string, r *result) (err error) {
	smp := startSampler(rp.pids, 100*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			if serr := rp.stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	wire := b.wanStart()
	w := newWatcher(b.dstCl, dest, d.perPartition())
	var (
		prevPoll, first, last time.Time
		cpuFirst, cpuLast     time.Duration
	)
	prevPoll = began
	deadline := began.Add(b.o.stageTimeout)
	for {
		if err := rp.exited(); err != nil {
			_, _ = smp.close()
			return err
		}
		pollAt := time.Now()
		started, complete, err := w.poll(ctx)
		if err != nil {
			_, _ = smp.close()
			return err
		}
		// An event seen by this poll happened since the previous one.
		at := prevPoll.Add(pollAt.Sub(prevPoll) / 2)
		if started && first.IsZero() {
			first, cpuFirst = at, smp.sample().cpu
		}
		if complete {
			last, cpuLast = at, smp.sample().cpu
			break
		}
		if pollAt.After(deadline) {
			_, _ = smp.close()
			return fmt.Errorf("%s not complete after %s", dest, b.o.stageTimeout)
		}
		prevPoll = pollAt
		select {
		case <-ctx.Done():
			_, _ = smp.close()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.Records, r.Bytes = d.records, d.bytes()
	r.Startup = first.Sub(began)
	r.Copy = max(last.Sub(first), time.Millisecond)
	r.CPU, r.CPUTotal = cpuLast-cpuFirst, cpuLast
	r.Codec = w.codec
	wire.done(b, r)
	if len(rp.status) > 0 {
		if r.Held, err = slotsHeld(ctx, rp.status); err != nil {
			_, _ = smp.close()
			return err
		}
	}
	if !b.o.wan.enabled() { // over the WAN the round trip dominates latency
		if err := createTopic(ctx, b.srcCl, srcLat, d.partitions); err != nil {
			_, _ = smp.close()
			return err
		}
		lat, err := measureLatency(ctx, b.src.Bootstrap(), b.dst.Bootstrap(), srcLat, dstLat, d.profile, d.partitions, b.o.latency)
		if err != nil {
			_, _ = smp.close()
			return fmt.Errorf("measure latency: %w", err)
		}
		r.Latency = &lat
	}
	if r.PeakRSS, err = smp.close(); err != nil {
		return err
	}
	stopped = true
	if err := rp.stop(); err != nil {
		return err
	}
	if b.o.verify {
		t, err := verifyCopy(ctx, b.dst.Bootstrap(), dest, d.perPartition())
		if err != nil {
			return err
		}
		r.Check = &t
	}
	return nil
}

// edgelinkStage runs the edgelink binary with one link copying the dataset
// topic and a latency topic: agents processes of one site, with the same
// configuration but for their HTTP listeners, that share the link.
func (b *bench) edgelinkStage(ctx context.Context, bin string, d dataset, topic string, run, agents int, eos bool, r *result) (err error) {
	mode, short := "at-least-once", "alo"
	if eos {
		mode, short = "exactly-once", "eos"
	}
	if bin != b.edgelink {
		short = "base-" + short
	}
	if agents > 1 {
		// A link of its own: the checkpoints of the same link run by
		// another number of agents would stop it from copying again.
		short += fmt.Sprintf("-x%d", agents)
	}
	name := fmt.Sprintf("r%d-%s-%s", run, short, d.profile.name)
	srcLat := "lat-" + name
	topics := append([]string{topic, srcLat}, b.idle...)
	profile := ""
	if b.o.wan.enabled() {
		profile = "wan"
	}
	// Every agent serves its status API on an address of its own, known in
	// advance, so that the bench can ask each how it shares the link.
	addrs, err := freeAddrs(ctx, agents)
	if err != nil {
		return err
	}
	level := "warn"
	if b.o.keepLogs {
		level = "info"
	}
	cfgs := make([]string, agents)
	for i := range agents {
		base := name
		if agents > 1 {
			base = fmt.Sprintf("%s.agent%d", name, i+1)
		}
		cfgs[i] = filepath.Join(b.work, base)
		cfg := linkConfig(b.src.Bootstrap(), b.destination(), name, mode, profile, addrs[i], b.o.discovery, topics...)
		if err := os.WriteFile(cfgs[i]+".yaml", []byte(cfg), 0o644); err != nil {
			return fmt.Errorf("write edgelink config: %w", err)
		}
	}
	var started []replica
	defer func() {
		if err != nil && len(started) > 0 {
			err = errors.Join(err, together(started).stop())
		}
	}()
	began := time.Now()
	for i, cfg := range cfgs {
		var one replica
		if one, err = startEdgelink(bin, cfg+".yaml", cfg+".log", level, addrs[i]); err != nil {
			return err
		}
		started = append(started, one)
	}
	rp := together(started)
	started = nil // measure stops them
	return b.measure(ctx, d, began, rp, name+"."+topic, srcLat, name+"."+srcLat, r)
}

// freeAddrs returns n distinct loopback addresses with a port free now.
func freeAddrs(ctx context.Context, n int) ([]string, error) {
	var lc net.ListenConfig
	out := make([]string, n)
	for i := range n {
		l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		// Held open until all are picked, so that the n differ.
		defer l.Close()
		out[i] = l.Addr().String()
	}
	return out, nil
}

// slotsHeld asks each edgelink agent at addrs how many slots of its only
// link it holds.
func slotsHeld(ctx context.Context, addrs []string) ([]int, error) {
	out := make([]int, len(addrs))
	for i, addr := range addrs {
		snap, err := agentStatus(ctx, addr)
		if err != nil {
			return nil, err
		}
		if len(snap.Links) != 1 {
			return nil, fmt.Errorf("agent at %s shows %d links, want 1", addr, len(snap.Links))
		}
		if sh := snap.Links[0].Sharing; sh != nil {
			out[i] = len(sh.Held)
		}
	}
	return out, nil
}

// agentStatus reads the status API of the edgelink agent at addr.
func agentStatus(ctx context.Context, addr string) (*status.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := "http://" + addr + "/api/v1/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ask %s: %s", url, resp.Status)
	}
	var snap status.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return nil, fmt.Errorf("decode %s: %w", url, err)
	}
	return &snap, nil
}

// linkConfig is the edgelink configuration of one bench link: defaults
// everywhere (the lan profile: snappy to the destination) but the delivery.
// listen is the agent's HTTP address, the only line in which the
// configurations of agents sharing the link differ.
func linkConfig(src, dst []string, name, delivery, profile, listen string, discovery time.Duration, topics ...string) string {
	extra := ""
	if discovery > 0 {
		extra = fmt.Sprintf("    discovery_interval: %s\n", discovery)
	}
	if profile != "" {
		extra += fmt.Sprintf("    profile: %s\n", profile)
	}
	return fmt.Sprintf(`site: bench
clusters:
  edge: {bootstrap: [%s]}
  cloud: {bootstrap: [%s]}
links:
  - name: %s
    from: edge
    to: cloud
    topics: {include: [%s]}
    rename: "%s.{topic}"
    start: earliest
    delivery: %s
%shttp:
  listen: %q
`, quoteAll(src), quoteAll(dst), name, quoteAll(topics), name, delivery, extra, listen)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// startEdgelink starts `edgelink run -c cfg` with its logs in logPath and
// its status API at addr.
func startEdgelink(bin, cfg, logPath, level, addr string) (replica, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return replica{}, fmt.Errorf("create edgelink log: %w", err)
	}
	cmd := exec.Command(bin, "run", "-c", cfg, "--log-level", level) //nolint:noctx // stopped by SIGTERM in stop
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return replica{}, fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		logf.Close()
		close(done)
	}()
	exitErr := func() error {
		logs, _ := os.ReadFile(logPath)
		cause := waitErr
		if cause == nil {
			cause = errors.New("exit status 0")
		}
		return fmt.Errorf("edgelink exited (%w); log %s:\n%s", cause, logPath, lastLines(string(logs), 15))
	}
	return replica{
		pids:   []int{cmd.Process.Pid},
		status: []string{addr},
		exited: func() error {
			select {
			case <-done:
				return exitErr()
			default:
				return nil
			}
		},
		stop: func() error {
			select {
			case <-done:
				return exitErr()
			default:
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
				return fmt.Errorf("edgelink did not stop within 30s of SIGTERM; log %s", logPath)
			}
			if waitErr != nil {
				return exitErr()
			}
			return nil
		},
	}, nil
}

// mm2Stage runs MirrorMaker 2 in dedicated mode, tuned for throughput.
func (b *bench) mm2Stage(ctx context.Context, d dataset, topic string, run int, r *result) error {
	b.seq++
	alias := fmt.Sprintf("src%d", b.seq)
	srcLat := fmt.Sprintf("lat-r%d-mm2-%s", run, d.profile.name)
	began := time.Now()
	m, err := testbed.StartMirrorMaker(ctx, testbed.MirrorMakerOptions{
		Name: "mm2-" + alias, Source: b.src.Bootstrap(), Target: b.destination(),
		SourceAlias: alias, TargetAlias: "cloud",
		Topics:   strings.Join(append([]string{topic, srcLat}, b.idle...), ","),
		TasksMax: d.partitions,
		Props:    b.mm2Tuned(alias, "cloud"),
		FullJIT:  !b.o.quickJIT,
		JVMFlags: b.mm2JVMFlags(),
		Dir:      filepath.Join(b.work, "mm2-"+alias),
		Progress: b.o.progress,
	})
	if err != nil {
		return err
	}
	b.mm2Props = normalizeProps(m.Properties(), alias, b.src.Bootstrap(), b.destination(), topic, srcLat)
	rp := replica{
		pids:   []int{m.PID()},
		exited: m.Exited,
		stop: func() error {
			m.Stop(30 * time.Second)
			return nil
		},
	}
	if m.PID() == 0 {
		return m.Exited()
	}
	return b.measure(ctx, d, began, rp, m.RemoteTopic(topic), srcLat, m.RemoteTopic(srcLat), r)
}

// mm2Tuned is MirrorMaker 2's tuning for this bench: for throughput, and
// for the WAN when there is one.
func (b *bench) mm2Tuned(source, target string) map[string]string {
	p := mm2Tuning(source, target, b.o.discovery)
	if b.o.wan.enabled() {
		maps.Copy(p, mm2WANTuning(target))
	}
	return p
}

// mm2Tuning is how the bench tunes MirrorMaker 2 for throughput, on top of
// the test bed's defaults: one task per partition, large producer batches
// with a short linger and the same compression as edgelink's, and large
// consumer polls. The heap stays at connect-mirror-maker.sh's 2 GiB.
func mm2Tuning(source, target string, discovery time.Duration) map[string]string {
	p := map[string]string{
		target + ".producer.batch.size":       "524288",
		target + ".producer.linger.ms":        "20",
		target + ".producer.compression.type": destCodec,
		target + ".producer.buffer.memory":    "67108864",
		target + ".producer.acks":             "all",
		source + ".consumer.max.poll.records": "4000",
		source + ".consumer.fetch.max.bytes":  "52428800",
		"offset.flush.interval.ms":            "10000",
	}
	if discovery > 0 {
		p["refresh.topics.interval.seconds"] = strconv.Itoa(max(int(discovery.Seconds()), 1))
	}
	return p
}

// normalizeProps replaces run-specific names and addresses in
// mm2.properties with placeholders, for the report.
func normalizeProps(props, alias string, src, dst []string, topic, latTopic string) string {
	return strings.NewReplacer(
		strings.Join(src, ","), "<edge bootstrap>",
		strings.Join(dst, ","), "<cloud bootstrap>",
		topic+","+latTopic, "<dataset topic>,<latency topic>",
		alias+".", "edge.", alias+"->", "edge->", "->"+alias, "->edge", alias+", ", "edge, ",
	).Replace(props)
}

// cleanup deletes every topic but the dataset, the idle topics and the
// internal ones at the source, and every non-internal topic at the destination, so that the
// next stage starts from the same state.
func (b *bench) cleanup(ctx context.Context, keep string) error {
	for _, side := range []struct {
		cl   *kgo.Client
		keep []string
	}{{b.srcCl, append([]string{keep}, b.idle...)}, {b.dstCl, nil}} {
		tds, err := kadm.NewClient(side.cl).ListTopics(ctx)
		if err != nil {
			return fmt.Errorf("list topics: %w", err)
		}
		var del []string
		for _, t := range tds.Names() {
			if !slices.Contains(side.keep, t) && !strings.HasPrefix(t, "__") {
				del = append(del, t)
			}
		}
		if len(del) > 0 {
			if err := deleteTopics(ctx, side.cl, del...); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyFile copies the executable src to dst and returns dst.
func copyFile(src, dst string) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("read edgelink binary: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("copy edgelink binary: %w", err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		return "", fmt.Errorf("copy edgelink binary: %w", err)
	}
	return dst, nil
}

// buildEdgelink builds the edgelink binary of this module into dir.
func buildEdgelink(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "edgelink")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/edgelink/edgelink/cmd/edgelink")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build edgelink: %w\n%s", err, out)
	}
	return bin, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
