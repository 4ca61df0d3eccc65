package link

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/signing"
)

// ImportOptions say how bundles are imported.
type ImportOptions struct {
	// Trusted holds the keys whose bundles are accepted; Identities
	// decrypt encrypted bundles.
	Trusted    *signing.Keyring
	Identities []age.Identity
	// Verifying is called while the bundles are verified, with the bytes
	// checked of all; Writing while records are written, with the link's
	// status.
	Verifying func(done, total int64)
	Writing   func(Status)
	// Link tunes the link that writes (tests shorten its intervals).
	Link   Options
	Logger *slog.Logger
}

// ImportResult says what an import did.
type ImportResult struct {
	// Receipt is what to carry back to the site (see Ack).
	Receipt bundle.Receipt
	// Written counts the records this import wrote; Skipped the bundles'
	// records the destination held already.
	Written, Skipped int64
}

// Import writes bundles exported at a site (Export) to the link's
// destination, exactly once. It verifies every signature and every chunk
// file's hash (and that the keys given decrypt them) before it writes
// anything; the records, authentic once the hashes match, are checked
// against their manifest as they are written, and checks that the bundles
// follow what the destination holds (the last bundle imported, and every
// partition's checkpoint); then it writes them as the link would have, in
// transactions with the checkpoints: records the destination holds already
// (a bundle imported twice, an import killed and started again) are not
// written again. The source cluster is not needed.
func Import(ctx context.Context, cfg *config.Config, lc *config.Link, dirs []string, o ImportOptions) (*ImportResult, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	id := Identity{Site: cfg.Site, Link: lc.Name}
	bundles, err := openBundles(dirs, id, o)
	if err != nil {
		return nil, err
	}
	if err := verifyBundles(ctx, bundles, dirs, o.Verifying); err != nil {
		return nil, err
	}
	tune := tuningFor(lc)
	dstOpts, err := clientOpts(cfg.Clusters[lc.To], tune, o.Link.DestinationDialer, o.Logger)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, tune.adminTimeout())
	defer cancel()
	var state ImportState
	found, err := readAirGap(actx, dstOpts, airGapKey(id, "import"), &state)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", lc.To, err)
	}
	first := bundles[0].Manifest()
	if found && first.Sequence > state.Sequence+1 {
		return nil, fmt.Errorf("%w: bundle %d of %s cannot be imported: the destination's last bundle of the link is %d (id %s, imported %s), so bundle %s missing; import it first",
			ErrOutOfSequence, first.Sequence, id, state.Sequence, state.ID, state.At.Format(time.RFC3339), missing(state.Sequence+1, first.Sequence-1))
	}
	src := newBundleSource(bundles)
	opts := o.Link
	opts.source = func() (source, error) { return src, nil }
	opts.admit = func(cps map[tp]int64) error { return followsCheckpoints(bundles, cps, found, state) }
	// One slot writes every partition: no other agent shares an import,
	// and one producer makes fewer, fuller requests with less memory than
	// a producer per slot. Every import of the link does the same, so the
	// transactional id a killed import left open is the next one's.
	one := *lc
	one.Slots = 1
	l := New(cfg, &one, opts, o.Logger)
	// An import is one process writing what a disk holds: small producer
	// buffers keep its memory low, and the disk, not the WAN, sets the pace.
	l.buffer = importBuffer
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- l.Run(runCtx) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err = <-done:
		case <-tick.C:
			st := l.Status()
			if o.Writing != nil {
				o.Writing(st)
			}
			if t, long := src.stats.stuckTopic(); t != "" && long > stuckFor {
				stop()
				return nil, errors.Join(fmt.Errorf("records of topic %s cannot be written (%s); nothing of it past what was committed is at the destination: fix that and import again",
					t, cmp.Or(st.LastError, "its mirror topic is not ready")), <-done)
			}
			continue
		}
		break
	}
	if err != nil {
		return nil, err
	}
	if !src.stats.drained {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("import interrupted: %w; run it again to go on where it stopped", ctx.Err())
		}
		return nil, errors.New("import ended before every record was written")
	}
	last := bundles[len(bundles)-1].Manifest()
	st := l.Status()
	res := &ImportResult{Written: st.Records}
	for _, b := range bundles {
		res.Skipped += b.Manifest().Records
	}
	res.Skipped = max(res.Skipped-res.Written, 0)
	positions := make(map[string]int64)
	for _, b := range bundles {
		for _, r := range b.Manifest().Ranges {
			positions[partitionKey(tp{r.Topic, r.Partition})] = r.To
		}
	}
	ranges := receiptRanges(bundles)
	res.Receipt = bundle.Receipt{
		Format: 1, BundleID: last.ID, BundleHash: last.Hash(), Sequence: last.Sequence, Site: last.Site, Link: last.Link,
		Imported: time.Now().UTC(), Ranges: ranges, Records: res.Written, AlreadyImported: res.Written == 0,
	}
	if !found || last.Sequence >= state.Sequence {
		state = ImportState{Sequence: last.Sequence, ID: last.ID, Hash: last.Hash(), At: res.Receipt.Imported, Positions: positions}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tune.adminTimeout())
		defer cancel()
		if err := writeAirGap(wctx, dstOpts, airGapKey(id, "import"), &state); err != nil {
			return res, fmt.Errorf("records written, but recording the import failed (import again to record it): %w", err)
		}
	}
	return res, nil
}

// importBuffer is the producer buffer of an import (of its one slot).
// Batches keep the link's size: a record as large as a batch must still
// fit.
const importBuffer = 4 << 20

