package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"
)

// Options configures a real Kafka cluster started by [Start].
type Options struct {
	// Name labels the cluster in directories and messages; default "kafka".
	Name string
	// Brokers is the number of nodes; each runs as combined broker and
	// controller. Default 1. With 3 or more, internal topics and new topics
	// default to replication factor 3 and min.insync.replicas 2.
	Brokers int
	// Security, when set, adds a SASL_SSL listener next to PLAINTEXT.
	Security *Security
	// Props are extra server.properties; they override the defaults.
	Props map[string]string
	// JVMProps are extra Java system properties (-Dkey=value) of the
	// broker JVMs, e.g. org.apache.kafka.sasl.oauthbearer.allowed.urls.
	JVMProps map[string]string
	// Dir is where data and logs live; default a new directory under [BaseDir].
	Dir string
	// Heap is the JVM's maximum heap, default "512m".
	Heap string
	// FullJIT runs the broker JVM as for benchmarks: with the optimising
	// compiler, its whole heap from the start and the GC settings of
	// Kafka's start script. By default the JVM stops at the quick C1
	// compiler, which halves start-up time on a small machine, and starts
	// with a small heap.
	FullJIT bool
	// StartTimeout bounds the start of the whole cluster, default 90s.
	StartTimeout time.Duration
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// Proxy, when set, gives every broker a second plaintext listener, WAN,
	// that is advertised at the address Proxy returns for it: Proxy starts a
	// forwarder (such as a faultnet.Proxy) to the listener's address target.
	// Clients that bootstrap from [Cluster.WANBootstrap] then reach every
	// broker only through the forwarders, while the brokers talk to each
	// other, and [Cluster.Bootstrap] clients to them, directly.
	Proxy func(target string) (addr string, err error)
}

// Security describes the SASL_SSL listener of a cluster.
type Security struct {
	// Users are created for SCRAM-SHA-256 and SCRAM-SHA-512 at storage-format
	// time and accepted by the PLAIN mechanism.
	Users map[string]string
	// Mechanisms enabled on the listener; default SCRAM-SHA-512,
	// SCRAM-SHA-256 and PLAIN.
	Mechanisms []string
	// MutualTLS requires clients to present a certificate signed by the CA.
	MutualTLS bool
}

// Cluster is a running real Apache Kafka cluster.
type Cluster struct {
	Name string
	// ID is the KRaft cluster id.
	ID string
	// Dir holds one subdirectory per broker with its data and logs.
	Dir string
	// Brokers are the cluster's nodes, in node-id order.
	Brokers []*Broker
	// TLS holds the CA and client material when Options.Security is set.
	TLS *TLSFiles

	rt   *Runtime
	opts Options
}

// Broker is one node of a [Cluster].
type Broker struct {
	NodeID int
	// Dir holds server.properties, data/ and the logs (server.log, stdout.log).
	Dir string
	// Addr is the PLAINTEXT listener, host:port.
	Addr string
	// SASLAddr is the SASL_SSL listener when security is enabled.
	SASLAddr string
	// WANAddr is the forwarder to the WAN listener when Options.Proxy is
	// set; wanListen is the listener itself.
	WANAddr, wanListen string

	controllerAddr string
	cluster        *Cluster

	mu   sync.Mutex
	proc *process
}

// process is one JVM; done is closed when it has exited.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// errPortInUse marks a start that lost a race for a port; Start retries it.
var errPortInUse = errors.New("port already in use")

// BaseDir is where clusters live unless Options.Dir says otherwise:
// EDGELINK_TESTBED_DIR, or edgelink-testbed in the temporary directory.
func BaseDir() string {
	if d := os.Getenv("EDGELINK_TESTBED_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "edgelink-testbed")
}

// Start starts a real Kafka cluster and waits until every broker serves
// metadata. The caller must Stop it.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Name == "" {
		opts.Name = "kafka"
	}
	if opts.Brokers <= 0 {
		opts.Brokers = 1
	}
	if opts.Heap == "" {
		opts.Heap = "512m"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 90 * time.Second
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	Reap()
	rt, err := EnsureRuntime(ctx, opts.Progress)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, rt, opts)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == 3 {
			return nil, err
		}
		fmt.Fprintf(opts.Progress, "%s: %v; retrying with new ports\n", opts.Name, err)
	}
}

