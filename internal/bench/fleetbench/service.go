package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgelink/edgelink/internal/fleet"
)

// service is a running `edgelink fleet serve`.
type service struct {
	cmd *exec.Cmd
	// url is the page's address, as the service logged it.
	url     string
	logPath string
	done    chan struct{}
	waitErr error
	// loaded is what the service logged when it had read the topics:
	// how long that took (nanoseconds; 0 until then).
	loaded atomic.Int64
}

// serviceConfig is the fleet service's configuration: the cloud cluster,
// the fleet block and an HTTP listener on a free port.
func serviceConfig(seeds []string, pprof bool) string {
	return fmt.Sprintf(`clusters:
  cloud: {bootstrap: [%s]}
fleet: {cluster: cloud}
http: {listen: "127.0.0.1:0", pprof: %t}
`, quoteAll(seeds), pprof)
}

// startService starts `bin fleet serve -c cfg` with its log (JSON) in
// logPath and returns once it logged its page's address.
func startService(ctx context.Context, bin, cfg, logPath string) (*service, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create service log: %w", err)
	}
	cmd := exec.Command(bin, "fleet", "serve", "-c", cfg, "--log-format", "json") //nolint:noctx // stopped by SIGTERM in stop
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout = logf
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &service{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	page := make(chan string, 1)
	// The log's reader is owned by done: stop waits for it.
	go func() {
		// The log is copied to the file and watched for two lines; it
		// ends when the process exits.
		sc := bufio.NewScanner(io.TeeReader(stderr, logf))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				Page string `json:"page"`
				// Took is a duration: nanoseconds in slog's JSON.
				Took int64 `json:"took"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "fleet service running":
				page <- line.Page
			case "fleet loaded":
				s.loaded.Store(line.Took)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		s.waitErr = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	select {
	case s.url = <-page:
	case <-s.done:
		return nil, s.exitErr()
	case <-time.After(time.Minute):
		return nil, errors.Join(errors.New("the fleet service did not log its address within a minute"), s.stop())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), s.stop())
	}
	return s, nil
}

func (s *service) pid() int { return s.cmd.Process.Pid }

func (s *service) exitErr() error {
	logs, _ := os.ReadFile(s.logPath)
	cause := s.waitErr
	if cause == nil {
		cause = errors.New("exit status 0")
	}
	return fmt.Errorf("the fleet service exited (%w); log %s:\n%s", cause, s.logPath, lastLines(string(logs), 15))
}

// exited returns an error once the process has exited.
func (s *service) exited() error {
	select {
	case <-s.done:
		return s.exitErr()
	default:
		return nil
	}
}

// stop ends the service with SIGTERM (SIGKILL after 30 s) and reports a
// bad exit.
func (s *service) stop() error {
	if err := s.exited(); err != nil {
		return err
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		return fmt.Errorf("the fleet service did not stop within 30s of SIGTERM; log %s", s.logPath)
	}
	if s.waitErr != nil {
		return s.exitErr()
	}
	return nil
}

// waitReady polls /readyz until it answers 200.
func (s *service) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		code, err := s.get(ctx, "/readyz", nil)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err := s.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the fleet service not ready after %s: %w", timeout, lastAnswer(code, err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitSites polls the fleet API until it shows n sites.
func (s *service) waitSites(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var f fleet.Fleet
	for {
		code, err := s.get(ctx, "/api/v1/fleet?since=1000000000000", &f)
		if err == nil && code == http.StatusOK && f.Summary.Sites == n {
			return nil
		}
		if err := s.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the fleet service shows %d sites after %s, want %d: %w", f.Summary.Sites, timeout, n, lastAnswer(code, err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lastAnswer describes the last answer of a poll: its error, or its
// status code.
func lastAnswer(code int, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("answered %d", code)
}

// get asks the service for path and decodes a JSON answer into v (when
// not nil).
func (s *service) get(ctx context.Context, path string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.url, "/")+path, nil)
	if err != nil {
		return 0, fmt.Errorf("ask %s: %w", path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("ask %s: %w", path, err)
	}
	defer resp.Body.Close()
	if v == nil || resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %s: %w", path, err)
	}
	return resp.StatusCode, nil
}

// saveProfile writes the service's runtime profile at path (under
// /debug/pprof/) into file.
func (s *service) saveProfile(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.url, "/")+"/debug/pprof/"+path, nil)
	if err != nil {
		return fmt.Errorf("ask for profile %s: %w", path, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask for profile %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ask for profile %s: %s", path, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("create profile directory: %w", err)
	}
	out, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("create profile: %w", err)
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return fmt.Errorf("write profile %s: %w", file, err)
	}
	return out.Close()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
