package testbed

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DefaultKafkaVersion is the Apache Kafka release the test bed runs unless
// EDGELINK_KAFKA_VERSION names another 4.x release.
const DefaultKafkaVersion = "4.4.0"

// dependencyPlugin is pinned so that a fetch resolves the same way everywhere.
const dependencyPlugin = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

const manifestName = "MANIFEST.sha256"

//go:embed kafka-runtime.pom.xml
var runtimePOM []byte

// Runtime is a verified, cached Apache Kafka server runtime: the jars that
// kafka.Kafka needs on its class path and a Java executable to run them.
type Runtime struct {
	Version string
	// LibDir holds the jars; the class path is LibDir + "/*".
	LibDir string
	// Java is the java executable.
	Java string
}

// ClassPath returns the JVM class path for the runtime.
func (r *Runtime) ClassPath() string { return filepath.Join(r.LibDir, "*") }

// KafkaVersion returns the Kafka version the test bed uses.
func KafkaVersion() string {
	if v := os.Getenv("EDGELINK_KAFKA_VERSION"); v != "" {
		return v
	}
	return DefaultKafkaVersion
}

// CacheDir returns the directory that holds the cached runtime of version.
func CacheDir(version string) (string, error) {
	base := os.Getenv("EDGELINK_CACHE")
	if base == "" {
		ucd, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("find cache directory: %w (set EDGELINK_CACHE)", err)
		}
		base = filepath.Join(ucd, "edgelink")
	}
	return filepath.Join(base, "kafka", version), nil
}

// EnsureRuntime returns the cached Kafka runtime, fetching it from Maven
// Central with Maven first when it is missing or fails verification.
// Concurrent callers (parallel test binaries) are serialised by a file lock.
// progress, when not nil, receives one line per step.
func EnsureRuntime(ctx context.Context, progress io.Writer) (*Runtime, error) {
	version := KafkaVersion()
	want := []string{"kafka_2.13-" + version + ".jar", "kafka-clients-" + version + ".jar", "kafka-server-" + version + ".jar"}
	return ensureJars(ctx, progress, jarSet{name: "Kafka", version: version, pom: runtimePOM, want: want})
}

// jarSet is a set of jars fetched with Maven into sub (below the version's
// cache directory)/libs.
type jarSet struct {
	name, version, sub string
	pom                []byte
	want               []string
	dir                string // set by ensureJars
}

// ensureJars returns the runtime of js from its cache, fetching it first
// when it is missing or fails verification; a file lock serialises
// concurrent callers.
func ensureJars(ctx context.Context, progress io.Writer, js jarSet) (*Runtime, error) {
	if progress == nil {
		progress = io.Discard
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("find java: %w (install a Java 17+ runtime)", err)
	}
	base, err := CacheDir(js.version)
	if err != nil {
		return nil, err
	}
	js.dir = filepath.Join(base, js.sub)
	if err := os.MkdirAll(js.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache directory: %w", err)
	}
	unlock, err := lockFile(filepath.Join(js.dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	rt := &Runtime{Version: js.version, LibDir: filepath.Join(js.dir, "libs"), Java: java}
	if err := verifyManifest(rt.LibDir); err == nil {
		return rt, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(progress, "cached %s %s failed verification (%v); fetching again\n", js.name, js.version, err)
	}
	fmt.Fprintf(progress, "fetching Apache %s %s jars with Maven into %s\n", js.name, js.version, js.dir)
	start := time.Now()
	if err := fetch(ctx, js.pom, js.dir, "libs", js.version, js.want); err != nil {
		return nil, err
	}
	if err := verifyManifest(rt.LibDir); err != nil {
		return nil, fmt.Errorf("verify fetched %s %s: %w", js.name, js.version, err)
	}
	fmt.Fprintf(progress, "fetched Apache %s %s in %s\n", js.name, js.version, time.Since(start).Round(time.Millisecond))
	return rt, nil
}

// fetch resolves pom's runtime dependencies with Maven (strict checksum
// verification) into dir/libs, writing a SHA-256 manifest once every jar
// named in want is present.
func fetch(ctx context.Context, pomXML []byte, dir, libs, version string, want []string) error {
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return fmt.Errorf("find mvn: %w (install Maven to fetch the Kafka jars)", err)
	}
	work, err := os.MkdirTemp(dir, "fetch-")
	if err != nil {
		return fmt.Errorf("create fetch directory: %w", err)
	}
	defer os.RemoveAll(work)
	pom := filepath.Join(work, "pom.xml")
	if err := os.WriteFile(pom, pomXML, 0o644); err != nil {
		return fmt.Errorf("write pom: %w", err)
	}
	out := filepath.Join(work, "libs")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mvn, "-B", "-q", "-C", "-f", pom,
		"-Dkafka.version="+version,
		dependencyPlugin+":copy-dependencies",
		"-DincludeScope=runtime",
		"-DoutputDirectory="+out)
	cmd.Dir = work
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fetch Kafka %s with maven: %w\n%s", version, err, tail(string(msg), 40))
	}
	for _, jar := range want {
		if _, err := os.Stat(filepath.Join(out, jar)); err != nil {
			return fmt.Errorf("fetch Kafka %s: %s missing after resolution", version, jar)
		}
	}
	if err := writeManifest(out); err != nil {
		return err
	}
	libs = filepath.Join(dir, libs)
	if err := os.RemoveAll(libs); err != nil {
		return fmt.Errorf("remove stale libs: %w", err)
	}
	if err := os.Rename(out, libs); err != nil {
		return fmt.Errorf("install libs: %w", err)
	}
	return nil
}

func jarHashes(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	sums := make(map[string]string)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".jar") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", e.Name(), err)
		}
		sums[e.Name()] = hex.EncodeToString(h.Sum(nil))
	}
	return sums, nil
}

func writeManifest(dir string) error {
	sums, err := jarHashes(dir)
	if err != nil {
		return fmt.Errorf("hash jars: %w", err)
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	if err := os.WriteFile(filepath.Join(dir, manifestName), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// verifyManifest checks that dir holds exactly the jars its manifest lists,
// with the recorded SHA-256 sums. A missing manifest yields os.ErrNotExist.
func verifyManifest(dir string) error {
	f, err := os.Open(filepath.Join(dir, manifestName))
	if err != nil {
		return err
	}
	defer f.Close()
	want := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			return fmt.Errorf("malformed manifest line %q", sc.Text())
		}
		want[name] = sum
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	got, err := jarHashes(dir)
	if err != nil {
		return fmt.Errorf("hash jars: %w", err)
	}
	if len(want) == 0 || len(got) != len(want) {
		return fmt.Errorf("manifest lists %d jars, directory holds %d", len(want), len(got))
	}
	for name, sum := range want {
		if got[name] != sum {
			return fmt.Errorf("%s: checksum mismatch", name)
		}
	}
	return nil
}

// lockFile takes an exclusive flock on path, waiting for other holders.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
