package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/edgelink/edgelink/internal/bench/procstat"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/status"
)

// pollEvery is how often the bench reads the agent's status.
const pollEvery = 200 * time.Millisecond

// linkSpec is the link of one edgelink run.
type linkSpec struct {
	name, topic string
	// groups is the include pattern of its groups block.
	groups   string
	interval time.Duration
}

func (l linkSpec) mirror() string { return l.name + "." + l.topic }

// configYAML is the agent's configuration for one run: the link copies
// the topic into <name>.<topic> and syncs the groups every interval; the
// status API (and Go's profiles) listen at listen.
func configYAML(edge, cloud []string, l linkSpec, listen string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "site: bench\nclusters:\n  edge: {bootstrap: [%q]}\n  cloud: {bootstrap: [%q]}\n",
		strings.Join(edge, ","), strings.Join(cloud, ","))
	fmt.Fprintf(&b, "links:\n  - name: %s\n    from: edge\n    to: cloud\n    topics: {include: [%s]}\n    rename: %q\n",
		l.name, l.topic, l.name+".{topic}")
	fmt.Fprintf(&b, "    groups: {include: [%q], interval: %s}\n", l.groups, l.interval)
	fmt.Fprintf(&b, "http: {listen: %q, pprof: true}\n", listen)
	return b.String()
}

// round is one group sync round as the agent's status showed it.
type round struct {
	at                                           time.Time // when it ended (the agent's last_sync)
	took                                         time.Duration
	selected, synced, committed, active, pending int
	err                                          string
}

// full reports whether the round synced every one of n groups on every
// partition: all selected, all synced, nothing pending or active, no
// error.
func (r round) full(n int) bool {
	return r.selected == n && r.synced == n && r.pending == 0 && r.active == 0 && r.err == ""
}

// elRun is one edgelink run.
type elRun struct {
	run  int
	link linkSpec
	set  *groupSet
	// commitTook is how long the bench took to commit the groups at the
	// source (not the agent's work: a reference).
	commitTook time.Duration
	// caughtUp is from the agent's start to the link having committed
	// every source record at the destination (as its status shows).
	caughtUp time.Duration
	// rounds are the sync rounds seen, up to the one after the first
	// full one.
	rounds []round
	// fullRound is the index in rounds of the first full round; -1 when
	// none came before the deadline.
	fullRound int
	// endToEnd is from the link caught up to the first full round's end;
	// fromStart from the agent's start to it.
	endToEnd, fromStart time.Duration
	// cpu is the agent's CPU time from the link caught up to the first
	// full round's end (as the bench saw it, within pollEvery).
	cpu time.Duration
	// check compares the destination's offsets with the exact ones.
	check tally
	// mismatches counts mirror records whose provenance header disagrees
	// with their value; dups the records not after the previous one.
	mismatches, dups int
}

// next returns the round after the first full one.
func (r *elRun) next() (round, bool) {
	if r.fullRound < 0 || r.fullRound+1 >= len(r.rounds) {
		return round{}, false
	}
	return r.rounds[r.fullRound+1], true
}

// full returns the first full round.
func (r *elRun) full() (round, bool) {
	if r.fullRound < 0 {
		return round{}, false
	}
	return r.rounds[r.fullRound], true
}

