package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The demo's topics at the edge.
const (
	TopicTemperature = "sensors.temp"
	TopicVibration   = "sensors.vibration"
	TopicAlerts      = "alerts"
)

// scanInterval is how often the machines are read: each scan writes its
// readings at once, as a plant's data collector does, so that a healthy
// link is fully caught up between scans.
const scanInterval = 500 * time.Millisecond

// Alert thresholds.
const (
	hotCelsius      = 85.0
	shakyMMPerSec   = 11.0 // vibration velocity (RMS), the "unacceptable" zone of ISO 10816 for medium machines
	alertQuietAfter = 30 * time.Second
)

// machine is one simulated machine: its temperature follows a slow cycle
// around its base with noise, its vibration is steady with rare spikes.
type machine struct {
	id        string
	baseC     float64 // mean temperature
	swingC    float64 // amplitude of the slow cycle
	period    time.Duration
	phase     float64
	baseVib   float64
	lastAlert time.Time
	wasHot    bool
}

// Machines is how many machines the simulated plant has.
func Machines() int { return len(newMachines()) }

func newMachines() []*machine {
	return []*machine{
		{id: "press-01", baseC: 62, swingC: 6, period: 3 * time.Minute, baseVib: 3.1},
		{id: "press-02", baseC: 74, swingC: 13, period: 2 * time.Minute, phase: 1.5, baseVib: 4.2}, // runs hot now and then
		{id: "cnc-03", baseC: 48, swingC: 4, period: 4 * time.Minute, phase: 0.7, baseVib: 1.8},
		{id: "pump-04", baseC: 55, swingC: 5, period: 5 * time.Minute, phase: 2.2, baseVib: 5.5},
		{id: "compressor-05", baseC: 68, swingC: 8, period: 150 * time.Second, phase: 4.0, baseVib: 6.4},
	}
}

// Reading values, as JSON.
type (
	temperature struct {
		Machine string  `json:"machine"`
		Time    string  `json:"time"`
		Celsius float64 `json:"celsius"`
	}
	vibration struct {
		Machine string  `json:"machine"`
		Time    string  `json:"time"`
		MMPerS  float64 `json:"velocity_mm_s"`
	}
	alert struct {
		Machine  string `json:"machine"`
		Time     string `json:"time"`
		Severity string `json:"severity"`
		Message  string `json:"message"`
	}
)

// workload writes the machines' readings to the edge cluster at about rate
// records per second. Its loop is owned by Demo.Run.
type workload struct {
	cl       *kgo.Client
	rate     int
	machines []*machine
	rng      *rand.Rand
	logger   *slog.Logger
	carry    float64 // fractional records owed to the next scan
	next     int     // the machine and kind the next reading is of

	written atomic.Int64 // records acknowledged by the edge cluster
	failed  atomic.Int64
	lastErr atomic.Value // string
}

func newWorkload(cl *kgo.Client, rate int, logger *slog.Logger) *workload {
	return &workload{
		cl: cl, rate: rate, machines: newMachines(), logger: logger,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)), //nolint:gosec // simulated sensor noise
	}
}

// run writes a scan every scanInterval until ctx ends, then waits (briefly)
// for the edge cluster to acknowledge what it wrote.
func (w *workload) run(ctx context.Context) error {
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.cl.Flush(fctx); err != nil {
			w.logger.Warn("workload: flush the last readings", "err", err)
		}
	}()
	if w.rate <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(scanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			for _, r := range w.scan(now) {
				w.cl.Produce(context.WithoutCancel(ctx), r, w.acked) // written even when the demo stops
			}
		}
	}
}

func (w *workload) acked(_ *kgo.Record, err error) {
	if err == nil {
		w.written.Add(1)
		return
	}
	if w.failed.Add(1) == 1 || w.failed.Load()%1000 == 0 {
		w.logger.Warn("workload: write to the edge cluster", "err", err, "failed", w.failed.Load())
	}
	w.lastErr.Store(err.Error())
}

// scan returns one scan's records: readings, spread over the machines, and
// an alert for each machine that crossed a threshold.
func (w *workload) scan(now time.Time) []*kgo.Record {
	want := float64(w.rate)*scanInterval.Seconds() + w.carry
	n := int(want)
	w.carry = want - float64(n)
	recs := make([]*kgo.Record, 0, n+1)
	ts := now.UTC().Format(time.RFC3339Nano)
	for range n {
		m := w.machines[(w.next/2)%len(w.machines)]
		if w.next%2 == 0 {
			c := m.celsius(now, w.rng)
			recs = append(recs, record(TopicTemperature, m.id, now, "celsius", temperature{m.id, ts, c}))
			hot := c >= hotCelsius
			if hot && !m.wasHot && now.Sub(m.lastAlert) > alertQuietAfter {
				m.lastAlert = now
				recs = append(recs, record(TopicAlerts, m.id, now, "", alert{
					m.id, ts, "warning",
					fmt.Sprintf("temperature %.1f °C is above %.0f °C", c, hotCelsius),
				}))
			}
			m.wasHot = hot
		} else {
			v := m.velocity(w.rng)
			recs = append(recs, record(TopicVibration, m.id, now, "mm/s", vibration{m.id, ts, v}))
			if v >= shakyMMPerSec && now.Sub(m.lastAlert) > alertQuietAfter {
				m.lastAlert = now
				recs = append(recs, record(TopicAlerts, m.id, now, "", alert{
					m.id, ts, "critical",
					fmt.Sprintf("vibration %.1f mm/s is above %.0f mm/s: check bearings and mounting", v, shakyMMPerSec),
				}))
			}
		}
		w.next++
	}
	return recs
}

// celsius is the machine's temperature at now.
func (m *machine) celsius(now time.Time, rng *rand.Rand) float64 {
	cycle := 2 * math.Pi * float64(now.UnixMilli()%m.period.Milliseconds()) / float64(m.period.Milliseconds())
	return round1(m.baseC + m.swingC*math.Sin(cycle+m.phase) + rng.NormFloat64()*0.4)
}

// velocity is a vibration reading: steady, with a rare spike.
func (m *machine) velocity(rng *rand.Rand) float64 {
	v := m.baseVib + rng.NormFloat64()*0.3
	if rng.Float64() < 0.0005 {
		v += 6 + rng.Float64()*4
	}
	return round1(max(v, 0))
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// record encodes v as a record of topic keyed by the machine.
func record(topic, machine string, now time.Time, unit string, v any) *kgo.Record {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // cannot happen: plain structs
	}
	r := &kgo.Record{Topic: topic, Key: []byte(machine), Value: b, Timestamp: now}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte("application/json")})
	if unit != "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "unit", Value: []byte(unit)})
	}
	return r
}
