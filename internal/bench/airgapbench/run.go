package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/bench/procstat"
	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/testbed"
	"github.com/edgelink/edgelink/internal/verify"
)

// Topics of the source cluster.
const (
	sourceTopic = "logs"
	warmupTopic = "warmup"
)

// link is one link of the bench's configuration: each run carries the
// source topic under a link of its own, so that each export starts from
// the topic's beginning and each import writes all of it, into the mirror
// topic <name>.<topic>.
type link struct {
	name, topic string
	encrypted   bool
}

func (l link) mirror() string { return l.name + "." + l.topic }

// links are the links of the configuration: warmup, p1..pN, e1 (encrypted)
// and prof (the profiled run).
func links(runs int) []link {
	ls := []link{{name: "warmup", topic: warmupTopic}}
	for r := 1; r <= runs; r++ {
		ls = append(ls, link{name: "p" + strconv.Itoa(r), topic: sourceTopic})
	}
	return append(ls, link{name: "e1", topic: sourceTopic, encrypted: true}, link{name: "prof", topic: sourceTopic})
}

// keys are the files the links' bundle blocks name.
type keys struct {
	// signingKey and publicKey are from edgelink keygen.
	signingKey, publicKey string
	// recipient is the age recipient of identityFile.
	recipient    string
	identityFile string
	identity     *age.X25519Identity
}

// configYAML is the configuration of every link, at the site and in the
// cloud at once: each bundle block both signs and trusts, and the
// encrypted link both encrypts and decrypts.
func configYAML(edge, cloud []string, k keys, chunkSize string, ls []link) string {
	var b strings.Builder
	fmt.Fprintf(&b, "site: bench\nclusters:\n  edge: {bootstrap: [%q]}\n  cloud: {bootstrap: [%q]}\nlinks:\n",
		strings.Join(edge, ","), strings.Join(cloud, ","))
	for _, l := range ls {
		fmt.Fprintf(&b, "  - name: %s\n    from: edge\n    to: cloud\n    topics: {include: [%s]}\n    rename: %q\n",
			l.name, l.topic, l.name+".{topic}")
		fmt.Fprintf(&b, "    bundle:\n      signing_key: %s\n      trusted_keys: [%s]\n", k.signingKey, k.publicKey)
		if l.encrypted {
			fmt.Fprintf(&b, "      encrypt_to: [%s]\n      decrypt_with: [%s]\n", k.recipient, k.identityFile)
		}
		if chunkSize != "" {
			fmt.Fprintf(&b, "      chunk_size: %s\n", chunkSize)
		}
	}
	return b.String()
}

// bench holds what every run uses.
type bench struct {
	o      options
	pair   *testbed.Pair
	dir    string
	bin    string
	config string
	keys   keys
	// src and dst are clients of the two clusters, for the checks.
	src, dst *kgo.Client
	data     *dataset
}

// usage is what one edgelink process took: from its start to its exit,
// its user plus system CPU time, and its peak resident set in bytes; and
// the CPU time of the Kafka broker it talked to meanwhile (the source's
// for an export, the destination's for an import).
type usage struct {
	wall, cpu time.Duration
	peak      int64
	broker    time.Duration
}

// result is one run: an export and the import of its bundle.
type result struct {
	link     link
	run      int
	exp, imp usage
	records  int64 // records in the bundle
	chunks   int
	// bundleBytes is the size of the bundle's files.
	bundleBytes int64
	// written is what the import says it wrote.
	written int64
	// check is the verify report's verdict: "ok" or its discrepancies.
	check string
}

// exportRate and importRate are in MB (10^6 bytes) of keys and values a
// second.
func (r result) exportRate(d *dataset) float64 { return float64(d.bytes) / 1e6 / r.exp.wall.Seconds() }

func (r result) importRate(d *dataset) float64 { return float64(d.bytes) / 1e6 / r.imp.wall.Seconds() }

// carry exports the link's records into a bundle, imports it and checks
// the mirror topic against the source.
func (b *bench) carry(ctx context.Context, l link, run int, want int64) (result, error) {
	res := result{link: l, run: run}
	out := filepath.Join(b.dir, "bundle-"+l.name)
	var err error
	res.exp, _, err = b.edgelink(ctx, "export-"+l.name, b.pair.Edge, "bundle", "export", "-c", b.config, "--link", l.name, "--out", out, "-q")
	if err != nil {
		return res, err
	}
	m, err := readManifest(out)
	if err != nil {
		return res, err
	}
	res.records, res.chunks = m.Records, len(m.Chunks)
	if res.records != want {
		return res, fmt.Errorf("export %s: the bundle holds %d records, not %d", l.name, res.records, want)
	}
	if res.bundleBytes, err = dirSize(out); err != nil {
		return res, err
	}
	var stdout string
	res.imp, stdout, err = b.edgelink(ctx, "import-"+l.name, b.pair.Cloud, "bundle", "import", "-c", b.config, "--link", l.name, "-q",
		"--receipt", filepath.Join(b.dir, "receipt-"+l.name+".json"), out)
	if err != nil {
		return res, err
	}
	if res.written, err = writtenOf(stdout); err != nil {
		return res, fmt.Errorf("import %s: %w", l.name, err)
	}
	if !b.o.keep {
		if err := os.RemoveAll(out); err != nil {
			return res, err
		}
	}
	began := time.Now()
	res.check, err = b.check(ctx, l, want)
	if err == nil {
		fmt.Fprintf(os.Stderr, "check-%s: %s in %.2f s\n", l.name, res.check, time.Since(began).Seconds())
	}
	return res, err
}

