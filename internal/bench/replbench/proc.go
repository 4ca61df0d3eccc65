package main

import (
	"sync"
	"time"

	"github.com/edgelink/edgelink/internal/bench/procstat"
)

// procUsage is what /proc says about a process and its live descendants.
type procUsage struct {
	// cpu is user plus system time, including children the process has
	// waited for.
	cpu time.Duration
	// rss is the resident set of the tree now; hwm the largest the top
	// process itself has had (VmHWM), both in bytes.
	rss, hwm int64
}

// readUsage sums the usage of pid and every live descendant. The JVM of
// MirrorMaker and edgelink run as the direct child, but a replicator that
// forks helpers is counted whole.
func readUsage(pid int) (procUsage, error) {
	var u procUsage
	seen := make(map[int]bool)
	var walk func(pid int, top bool) error
	walk = func(pid int, top bool) error {
		if seen[pid] {
			return nil
		}
		seen[pid] = true
		cpu, err := readCPU(pid)
		if err != nil {
			if top {
				return err
			}
			return nil // a descendant that just exited
		}
		rss, hwm, err := readMem(pid)
		if err != nil && top {
			return err
		}
		u.cpu += cpu
		u.rss += rss
		if top {
			u.hwm = hwm
		}
		for _, c := range children(pid) {
			if err := walk(c, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(pid, true); err != nil {
		return procUsage{}, err
	}
	return u, nil
}

// readCPU returns the CPU time of pid (see procstat.CPU).
func readCPU(pid int) (time.Duration, error) { return procstat.CPU(pid) }

// readMem returns VmRSS and VmHWM of pid in bytes.
func readMem(pid int) (rss, hwm int64, err error) { return procstat.Memory(pid) }

// children lists the child processes of every thread of pid.
func children(pid int) []int { return procstat.Children(pid) }

// sampler follows processes' memory every interval, so that the peak of a
// process tree (whose VmHWM only covers the top process) is known too. With
// several processes (agents sharing a link), CPU time is their sum and the
// peak the sum of each process's own peak.
type sampler struct {
	pids []int
	stop chan struct{}
	wg   sync.WaitGroup

	mu sync.Mutex
	// peak is each process's largest sampled RSS or VmHWM, bytes; last
	// its last usage read.
	peak []int64
	last []procUsage
	err  error
}

func startSampler(pids []int, every time.Duration) *sampler {
	s := &sampler{pids: pids, stop: make(chan struct{}), peak: make([]int64, len(pids)), last: make([]procUsage, len(pids))}
	s.sample()
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	})
	return s
}

// sample reads the processes now and returns their summed usage; a process
// that cannot be read counts with its last usage.
func (s *sampler) sample() procUsage {
	us := make([]procUsage, len(s.pids))
	errs := make([]error, len(s.pids))
	for i, pid := range s.pids {
		us[i], errs[i] = readUsage(pid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum procUsage
	for i, u := range us {
		if errs[i] != nil {
			if s.err == nil {
				s.err = errs[i]
			}
			u = s.last[i]
		}
		s.last[i] = u
		s.peak[i] = max(s.peak[i], u.rss, u.hwm)
		sum.cpu += u.cpu
		sum.rss += u.rss
		sum.hwm += u.hwm
	}
	return sum
}

// close stops sampling (after a last sample, while the processes still
// live) and returns the sum of their peak memory.
func (s *sampler) close() (peak int64, err error) {
	s.sample()
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peak {
		if p == 0 && s.err != nil {
			return 0, s.err
		}
		peak += p
	}
	return peak, nil
}