func start(ctx context.Context, rt *Runtime, opts Options) (*Cluster, error) {
	dir := opts.Dir
	if dir == "" {
		if err := os.MkdirAll(BaseDir(), 0o755); err != nil {
			return nil, fmt.Errorf("create test bed directory: %w", err)
		}
		d, err := os.MkdirTemp(BaseDir(), sanitize(opts.Name)+"-")
		if err != nil {
			return nil, fmt.Errorf("create cluster directory: %w", err)
		}
		dir = d
	}
	c := &Cluster{Name: opts.Name, ID: newClusterID(), Dir: dir, rt: rt, opts: opts}
	if opts.Security != nil {
		files, err := WriteTLSFiles(filepath.Join(dir, "tls"), "127.0.0.1", "localhost")
		if err != nil {
			return nil, err
		}
		c.TLS = files
	}
	ports, err := freePorts(opts.Brokers * 4)
	if err != nil {
		return nil, err
	}
	for i := range opts.Brokers {
		b := &Broker{
			NodeID:         i + 1,
			Dir:            filepath.Join(dir, fmt.Sprintf("broker-%d", i+1)),
			Addr:           net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4*i])),
			controllerAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4*i+1])),
			cluster:        c,
		}
		if opts.Security != nil {
			b.SASLAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4*i+2]))
		}
		if opts.Proxy != nil {
			b.wanListen = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4*i+3]))
			if b.WANAddr, err = opts.Proxy(b.wanListen); err != nil {
				return nil, fmt.Errorf("start forwarder to broker %d: %w", b.NodeID, err)
			}
		}
		c.Brokers = append(c.Brokers, b)
	}
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range c.Brokers {
		g.Go(func() error {
			if err := os.MkdirAll(b.Dir, 0o755); err != nil {
				return fmt.Errorf("create broker directory: %w", err)
			}
			if err := os.WriteFile(filepath.Join(b.Dir, "server.properties"), []byte(b.properties()), 0o644); err != nil {
				return fmt.Errorf("write server.properties: %w", err)
			}
			if err := os.WriteFile(filepath.Join(b.Dir, "log4j2.properties"), []byte(log4jConfig), 0o644); err != nil {
				return fmt.Errorf("write log4j2.properties: %w", err)
			}
			return b.format(gctx)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("format %s storage: %w", opts.Name, err)
	}
	for _, b := range c.Brokers {
		if err := b.Start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	readyCtx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	if err := c.WaitReady(readyCtx); err != nil {
		c.Stop()
		return nil, err
	}
	fmt.Fprintf(opts.Progress, "%s: %d broker(s) of Kafka %s ready in %s at %s\n",
		opts.Name, opts.Brokers, rt.Version, time.Since(began).Round(time.Millisecond), strings.Join(c.Bootstrap(), ","))
	return c, nil
}

// Bootstrap returns the PLAINTEXT listener addresses.
func (c *Cluster) Bootstrap() []string {
	out := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		out[i] = b.Addr
	}
	return out
}

// WANBootstrap returns the forwarders' addresses of the WAN listeners
// (empty without Options.Proxy).
func (c *Cluster) WANBootstrap() []string {
	var out []string
	for _, b := range c.Brokers {
		if b.WANAddr != "" {
			out = append(out, b.WANAddr)
		}
	}
	return out
}

// SASLBootstrap returns the SASL_SSL listener addresses (empty without Security).
func (c *Cluster) SASLBootstrap() []string {
	var out []string
	for _, b := range c.Brokers {
		if b.SASLAddr != "" {
			out = append(out, b.SASLAddr)
		}
	}
	return out
}

// Client returns a franz-go client for the PLAINTEXT listener; the caller closes it.
func (c *Cluster) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create client for %s: %w", c.Name, err)
	}
	return cl, nil
}

