package testbed

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultMirrorMakerVersion is the Apache Kafka release whose MirrorMaker 2
// the test bed runs unless EDGELINK_MIRRORMAKER_VERSION names another. The
// connect-mirror jars of Kafka 4.4.0 are not published on Maven Central;
// 4.3.1 is the newest release there, and its clients talk to 4.4.0 brokers.
const DefaultMirrorMakerVersion = "4.3.1"

//go:embed mirrormaker-runtime.pom.xml
var mirrorMakerPOM []byte

// MirrorMakerVersion returns the Kafka version whose MirrorMaker 2 the test bed runs.
func MirrorMakerVersion() string {
	if v := os.Getenv("EDGELINK_MIRRORMAKER_VERSION"); v != "" {
		return v
	}
	return DefaultMirrorMakerVersion
}

// EnsureMirrorMakerRuntime returns the cached MirrorMaker 2 runtime
// (connect-mirror, connect-mirror-client, connect-runtime and their
// dependencies), fetching it from Maven Central with Maven first when it is
// missing or fails verification. It lives next to the broker runtime of the
// same version, in the mirrormaker directory.
func EnsureMirrorMakerRuntime(ctx context.Context, progress io.Writer) (*Runtime, error) {
	version := MirrorMakerVersion()
	want := []string{
		"connect-mirror-" + version + ".jar", "connect-mirror-client-" + version + ".jar",
		"connect-runtime-" + version + ".jar", "kafka-clients-" + version + ".jar",
	}
	return ensureJars(ctx, progress, jarSet{name: "Kafka MirrorMaker 2", version: version, sub: "mirrormaker", pom: mirrorMakerPOM, want: want})
}

