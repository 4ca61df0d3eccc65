package link

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/kafka"
)

// bundleWatchInterval is how often a link carried in bundles looks at its
// exports and its source.
const bundleWatchInterval = 10 * time.Second

// watchBundles is what edgelink run does for a link carried in bundles:
// nothing crosses but by hand, so it only shows where the link stands,
// from its source cluster: the last export, the last receipt acknowledged,
// and as its backlog what the cloud has not acknowledged. It is live while
// it reads the source.
func (l *Link) watchBundles(ctx context.Context) error {
	tune := tuningFor(l.cfg)
	opts, err := clientOpts(l.src, tune, l.opts.SourceDialer, l.logger)
	if err != nil {
		return err
	}
	src, err := newKafkaSource(opts, tune.adminTimeout())
	if err != nil {
		return err
	}
	defer src.close()
	for {
		if err := l.lookAtBundles(ctx, src, opts); err != nil {
			l.setState(StateDisconnected, kafka.Explain(err, l.src, nil))
		} else {
			l.setState(StateLive, nil)
		}
		select {
		case <-ctx.Done():
			l.setState(StateStopped, nil)
			return nil
		case <-time.After(bundleWatchInterval):
		}
	}
}

func (l *Link) lookAtBundles(ctx context.Context, src *kafkaSource, opts []kgo.Opt) error {
	ctx, cancel := context.WithTimeout(ctx, tuningFor(l.cfg).adminTimeout())
	defer cancel()
	var st ExportState
	if _, err := readAirGap(ctx, opts, airGapKey(l.id, "export"), &st); err != nil {
		return err
	}
	topics, err := selectedTopics(ctx, src, l.cfg)
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(topics))
	from, _, err := exportStarts(ctx, src, l.cfg, st.Acked, topics)
	if err != nil {
		return err
	}
	ends, err := src.offsets(ctx, stableOffset, names...)
	if err != nil {
		return fmt.Errorf("list source offsets: %w", err)
	}
	var backlog int64
	per := make(map[string]*TopicStatus, len(names))
	for _, t := range names {
		per[t] = &TopicStatus{Source: t, Destination: l.destination(t), Partitions: int(topics[t].partitions), Priority: l.cfg.PriorityOf(t)}
	}
	for k, at := range from {
		if n := ends[k] - at; n > 0 {
			backlog += n
			per[k.Topic].BacklogRecords += n
		}
	}
	now := time.Now()
	l.update(func(s *Status) {
		s.Bundles = &st
		s.BacklogRecords, s.BacklogAt = backlog, now
		s.Partitions = len(from)
		s.Topics = s.Topics[:0:0]
		for _, t := range names {
			s.Topics = append(s.Topics, *per[t])
		}
		if st.Acked != nil && backlog > 0 {
			s.BacklogAge = now.Sub(st.Acked.Imported)
		}
	})
	return nil
}
