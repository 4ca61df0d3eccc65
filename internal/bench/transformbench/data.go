package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

// The aggregate variant's windows (see variants); the dataset counts the
// windows it closes with them.
const (
	aggWindow = time.Minute
	aggGrace  = 10 * time.Second
)

// machine is one simulated machine of the plant, as in the demo's
// workload: its temperature follows a slow cycle around its base, with
// noise.
type machine struct {
	id     string
	baseC  float64
	swingC float64
	period int64 // seconds
	phase  float64
}

// newMachines draws n machines: bases around 65.4 °C (σ 4), cycles of
// 3–9 °C over 2–6 minutes. With readings' noise of σ 0.5 about 1% of the
// readings are above 79 °C.
func newMachines(n int, rng *rand.Rand) []machine {
	ms := make([]machine, n)
	for i := range ms {
		ms[i] = machine{
			id:     fmt.Sprintf("m%03d", i),
			baseC:  65.4 + 4*rng.NormFloat64(),
			swingC: 3 + 6*rng.Float64(),
			period: 120 + rng.Int64N(240),
			phase:  2 * math.Pi * rng.Float64(),
		}
	}
	return ms
}

// celsius is the machine's reading at second sec of the data.
func (m machine) celsius(sec int64, rng *rand.Rand) float64 {
	c := m.baseC + m.swingC*math.Sin(2*math.Pi*float64(sec%m.period)/float64(m.period)+m.phase) + 0.5*rng.NormFloat64()
	return math.Round(c*10) / 10
}

// reading is one record of the data.
type reading struct {
	machine string
	at      time.Time
	celsius float64
}

// value is the reading's JSON, as the demo's workload writes it:
// {"machine":"m017","time":"2026-11-29T18:00:00Z","celsius":71.3}.
func (r reading) value() []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"machine":"`...)
	b = append(b, r.machine...)
	b = append(b, `","time":"`...)
	b = r.at.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","celsius":`...)
	b = strconv.AppendFloat(b, r.celsius, 'f', -1, 64)
	return append(b, '}')
}

// telemetry is the data: every machine reads its temperature once a second
// of event time, all machines in one scan, n readings in all, the first
// scan at start.
type telemetry struct {
	machines []machine
	n        int
	start    time.Time
	seed     uint64
}

func newTelemetry(machines, n int, start time.Time, seed uint64) telemetry {
	return telemetry{machines: newMachines(machines, rand.New(rand.NewPCG(seed, 1))), n: n, start: start, seed: seed} //nolint:gosec // simulated sensor noise
}

// readings calls f with the readings in order (scan by scan); the noise
// is drawn from the seed, so every call sees the same readings.
func (t telemetry) readings(f func(i int, r reading) error) error {
	rng := rand.New(rand.NewPCG(t.seed, 2)) //nolint:gosec // simulated sensor noise
	for i := range t.n {
		sec := int64(i / len(t.machines))
		m := t.machines[i%len(t.machines)]
		if err := f(i, reading{machine: m.id, at: t.start.Add(time.Duration(sec) * time.Second), celsius: m.celsius(sec, rng)}); err != nil {
			return err
		}
	}
	return nil
}

// dataset describes the data loaded into the source topic, and what each
// variant must write of it.
type dataset struct {
	topic      string
	records    int
	partitions int
	machines   int
	threshold  float64
	// bytes counts keys plus values, as the link's Bytes do; headers
	// their headers' keys and values.
	bytes, headers int64
	// from and to are the first and the last reading's event time.
	from, to time.Time
	// kept counts the readings above the threshold (the filter's output).
	kept int
	// windows counts the (partition, machine, window) aggregates the
	// aggregate variant closes: those whose end plus grace is at or before
	// the largest timestamp of the machine's partition.
	windows int
	// example is the first reading's value.
	example string
	// perPartition counts the records of each partition.
	perPartition []int
	took         time.Duration
}

// load creates topic with the given partitions and writes t to it, keyed
// by machine (Kafka's default partitioner: each machine's readings in one
// partition), with the reading's time as the record's timestamp and the
// demo's headers, in uncompressed batches.
func load(ctx context.Context, c *testbed.Cluster, topic string, partitions int, t telemetry, threshold float64) (*dataset, error) {
	cl, err := c.Client(kgo.ProducerLinger(10*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", topic, err)
	}
	d := &dataset{topic: topic, records: t.n, partitions: partitions, machines: len(t.machines), threshold: threshold, perPartition: make([]int, partitions)}
	var (
		mu       sync.Mutex
		firstErr error
		partOf   = make(map[string]int32, len(t.machines))
	)
	// Per machine: the start of each window it has readings in, and its
	// last reading's time.
	starts := make(map[string][]int64, len(t.machines))
	last := make(map[string]int64, len(t.machines))
	window := aggWindow.Milliseconds()
	headers := []kgo.RecordHeader{
		{Key: "content-type", Value: []byte("application/json")},
		{Key: "unit", Value: []byte("celsius")},
	}
	began := time.Now()
	err = t.readings(func(i int, r reading) error {
		if i == 0 {
			d.from, d.example = r.at, string(r.value())
		}
		d.to = r.at
		if r.celsius > threshold {
			d.kept++
		}
		ts := r.at.UnixMilli()
		s := ts - ts%window
		if ws := starts[r.machine]; len(ws) == 0 || ws[len(ws)-1] != s {
			starts[r.machine] = append(ws, s)
		}
		last[r.machine] = ts
		rec := &kgo.Record{Topic: topic, Key: []byte(r.machine), Value: r.value(), Timestamp: r.at, Headers: headers}
		d.bytes += int64(len(rec.Key) + len(rec.Value))
		for _, h := range headers {
			d.headers += int64(len(h.Key) + len(h.Value))
		}
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			partOf[string(r.Key)] = r.Partition
			d.perPartition[r.Partition]++
		})
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	d.took = time.Since(began)
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return nil, fmt.Errorf("load %s: %w", topic, firstErr)
	}
	d.windows = closedWindows(starts, last, partOf, window, aggGrace.Milliseconds())
	fmt.Fprintf(os.Stderr, "loaded %d records in %s\n", t.n, d.took.Round(time.Millisecond))
	return d, nil
}

// closedWindows counts the windows an aggregate closes: a window of a
// machine closes once its partition's largest timestamp reaches its end
// plus grace.
func closedWindows(starts map[string][]int64, last map[string]int64, partOf map[string]int32, window, grace int64) int {
	partMax := make(map[int32]int64)
	for m, ts := range last {
		p := partOf[m]
		if cur, ok := partMax[p]; !ok || ts > cur {
			partMax[p] = ts
		}
	}
	n := 0
	for m, ws := range starts {
		wm := partMax[partOf[m]]
		for _, s := range ws {
			if s+window+grace <= wm {
				n++
			}
		}
	}
	return n
}
