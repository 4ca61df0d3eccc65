package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/fleet"
)

// The demo's fleet: the fleet service reads the cloud cluster's fleet
// topics, where agent A reports its site (through the simulated WAN, so a
// cut link makes the site fall silent) and a few dozen simulated sites
// report too: some lagging toward data loss, one cut off, one on an older
// version, one silent since the demo started.

// Simulated sites of the demo's fleet.
const (
	// SimulatedSites is how many simulated sites the demo's fleet has.
	SimulatedSites = 36
	simInterval    = 2 * time.Second
	// simSilent is the simulated site that reports once and then falls
	// silent.
	simSilent = 30
)

// simulated publishes the simulated sites' reports to the cloud cluster
// every simInterval until ctx ends.
type simulated struct {
	cl     *kgo.Client
	topic  string
	sites  []*fleet.SimSite
	logger *slog.Logger
}

func newSimulated(cloud []string, version string, logger *slog.Logger) (*simulated, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cloud...), kgo.ClientID("edgelink-demo-fleet"), kgo.ProducerLinger(10*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("create the simulated sites' client: %w", err)
	}
	return &simulated{
		cl: cl, topic: fleet.TopicsOf("").Reports,
		sites:  fleet.SimFleet("plant-sim", SimulatedSites, version, "v0.9.0", uint64(time.Now().UnixNano())),
		logger: logger,
	}, nil
}

func (s *simulated) run(ctx context.Context) error {
	defer s.cl.Close()
	t := time.NewTicker(simInterval)
	defer t.Stop()
	for round := 0; ; round++ {
		now := time.Now()
		recs := make([]*kgo.Record, 0, len(s.sites))
		for i, site := range s.sites {
			if i == simSilent && round > 0 {
				continue
			}
			v, err := json.Marshal(site.Report(now, simInterval))
			if err != nil {
				return fmt.Errorf("simulated report: %w", err)
			}
			recs = append(recs, &kgo.Record{Topic: s.topic, Key: []byte(site.Key()), Value: v})
		}
		if err := s.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil && ctx.Err() == nil {
			s.logger.Warn("simulated sites did not report", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
