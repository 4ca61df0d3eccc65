package testbed

import (
	"context"
	"errors"
	"sync"
)

// Pair is two real Kafka clusters on this machine, the two ends of a link:
// Edge, its source, and Cloud, its destination.
type Pair struct {
	Edge, Cloud *Cluster
}

// StartPair starts two clusters in parallel with opts, named
// opts.Name+"-edge" and opts.Name+"-cloud", and waits until both serve
// metadata. When one fails to start, both are stopped and removed and its
// error returned (the edge's when both fail). The caller must [Pair.Stop]
// the pair.
func StartPair(ctx context.Context, opts Options) (*Pair, error) {
	var (
		cs   [2]*Cluster
		errs [2]error
		wg   sync.WaitGroup
	)
	for i, end := range []string{"edge", "cloud"} {
		o := opts
		o.Name = opts.Name + "-" + end
		wg.Go(func() { cs[i], errs[i] = Start(ctx, o) })
	}
	wg.Wait()
	p := &Pair{Edge: cs[0], Cloud: cs[1]}
	for _, err := range errs {
		if err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	return p, nil
}

// Stop stops both clusters (those that started) in parallel and removes
// their directories.
func (p *Pair) Stop() error {
	var (
		errs [2]error
		wg   sync.WaitGroup
	)
	for i, c := range []*Cluster{p.Edge, p.Cloud} {
		if c == nil {
			continue
		}
		wg.Go(func() {
			c.Stop()
			errs[i] = c.Remove()
		})
	}
	wg.Wait()
	return errors.Join(errs[:]...)
}
