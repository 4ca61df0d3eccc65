package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

// mm2Groups is the prefix of MirrorMaker 2's groups; they have the same
// offsets as edgelink's run 1.
const mm2Groups = "bench-mm2-"

// mm2Props are the settings the bench adds to the test bed's defaults:
// the checkpoint connector on the bench's groups, syncing their offsets
// into the destination's groups, every 5 s.
func mm2Props(tasks int) map[string]string {
	return map[string]string{
		"groups":                              mm2Groups + ".*",
		"emit.checkpoints.enabled":            "true",
		"emit.checkpoints.interval.seconds":   "5",
		"sync.group.offsets.enabled":          "true",
		"sync.group.offsets.interval.seconds": "5",
		"refresh.groups.interval.seconds":     "5",
		"tasks.max":                           strconv.Itoa(tasks),
	}
}

// mm2Run is MirrorMaker 2's run.
type mm2Run struct {
	set        *groupSet
	commitTook time.Duration
	mirror     string
	// caughtUp, first and settled are from MirrorMaker's start to its
	// mirror holding every committed source record, to the first group
	// offset at the destination, and to the last change of the groups'
	// offsets at the destination; zero when it never happened.
	caughtUp, first, settled time.Duration
	// ran is how long it ran; stoppedBy why it stopped.
	ran       time.Duration
	stoppedBy string
	check     tally
	dups      int
	props     string
	version   string
}

// mm2 commits MirrorMaker 2's groups at the source, runs it until its
// group offsets at the destination settle (or the limit), and checks them.
func (b *bench) mm2(ctx context.Context) (*mm2Run, error) {
	res := &mm2Run{set: newGroupSet(mm2Groups, b.o.seed, 1, b.o.groups, b.data.ends, b.o.endShare)}
	var err error
	if res.commitTook, err = res.set.commit(ctx, b.srcAdm, b.data.topic, b.o.commitWorkers); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "mm2: committed %d groups at the source in %s\n", len(res.set.ids), res.commitTook.Round(time.Millisecond))
	began := time.Now()
	m, err := testbed.StartMirrorMaker(ctx, testbed.MirrorMakerOptions{
		Name: "mm2-groups", Source: b.pair.Edge.Bootstrap(), Target: b.pair.Cloud.Bootstrap(),
		SourceAlias: "edge", TargetAlias: "cloud", Topics: b.data.topic, TasksMax: b.o.mm2Tasks,
		Props: mm2Props(b.o.mm2Tasks), FullJIT: true, Dir: filepath.Join(b.dir, "mm2"), Progress: os.Stderr,
	})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			m.Stop(30 * time.Second)
		}
	}()
	res.version = m.Version
	res.props = strings.NewReplacer(
		strings.Join(b.pair.Edge.Bootstrap(), ","), "<edge bootstrap>",
		strings.Join(b.pair.Cloud.Bootstrap(), ","), "<cloud bootstrap>",
	).Replace(m.Properties())
	res.mirror = m.RemoteTopic(b.data.topic)
	if err := b.watchMM2(ctx, m, began, res); err != nil {
		return nil, err
	}
	m.Stop(30 * time.Second)
	stopped = true

	maps, err := b.mirrorMaps(ctx, res.mirror, func(r *kgo.Record) (int64, error) {
		v := string(r.Value)
		at, ok := b.data.offsetOf[v]
		if !ok || !strings.HasPrefix(v, fmt.Sprintf("p%02d-", r.Partition)) {
			return 0, fmt.Errorf("record %s[%d]@%d, %q, is no committed record of partition %d of the source", res.mirror, r.Partition, r.Offset, v, r.Partition)
		}
		return at, nil
	}, &res.dups)
	if err != nil {
		return nil, err
	}
	got, err := res.set.fetch(ctx, b.dstAdm, res.mirror)
	if err != nil {
		return nil, err
	}
	res.check = res.set.check(maps, got)
	t := res.check
	fmt.Fprintf(os.Stderr, "mm2: %d of %d groups translated (%d complete), %d exact; partitions %d exact, %d ahead, %d behind, median off %.0f, max %d records\n",
		t.translated(), t.groups, t.complete, t.exact, t.exactParts, t.ahead, t.behind, t.medianOff(), t.maxOff())
	for _, adm := range []*kadm.Client{b.srcAdm, b.dstAdm} {
		if err := res.set.remove(ctx, adm); err != nil {
			return nil, err
		}
	}
	if !b.o.keep && b.o.dir == "" {
		if err := m.Remove(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// watchMM2 reads MirrorMaker 2's mirror and its groups' offsets at the
// destination every mm2Poll, until the mirror caught up and the offsets
// stayed the same for mm2Settle, or mm2Max.
func (b *bench) watchMM2(ctx context.Context, m *testbed.MirrorMaker, began time.Time, res *mm2Run) error {
	type signature struct{ present, sum int64 }
	var (
		last       signature
		lastChange time.Time
		caughtUp   time.Time
	)
	tick := time.NewTicker(b.o.mm2Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if err := m.Exited(); err != nil {
			return err
		}
		now := time.Now()
		if caughtUp.IsZero() {
			if ends, err := endOffsets(ctx, b.dstCl, res.mirror, b.data.partitions); err == nil {
				var n int64
				for _, e := range ends {
					n += e
				}
				if n >= int64(b.data.committed) {
					caughtUp = now
					res.caughtUp = now.Sub(began)
					fmt.Fprintf(os.Stderr, "mm2: mirror caught up after %.1f s\n", res.caughtUp.Seconds())
				}
			}
		}
		got, err := res.set.fetch(ctx, b.dstAdm, res.mirror)
		if err != nil {
			return err
		}
		var sig signature
		groups := 0
		for _, g := range got {
			if len(g) > 0 {
				groups++
			}
			for _, at := range g {
				sig.present++
				sig.sum += at
			}
		}
		if sig != last {
			last, lastChange = sig, now
			res.settled = now.Sub(began)
			if res.first == 0 && sig.present > 0 {
				res.first = now.Sub(began)
			}
			fmt.Fprintf(os.Stderr, "mm2: %.0f s: %d groups, %d group partitions at the destination\n", now.Sub(began).Seconds(), groups, sig.present)
		}
		res.ran = now.Sub(began)
		switch {
		case res.ran >= b.o.mm2Max:
			res.stoppedBy = fmt.Sprintf("the limit of %s", b.o.mm2Max)
			return nil
		case !caughtUp.IsZero() && sig.present > 0 && now.Sub(lastChange) >= b.o.mm2Settle && now.Sub(caughtUp) >= b.o.mm2Settle:
			res.stoppedBy = fmt.Sprintf("no change for %s", b.o.mm2Settle)
			return nil
		}
	}
}
