// Package fleet connects the agents of many sites to one place in the cloud,
// through the Kafka cluster they already write to: no database of its own
// and no inbound port at any site.
//
// Four topics in the fleet cluster (names start with fleet.topic_prefix):
//
//	<prefix>.reports  compacted; key "<site>/<agent instance>": each agent's
//	                  latest Report, published every fleet.interval
//	<prefix>.config   compacted; key "site/<site>" or "selector/<k>=<v>,…":
//	                  the newest signed configuration revision (Envelope) for
//	                  a site or for the sites whose labels match
//	<prefix>.state    compacted; key "<site>": a managed site's configuration
//	                  state (applied, last good, refused), read back when an
//	                  agent starts so that a restart keeps what it applied
//	<prefix>.history  append-only (long retention): every revision published
//	                  and every outcome at a site (applied, refused,
//	                  reverted): the audit trail
//
// The agent side is a Reporter (publishes reports) and, with fleet.managed,
// a Manager (follows the config topic, verifies, validates and applies
// revisions through the agent, reverts a revision whose changed links do
// not become live). The cloud side is a View, fed by a Reader from the
// topics, which the fleet service (edgelink fleet serve) renders and
// edgelink fleet status prints. Publish writes a revision (edgelink fleet
// apply).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
)

// Topics are the names of the fleet's topics.
type Topics struct {
	Reports, Config, State, History string
}

// TopicsOf returns the fleet's topic names under prefix
// (config.DefaultFleetTopicPrefix when empty).
func TopicsOf(prefix string) Topics {
	if prefix == "" {
		prefix = config.DefaultFleetTopicPrefix
	}
	return Topics{
		Reports: prefix + ".reports",
		Config:  prefix + ".config",
		State:   prefix + ".state",
		History: prefix + ".history",
	}
}

// TopicsFor returns the topic names of a fleet block.
func TopicsFor(f *config.Fleet) Topics {
	if f == nil {
		return TopicsOf("")
	}
	return TopicsOf(f.TopicPrefix)
}

// All lists the topics.
func (t Topics) All() []string { return []string{t.Reports, t.Config, t.State, t.History} }

// Partition counts and retention of the fleet's topics.
const (
	// reportPartitions spreads the reports of a large fleet so that
	// several fleet services and a restart read them in parallel.
	reportPartitions = 6
	// historyRetention keeps the audit trail for a bit more than a year.
	historyRetention = 400 * 24 * time.Hour
)

// topicSpecs are the partition counts and configs the fleet's topics are
// created with. Reports are compacted quickly (small segments) so that a
// fleet service starting reads little more than one report per agent;
// their timestamps are the broker's (LogAppendTime), so that "last seen"
// and clock skew do not depend on a site's clock.
func (t Topics) specs() map[string]topicSpec {
	compact := func(extra map[string]string) map[string]*string {
		m := map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}
		for k, v := range extra {
			m[k] = kadm.StringPtr(v)
		}
		return m
	}
	return map[string]topicSpec{
		t.Reports: {partitions: reportPartitions, configs: compact(map[string]string{
			"message.timestamp.type":    "LogAppendTime",
			"segment.ms":                "600000",
			"min.cleanable.dirty.ratio": "0.1",
			"delete.retention.ms":       "86400000",
		})},
		t.Config: {partitions: 1, configs: compact(map[string]string{"message.timestamp.type": "LogAppendTime"})},
		t.State:  {partitions: 1, configs: compact(map[string]string{"message.timestamp.type": "LogAppendTime", "segment.ms": "3600000"})},
		t.History: {partitions: 1, configs: map[string]*string{
			"cleanup.policy":         kadm.StringPtr("delete"),
			"retention.ms":           kadm.StringPtr(fmt.Sprint(historyRetention.Milliseconds())),
			"message.timestamp.type": kadm.StringPtr("LogAppendTime"),
		}},
	}
}

type topicSpec struct {
	partitions int32
	configs    map[string]*string
}

// EnsureTopics creates the fleet's topics that do not exist yet, with the
// cluster's default replication factor. Topics that exist are left as
// they are.
func EnsureTopics(ctx context.Context, adm *kadm.Client, t Topics) error {
	specs := t.specs()
	details, err := adm.ListTopics(ctx, t.All()...)
	if err != nil {
		return fmt.Errorf("list fleet topics: %w", err)
	}
	var errs []error
	for _, name := range t.All() {
		if d, ok := details[name]; ok && d.Err == nil {
			continue
		}
		sp := specs[name]
		res, err := adm.CreateTopic(ctx, sp.partitions, -1, sp.configs, name)
		if err == nil {
			err = res.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create fleet topic %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// CreateTopics creates the fleet's missing topics through a client built
// from opts, retrying until it succeeds or ctx ends.
func CreateTopics(ctx context.Context, opts []kgo.Opt, t Topics) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create fleet client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	return retryUntil(ctx, func(ctx context.Context) error { return EnsureTopics(ctx, adm, t) })
}

// reportKey is the key of an agent's reports: "<site>/<instance>". A site
// name never contains "/".
func reportKey(site, instance string) string { return site + "/" + instance }

// siteOfKey returns the site of a report key.
func siteOfKey(key string) string {
	site, _, _ := strings.Cut(key, "/")
	return site
}