// edgelinkRun commits run's groups at the source, runs the agent until the
// round after the first full sync round after the link caught up (or the
// deadline), stops it and checks every group at the destination.
func (b *bench) edgelinkRun(ctx context.Context, run int) (*elRun, error) {
	res := &elRun{run: run, fullRound: -1, link: linkSpec{
		name: fmt.Sprintf("g%d", run), topic: b.data.topic, groups: fmt.Sprintf(`bench-r%d-.*`, run), interval: b.o.interval,
	}}
	res.set = newGroupSet(fmt.Sprintf("bench-r%d-", run), b.o.seed, uint64(run), b.o.groups, b.data.ends, b.o.endShare)
	var err error
	if res.commitTook, err = res.set.commit(ctx, b.srcAdm, b.data.topic, b.o.commitWorkers); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "run %d: committed %d groups at the source in %s\n", run, len(res.set.ids), res.commitTook.Round(time.Millisecond))

	listen, err := freeAddr(ctx)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(b.dir, res.link.name+".yaml")
	y := configYAML(b.pair.Edge.Bootstrap(), b.pair.Cloud.Bootstrap(), res.link, listen)
	if _, err := config.Parse(cfgPath, []byte(y)); err != nil {
		return nil, fmt.Errorf("the bench's configuration: %w", err)
	}
	if err := os.WriteFile(cfgPath, []byte(y), 0o600); err != nil {
		return nil, err
	}
	b.configExample = y
	a, err := b.startAgent(ctx, res.link.name, cfgPath)
	if err != nil {
		return nil, err
	}
	werr := b.watch(ctx, a, listen, res)
	serr := a.stop()
	if werr != nil || serr != nil {
		return nil, errors.Join(werr, serr)
	}
	if err := b.checkEdgelink(ctx, res); err != nil {
		return nil, err
	}
	t := res.check
	fmt.Fprintf(os.Stderr, "run %d: %d of %d groups complete at the destination, %d exact, %d off (%d partitions ahead, %d behind, max %d records)\n",
		run, t.complete, t.groups, t.exact, t.off, t.ahead, t.behind, t.maxOff())
	for _, adm := range []*kadm.Client{b.srcAdm, b.dstAdm} {
		if err := res.set.remove(ctx, adm); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// watch reads the agent's status until the round after the first full
// sync round after the link caught up, or the deadlines; with -pprof, in run 1, it profiles
// the agent from the catch-up on, for an interval and 30 s.
func (b *bench) watch(ctx context.Context, a *agent, listen string, res *elRun) error {
	var profs errgroup.Group
	err := b.watchStatus(ctx, a, listen, res, &profs)
	return errors.Join(err, profs.Wait())
}

func (b *bench) watchStatus(ctx context.Context, a *agent, listen string, res *elRun, profs *errgroup.Group) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + listen + "/api/v1/status"
	n := len(res.set.ids)
	deadline := a.began.Add(b.o.syncTimeout)
	var (
		caughtUp time.Time
		cpuAt    time.Duration
		seen     = make(map[time.Time]bool)
		last     string
	)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.exited:
			return fmt.Errorf("edgelink exited: %w\n%s", a.err, tail(a.log, 20))
		case <-tick.C:
		}
		now := time.Now()
		ls, err := linkStatus(ctx, hc, url, res.link.name)
		if err != nil {
			if now.After(deadline) {
				return fmt.Errorf("status of link %s: %w", res.link.name, err)
			}
			continue
		}
		if caughtUp.IsZero() && ls.Records >= int64(b.data.committed) {
			caughtUp = now
			res.caughtUp = now.Sub(a.began)
			deadline = now.Add(b.o.syncTimeout)
			cpuAt, _ = procstat.CPU(a.cmd.Process.Pid)
			fmt.Fprintf(os.Stderr, "run %d: link caught up after %.2f s (%d records)\n", res.run, res.caughtUp.Seconds(), ls.Records)
			if b.o.pprofDir != "" && res.run == 1 {
				secs := int((b.o.interval + 30*time.Second).Seconds())
				profs.Go(func() error {
					return fetchProfile(ctx, listen, "profile", secs, filepath.Join(b.o.pprofDir, "edgelink-groups.cpu.pprof"))
				})
				profs.Go(func() error {
					return fetchProfile(ctx, listen, "trace", secs, filepath.Join(b.o.pprofDir, "edgelink-groups.trace"))
				})
			}
		}
		if g := ls.Groups; g != nil && g.LastSync != nil && !seen[*g.LastSync] {
			seen[*g.LastSync] = true
			rd := round{
				at: *g.LastSync, took: time.Duration(g.TookSeconds * float64(time.Second)), selected: g.Selected,
				synced: g.Synced, committed: g.Committed, active: g.Active, pending: g.Pending, err: g.LastError,
			}
			res.rounds = append(res.rounds, rd)
			fmt.Fprintf(os.Stderr, "run %d: round took %.2f s: %d selected, %d synced, %d offsets committed, %d active, %d pending%s\n",
				res.run, rd.took.Seconds(), rd.selected, rd.synced, rd.committed, rd.active, rd.pending, errSuffix(rd.err))
			switch {
			case res.fullRound >= 0:
				return nil // the round after the full one
			case !caughtUp.IsZero() && rd.full(n):
				res.fullRound = len(res.rounds) - 1
				res.endToEnd = rd.at.Sub(caughtUp)
				res.fromStart = rd.at.Sub(a.began)
				if cpu, err := procstat.CPU(a.cmd.Process.Pid); err == nil {
					res.cpu = cpu - cpuAt
				}
				// One more round: what a round costs when every group
				// is synced already.
				deadline = now.Add(b.o.interval + time.Minute)
			}
		}
		if s := ls.State; s != last {
			last = s
			if s == "failed" {
				return fmt.Errorf("link %s failed: %s", res.link.name, ls.LastError)
			}
		}
		if now.After(deadline) {
			if res.fullRound >= 0 {
				return nil
			}
			what := "catch up"
			if !caughtUp.IsZero() {
				what = "complete a full sync round"
			}
			fmt.Fprintf(os.Stderr, "run %d: the link did not %s within %s; checking what it did\n", res.run, what, b.o.syncTimeout)
			return nil
		}
	}
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return "; error: " + err
}

