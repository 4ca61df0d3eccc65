package link

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
)

// MirrorTopic returns the destination topic of a source topic of lc, and
// an error when that name is not a legal Kafka topic name (the link then
// reports the topic and does not replicate it), or is one of edgelink's
// own topics at the destination.
func MirrorTopic(site string, lc *config.Link, topic string) (string, error) {
	return checkMirrorName(lc, lc.DestinationTopic(site, topic))
}

// checkMirrorName checks a mirror topic's name (see MirrorTopic).
func checkMirrorName(lc *config.Link, dst string) (string, error) {
	if err := validTopicName(dst); err != nil {
		return dst, err
	}
	if dst == lc.CheckpointTopic || dst == config.DefaultCheckpointTopic || dst == SkippedTopic {
		return dst, fmt.Errorf("topic name %q is edgelink's own checkpoint or skipped-records topic", dst)
	}
	return dst, nil
}

// Needs returns the permissions link lc needs to replicate srcTopics: at
// the source, and at the destination (mirror topics with legal names, the
// checkpoint topic, the skipped-records topic, the transactional id).
// At the source, the agents running the link share it through a consumer
// group (Identity.GroupID).
func Needs(site string, lc *config.Link, srcTopics []string) (src, dst []kafka.Need) {
	topic := func(op kmsg.ACLOperation, name, why string) kafka.Need {
		return kafka.Need{Op: op, Resource: kmsg.ACLResourceTypeTopic, Name: name, For: why}
	}
	const (
		describe        = kmsg.ACLOperationDescribe
		read            = kmsg.ACLOperationRead
		write           = kmsg.ACLOperationWrite
		create          = kmsg.ACLOperationCreate
		describeConfigs = kmsg.ACLOperationDescribeConfigs
		alterConfigs    = kmsg.ACLOperationAlterConfigs
		alter           = kmsg.ACLOperationAlter
	)
	for _, t := range srcTopics {
		src = append(src,
			topic(describe, t, "list the source topic and its offsets"),
			topic(read, t, "read the source topic"),
			topic(describeConfigs, t, "copy the source topic's configs to its mirror"))
	}
	id := Identity{site, lc.Name}
	src = append(src, kafka.Need{
		Op: read, Resource: kmsg.ACLResourceTypeGroup, Name: id.GroupID(),
		For: "share the link's slots with the other agents of the site (consumer group protocol)",
	})
	for _, t := range srcTopics {
		m, err := MirrorTopic(site, lc, t)
		if err != nil {
			continue
		}
		mk := func(op kmsg.ACLOperation, why string) kafka.Need { return topic(op, m, why) }
		c := mk(create, "create the mirror topic")
		c.IfAbsent = true
		ac := mk(alterConfigs, "follow changes of the source topic's configs")
		ac.Later = true
		al := mk(alter, "add partitions when the source topic grows")
		al.Later = true
		dst = append(dst,
			mk(describe, "find the mirror topic and its partitions"),
			mk(describeConfigs, "compare the mirror topic's configs with the source's"),
			c,
			mk(write, "write records to the mirror topic"))
		if lc.Delivery != config.DeliveryAtLeastOnce {
			dst = append(dst, mk(read, "find transactions a broker left without markers (exactly-once)"))
		}
		dst = append(dst, ac, al)
		for _, d := range lc.DerivedTopics(site, t) {
			c := topic(create, d, "create the topic a transform writes to")
			c.IfAbsent = true
			dst = append(dst, topic(describe, d, "find the topic a transform writes to"), c, topic(write, d, "write a transform's output or late records"))
		}
	}
	cp := lc.CheckpointTopic
	if cp == "" {
		cp = config.DefaultCheckpointTopic
	}
	// A session creates the checkpoint topic (and the skipped-records
	// topic) only when it is absent.
	cc := topic(create, cp, "create the checkpoint topic")
	cc.IfAbsent = true
	dst = append(dst,
		topic(describe, cp, "find the checkpoint topic and its end offset"),
		cc,
		topic(read, cp, "read the link's checkpoints when it starts"),
		topic(write, cp, "write the link's checkpoints"))
	if lc.OnError == config.OnErrorSkip {
		sc := topic(create, SkippedTopic, "create the skipped-records topic")
		sc.IfAbsent = true
		dst = append(dst,
			topic(describe, SkippedTopic, "find the skipped-records topic"),
			sc,
			topic(write, SkippedTopic, "record refused source records (on_error: skip-and-record)"))
	}
	if lc.AirGapped() {
		// Where exports and the diode sender stand, at the site; which
		// bundle was imported last, in the cloud.
		for _, side := range []*[]kafka.Need{&src, &dst} {
			ac := topic(create, AirGapTopic, "create the air-gap positions topic")
			ac.IfAbsent = true
			*side = append(*side,
				topic(describe, AirGapTopic, "find the air-gap positions topic"), ac,
				topic(read, AirGapTopic, "read where the link's air-gap crossing stands"),
				topic(write, AirGapTopic, "record where the link's air-gap crossing stands"))
		}
	}
	if lc.Groups != nil {
		for _, g := range groupResources(lc.Groups.IDs) {
			s := kafka.Need{
				Op: describe, Resource: kmsg.ACLResourceTypeGroup, Name: g.name, Prefixed: g.prefixed,
				For: "list the consumer groups the link syncs and read their offsets",
			}
			d := kafka.Need{
				Op: read, Resource: kmsg.ACLResourceTypeGroup, Name: g.name, Prefixed: g.prefixed,
				For: "describe the consumer groups the link syncs and commit their translated offsets",
			}
			src, dst = append(src, s), append(dst, d)
		}
	}
	if lc.Delivery != config.DeliveryAtLeastOnce {
		probe := make([]string, max(lc.Slots, 1))
		for i := range probe {
			probe[i] = id.TransactionalID(i)
		}
		dst = append(dst, kafka.Need{
			Op: kmsg.ACLOperationWrite, Resource: kmsg.ACLResourceTypeTransactionalId, Name: id.TransactionalIDPrefix(),
			Prefixed: true, Probe: probe,
			For: fmt.Sprintf("write exactly once, in transactions, one transactional id per slot (%d); a new holder of a slot fences the old one", len(probe)),
		})
	}
	return src, dst
}

// groupResource is an ACL resource name covering group ids.
type groupResource struct {
	name     string
	prefixed bool
}

// groupResources returns ACL resource names covering every group id the
// selection's include patterns match: the id itself for a pattern that is
// a plain id, the pattern's literal prefix (prefixed) otherwise, and
// Kafka's wildcard "*" for a pattern without one. Exclusions narrow what
// the link syncs, not what an ACL can say.
func groupResources(ids config.Topics) []groupResource {
	var out []groupResource
	for _, re := range ids.IncludeRE {
		prefix, complete := re.LiteralPrefix()
		g := groupResource{name: prefix, prefixed: !complete}
		if prefix == "" {
			g = groupResource{name: "*"}
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}
