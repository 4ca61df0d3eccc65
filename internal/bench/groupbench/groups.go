package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"golang.org/x/sync/errgroup"
)

// groupSet is the consumer groups of one run: ids prefix00000,
// prefix00001, … and their committed source offsets, drawn from set (the
// same set gives the same offsets whatever the prefix).
type groupSet struct {
	prefix string
	set    uint64
	ids    []string
	// offsets[i][p] is group i's committed offset of partition p.
	offsets [][]int64
	// end[i] tells whether group i is committed at the end of every
	// partition; atEnd counts those groups.
	end   []bool
	atEnd int
}

// newGroupSet draws n groups' offsets: with probability endShare a group
// is caught up (every partition at its end), else each partition's offset
// is uniform in [0, end], gaps (aborted records, markers) included.
func newGroupSet(prefix string, seed, set uint64, n int, ends []int64, endShare float64) *groupSet {
	gs := &groupSet{prefix: prefix, set: set, ids: make([]string, n), offsets: make([][]int64, n), end: make([]bool, n)}
	for i := range n {
		gs.ids[i] = fmt.Sprintf("%s%05d", prefix, i)
		rng := rand.New(rand.NewPCG(seed, set<<32|uint64(i)))
		offs := make([]int64, len(ends))
		atEnd := rng.Float64() < endShare
		for p, e := range ends {
			if atEnd {
				offs[p] = e
			} else {
				offs[p] = rng.Int64N(e + 1)
			}
		}
		if atEnd {
			gs.atEnd++
			gs.end[i] = true
		}
		gs.offsets[i] = offs
	}
	return gs
}

// commit commits every group's offsets of topic, workers groups at once,
// and returns how long it took.
func (gs *groupSet) commit(ctx context.Context, adm *kadm.Client, topic string, workers int) (time.Duration, error) {
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, id := range gs.ids {
		g.Go(func() error {
			set := make(kadm.Offsets)
			for p, at := range gs.offsets[i] {
				set.Add(kadm.Offset{Topic: topic, Partition: int32(p), At: at, LeaderEpoch: -1})
			}
			resp, err := adm.CommitOffsets(gctx, id, set)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return fmt.Errorf("commit offsets of group %s: %w", id, err)
			}
			return nil
		})
	}
	err := g.Wait()
	return time.Since(began), err
}

// fetch returns every group's committed offsets of topic at the cluster
// of adm, by partition; a group with none has an empty map.
func (gs *groupSet) fetch(ctx context.Context, adm *kadm.Client, topic string) ([]map[int32]int64, error) {
	out := make([]map[int32]int64, len(gs.ids))
	const chunk = 2000 // groups per request
	for lo := 0; lo < len(gs.ids); lo += chunk {
		ids := gs.ids[lo:min(lo+chunk, len(gs.ids))]
		fetched := adm.FetchManyOffsets(ctx, ids...)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for j, id := range ids {
			got := make(map[int32]int64)
			out[lo+j] = got
			r, ok := fetched[id]
			if !ok {
				return nil, fmt.Errorf("fetch offsets of group %s: no answer", id)
			}
			if r.Err != nil {
				if errors.Is(r.Err, kerr.GroupIDNotFound) {
					continue
				}
				return nil, fmt.Errorf("fetch offsets of group %s: %w", id, r.Err)
			}
			r.Fetched.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic && o.Err == nil && o.At >= 0 {
					got[o.Partition] = o.At
				}
			})
		}
	}
	return out, nil
}

// remove deletes the groups at the cluster of adm (those that exist).
func (gs *groupSet) remove(ctx context.Context, adm *kadm.Client) error {
	const chunk = 2000
	for lo := 0; lo < len(gs.ids); lo += chunk {
		resp, err := adm.DeleteGroups(ctx, gs.ids[lo:min(lo+chunk, len(gs.ids))]...)
		if err != nil {
			return fmt.Errorf("delete groups %s…: %w", gs.prefix, err)
		}
		for id, r := range resp {
			if r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
				return fmt.Errorf("delete group %s: %w", id, r.Err)
			}
		}
	}
	return nil
}

// check tallies the groups' offsets at the destination, got, against the
// exact ones of the mirror, maps.
func (gs *groupSet) check(maps []partitionMap, got []map[int32]int64) tally {
	var t tally
	for i := range gs.ids {
		exact := t.exact
		t.addGroup(maps, gs.offsets[i], got[i])
		if gs.end[i] && t.exact > exact {
			t.exactAtEnd++
		}
	}
	return t
}
