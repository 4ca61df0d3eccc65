package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Superseded agents' reports are removed from the reports topic once they
// are this old (and another agent of the site has reported since).
const (
	supersededAfter = 24 * time.Hour
	tidyEvery       = 10 * time.Minute
)

// Tidy removes superseded agents' reports from the reports topic (with
// tombstones, which compaction then drops) every ten minutes until ctx
// ends: without it, every restart of an agent would leave one report
// behind for good. The fleet service runs it; several services tidying at
// once write the same tombstones.
func Tidy(ctx context.Context, opts []kgo.Opt, topics Topics, view *View, logger *slog.Logger) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("create fleet client: %w", err)
	}
	defer cl.Close()
	t := time.NewTicker(tidyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-view.Loaded():
		}
		if keys := view.Superseded(supersededAfter); len(keys) > 0 {
			recs := make([]*kgo.Record, len(keys))
			for i, k := range keys {
				recs[i] = &kgo.Record{Topic: topics.Reports, Key: []byte(k)}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil && ctx.Err() == nil {
				logger.Warn("superseded agents' reports not removed", "agents", len(keys), "err", err)
			} else if err == nil {
				logger.Info("superseded agents' reports removed", "agents", len(keys))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