// WaitReady waits until every running broker is registered and unfenced.
func (c *Cluster) WaitReady(ctx context.Context) error {
	want := 0
	for _, b := range c.Brokers {
		if b.Running() {
			want++
		}
	}
	cl, err := c.Client(kgo.RetryTimeout(2*time.Second), kgo.DialTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	var last error
	for {
		for _, b := range c.Brokers {
			if err := b.exited(); err != nil {
				return err
			}
		}
		reqCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		// A direct request: the client's cached broker list lags restarts.
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{}
		md, err := req.RequestWith(reqCtx, cl)
		cancel()
		switch {
		case err != nil:
			last = err
		case len(md.Brokers) < want:
			last = fmt.Errorf("%d of %d brokers registered", len(md.Brokers), want)
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to become ready: %w (last: %w; logs in %s)", c.Name, ctx.Err(), last, c.Dir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop stops every broker (SIGTERM, then SIGKILL after a grace period) in parallel.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, b := range c.Brokers {
		wg.Go(func() { b.Stop(10 * time.Second) })
	}
	wg.Wait()
}

// Remove deletes the cluster's directory; call it after Stop.
func (c *Cluster) Remove() error {
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", c.Dir, err)
	}
	return nil
}

// Broker returns the node with the given id, or nil.
func (c *Cluster) Broker(nodeID int) *Broker {
	for _, b := range c.Brokers {
		if b.NodeID == nodeID {
			return b
		}
	}
	return nil
}

func (b *Broker) properties() string {
	c := b.cluster
	n := len(c.Brokers)
	rf, minISR := 1, 1
	if n >= 3 {
		rf, minISR = 3, 2
	}
	voters := make([]string, n)
	for i, o := range c.Brokers {
		voters[i] = fmt.Sprintf("%d@%s", o.NodeID, o.controllerAddr)
	}
	listeners := "PLAINTEXT://" + b.Addr + ",CONTROLLER://" + b.controllerAddr
	advertised := "PLAINTEXT://" + b.Addr
	p := map[string]string{
		"process.roles":                                    "broker,controller",
		"node.id":                                          strconv.Itoa(b.NodeID),
		"controller.quorum.voters":                         strings.Join(voters, ","),
		"controller.listener.names":                        "CONTROLLER",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,WAN:PLAINTEXT",
		"log.dirs":                                         filepath.Join(b.Dir, "data"),
		"num.partitions":                                   "1",
		"default.replication.factor":                       strconv.Itoa(rf),
		"min.insync.replicas":                              strconv.Itoa(minISR),
		"offsets.topic.replication.factor":                 strconv.Itoa(rf),
		"offsets.topic.num.partitions":                     "8",
		"transaction.state.log.replication.factor":         strconv.Itoa(rf),
		"transaction.state.log.min.isr":                    strconv.Itoa(minISR),
		"transaction.state.log.num.partitions":             "8",
		"share.coordinator.state.topic.replication.factor": strconv.Itoa(rf),
		"share.coordinator.state.topic.min.isr":            strconv.Itoa(minISR),
		"group.initial.rebalance.delay.ms":                 "0",
		"auto.create.topics.enable":                        "false",
	}
	if s := c.opts.Security; s != nil {
		listeners += ",SASL_SSL://" + b.SASLAddr
		advertised += ",SASL_SSL://" + b.SASLAddr
		mechs := s.Mechanisms
		if len(mechs) == 0 {
			mechs = []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"}
		}
		p["sasl.enabled.mechanisms"] = strings.Join(mechs, ",")
		for _, m := range mechs {
			key := "listener.name.sasl_ssl." + strings.ToLower(m) + ".sasl.jaas.config"
			switch m {
			case "PLAIN":
				var users strings.Builder
				for _, u := range sortedKeys(s.Users) {
					fmt.Fprintf(&users, " user_%s=%q", u, s.Users[u])
				}
				p[key] = "org.apache.kafka.common.security.plain.PlainLoginModule required" + users.String() + ";"
			case "SCRAM-SHA-256", "SCRAM-SHA-512":
				p[key] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
			case "OAUTHBEARER":
				// Validation (e.g. a JWKS endpoint) is configured through Props.
				p[key] = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
			}
		}
		p["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
		p["listener.name.sasl_ssl.ssl.keystore.location"] = c.TLS.ServerKeystoreFile
		p["listener.name.sasl_ssl.ssl.truststore.type"] = "PEM"
		p["listener.name.sasl_ssl.ssl.truststore.location"] = c.TLS.CAFile
		p["listener.name.sasl_ssl.ssl.client.auth"] = "none"
		if s.MutualTLS {
			p["listener.name.sasl_ssl.ssl.client.auth"] = "required"
		}
	}
	if b.wanListen != "" {
		listeners += ",WAN://" + b.wanListen
		advertised += ",WAN://" + b.WANAddr
	}
	p["listeners"] = listeners
	p["advertised.listeners"] = advertised
	for k, v := range c.opts.Props {
		p[k] = v
	}
	var out strings.Builder
	for _, k := range sortedKeys(p) {
		fmt.Fprintf(&out, "%s=%s\n", k, p[k])
	}
	return out.String()
}

// format runs Kafka's StorageTool for the broker, creating SCRAM users.
func (b *Broker) format(ctx context.Context) error {
	args := []string{
		"kafka.tools.StorageTool", "format", "--ignore-formatted",
		"-t", b.cluster.ID, "-c", filepath.Join(b.Dir, "server.properties"),
	}
	if s := b.cluster.opts.Security; s != nil {
		for _, u := range sortedKeys(s.Users) {
			for _, m := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
				args = append(args, "--add-scram", fmt.Sprintf("%s=[name=%s,password=%s]", m, u, s.Users[u]))
			}
		}
	}
	cmd := exec.CommandContext(ctx, b.cluster.rt.Java, append(b.jvmArgs("256m", false), args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("broker %d: %w\n%s", b.NodeID, err, tail(string(out), 20))
	}
	return nil
}

func (b *Broker) jvmArgs(heap string, fullJIT bool) []string {
	// Tests start small; a benchmark's broker gets its whole heap up front,
	// with the GC settings of Kafka's own start script.
	xms := "-Xms128m"
	if fullJIT {
		xms = "-Xms" + heap
	}
	args := []string{
		xms, "-Xmx" + heap,
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(b.Dir, "log4j2.properties"),
		"-Dkafka.logs.dir=" + b.Dir,
		ownerProperty + "=" + strconv.Itoa(os.Getpid()),
		"-cp", b.cluster.rt.ClassPath(),
	}
	if fullJIT {
		args = append(args, "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15")
	} else {
		args = append(args, "-XX:TieredStopAtLevel=1")
	}
	for _, k := range sortedKeys(b.cluster.opts.JVMProps) {
		args = append(args, "-D"+k+"="+b.cluster.opts.JVMProps[k])
	}
	return args
}

// Start starts the broker's JVM (again, after Stop or Kill) without waiting
// for it to be ready; see [Cluster.WaitReady].
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		select {
		case <-b.proc.done:
		default:
			return fmt.Errorf("broker %d of %s is already running", b.NodeID, b.cluster.Name)
		}
	}
	out, err := os.OpenFile(filepath.Join(b.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open broker stdout: %w", err)
	}
	args := append(b.jvmArgs(b.cluster.opts.Heap, b.cluster.opts.FullJIT), "kafka.Kafka", filepath.Join(b.Dir, "server.properties"))
	cmd := exec.Command(b.cluster.rt.Java, args...) //nolint:noctx // the JVM outlives this call; Stop and Kill end it
	cmd.Dir = b.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// The JVM gets its own process group (so a terminal's Ctrl-C reaches only
	// us) and is killed by the kernel if its parent dies for any reason.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start broker %d of %s: %w", b.NodeID, b.cluster.Name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	b.proc = p
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return nil
}

// Running reports whether the broker's JVM is alive.
func (b *Broker) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil {
		return false
	}
	select {
	case <-b.proc.done:
		return false
	default:
		return true
	}
}

