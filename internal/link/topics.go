package link

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ExcludedConfigs are source topic configs never copied to a mirror topic:
// they describe the source cluster's replication, placement or tiered
// storage, not the data. Names ending in "." exclude a whole prefix.
var ExcludedConfigs = []string{
	"min.insync.replicas",
	"unclean.leader.election.enable",
	"leader.replication.throttled.replicas",
	"follower.replication.throttled.replicas",
	"remote.storage.enable",
	"remote.log.copy.disable",
	"remote.log.delete.on.disable",
	"local.retention.ms",
	"local.retention.bytes",
	"preallocate",
	"message.downconversion.enable",
	"confluent.",
}

func excludedConfig(name string) bool {
	for _, e := range ExcludedConfigs {
		if name == e || (strings.HasSuffix(e, ".") && strings.HasPrefix(name, e)) {
			return true
		}
	}
	return false
}

var legalTopic = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// validTopicName checks a destination topic name against Kafka's rules.
func validTopicName(name string) error {
	switch {
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed by Kafka", name)
	case len(name) > 249:
		return fmt.Errorf("topic name %q is %d characters long, Kafka allows 249", name, len(name))
	case !legalTopic.MatchString(name):
		return fmt.Errorf("topic name %q has characters Kafka does not allow (only letters, digits, '.', '_' and '-')", name)
	}
	return nil
}

// sourceTopics lists the source topics the link selects, with their
// partition counts. Internal topics and names starting with "__" are never
// selected.
func (s *session) sourceTopics(ctx context.Context) (map[string]int32, error) {
	tds, err := s.src.topics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list source topics: %w", err)
	}
	out := make(map[string]int32)
	s.srcTopicIDs = make(map[string]string)
	for _, td := range tds {
		if td.internal || strings.HasPrefix(td.name, "__") || !s.l.cfg.Topics.Match(td.name) {
			continue
		}
		if td.err != nil {
			s.l.logger.Warn("source topic unavailable", "topic", td.name, "err", td.err)
			continue
		}
		out[td.name] = td.partitions
		if td.id != "" {
			s.srcTopicIDs[td.name] = td.id
		}
	}
	return out, nil
}

// topicConfig is what a link needs of a topic's configs.
type topicConfig struct {
	// set holds the explicitly set (dynamic topic) configs, less
	// ExcludedConfigs: what a mirror topic copies.
	set map[string]string
	// maxMessage is the effective max.message.bytes; zero when unknown.
	maxMessage int
	// retention is how long the topic keeps records by age: its effective
	// retention.ms, whatever sets it. Zero when records are not deleted by
	// age (retention.ms -1, or a cleanup.policy without delete) or it is
	// unknown.
	retention time.Duration
}

// topicConfigs describes the configs of the topics (see topicConfig).
// Topics that do not exist are left out.
func topicConfigs(ctx context.Context, adm *kadm.Client, topics ...string) (map[string]topicConfig, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	out := make(map[string]topicConfig, len(rcs))
	for _, rc := range rcs {
		if rc.Err != nil {
			if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				continue
			}
			return nil, fmt.Errorf("describe configs of %s: %w", rc.Name, rc.Err)
		}
		tc := topicConfig{set: make(map[string]string)}
		deletes := true // cleanup.policy defaults to delete
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			switch c.Key {
			case "max.message.bytes":
				if n, err := strconv.Atoi(*c.Value); err == nil {
					tc.maxMessage = n
				}
			case "retention.ms":
				if ms, err := strconv.ParseInt(*c.Value, 10, 64); err == nil && ms > 0 {
					tc.retention = time.Duration(ms) * time.Millisecond
				}
			case "cleanup.policy":
				deletes = slices.ContainsFunc(strings.Split(*c.Value, ","), func(p string) bool { return strings.TrimSpace(p) == "delete" })
			}
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig && !excludedConfig(c.Key) {
				tc.set[c.Key] = *c.Value
			}
		}
		if !deletes {
			tc.retention = 0 // compacted only: retention.ms does not apply
		}
		out[rc.Name] = tc
	}
	return out, nil
}

