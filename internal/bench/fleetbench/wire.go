package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/agent"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/faultnet"
	"github.com/edgelink/edgelink/internal/fleet"
	"github.com/edgelink/edgelink/internal/kafka"
	"github.com/edgelink/edgelink/internal/signing"
	"github.com/edgelink/edgelink/internal/status"
)

// wirePrefix is the topic prefix of the fleet the counted uplinks report
// to: a fleet of its own, so that the service measured shows exactly the
// simulated sites.
const wirePrefix = "wire"

// site is a real agent in this process: two links between an in-process
// kfake edge and the cloud cluster, a trickle of records on the upward
// one, and its fleet uplink, whose connections to the fleet cluster (and
// only those) pass through net, which counts their bytes.
type site struct {
	name    string
	managed bool
	edge    *kfake.Cluster
	net     *faultnet.Network
	uplink  *fleet.Uplink
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// siteConfig is the agent's local configuration: the edge, the cloud,
// two links and the fleet block.
func siteConfig(name string, edge string, cloud []string, interval time.Duration, managed bool, trusted string) string {
	fleetBlock := fmt.Sprintf("{cluster: cloud, interval: %s, topic_prefix: %s}", interval, wirePrefix)
	if managed {
		fleetBlock = fmt.Sprintf("{cluster: cloud, interval: %s, topic_prefix: %s, managed: true, trusted_keys: [%q]}", interval, wirePrefix, trusted)
	}
	return fmt.Sprintf(`site: %[1]s
site_labels: {region: eu-central, tier: plant}
clusters:
  edge: {bootstrap: [%[2]q]}
  cloud: {bootstrap: [%[3]s]}
links:
  - {name: telemetry-up, from: edge, to: cloud, topics: {include: ["telemetry"]}, rename: "{site}.{topic}"}
  - {name: commands-down, from: cloud, to: edge, topics: {include: ["%[1]s[.]commands"]}}
fleet: %[4]s
`, name, edge, quoteAll(cloud), fleetBlock)
}

// startSite starts a real agent of site name with its uplink.
func startSite(ctx context.Context, dir, name string, cloud []string, interval time.Duration, managed bool, logger *slog.Logger) (*site, error) {
	edge, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "telemetry"))
	if err != nil {
		return nil, fmt.Errorf("start the edge of %s: %w", name, err)
	}
	s := &site{name: name, managed: managed, edge: edge, net: faultnet.New(logger)}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	if err := createTopics(ctx, cloud, 1, name+".commands"); err != nil {
		return nil, err
	}
	base := filepath.Join(dir, name)
	if managed {
		// The key the site trusts; nothing is signed with it.
		if err := signing.WriteKeyPair(base + "-operator"); err != nil {
			return nil, fmt.Errorf("write the operator's key pair: %w", err)
		}
	}
	text := []byte(siteConfig(name, edge.ListenAddrs()[0], cloud, interval, managed, base+"-operator.pub"))
	file := base + ".yaml"
	if err := os.WriteFile(file, text, 0o644); err != nil {
		return nil, fmt.Errorf("write the configuration of %s: %w", name, err)
	}
	cfg, err := config.Parse(file, text)
	if err != nil {
		return nil, fmt.Errorf("the configuration of %s: %w", name, err)
	}
	a := agent.New(cfg, agent.Options{}, logger)
	model := status.New(status.Options{Links: a, Version: "fleetbench", Logger: logger})
	s.uplink, err = fleet.NewUplink(fleet.UplinkOptions{
		Local: cfg, LocalText: text, Agent: a, Status: model, Logger: logger,
		Dial: kafka.Dial{Raw: s.net.Dialer()},
	})
	if err != nil {
		return nil, err
	}
	trickle, err := kgo.NewClient(kgo.SeedBrokers(edge.ListenAddrs()...), kgo.DefaultProduceTopic("telemetry"))
	if err != nil {
		return nil, fmt.Errorf("create the edge producer of %s: %w", name, err)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Go(func() { _ = a.Run(ctx) })
	s.wg.Go(func() { model.Run(ctx) })
	s.wg.Go(func() { _ = s.uplink.Run(ctx) })
	s.wg.Go(func() {
		defer trickle.Close()
		every(ctx, 200*time.Millisecond, func() {
			trickle.Produce(ctx, &kgo.Record{Value: []byte(`{"sensor":"t-17","celsius":21.4}`)}, nil)
		})
	})
	ok = true
	return s, nil
}

// stop ends the agent and its uplink (which publishes a last report) and
// waits for them.
func (s *site) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	_ = s.net.Close()
	s.edge.Close()
}

// wireMark is what a site's uplink had done at one moment.
type wireMark struct {
	at        time.Time
	stats     faultnet.Stats
	published int64
}

func (s *site) mark() wireMark {
	return wireMark{at: time.Now(), stats: s.net.Stats(), published: s.uplink.State().Published}
}

// wireResult is a site's uplink on the wire over a window.
type wireResult struct {
	name    string
	managed bool
	window  time.Duration
	// up and down are the bytes that crossed the network, reports the
	// reports published, failed those that were not.
	up, down        int64
	reports, failed int64
	// reportJSON is the size of the uplink's last report, zstd that of
	// its report compressed as its producer does.
	reportJSON, zstd int
	// quietZstd is the same report without its events, compressed: what
	// an agent that had no event for an hour sends.
	quietZstd int
	// report is the uplink's report at the end of the window (JSON), with
	// links, events and certificates.
	report                      []byte
	links, events, certificates int
	// connections counts those the uplink opened in the window.
	connections          int64
	perDayUp, perDayDown float64
}

// result returns the site's figures between two marks.
func (s *site) result(a, b wireMark, comp kgo.Compressor) (wireResult, error) {
	st := s.uplink.State()
	r := wireResult{
		name: s.name, managed: s.managed, window: b.at.Sub(a.at),
		up: b.stats.Up - a.stats.Up, down: b.stats.Down - a.stats.Down,
		reports: b.published - a.published, failed: st.Failed, reportJSON: st.ReportBytes,
		connections: b.stats.Opened - a.stats.Opened,
	}
	report := s.uplink.Report(false)
	value, err := report.Marshal()
	if err != nil {
		return r, err
	}
	r.report, r.links, r.events, r.certificates = value, len(report.Links), len(report.Events), len(report.Certificates)
	r.zstd = zstdSize(comp, value)
	quiet := report
	quiet.Events = []fleet.ReportEvent{}
	quietValue, err := quiet.Marshal()
	if err != nil {
		return r, err
	}
	r.quietZstd = zstdSize(comp, quietValue)
	day := (24 * time.Hour).Seconds() / r.window.Seconds()
	r.perDayUp, r.perDayDown = float64(r.up)*day, float64(r.down)*day
	if r.reports == 0 {
		return r, errors.New("no report published in the window")
	}
	return r, nil
}

// createTopics creates topics on the cluster at seeds, with partitions
// each, if they do not exist.
func createTopics(ctx context.Context, seeds []string, partitions int32, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return fmt.Errorf("create admin client: %w", err)
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}