// PID returns the JVM's process id, or 0 when it is not running.
func (b *Broker) PID() int {
	if !b.Running() {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc.cmd.Process.Pid
}

// exited returns an error when the JVM was started and has exited.
func (b *Broker) exited() error {
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
	default:
		return nil
	}
	logs, _ := os.ReadFile(filepath.Join(b.Dir, "server.log"))
	stdout, _ := os.ReadFile(filepath.Join(b.Dir, "stdout.log"))
	all := string(stdout) + string(logs)
	cause := p.err
	if cause == nil {
		cause = errors.New("exit status 0")
	}
	err := fmt.Errorf("broker %d of %s exited during start (%w); logs in %s:\n%s",
		b.NodeID, b.cluster.Name, cause, b.Dir, tail(string(stdout), 15))
	if strings.Contains(all, "Address already in use") {
		return fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return err
}

// Stop sends SIGTERM (controlled shutdown) and waits up to grace before
// sending SIGKILL. It is a no-op when the broker is not running.
func (b *Broker) Stop(grace time.Duration) {
	b.signal(syscall.SIGTERM, grace)
}

// Kill sends SIGKILL to the broker and waits for it to exit (a crash).
func (b *Broker) Kill() {
	b.signal(syscall.SIGKILL, 0)
}

func (b *Broker) signal(sig syscall.Signal, grace time.Duration) {
	b.mu.Lock()
	p := b.proc
	b.mu.Unlock()
	if p != nil {
		p.signal(sig, grace)
	}
}

// signal sends sig to the process's group and waits for it to exit; a
// process that outlives grace after a gentler signal is killed.
func (p *process) signal(sig syscall.Signal, grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	if sig != syscall.SIGKILL {
		select {
		case <-p.done:
			return
		case <-time.After(grace):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	<-p.done
}

// ownerProperty marks every JVM with the pid of the process that owns it, so
// that [Reap] can find JVMs whose owner is gone.
const ownerProperty = "-Dedgelink.testbed.owner"

// Reap kills test-bed JVMs whose owning process no longer exists (left behind
// by an owner killed before the kernel's parent-death signal could apply, for
// example one started by a process that has itself been reparented). It
// returns the pids it killed.
func Reap() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var killed []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			owner, ok := bytes.CutPrefix(arg, []byte(ownerProperty+"="))
			if !ok {
				continue
			}
			opid, err := strconv.Atoi(string(owner))
			if err != nil {
				break
			}
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(opid))); errors.Is(err, os.ErrNotExist) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed = append(killed, pid)
				}
			}
			break
		}
	}
	return killed
}

// freePorts reserves n distinct free loopback ports. The ports are released
// before return, so a race with another process is possible; Start retries.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// newClusterID returns a random KRaft cluster id (a base64url UUID). Like
// Kafka's own, it never starts with "-", which a command line would take for
// an option.
func newClusterID() string {
	for {
		var b [16]byte
		_, _ = rand.Read(b[:])
		b[6] = (b[6] & 0x0f) | 0x40
		b[8] = (b[8] & 0x3f) | 0x80
		if id := base64.RawURLEncoding.EncodeToString(b[:]); id[0] != '-' {
			return id
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

const log4jConfig = `status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
`