// syncTopics makes every selected source topic's mirror exist at the
// destination with at least as many partitions and the same configs. It
// returns the source topics that are ready to replicate with their
// partition counts; a topic that cannot be mirrored is reported through
// s.l.topicError and left out.
func (s *session) syncTopics(ctx context.Context, src map[string]int32) (map[string]int32, error) {
	names := make([]string, 0, len(src))
	for t := range src {
		names = append(names, t)
	}
	sort.Strings(names)
	ready := make(map[string]int32, len(src))
	s.retention = make(map[string]time.Duration, len(src))
	if len(names) == 0 {
		return ready, nil
	}
	srcCfgs, err := s.src.configs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	for _, t := range names {
		s.retention[t] = srcCfgs[t].retention
	}
	dstNames := make([]string, 0, len(names))
	for _, t := range names {
		dst, err := checkMirrorName(s.l.cfg, s.l.destination(t))
		if err != nil {
			s.l.topicError(t, fmt.Errorf("mirror topic for %s: %w (check the link's rename)", t, err))
			continue
		}
		dstNames = append(dstNames, dst)
	}
	var derivedNames []string
	for _, t := range names {
		derivedNames = append(derivedNames, s.l.cfg.DerivedTopics(s.l.id.Site, t)...)
	}
	dstDetails, err := s.dstAdm.ListTopics(ctx, append(slices.Clip(dstNames), derivedNames...)...)
	if err != nil {
		return nil, fmt.Errorf("describe destination topics: %w", err)
	}
	dstCfgs, err := topicConfigs(ctx, s.dstAdm, dstNames...)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	s.mirrorLimit, s.mirrorLimited = 0, ""
	for _, dst := range dstNames {
		if n := dstCfgs[dst].maxMessage; n > 0 && (s.mirrorLimit == 0 || n < s.mirrorLimit) {
			s.mirrorLimit, s.mirrorLimited = n, dst
		}
	}
	for _, t := range names {
		dst, err := checkMirrorName(s.l.cfg, s.l.destination(t))
		if err != nil {
			continue
		}
		if err := s.ensureDerived(ctx, t, src[t], dstDetails); err != nil {
			s.l.topicError(t, err)
			continue
		}
		want := srcCfgs[t].set
		if s.l.opts.ownConfigs {
			want = nil
		}
		td, exists := dstDetails[dst]
		if exists && errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			exists = false
		}
		switch {
		case !exists:
			if err := s.createMirror(ctx, dst, src[t], want); err != nil {
				s.l.topicError(t, err)
				continue
			}
		case td.Err != nil:
			s.l.topicError(t, fmt.Errorf("describe mirror topic %s: %w", dst, td.Err))
			continue
		default:
			have := int32(len(td.Partitions))
			if err := s.alignMirror(ctx, dst, have, src[t], want, dstCfgs[dst].set); err != nil {
				s.l.topicError(t, err)
				continue
			}
			if have < src[t] {
				// The producer learns of the new mirror partitions with
				// its next metadata refresh: replicate them from the next
				// pass on.
				ready[t] = have
				s.grown = true
				continue
			}
		}
		ready[t] = src[t]
	}
	return ready, nil
}

// ensureDerived makes the topics a stateful transform writes for source
// topic t beside its mirror (its output and late topics) exist with the
// source's partitions, with the destination's default configs.
func (s *session) ensureDerived(ctx context.Context, t string, partitions int32, details kadm.TopicDetails) error {
	for _, d := range s.l.cfg.DerivedTopics(s.l.id.Site, t) {
		if err := validTopicName(d); err != nil {
			return fmt.Errorf("output topic for %s: %w (check the transform's to and late)", t, err)
		}
		td, exists := details[d]
		if exists && errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			exists = false
		}
		switch {
		case !exists:
			if err := s.createMirror(ctx, d, partitions, nil); err != nil {
				return err
			}
		case td.Err != nil:
			return fmt.Errorf("describe output topic %s: %w", d, td.Err)
		case int32(len(td.Partitions)) < partitions:
			if err := s.alignMirror(ctx, d, int32(len(td.Partitions)), partitions, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *session) createMirror(ctx context.Context, dst string, partitions int32, cfg map[string]string) error {
	configs := make(map[string]*string, len(cfg))
	for k, v := range cfg {
		configs[k] = kadm.StringPtr(v)
	}
	resp, err := s.dstAdm.CreateTopic(ctx, partitions, -1, configs, dst)
	if err == nil {
		err = resp.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		return nil // created concurrently; the next pass aligns it
	}
	if err != nil {
		return fmt.Errorf("create mirror topic %s: %w", dst, err)
	}
	s.l.logger.Info("created mirror topic", "topic", dst, "partitions", partitions, "configs", len(cfg))
	// Wait until the new topic has a leader for every partition, so the
	// producer's first metadata request finds it instead of backing off.
	// The request is direct: cached metadata would still say "no such topic".
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(dst)
		req.Topics = append(req.Topics, rt)
		if resp, err := req.RequestWith(ctx, s.dstCl); err == nil && len(resp.Topics) == 1 && allLed(resp.Topics[0], partitions) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil // not fatal: the producer retries until the topic is ready
}

func allLed(t kmsg.MetadataResponseTopic, partitions int32) bool {
	if t.ErrorCode != 0 || int32(len(t.Partitions)) != partitions {
		return false
	}
	for _, p := range t.Partitions {
		if p.Leader < 0 || p.ErrorCode != 0 {
			return false
		}
	}
	return true
}

// alignMirror grows the mirror's partitions to the source's and applies
// source config values that differ.
func (s *session) alignMirror(ctx context.Context, dst string, have, want int32, wantCfg, haveCfg map[string]string) error {
	if have < want {
		resp, err := s.dstAdm.UpdatePartitions(ctx, int(want), dst)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("grow mirror topic %s from %d to %d partitions: %w", dst, have, want, err)
		}
		s.l.logger.Info("grew mirror topic", "topic", dst, "from", have, "to", want)
	} else if have > want {
		// Records keep their partition; extra mirror partitions stay empty.
		s.l.logger.Debug("mirror topic has more partitions than its source", "topic", dst, "mirror", have, "source", want)
	}
	var alter []kadm.AlterConfig
	for k, v := range wantCfg {
		if haveCfg[k] != v {
			alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
		}
	}
	if len(alter) == 0 {
		return nil
	}
	sort.Slice(alter, func(i, j int) bool { return alter[i].Name < alter[j].Name })
	resps, err := s.dstAdm.AlterTopicConfigs(ctx, alter, dst)
	if err == nil {
		for _, r := range resps {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		return fmt.Errorf("update configs of mirror topic %s: %w", dst, err)
	}
	s.l.logger.Info("updated mirror topic configs", "topic", dst, "configs", len(alter))
	return nil
}