// stuckFor is how long an import waits for a topic whose mirror topic is
// not ready (two discovery passes and then some) before it gives up.
var stuckFor = 30 * time.Second

// receiptRanges says, per partition, what the imported bundles covered:
// from the first one's start to the last one's end.
func receiptRanges(bundles []*bundle.Bundle) []bundle.Range {
	idx := make(map[tp]int)
	var out []bundle.Range
	for _, b := range bundles {
		for _, r := range b.Manifest().Ranges {
			k := tp{r.Topic, r.Partition}
			i, ok := idx[k]
			if !ok {
				idx[k] = len(out)
				out = append(out, bundle.Range{Topic: r.Topic, Partition: r.Partition, From: r.From, To: r.To})
				continue
			}
			out[i].To = max(out[i].To, r.To)
		}
	}
	return out
}

// openBundles opens the bundles (checking their signatures) and puts them
// in sequence; they must be the link's and consecutive.
func openBundles(dirs []string, id Identity, o ImportOptions) ([]*bundle.Bundle, error) {
	if len(dirs) == 0 {
		return nil, errors.New("no bundle to import")
	}
	var out []*bundle.Bundle
	for _, d := range dirs {
		b, err := bundle.Open(d, bundle.ReaderOptions{Trusted: o.Trusted, Identities: o.Identities})
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", d, err)
		}
		m := b.Manifest()
		if m.Site != id.Site || m.Link != id.Link {
			return nil, fmt.Errorf("bundle %s carries link %s of site %q, not link %s of site %q: import it with that site's configuration", d, m.Link, m.Site, id.Link, id.Site)
		}
		out = append(out, b)
	}
	slices.SortStableFunc(out, func(a, b *bundle.Bundle) int { return cmp.Compare(a.Manifest().Sequence, b.Manifest().Sequence) })
	for i := 1; i < len(out); i++ {
		a, b := out[i-1].Manifest(), out[i].Manifest()
		switch {
		case a.Sequence == b.Sequence:
			return nil, fmt.Errorf("%w: two bundles carry sequence %d (ids %s and %s): the site exported it twice; import the newer one", ErrOutOfSequence, a.Sequence, a.ID, b.ID)
		case b.Sequence != a.Sequence+1:
			return nil, fmt.Errorf("%w: bundles %d and %d given, bundle %s missing", ErrOutOfSequence, a.Sequence, b.Sequence, missing(a.Sequence+1, b.Sequence-1))
		case b.Previous != a.Hash():
			return nil, fmt.Errorf("%w: bundle %d does not follow bundle %d given (it follows a bundle with hash %s): the site exported %d again after it acknowledged another", ErrOutOfSequence, b.Sequence, a.Sequence, b.Previous, a.Sequence)
		}
	}
	return out, nil
}

// missing names the missing sequence numbers from..to.
func missing(from, to int64) string {
	if from == to {
		return fmt.Sprintf("%d is", from)
	}
	return fmt.Sprintf("%d to %d are", from, to)
}

// verifyBundles checks every bundle's files before anything is written
// (bundle.VerifyFiles: their signatures were checked when they were
// opened), reporting the bytes checked of all to progress.
func verifyBundles(ctx context.Context, bundles []*bundle.Bundle, dirs []string, progress func(done, total int64)) error {
	var before, total int64
	for _, b := range bundles {
		total += b.FileBytes()
	}
	for i, b := range bundles {
		var p func(int64)
		if progress != nil {
			p = func(done int64) { progress(before+done, total) }
		}
		if err := b.VerifyFiles(ctx, p); err != nil {
			return fmt.Errorf("bundle %d (%s): %w; nothing was written", b.Manifest().Sequence, dirs[i], err)
		}
		before += b.FileBytes()
	}
	return nil
}

// followsCheckpoints checks, before anything is written, that every
// partition of the bundles continues what the destination holds: a range
// may start at or before the partition's checkpoint (what it holds is not
// written again), not after it.
func followsCheckpoints(bundles []*bundle.Bundle, cps map[tp]int64, found bool, state ImportState) error {
	at := make(map[tp]int64, len(cps))
	for k, v := range cps {
		at[k] = v
	}
	if found {
		for pk, v := range state.Positions {
			if k, ok := parsePartitionKey(pk); ok {
				if cur, seen := at[k]; !seen || v > cur {
					// The checkpoint lags the last bundle's range end when
					// the range ended in offsets it did not carry.
					at[k] = max(v, cur)
				}
			}
		}
	}
	if first := bundles[0].Manifest(); !found && len(cps) == 0 && first.Sequence > 1 {
		return fmt.Errorf("%w: the destination holds nothing of the link, and bundle %d follows others: bundle %s missing; import from bundle 1",
			ErrOutOfSequence, first.Sequence, missing(1, first.Sequence-1))
	}
	var gaps []string
	for _, b := range bundles {
		m := b.Manifest()
		for _, r := range m.Ranges {
			k := tp{r.Topic, r.Partition}
			if pos, ok := at[k]; ok && r.From > pos {
				gaps = append(gaps, fmt.Sprintf("%s holds %s up to offset %d, bundle %d starts it at %d", "the destination", k, pos, m.Sequence, r.From))
			}
			if r.To > at[k] {
				at[k] = r.To
			}
		}
		if len(gaps) > 0 {
			last := "none"
			if found {
				last = fmt.Sprintf("%d (id %s)", state.Sequence, state.ID)
			}
			return fmt.Errorf("%w: bundle %d does not follow what the destination holds (%s); the last bundle imported is %s: the bundles exported between are missing",
				ErrOutOfSequence, m.Sequence, strings.Join(gaps, "; "), last)
		}
	}
	return nil
}
