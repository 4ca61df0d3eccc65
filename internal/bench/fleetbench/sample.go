package main

import (
	"context"
	"sync"
	"time"

	"github.com/edgelink/edgelink/internal/bench/procstat"
)

// sample is the service process's usage at one moment.
type sample struct {
	at  time.Time
	cpu time.Duration
	rss int64
}

// sampler reads the service's CPU time and resident set every second.
type sampler struct {
	pid int
	mu  sync.Mutex
	all []sample
	err error
}

// run samples until ctx ends.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.take()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// take samples now and returns the sample.
func (s *sampler) take() sample {
	cpu, err := procstat.CPU(s.pid)
	var rss int64
	if err == nil {
		rss, _, err = procstat.Memory(s.pid)
	}
	smp := sample{at: time.Now(), cpu: cpu, rss: rss}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return smp
	}
	s.all = append(s.all, smp)
	return smp
}

// usage is the service's figures over one window.
type usage struct {
	window time.Duration
	// cpuPct is CPU time over the window, in % of one core; cpuMaxPct the
	// highest over any 10 s of it.
	cpuPct, cpuMaxPct float64
	// rssPeak and rssEnd are the largest sampled resident set in the
	// window and the last one, bytes.
	rssPeak, rssEnd int64
}

// between returns the usage from a to b, two samples taken by take.
func (s *sampler) between(a, b sample) usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := usage{window: b.at.Sub(a.at), rssEnd: b.rss}
	u.cpuPct = pct(b.cpu-a.cpu, u.window)
	var in []sample
	for _, x := range s.all {
		if !x.at.Before(a.at) && !x.at.After(b.at) {
			in = append(in, x)
		}
	}
	for i, x := range in {
		u.rssPeak = max(u.rssPeak, x.rss)
		for j := i + 1; j < len(in); j++ {
			if d := in[j].at.Sub(x.at); d >= 10*time.Second {
				u.cpuMaxPct = max(u.cpuMaxPct, pct(in[j].cpu-x.cpu, d))
				break
			}
		}
	}
	return u
}

func pct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}
