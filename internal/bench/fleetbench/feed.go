package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/fleet"
)

// feed publishes the simulated sites' reports to the reports topic, each
// site every interval, one site after the other at even spacing (1,000
// sites every 10 s: one report every 10 ms), so that the reports arrive as
// a real fleet's do: one at a time, each in a zstd batch of its own, as an
// agent's uplink sends it.
type feed struct {
	cl       *kgo.Client
	topic    string
	sites    []*fleet.SimSite
	interval time.Duration

	sent, failed atomic.Int64
	// rounds counts the intervals in which every site reported.
	rounds atomic.Int64
	mu     sync.Mutex
	err    error
}

func newFeed(seeds []string, topic string, sites []*fleet.SimSite, interval time.Duration) (*feed, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("create report producer: %w", err)
	}
	return &feed{cl: cl, topic: topic, sites: sites, interval: interval}, nil
}

// run publishes until ctx ends, then waits for what it sent.
func (f *feed) run(ctx context.Context) {
	f.publish(ctx)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := f.cl.Flush(fctx); err != nil {
		f.fail(fmt.Errorf("flush the simulated reports: %w", err))
	}
	f.cl.Close()
}

func (f *feed) publish(ctx context.Context) {
	step := f.interval / time.Duration(len(f.sites))
	start := time.Now()
	for round := 0; ; round++ {
		for i, s := range f.sites {
			at := start.Add(time.Duration(round)*f.interval + time.Duration(i)*step)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(at)):
			}
			value, err := s.Report(time.Now(), f.interval).Marshal()
			if err != nil {
				f.fail(err)
				return
			}
			f.cl.Produce(ctx, &kgo.Record{Topic: f.topic, Key: []byte(s.Key()), Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					f.failed.Add(1)
					if ctx.Err() == nil {
						f.fail(fmt.Errorf("publish a simulated report: %w", err))
					}
					return
				}
				f.sent.Add(1)
			})
		}
		f.rounds.Add(1)
	}
}

func (f *feed) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// error returns the first error the feed met.
func (f *feed) error() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// reportSizes is the median size of a report of the fleet, as JSON and
// compressed with zstd as an uplink's producer compresses it (the record's
// value alone, without the batch around it).
type reportSizes struct {
	json, zstd int
}

// simReportSizes returns the median sizes of the reports of sites, made
// from new simulated sites of the same shape, so that the fed sites'
// state is not touched.
func simReportSizes(n int, interval time.Duration) (reportSizes, error) {
	comp, err := kgo.DefaultCompressor(kgo.ZstdCompression())
	if err != nil {
		return reportSizes{}, fmt.Errorf("create zstd compressor: %w", err)
	}
	var js, zs []int
	now := time.Now()
	for _, s := range fleet.SimFleet("site", n, simVersion, simOldVersion, simSeed) {
		s.Report(now, interval) // the first report starts the site's counters
		b, err := s.Report(now.Add(interval), interval).Marshal()
		if err != nil {
			return reportSizes{}, err
		}
		js = append(js, len(b))
		zs = append(zs, zstdSize(comp, b))
	}
	return reportSizes{json: medianInt(js), zstd: medianInt(zs)}, nil
}

func zstdSize(comp kgo.Compressor, b []byte) int {
	var buf bytes.Buffer
	out, _ := comp.Compress(&buf, b)
	return len(out)
}

func medianInt(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// Simulated fleet: the versions and the seed of its sites.
const (
	simVersion    = "v1.4.0"
	simOldVersion = "v1.3.2"
	simSeed       = 1
)