// MirrorMakerOptions configures a MirrorMaker 2 process started by
// [StartMirrorMaker]: one replication flow, SourceAlias->TargetAlias.
type MirrorMakerOptions struct {
	// Name labels the process in directories and messages; default "mm2".
	Name string
	// Source and Target are the bootstrap servers of the two clusters.
	Source, Target []string
	// SourceAlias and TargetAlias name the clusters inside MirrorMaker;
	// default "source" and "target". With the default replication policy a
	// topic T is mirrored as SourceAlias + "." + T, and MirrorMaker's own
	// state (offsets, configs, status topics) is named after SourceAlias,
	// so a new alias starts from scratch.
	SourceAlias, TargetAlias string
	// Topics is the regular expression of source topics to mirror; default ".*".
	Topics string
	// TasksMax is tasks.max, default 1; MirrorMaker's documentation advises
	// one task per partition for throughput.
	TasksMax int
	// Props are extra mm2.properties; they override the defaults (see
	// [MirrorMaker.Properties]). Producer settings go under
	// TargetAlias+".producer.", consumer settings under SourceAlias+".consumer.".
	Props map[string]string
	// Heap is the JVM's maximum heap; default "2g", as Kafka's own
	// connect-mirror-maker.sh.
	Heap string
	// FullJIT runs the JVM with the optimising compiler (for benchmarks).
	FullJIT bool
	// JVMFlags are extra JVM options, after the defaults.
	JVMFlags []string
	// Dir holds mm2.properties and the logs; default a new directory under [BaseDir].
	Dir string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

// MirrorMaker is a running MirrorMaker 2 JVM in dedicated mode
// (org.apache.kafka.connect.mirror.MirrorMaker).
type MirrorMaker struct {
	Name string
	// Dir holds mm2.properties, log4j2.properties, mirrormaker.log and stdout.log.
	Dir string
	// Version is the Kafka release of the MirrorMaker jars.
	Version string

	opts  MirrorMakerOptions
	props map[string]string

	mu   sync.Mutex
	proc *process
}

// StartMirrorMaker writes mm2.properties and starts MirrorMaker 2 in
// dedicated mode, without waiting for it to replicate anything. Like a
// broker, the JVM runs in its own process group, dies with its owner and is
// found by [Reap]. The caller must Stop or Kill it.
func StartMirrorMaker(ctx context.Context, opts MirrorMakerOptions) (*MirrorMaker, error) {
	if opts.Name == "" {
		opts.Name = "mm2"
	}
	if opts.SourceAlias == "" {
		opts.SourceAlias = "source"
	}
	if opts.TargetAlias == "" {
		opts.TargetAlias = "target"
	}
	if opts.Topics == "" {
		opts.Topics = ".*"
	}
	if opts.TasksMax <= 0 {
		opts.TasksMax = 1
	}
	if opts.Heap == "" {
		opts.Heap = "2g"
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if len(opts.Source) == 0 || len(opts.Target) == 0 {
		return nil, errors.New("start MirrorMaker: source and target bootstrap servers are required")
	}
	Reap()
	rt, err := EnsureMirrorMakerRuntime(ctx, opts.Progress)
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if err := os.MkdirAll(BaseDir(), 0o755); err != nil {
			return nil, fmt.Errorf("create test bed directory: %w", err)
		}
		if dir, err = os.MkdirTemp(BaseDir(), sanitize(opts.Name)+"-"); err != nil {
			return nil, fmt.Errorf("create MirrorMaker directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create MirrorMaker directory: %w", err)
	}
	m := &MirrorMaker{Name: opts.Name, Dir: dir, Version: rt.Version, opts: opts}
	m.props = m.defaults()
	for k, v := range opts.Props {
		m.props[k] = v
	}
	if err := os.WriteFile(filepath.Join(dir, "mm2.properties"), []byte(m.Properties()), 0o644); err != nil {
		return nil, fmt.Errorf("write mm2.properties: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log4j2.properties"), []byte(mirrorMakerLog4j), 0o644); err != nil {
		return nil, fmt.Errorf("write log4j2.properties: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open MirrorMaker stdout: %w", err)
	}
	args := []string{
		"-Xms256m", "-Xmx" + opts.Heap,
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
		"-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(dir, "log4j2.properties"),
		"-Dkafka.logs.dir=" + dir,
		ownerProperty + "=" + strconv.Itoa(os.Getpid()),
		"-cp", rt.ClassPath(),
	}
	if !opts.FullJIT {
		args = append(args, "-XX:TieredStopAtLevel=1")
	}
	args = append(args, opts.JVMFlags...)
	args = append(args, "org.apache.kafka.connect.mirror.MirrorMaker", filepath.Join(dir, "mm2.properties"))
	cmd := exec.Command(rt.Java, args...) //nolint:noctx // the JVM outlives this call; Stop and Kill end it
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start MirrorMaker %s: %w", opts.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	m.proc = p
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	fmt.Fprintf(opts.Progress, "%s: MirrorMaker 2 %s started (pid %d), %s->%s, topics %q, tasks.max %d; logs in %s\n",
		opts.Name, rt.Version, cmd.Process.Pid, opts.SourceAlias, opts.TargetAlias, opts.Topics, opts.TasksMax, dir)
	return m, nil
}

// defaults are the mm2.properties the runner writes before Options.Props:
// one enabled flow, single-node replication factors, and sync intervals
// short enough for tests (MirrorMaker's defaults are minutes).
func (m *MirrorMaker) defaults() map[string]string {
	o := m.opts
	s, t := o.SourceAlias, o.TargetAlias
	flow := s + "->" + t
	p := map[string]string{
		"clusters":                              s + ", " + t,
		s + ".bootstrap.servers":                strings.Join(o.Source, ","),
		t + ".bootstrap.servers":                strings.Join(o.Target, ","),
		flow + ".enabled":                       "true",
		t + "->" + s + ".enabled":               "false",
		flow + ".topics":                        o.Topics,
		"tasks.max":                             strconv.Itoa(o.TasksMax),
		"replication.policy.class":              "org.apache.kafka.connect.mirror.DefaultReplicationPolicy",
		"replication.policy.separator":          ".",
		"replication.factor":                    "1",
		"checkpoints.topic.replication.factor":  "1",
		"heartbeats.topic.replication.factor":   "1",
		"offset-syncs.topic.replication.factor": "1",
		"offset.storage.replication.factor":     "1",
		"status.storage.replication.factor":     "1",
		"config.storage.replication.factor":     "1",
		"sync.topic.acls.enabled":               "false",
		"refresh.topics.interval.seconds":       "5",
		"refresh.groups.interval.seconds":       "10",
		"sync.topic.configs.interval.seconds":   "10",
		"emit.checkpoints.interval.seconds":     "5",
		"offset.flush.interval.ms":              "1000",
		// As edgelink: never copy records of aborted transactions.
		s + ".consumer.isolation.level": "read_committed",
	}
	return p
}

// Properties returns the mm2.properties the process runs with, one
// "key = value" per line, sorted.
func (m *MirrorMaker) Properties() string {
	var b strings.Builder
	for _, k := range sortedKeys(m.props) {
		fmt.Fprintf(&b, "%s = %s\n", k, m.props[k])
	}
	return b.String()
}

// RemoteTopic returns the name MirrorMaker gives the mirror of a source
// topic under the replication policy in force.
func (m *MirrorMaker) RemoteTopic(topic string) string {
	if strings.HasSuffix(m.props["replication.policy.class"], ".IdentityReplicationPolicy") {
		return topic
	}
	return m.opts.SourceAlias + m.props["replication.policy.separator"] + topic
}

// PID returns the JVM's process id, or 0 when it is not running; its CPU
// time and peak memory can be read from /proc/<pid>.
func (m *MirrorMaker) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.proc.done:
		return 0
	default:
		return m.proc.cmd.Process.Pid
	}
}