// check compares the link's mirror topic with its source topic record by
// record: "ok", or what is wrong.
func (b *bench) check(ctx context.Context, l link, want int64) (string, error) {
	rep, err := verify.Check(ctx, verify.Options{
		Source: b.src, Destination: b.dst, Topics: []verify.Pair{{Source: l.topic, Destination: l.mirror()}},
	})
	if err != nil {
		return "", fmt.Errorf("check %s: %w", l.mirror(), err)
	}
	switch {
	case !rep.OK():
		return "NOT OK: " + rep.Discrepancies(), nil
	case rep.SourceRecords != want || rep.DestinationRecords != want:
		return fmt.Sprintf("NOT OK: %d source and %d destination records, want %d", rep.SourceRecords, rep.DestinationRecords, want), nil
	}
	return "ok", nil
}

// edgelink runs the binary with args to its end and returns what it and
// the broker of c took, and its standard output; its standard error goes
// to <name>.log in the working directory.
func (b *bench) edgelink(ctx context.Context, name string, c *testbed.Cluster, args ...string) (usage, string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.o.timeout)
	defer cancel()
	level := "warn"
	if b.o.verbose {
		level = "info"
	}
	logPath := filepath.Join(b.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return usage{}, "", err
	}
	defer logf.Close()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, b.bin, append(args, "--log-level", level)...)
	cmd.Stdout, cmd.Stderr = &stdout, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	brokerPID := c.Brokers[0].PID()
	brokerBefore, err := procstat.CPU(brokerPID)
	if err != nil {
		return usage{}, "", fmt.Errorf("broker of %s: %w", c.Name, err)
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return usage{}, "", fmt.Errorf("start %s: %w", b.bin, err)
	}
	s := startSampler(cmd.Process.Pid, sampleEvery)
	err = cmd.Wait()
	u := usage{wall: time.Since(began)}
	u.peak, u.cpu = s.stop()
	brokerAfter, berr := procstat.CPU(brokerPID)
	if err == nil && berr != nil {
		err = fmt.Errorf("broker of %s: %w", c.Name, berr)
	}
	u.broker = brokerAfter - brokerBefore
	if err != nil {
		return u, stdout.String(), fmt.Errorf("edgelink %s: %w\n%s%s(log: %s)", strings.Join(args, " "), err, stdout.String(), tail(logPath, 20), logPath)
	}
	// The kernel's account of the process's CPU time, now that it has
	// exited, covers its last moments too. Not its ru_maxrss: Go starts a
	// child with vfork, in this process's memory until it execs, and the
	// kernel keeps that memory's high-water mark as the child's.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	fmt.Fprintf(os.Stderr, "%s: %.2f s, CPU %.2f s, peak RSS %.1f MiB; broker CPU %.2f s\n",
		name, u.wall.Seconds(), u.cpu.Seconds(), float64(u.peak)/(1<<20), u.broker.Seconds())
	return u, stdout.String(), nil
}

// sampleEvery is how often the sampler reads a running process.
const sampleEvery = 10 * time.Millisecond

// sampler reads a process's peak resident set (VmHWM) and CPU time from
// /proc while it runs.
type sampler struct {
	pid  int
	done chan struct{}
	wg   sync.WaitGroup
	hwm  int64
	cpu  time.Duration
}

func startSampler(pid int, every time.Duration) *sampler {
	s := &sampler{pid: pid, done: make(chan struct{})}
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
	return s
}

// sample reads the process once; a process that has exited (a zombie has
// no memory lines) leaves the figures as they were.
func (s *sampler) sample() {
	if _, hwm, err := procstat.Memory(s.pid); err == nil {
		s.hwm = max(s.hwm, hwm)
	}
	if cpu, err := procstat.CPU(s.pid); err == nil {
		s.cpu = max(s.cpu, cpu)
	}
}

// stop ends the sampling and returns the largest VmHWM and CPU time seen.
func (s *sampler) stop() (hwm int64, cpu time.Duration) {
	close(s.done)
	s.wg.Wait()
	return s.hwm, s.cpu
}

// readManifest reads a bundle's manifest (without checking its signature:
// the import does).
func readManifest(dir string) (*bundle.Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, bundle.ManifestFile))
	if err != nil {
		return nil, err
	}
	var m bundle.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, bundle.ManifestFile), err)
	}
	return &m, nil
}

// dirSize adds up the sizes of the files in dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

var writtenRE = regexp.MustCompile(`: (\d+) records written`)

// writtenOf reads how many records an import says it wrote.
func writtenOf(stdout string) (int64, error) {
	m := writtenRE.FindStringSubmatch(stdout)
	if m == nil {
		return 0, fmt.Errorf("no record count in its output: %q", stdout)
	}
	return strconv.ParseInt(m[1], 10, 64)
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
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

// makeKeys writes the site's signing key pair (edgelink keygen) and the
// cloud's age identity into the working directory.
func (b *bench) makeKeys(ctx context.Context) error {
	base := filepath.Join(b.dir, "site")
	if out, err := exec.CommandContext(ctx, b.bin, "keygen", "--out", base).CombinedOutput(); err != nil {
		return fmt.Errorf("edgelink keygen: %w\n%s", err, out)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	idFile := filepath.Join(b.dir, "cloud.agekey")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		return err
	}
	b.keys = keys{signingKey: base + ".key", publicKey: base + ".pub", recipient: id.Recipient().String(), identityFile: idFile, identity: id}
	return nil
}

// errCheck marks a run whose import the check found wrong.
var errCheck = errors.New("check failed")
