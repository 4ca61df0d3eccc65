package link

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/kafka"
)

// A source is what a session reads: the link's source cluster, or, at the
// far side of an air gap, the records a bundle or a data diode carried
// across. It answers for the source cluster (its id, its topics, their
// configs and offsets) and makes the fetchers the intake reads through.
// A source belongs to one session.
type source interface {
	// clusterID is the source cluster's id (checkpoints and provenance
	// carry it).
	clusterID(ctx context.Context) (string, error)
	// topics lists the source's topics, internal ones included.
	topics(ctx context.Context) ([]sourceTopic, error)
	// configs describes topics' configs; topics unknown are left out.
	configs(ctx context.Context, topics ...string) (map[string]topicConfig, error)
	// offsets lists the topics' partitions' offsets of a kind; a
	// partition whose offset is unknown is left out.
	offsets(ctx context.Context, kind offsetKind, topics ...string) (map[tp]int64, error)
	// fetcher makes a new fetcher, reading nothing until partitions are
	// added.
	fetcher() (fetcher, error)
	close()
}

// sourceTopic is a topic as a source lists it.
type sourceTopic struct {
	name, id   string
	partitions int32
	internal   bool
	err        error
}

// offsetKind says which offsets of a partition a source lists.
type offsetKind int

const (
	// startOffset is the first offset the source still holds.
	startOffset offsetKind = iota
	// endOffset is the high watermark: where a new record goes.
	endOffset
	// stableOffset is the last stable offset: what a read_committed
	// reader reaches.
	stableOffset
)

// A fetcher reads records of the partitions added to it, the way a
// franz-go consumer does (which is one): the intake pauses a partition
// while its records wait and resumes it once they are copied.
type fetcher interface {
	AddConsumePartitions(map[string]map[int32]kgo.Offset)
	RemoveConsumePartitions(map[string][]int32)
	PauseFetchPartitions(map[string][]int32) map[string][]int32
	ResumeFetchPartitions(map[string][]int32)
	PollFetches(ctx context.Context) kgo.Fetches
	Close()
}

// partitionsRead is what the fetcher of a source that is not a cluster
// keeps of the partitions added to it: the offset each is read from, and
// which are paused.
type partitionsRead struct {
	at     map[tp]int64
	paused map[tp]bool
}

func newPartitionsRead() partitionsRead {
	return partitionsRead{at: make(map[tp]int64), paused: make(map[tp]bool)}
}

func (p *partitionsRead) AddConsumePartitions(add map[string]map[int32]kgo.Offset) {
	for t, ps := range add {
		for i, o := range ps {
			p.at[tp{t, i}] = o.EpochOffset().Offset
		}
	}
}

func (p *partitionsRead) RemoveConsumePartitions(drop map[string][]int32) {
	for t, ps := range drop {
		for _, i := range ps {
			delete(p.at, tp{t, i})
		}
	}
}

func (p *partitionsRead) PauseFetchPartitions(pause map[string][]int32) map[string][]int32 {
	for t, ps := range pause {
		for _, i := range ps {
			p.paused[tp{t, i}] = true
		}
	}
	return nil
}

func (p *partitionsRead) ResumeFetchPartitions(resume map[string][]int32) {
	for t, ps := range resume {
		for _, i := range ps {
			delete(p.paused, tp{t, i})
		}
	}
}

// reading reports whether k is added and not paused.
func (p *partitionsRead) reading(k tp) bool {
	_, ok := p.at[k]
	return ok && !p.paused[k]
}

// kafkaSource reads the link's source cluster.
type kafkaSource struct {
	cl   *kgo.Client
	adm  *kadm.Client
	opts []kgo.Opt
	// timeout bounds the cluster id's lookup.
	timeout time.Duration
}

func newKafkaSource(opts []kgo.Opt, timeout time.Duration) (*kafkaSource, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("create source client: %w", err)
	}
	return &kafkaSource{cl: cl, adm: kadm.NewClient(cl), opts: opts, timeout: timeout}, nil
}

func (k *kafkaSource) clusterID(ctx context.Context) (string, error) {
	return clusterID(ctx, k.adm, k.timeout)
}

func (k *kafkaSource) topics(ctx context.Context) ([]sourceTopic, error) {
	tds, err := k.adm.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sourceTopic, 0, len(tds))
	for _, td := range tds {
		st := sourceTopic{name: td.Topic, partitions: int32(len(td.Partitions)), internal: td.IsInternal, err: td.Err}
		if td.ID != (kadm.TopicID{}) {
			st.id = td.ID.String()
		}
		out = append(out, st)
	}
	return out, nil
}

func (k *kafkaSource) configs(ctx context.Context, topics ...string) (map[string]topicConfig, error) {
	return topicConfigs(ctx, k.adm, topics...)
}

func (k *kafkaSource) offsets(ctx context.Context, kind offsetKind, topics ...string) (map[tp]int64, error) {
	list := k.adm.ListStartOffsets
	switch kind {
	case endOffset:
		list = k.adm.ListEndOffsets
	case stableOffset:
		list = k.adm.ListCommittedOffsets
	}
	offs, err := list(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := make(map[tp]int64)
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[tp{o.Topic, o.Partition}] = o.Offset
		}
	})
	return out, nil
}

func (k *kafkaSource) fetcher() (fetcher, error) {
	cl, err := kgo.NewClient(k.opts...)
	if err != nil {
		return nil, fmt.Errorf("create source consumer: %w", err)
	}
	return cl, nil
}

func (k *kafkaSource) close() { k.cl.Close() }

// clientOpts are the options of a client of cluster c with tune's
// settings, dialled through raw when set.
func clientOpts(c *config.Cluster, tune tuning, raw kafka.DialFunc, logger *slog.Logger) ([]kgo.Opt, error) {
	opts, err := kafka.ClientOptions(c, logger, kafka.Dial{Raw: raw, Timeout: tune.dialTimeout})
	if err != nil {
		return nil, err
	}
	return append(opts, tune.clientOpts()...), nil
}

// openSource opens the link's source: its source cluster, unless the link
// was given another (an import's bundles, a diode's receiver).
func (l *Link) openSource(tune tuning) (source, error) {
	if l.opts.source != nil {
		return l.opts.source()
	}
	opts, err := clientOpts(l.src, tune, l.opts.SourceDialer, l.logger)
	if err != nil {
		return nil, err
	}
	return newKafkaSource(append(opts, consumerOpts(tune.fetchMaxWait)...), tune.adminTimeout())
}