// linkStatus reads the agent's status and returns link name's.
func linkStatus(ctx context.Context, hc *http.Client, url, name string) (status.LinkStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return status.LinkStatus{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return status.LinkStatus{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return status.LinkStatus{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var snap status.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return status.LinkStatus{}, fmt.Errorf("decode %s: %w", url, err)
	}
	for _, l := range snap.Links {
		if l.Name == name {
			return l, nil
		}
	}
	return status.LinkStatus{}, fmt.Errorf("no link %s in the status", name)
}

// fetchProfile writes a profile (kind "profile": CPU, or "trace": the
// execution trace) of secs seconds from the agent's /debug/pprof to path.
func fetchProfile(ctx context.Context, listen, kind string, secs int, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", listen, kind, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile edgelink: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile edgelink: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile edgelink: %w", err)
	}
	fmt.Fprintln(os.Stderr, "wrote", path)
	return f.Close()
}

// checkEdgelink reads the run's mirror topic once, maps every record's
// source offset (its provenance header) to its mirror offset, and
// compares every group's offsets at the destination with the exact ones.
func (b *bench) checkEdgelink(ctx context.Context, res *elRun) error {
	mirror := res.link.mirror()
	maps, err := b.mirrorMaps(ctx, mirror, func(r *kgo.Record) (int64, error) {
		o, found, err := provenance.Find(r)
		if err != nil || !found {
			return 0, fmt.Errorf("record %s[%d]@%d has no valid provenance header", mirror, r.Partition, r.Offset)
		}
		if o.Partition != r.Partition {
			return 0, fmt.Errorf("record %s[%d]@%d comes from partition %d", mirror, r.Partition, r.Offset, o.Partition)
		}
		if at, ok := b.data.offsetOf[string(r.Value)]; !ok || at != o.Offset {
			res.mismatches++
		}
		return o.Offset, nil
	}, &res.dups)
	if err != nil {
		return err
	}
	got, err := res.set.fetch(ctx, b.dstAdm, mirror)
	if err != nil {
		return err
	}
	res.check = res.set.check(maps, got)
	return nil
}

// mirrorMaps reads a mirror topic of the source topic once and builds its
// partitions' maps; sourceOf tells a mirror record's source offset; dups
// counts records not after the previous one (left out of the maps).
func (b *bench) mirrorMaps(ctx context.Context, mirror string, sourceOf func(*kgo.Record) (int64, error), dups *int) ([]partitionMap, error) {
	ends, err := endOffsets(ctx, b.dstCl, mirror, b.data.partitions)
	if err != nil {
		return nil, err
	}
	maps := make([]partitionMap, b.data.partitions)
	for p := range maps {
		maps[p].end = ends[p]
	}
	err = readAll(ctx, b.pair.Cloud, mirror, ends, func(r *kgo.Record) error {
		if r.Attrs.IsControl() {
			return nil
		}
		s, err := sourceOf(r)
		if err != nil {
			return err
		}
		if !maps[r.Partition].add(s, r.Offset) {
			*dups++
		}
		return nil
	}, func() {})
	return maps, err
}

// agent is a running edgelink process.
type agent struct {
	cmd    *exec.Cmd
	began  time.Time
	log    string
	exited chan struct{}
	err    error
}

// startAgent starts `edgelink run -c cfg`, its output into <name>.log.
func (b *bench) startAgent(ctx context.Context, name, cfg string) (*agent, error) {
	level := "warn"
	if b.o.verbose {
		level = "info"
	}
	a := &agent{log: filepath.Join(b.dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(a.log)
	if err != nil {
		return nil, err
	}
	a.cmd = exec.CommandContext(ctx, b.bin, "run", "-c", cfg, "--log-level", level)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a.began = time.Now()
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", b.bin, err)
	}
	go func() {
		a.err = a.cmd.Wait()
		logf.Close()
		close(a.exited)
	}()
	return a, nil
}

// stop sends SIGTERM and waits for the agent to drain and exit; after 30 s
// it kills it.
func (a *agent) stop() error {
	select {
	case <-a.exited:
		return nil
	default:
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop edgelink: %w", err)
	}
	select {
	case <-a.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
		return fmt.Errorf("edgelink did not stop within 30 s of SIGTERM; killed (log: %s)", a.log)
	}
}

// freeAddr returns a free loopback address for the agent's HTTP server.
func freeAddr(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
