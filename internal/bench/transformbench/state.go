package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// stateCommand is the Go benchmarks of the stateful transforms' memory at
// 100,000 keys (internal/transform's benchmark100kKeys), run as is.
var stateCommand = []string{"go", "test", "./internal/transform/", "-run", "^$", "-bench", "100kKeys", "-benchtime", "3x"}

// stateResult is one line of their output: a benchmark and its metrics by
// unit (ns/op, state-bytes, state-bytes/key, heap-bytes, ...).
type stateResult struct {
	name    string
	metrics map[string]float64
}

// runStateBench runs stateCommand in the module's root directory.
func runStateBench(ctx context.Context) ([]stateResult, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, stateCommand[0], stateCommand[1:]...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(stateCommand, " "), err, out)
	}
	rs := parseBench(string(out))
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results in\n%s", strings.Join(stateCommand, " "), out)
	}
	return rs, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the module's directory: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// parseBench reads the result lines of go test -bench output:
//
//	BenchmarkAggregate100kKeys-2   3   964402435 ns/op   16297168 heap-bytes   163.0 heap-bytes/key ...
func parseBench(out string) []stateResult {
	var rs []stateResult
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		r := stateResult{name: name, metrics: make(map[string]float64)}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			r.metrics[f[i+1]] = v
		}
		rs = append(rs, r)
	}
	return rs
}
