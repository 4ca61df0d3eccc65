package link

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/config"
)

// AckResult says what an acknowledgement changed.
type AckResult struct {
	// Already is set when the receipt was acknowledged before (or an
	// older one than the last acknowledged).
	Already bool
	State   ExportState
}

// Ack records at the site that the cloud imported a bundle, from the
// receipt the import wrote: the next export starts where the receipt says
// the destination holds each partition, with the next sequence number.
// Until then every export carries the same records again.
func Ack(ctx context.Context, cfg *config.Config, lc *config.Link, r *bundle.Receipt, logger *slog.Logger) (*AckResult, error) {
	id := Identity{Site: cfg.Site, Link: lc.Name}
	if r.Site != id.Site || r.Link != id.Link {
		return nil, fmt.Errorf("the receipt is for link %s of site %q, not link %s of site %q", r.Link, r.Site, id.Link, id.Site)
	}
	tune := tuningFor(lc)
	opts, err := clientOpts(cfg.Clusters[lc.From], tune, nil, logger)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, tune.adminTimeout())
	defer cancel()
	var st ExportState
	if _, err := readAirGap(actx, opts, airGapKey(id, "export"), &st); err != nil {
		return nil, fmt.Errorf("source %s: %w", lc.From, err)
	}
	if a := st.Acked; a != nil && (r.Sequence < a.Sequence || (r.Sequence == a.Sequence && r.BundleHash == a.Hash)) {
		return &AckResult{Already: true, State: st}, nil
	}
	if a := st.Acked; (a == nil && r.Sequence != 1) || (a != nil && r.Sequence > a.Sequence+1) {
		last := int64(0)
		if a != nil {
			last = a.Sequence
		}
		return nil, fmt.Errorf("the receipt is for bundle %d, but the last bundle acknowledged here is %d: acknowledge the receipts of bundle %s first", r.Sequence, last, missing(last+1, r.Sequence-1))
	}
	acked := &AckedBundle{
		Sequence: r.Sequence, ID: r.BundleID, Hash: r.BundleHash, Imported: r.Imported, Acked: time.Now().UTC(),
		Records: r.Records, Positions: make(map[string]int64, len(r.Ranges)),
	}
	if a := st.Acked; a != nil {
		for k, v := range a.Positions {
			acked.Positions[k] = v
		}
	}
	for _, rg := range r.Ranges {
		acked.Positions[partitionKey(tp{rg.Topic, rg.Partition})] = rg.To
	}
	st.Acked = acked
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tune.adminTimeout())
	defer cancel()
	if err := writeAirGap(wctx, opts, airGapKey(id, "export"), &st); err != nil {
		return nil, err
	}
	return &AckResult{State: st}, nil
}

// ReadExportState reads where a link's exports stand at its site.
func ReadExportState(ctx context.Context, cfg *config.Config, lc *config.Link, logger *slog.Logger) (ExportState, error) {
	id := Identity{Site: cfg.Site, Link: lc.Name}
	tune := tuningFor(lc)
	var st ExportState
	opts, err := clientOpts(cfg.Clusters[lc.From], tune, nil, logger)
	if err != nil {
		return st, err
	}
	actx, cancel := context.WithTimeout(ctx, tune.adminTimeout())
	defer cancel()
	_, err = readAirGap(actx, opts, airGapKey(id, "export"), &st)
	return st, err
}
