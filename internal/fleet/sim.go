package fleet

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Simulated sites stand in for real agents where a fleet is needed without
// hundreds of processes: the demo's fleet, the fleet service's tests and
// its benchmark. Their reports are shaped like real ones (two links with
// lag, rates, budgets, slots, certificates and, for the troubled ones, an
// event); a real agent's report also names its topics' sources in its
// events and errors, so it weighs a little more (see BENCHMARKS.md).

// SimKind is how a simulated site behaves.
type SimKind int

// Simulated site behaviours.
const (
	// SimHealthy: live links with a little lag.
	SimHealthy SimKind = iota
	// SimLagging: a link catching up, close to data loss.
	SimLagging
	// SimDisconnected: the WAN is down; lag grows.
	SimDisconnected
	// SimOld: healthy, on an older version.
	SimOld
)

// SimSite is a simulated site.
type SimSite struct {
	Name     string
	Labels   map[string]string
	Kind     SimKind
	Version  string
	Instance string
	started  time.Time
	records  int64
	rng      *rand.Rand
}

// SimFleet returns n simulated sites named prefix-0001 and up, with region
// and tier labels; every 10th lags, every 25th is disconnected and one in
// 20 runs oldVersion, the others version.
func SimFleet(prefix string, n int, version, oldVersion string, seed uint64) []*SimSite {
	regions := []string{"eu-central", "eu-west", "us-east", "us-west", "ap-south"}
	tiers := []string{"plant", "well", "store", "ship"}
	out := make([]*SimSite, n)
	for i := range n {
		s := &SimSite{
			Name:     fmt.Sprintf("%s-%04d", prefix, i+1),
			Labels:   map[string]string{"region": regions[i%len(regions)], "tier": tiers[(i/5)%len(tiers)]},
			Version:  version,
			Instance: fmt.Sprintf("sim%06x", uint32(seed)+uint32(i)),
			rng:      rand.New(rand.NewPCG(seed, uint64(i))),
		}
		switch {
		case i%25 == 24:
			s.Kind = SimDisconnected
		case i%10 == 9:
			s.Kind = SimLagging
		case i%20 == 13:
			s.Kind, s.Version = SimOld, oldVersion
		}
		out[i] = s
	}
	return out
}

// Key is the site's report key.
func (s *SimSite) Key() string { return reportKey(s.Name, s.Instance) }

// Report returns the site's report at now, every interval.
func (s *SimSite) Report(now time.Time, interval time.Duration) Report {
	if s.started.IsZero() {
		s.started = now.Add(-time.Duration(s.rng.IntN(72)) * time.Hour)
	}
	rate := 200 + s.rng.Float64()*50
	s.records += int64(rate * interval.Seconds())
	r := Report{
		Format: ReportFormat, Site: s.Name, Labels: s.Labels, Instance: s.Instance, Host: s.Name + "-gw", PID: 4242,
		Version: s.Version, Time: now.UTC(), StartedAt: s.started.UTC(), IntervalSeconds: interval.Seconds(), Ready: true,
		Config: ConfigState{Managed: true, AppliedRevision: 1, DesiredRevision: 1},
		Certificates: []Certificate{{
			Use: "cluster cloud CA", File: "/etc/edgelink/ca.pem", Subject: "CN=fleet-ca",
			NotAfter: s.started.AddDate(1, 0, 0).UTC().Truncate(time.Second),
		}},
		Events: []ReportEvent{},
	}
	telemetry := LinkReport{
		Name: "telemetry-up", From: "edge", To: "cloud", State: "live", StateSince: s.started.UTC(),
		LagRecords: int64(s.rng.IntN(40)), LagSeconds: s.rng.Float64() * 0.5,
		Records: s.records, Bytes: s.records * 180, RecordsPerSecond: round3(rate), BytesPerSecond: round3(rate * 180),
		BudgetBytesPerSecond: 256_000, Partitions: 6, Slots: []int{0, 1, 2, 3, 4, 5}, SlotCount: 6, Agents: 1,
	}
	commands := LinkReport{
		Name: "commands-down", From: "cloud", To: "edge", State: "live", StateSince: s.started.UTC(),
		Records: s.records / 100, Bytes: s.records / 100 * 90, Partitions: 1, Slots: []int{0}, SlotCount: 6, Agents: 1,
	}
	switch s.Kind {
	case SimLagging:
		lag := 50_000 + int64(s.rng.IntN(200_000))
		age := 5*3600 + s.rng.Float64()*3600
		loss := 6*3600 - age
		telemetry.State, telemetry.LagRecords, telemetry.LagSeconds = "catching-up", lag, round3(age)
		telemetry.DrainSeconds, telemetry.DataLossInSeconds = round3(float64(lag)/rate), &loss
		r.Events = append(r.Events, ReportEvent{Time: now.Add(-time.Minute).UTC(), Link: "telemetry-up", Kind: "state", Message: "live → catching-up"})
	case SimDisconnected:
		age := now.Sub(s.started.Add(time.Hour)).Seconds()
		loss := max(0, 7*24*3600-age)
		telemetry.State, telemetry.LagRecords, telemetry.LagSeconds = "disconnected", int64(age*rate), round3(age)
		telemetry.LagEstimated, telemetry.DataLossInSeconds = true, &loss
		telemetry.RecordsPerSecond, telemetry.BytesPerSecond = 0, 0
		telemetry.LastError = "destination cloud unreachable: dial tcp 10.20.0.5:9093: i/o timeout"
		commands.State = "disconnected"
		r.LastError = "telemetry-up: " + telemetry.LastError
		r.Events = append(r.Events, ReportEvent{Time: s.started.Add(time.Hour).UTC(), Link: "telemetry-up", Kind: "state", Message: "live → disconnected: " + telemetry.LastError})
	}
	r.Links = []LinkReport{telemetry, commands}
	return r
}
