package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// follow reads topics from their start with a client built from opts and
// calls each record's handler, until ctx ends. caughtUp is called once,
// when every partition has been read up to its end as of the start (at
// once for empty topics); after, when set, after every poll (at least
// once a second), with atEnd telling whether the last fetch of every
// partition read reached its high watermark (so that a reader that was cut
// off sees everything published meanwhile before it acts). It returns
// ctx's cause, or an error when the topics cannot be listed.
func follow(ctx context.Context, opts []kgo.Opt, topics []string, handle func(*kgo.Record), caughtUp func(), after func(atEnd bool)) error {
	// The caller's options come last, so that they can override the
	// fetch wait.
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.FetchMaxWait(time.Second)}, append(opts,
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)...)
	if err != nil {
		return fmt.Errorf("create fleet reader: %w", err)
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, kadm.NewClient(cl), topics)
	if err != nil {
		return err
	}
	check := func() {
		if caughtUp != nil && len(ends) == 0 {
			caughtUp()
			caughtUp = nil
		}
	}
	check()
	quietSince := time.Now()
	behind := map[topicPartition]bool{}
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		n := 0
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			k := topicPartition{p.Topic, p.Partition}
			for _, r := range p.Records {
				n++
				handle(r)
				if end, ok := ends[k]; ok && r.Offset+1 >= end {
					delete(ends, k)
				}
			}
			if len(p.Records) > 0 {
				behind[k] = p.Records[len(p.Records)-1].Offset+1 < p.HighWatermark
			}
		})
		// A partition whose last records were removed by compaction ends
		// below its end offset: once nothing came for a while, what is
		// left was read.
		if n > 0 {
			quietSince = time.Now()
		} else if len(ends) > 0 && time.Since(quietSince) > caughtUpQuiet {
			clear(ends)
		}
		check()
		if after != nil {
			atEnd := true
			for _, b := range behind {
				atEnd = atEnd && !b
			}
			after(atEnd)
		}
	}
}

// caughtUpQuiet is how long a reader that has not reached the end offsets
// it started with waits, receiving nothing, before it counts as caught up.
const caughtUpQuiet = 3 * time.Second

type topicPartition struct {
	topic     string
	partition int32
}

// endOffsets returns the end offset of every non-empty partition of the
// topics.
func endOffsets(ctx context.Context, adm *kadm.Client, topics []string) (map[topicPartition]int64, error) {
	var ends, starts kadm.ListedOffsets
	err := retryUntil(ctx, func(ctx context.Context) error {
		var err error
		if ends, err = adm.ListEndOffsets(ctx, topics...); err != nil {
			return err
		}
		if err = ends.Error(); err != nil {
			return err
		}
		starts, err = adm.ListStartOffsets(ctx, topics...)
		if err == nil {
			err = starts.Error()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list fleet topic offsets: %w", err)
	}
	out := map[topicPartition]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && s.Offset >= o.Offset {
			return
		}
		out[topicPartition{o.Topic, o.Partition}] = o.Offset
	})
	return out, nil
}

// retryUntil calls f every second until it succeeds or ctx ends.
func retryUntil(ctx context.Context, f func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(context.Cause(ctx), err)
		case <-time.After(time.Second):
		}
	}
}

// readToEnd reads topics from their start to their ends as of now, calling
// handle for every record, and returns; ctx bounds it.
func readToEnd(ctx context.Context, opts []kgo.Opt, topics []string, handle func(*kgo.Record)) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	errDone := errors.New("read to the end")
	err := follow(ctx, opts, topics, handle, func() { stop(errDone) }, nil)
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

// Reader keeps a View up to date with the fleet's topics.
type Reader struct {
	opts   []kgo.Opt
	topics Topics
	view   *View
	logger *slog.Logger
}

// NewReader returns a reader of the topics into view, connecting with
// opts (see kafka.ClientOptions).
func NewReader(opts []kgo.Opt, topics Topics, view *View, logger *slog.Logger) *Reader {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{opts: opts, topics: topics, view: view, logger: logger.With("component", "fleet-reader")}
}

// Run follows the topics until ctx ends; the view is marked loaded once
// it caught up with what the topics held at the start.
func (r *Reader) Run(ctx context.Context) error {
	start := time.Now()
	err := follow(ctx, r.opts, r.readTopics(), r.add, func() {
		r.view.MarkLoaded()
		n, avg := r.view.WireStats()
		r.logger.Info("fleet loaded", "sites", len(r.view.Sites()), "reports_read", n, "avg_report_bytes", int(avg), "took", time.Since(start).Round(time.Millisecond))
	}, nil)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Load reads the topics to their current ends into the view and returns.
func (r *Reader) Load(ctx context.Context) error {
	if err := readToEnd(ctx, r.opts, r.readTopics(), r.add); err != nil {
		return err
	}
	r.view.MarkLoaded()
	return nil
}

func (r *Reader) readTopics() []string {
	return []string{r.topics.Reports, r.topics.Config, r.topics.History}
}

func (r *Reader) add(rec *kgo.Record) {
	ok := true
	switch rec.Topic {
	case r.topics.Reports:
		ok = r.view.AddReport(string(rec.Key), rec.Value, rec.Timestamp)
	case r.topics.Config:
		ok = r.view.AddRevision(string(rec.Key), rec.Value, rec.Timestamp)
	case r.topics.History:
		ok = r.view.AddHistory(rec.Value, rec.Timestamp)
	}
	if !ok {
		r.logger.Debug("fleet record skipped: not understood", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
	}
}