// Exited returns an error naming the logs when the JVM has exited, else nil.
func (m *MirrorMaker) Exited() error {
	select {
	case <-m.proc.done:
	default:
		return nil
	}
	stdout, _ := os.ReadFile(filepath.Join(m.Dir, "stdout.log"))
	logs, _ := os.ReadFile(filepath.Join(m.Dir, "mirrormaker.log"))
	cause := m.proc.err
	if cause == nil {
		cause = errors.New("exit status 0")
	}
	return fmt.Errorf("MirrorMaker %s exited (%w); logs in %s:\n%s", m.Name, cause, m.Dir,
		tail(string(stdout)+string(logs), 15))
}

// Stop sends SIGTERM (MirrorMaker stops its connectors and commits their
// offsets) and waits up to grace before sending SIGKILL.
func (m *MirrorMaker) Stop(grace time.Duration) {
	m.signal(syscall.SIGTERM, grace)
}

// Kill sends SIGKILL to the JVM and waits for it to exit.
func (m *MirrorMaker) Kill() {
	m.signal(syscall.SIGKILL, 0)
}

func (m *MirrorMaker) signal(sig syscall.Signal, grace time.Duration) {
	m.proc.signal(sig, grace)
}

// Remove deletes the process's directory; call it after Stop.
func (m *MirrorMaker) Remove() error {
	if err := os.RemoveAll(m.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", m.Dir, err)
	}
	return nil
}

const mirrorMakerLog4j = `status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/mirrormaker.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
`

// RunMirrorMaker starts MirrorMaker 2 for t (after [RequireKafka]) and stops
// it when t ends; a failed test keeps its logs and names them.
func RunMirrorMaker(t testing.TB, opts MirrorMakerOptions) *MirrorMaker {
	t.Helper()
	RequireKafka(t)
	if opts.Progress == nil {
		opts.Progress = logWriter{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m, err := StartMirrorMaker(ctx, opts)
	if err != nil {
		t.Fatalf("start MirrorMaker: %v", err)
	}
	t.Cleanup(func() {
		m.Stop(15 * time.Second)
		if t.Failed() {
			t.Logf("%s: MirrorMaker logs kept in %s", m.Name, m.Dir)
			return
		}
		if err := m.Remove(); err != nil {
			t.Logf("%v", err)
		}
	})
	return m
}
