package link_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/provenance"
	"github.com/edgelink/edgelink/internal/testbed"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func linkConfig(t *testing.T, src, dst []string, extra string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`site: plant-1
clusters:
  edge: {bootstrap: [%q]}
  cloud: {bootstrap: [%q]}
links:
  - name: up
    from: edge
    to: cloud
    topics:
      include: ['sensors\..*', 'alerts']
%s`, strings.Join(src, ","), strings.Join(dst, ","), extra)
	cfg, err := config.Parse("test.yaml", []byte(y))
	require.NoError(t, err)
	return cfg
}

var fastOpts = link.Options{CommitInterval: 30 * time.Millisecond, DiscoveryInterval: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}

// runLink runs a link in the background; stop cancels it and returns Run's error.
func runLink(t *testing.T, cfg *config.Config, opts link.Options) (l *link.Link, stop func() error) {
	t.Helper()
	l = link.New(cfg, cfg.Links[0], opts, testLogger(t))
	return l, start(t, l)
}

// start runs l until the returned stop is called (or the test ends).
func start(t *testing.T, l *link.Link) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg  sync.WaitGroup
		err error
	)
	wg.Go(func() { err = l.Run(ctx) })
	var once sync.Once
	stop = func() error {
		once.Do(func() { cancel(); wg.Wait() })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

type srcRec struct {
	topic     string
	partition int32
	offset    int64
	key       []byte
	value     []byte
	headers   []kgo.RecordHeader
	ts        int64
}

// produce writes n records per partition of topic and returns them as committed.
func produce(t *testing.T, seeds []string, topic string, partitions int32, n int, tag string) []srcRec {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	var out []srcRec
	var recs []*kgo.Record
	for p := range partitions {
		for i := range n {
			r := &kgo.Record{Topic: topic, Partition: p, Timestamp: time.UnixMilli(1700000000000 + int64(i))}
			switch i % 5 {
			case 0:
				r.Key = nil // null key
				r.Value = []byte(fmt.Sprintf("%s-%d-%d", tag, p, i))
			case 1:
				r.Key = []byte(fmt.Sprintf("k%d", i))
				r.Value = nil // tombstone
			case 2:
				r.Key = []byte{}
				r.Value = []byte{}
			default:
				r.Key = []byte(fmt.Sprintf("k%d", i))
				r.Value = []byte(strings.Repeat("v", i%300))
				r.Headers = []kgo.RecordHeader{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: nil}}
			}
			recs = append(recs, r)
		}
	}
	res := cl.ProduceSync(t.Context(), recs...)
	require.NoError(t, res.FirstErr())
	for _, r := range res {
		rec := r.Record
		out = append(out, srcRec{rec.Topic, rec.Partition, rec.Offset, rec.Key, rec.Value, rec.Headers, rec.Timestamp.UnixMilli()})
	}
	return out
}

// abortedTxn writes records in a transaction that is aborted.
func abortedTxn(t *testing.T, seeds []string, topic string, partition int32, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.TransactionalID("aborter-"+topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer cl.Close()
	ctx := t.Context()
	require.NoError(t, cl.BeginTransaction())
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: partition, Value: []byte(fmt.Sprintf("ABORTED-%d", i))}, nil)
	}
	require.NoError(t, cl.Flush(ctx))
	require.NoError(t, cl.EndTransaction(ctx, kgo.TryAbort))
}

// readAll reads every committed record of topic from seeds until it has want records.
func readAll(t *testing.T, seeds []string, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		out = append(out, fs.Records()...)
	}
	// Anything beyond want would be a duplicate: give it a moment to show.
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	out = append(out, cl.PollFetches(ctx).Records()...)
	cancel()
	return out
}

// requireMirrored checks that dst holds exactly the source records, once, in
// order per partition, intact, with provenance.
func requireMirrored(t *testing.T, src []srcRec, dst []*kgo.Record, dstTopic string) {
	t.Helper()
	require.Len(t, dst, len(src), "destination %s record count", dstTopic)
	byPart := map[int32][]*kgo.Record{}
	for _, r := range dst {
		require.Equal(t, dstTopic, r.Topic)
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	srcByPart := map[int32][]srcRec{}
	for _, s := range src {
		srcByPart[s.partition] = append(srcByPart[s.partition], s)
	}
	for p, ss := range srcByPart {
		sort.Slice(ss, func(i, j int) bool { return ss[i].offset < ss[j].offset })
		ds := byPart[p]
		require.Len(t, ds, len(ss), "partition %d", p)
		for i, s := range ss {
			d := ds[i]
			o, ok, err := provenance.Find(d)
			require.NoError(t, err)
			require.True(t, ok, "provenance header")
			require.Equal(t, s.offset, o.Offset, "partition %d position %d", p, i)
			require.Equal(t, p, o.Partition)
			require.Equal(t, "plant-1", o.Site)
			require.Equal(t, s.key == nil, d.Key == nil, "key nullness at %d", s.offset)
			require.Equal(t, s.value == nil, d.Value == nil, "value nullness at %d", s.offset)
			require.Equal(t, string(s.key), string(d.Key))
			require.Equal(t, string(s.value), string(d.Value))
			require.Equal(t, s.ts, d.Timestamp.UnixMilli())
			require.Equal(t, len(s.headers)+1, len(d.Headers))
			for j, h := range s.headers {
				require.Equal(t, h.Key, d.Headers[j].Key)
				require.Equal(t, string(h.Value), string(d.Headers[j].Value))
			}
		}
	}
}

func TestMirrorExactlyOnceFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.temp"), kfake.SeedTopics(1, "alerts", "other"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	cfg := linkConfig(t, seeds, dseeds, `    rename: "{site}.{topic}"`)

	temp := produce(t, seeds, "sensors.temp", 3, 200, "a")
	abortedTxn(t, seeds, "sensors.temp", 1, 30)
	temp = append(temp, produce(t, seeds, "sensors.temp", 3, 50, "b")...)
	alerts := produce(t, seeds, "alerts", 1, 40, "c")

	l, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, temp, readAll(t, dseeds, "plant-1.sensors.temp", len(temp)), "plant-1.sensors.temp")
	requireMirrored(t, alerts, readAll(t, dseeds, "plant-1.alerts", len(alerts)), "plant-1.alerts")
	require.NoError(t, stop())
	st := l.Status()
	require.Equal(t, link.StateStopped, st.State)
	require.EqualValues(t, len(temp)+len(alerts), st.Records)

	// Restart: more records, nothing written twice.
	more := produce(t, seeds, "sensors.temp", 3, 20, "d")
	temp = append(temp, more...)
	_, stop = runLink(t, cfg, fastOpts)
	requireMirrored(t, temp, readAll(t, dseeds, "plant-1.sensors.temp", len(temp)), "plant-1.sensors.temp")

	// A topic created while running, and partitions added while running.
	adm := kadm.NewClient(mustClient(t, seeds))
	_, err := adm.CreateTopic(t.Context(), 2, 1, nil, "sensors.new")
	require.NoError(t, err)
	fresh := produce(t, seeds, "sensors.new", 2, 25, "e")
	requireMirrored(t, fresh, readAll(t, dseeds, "plant-1.sensors.new", len(fresh)), "plant-1.sensors.new")
	_, err = adm.UpdatePartitions(t.Context(), 5, "sensors.temp")
	require.NoError(t, err)
	testbed.Eventually(t, 10*time.Second, func() error {
		td, err := kadm.NewClient(mustClient(t, dseeds)).ListTopics(t.Context(), "plant-1.sensors.temp")
		if err != nil {
			return err
		}
		if n := len(td["plant-1.sensors.temp"].Partitions); n != 5 {
			return fmt.Errorf("mirror has %d partitions", n)
		}
		return nil
	})
	grown := produce(t, seeds, "sensors.temp", 5, 10, "f")
	temp = append(temp, grown...)
	requireMirrored(t, temp, readAll(t, dseeds, "plant-1.sensors.temp", len(temp)), "plant-1.sensors.temp")
	require.NoError(t, stop())
}

func TestSecondInstanceFencesFirstFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	first, stopFirst := runLink(t, cfg, fastOpts)
	recs := produce(t, src.ListenAddrs(), "alerts", 2, 50, "a")
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")

	// Once the second instance runs it has fenced the first, which notices
	// on its next write. (Records produced before could be copied by the
	// first before it was fenced, leaving it nothing to write.)
	second, stopSecond := runLink(t, cfg, fastOpts)
	waitState(t, second, link.StateLive)
	more := produce(t, src.ListenAddrs(), "alerts", 2, 50, "b")
	recs = append(recs, more...)
	waitState(t, first, link.StateFailed)
	require.ErrorIs(t, stopFirst(), link.ErrFenced)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stopSecond())
}

func mustClient(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func TestMirrorAtLeastOnceFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    delivery: at-least-once")
	require.Equal(t, config.DeliveryAtLeastOnce, cfg.Links[0].Delivery)
	recs := produce(t, src.ListenAddrs(), "alerts", 2, 100, "a")
	abortedTxn(t, src.ListenAddrs(), "alerts", 0, 10)
	_, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stop())

	// A clean stop checkpoints everything: a restart copies only new records.
	recs = append(recs, produce(t, src.ListenAddrs(), "alerts", 2, 10, "b")...)
	_, stop = runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	require.NoError(t, stop())
}

func TestTranslateEveryOffsetFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	cfg := linkConfig(t, seeds, dseeds, "")
	_, stop := runLink(t, cfg, fastOpts)
	var recs []srcRec
	for round := range 4 {
		recs = append(recs, produce(t, seeds, "alerts", 1, 15, fmt.Sprint(round))...)
		if round == 1 {
			abortedTxn(t, seeds, "alerts", 0, 7) // aborted records and their marker
		}
		requireMirrored(t, recs, readAll(t, dseeds, "alerts", len(recs)), "alerts")
	}
	mirrored := readAll(t, dseeds, "alerts", len(recs))
	require.NoError(t, stop())
	require.GreaterOrEqual(t, mirrored[len(mirrored)-1].Offset-int64(len(mirrored)-1), int64(3), "destination transaction markers shift offsets")

	opts := []kgo.Opt{kgo.SeedBrokers(dseeds...)}
	last := recs[len(recs)-1].offset
	for s := int64(0); s <= last+1; s++ {
		tr, err := link.Translate(t.Context(), opts, "alerts", 0, s)
		require.NoError(t, err)
		var want *kgo.Record
		for _, d := range mirrored {
			if o, _, _ := provenance.Find(d); o.Offset >= s {
				want = d
				break
			}
		}
		if want == nil {
			require.True(t, tr.Pending, "source offset %d", s)
			continue
		}
		o, _, _ := provenance.Find(want)
		require.False(t, tr.Pending, "source offset %d", s)
		require.Equal(t, want.Offset, tr.Destination, "source offset %d", s)
		require.Equal(t, o.Offset == s, tr.Exact, "source offset %d", s)
	}
}

func TestRefusedRecordPolicyFake(t *testing.T) {
	for _, policy := range []config.OnError{config.OnErrorStop, config.OnErrorSkip} {
		t.Run(string(policy), func(t *testing.T) {
			src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
			dst := testbed.StartFake(t)
			cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "    on_error: "+string(policy))
			before := produce(t, src.ListenAddrs(), "alerts", 1, 10, "a")
			// A 2 MB record: more than the destination producer sends in one batch.
			big, err := kgo.NewClient(kgo.SeedBrokers(src.ListenAddrs()...), kgo.ProducerBatchMaxBytes(4<<20))
			require.NoError(t, err)
			res := big.ProduceSync(t.Context(), &kgo.Record{Topic: "alerts", Value: make([]byte, 2<<20)})
			big.Close()
			require.NoError(t, res.FirstErr())
			bigOffset := res[0].Record.Offset
			after := produce(t, src.ListenAddrs(), "alerts", 1, 10, "b")

			l, stop := runLink(t, cfg, fastOpts)
			if policy == config.OnErrorStop {
				err := stopWhenFailed(t, l, stop)
				require.ErrorIs(t, err, link.ErrRefused)
				require.ErrorContains(t, err, fmt.Sprintf("alerts[0] offset %d", bigOffset))
				require.Contains(t, l.Status().LastError, "on_error: skip-and-record")
				// Nothing after the refused record was replicated: order is kept.
				require.LessOrEqual(t, len(readAll(t, dst.ListenAddrs(), "alerts", 0)), len(before))
				return
			}
			requireMirrored(t, append(before, after...), readAll(t, dst.ListenAddrs(), "alerts", len(before)+len(after)), "alerts")
			skipped := readAll(t, dst.ListenAddrs(), link.SkippedTopic, 1)
			require.Len(t, skipped, 1)
			require.Contains(t, string(skipped[0].Value), fmt.Sprintf(`"offset":%d`, bigOffset))
			require.Contains(t, string(skipped[0].Value), `"value_bytes":2097152`)
			require.EqualValues(t, 1, l.Status().SkippedRecords)
			require.NoError(t, stop())
		})
	}
}

// stopWhenFailed waits until l stopped for good, and returns what its Run
// returned.
func stopWhenFailed(t *testing.T, l *link.Link, stop func() error) error {
	t.Helper()
	testbed.Eventually(t, 20*time.Second, func() error {
		if s := l.Status(); s.State != link.StateFailed {
			return fmt.Errorf("state %s", s.State)
		}
		return nil
	})
	return stop()
}

func TestIllegalMirrorNameIsReportedFake(t *testing.T) {
	long := "sensors." + strings.Repeat("x", 237) // 245 characters: legal at the source
	src := testbed.StartFake(t, kfake.SeedTopics(1, long, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    rename: "{site}.{topic}"`)
	recs := produce(t, src.ListenAddrs(), "alerts", 1, 5, "a")
	l, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "plant-1.alerts", len(recs)), "plant-1.alerts")
	require.Contains(t, l.Status().LastError, "is 253 characters long, Kafka allows 249")
	require.Contains(t, l.Status().LastError, "check the link's rename")
	require.NoError(t, stop())
}

// TestAuthorizationFailureIsRetriedFake: the destination refuses the link's
// transactional id for a while; the link shows the error, keeps retrying,
// and heals without a restart once access is granted.
func TestAuthorizationFailureIsRetriedFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	dst := testbed.StartFake(t)
	var denied atomic.Bool
	denied.Store(true)
	dst.ControlKey(int16(kmsg.InitProducerID), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		dst.KeepControl()
		if !denied.Load() {
			return nil, nil, false
		}
		resp := kreq.(*kmsg.InitProducerIDRequest).ResponseKind().(*kmsg.InitProducerIDResponse)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil, true
	})
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	recs := produce(t, src.ListenAddrs(), "alerts", 1, 20, "a")
	l, stop := runLink(t, cfg, fastOpts)
	testbed.Eventually(t, 10*time.Second, func() error {
		s := l.Status()
		if s.State != link.StateDisconnected || !strings.Contains(s.LastError, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED") {
			return fmt.Errorf("state %s, last error %q", s.State, s.LastError)
		}
		return nil
	})
	denied.Store(false)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	testbed.Eventually(t, 5*time.Second, func() error { return isLive(l) })
	require.NoError(t, stop())
}

// isLive reports whether l is live with no backlog.
func isLive(l *link.Link) error {
	if s := l.Status(); s.State != link.StateLive || s.BacklogRecords != 0 {
		return fmt.Errorf("state %s, backlog %d", s.State, s.BacklogRecords)
	}
	return nil
}

// TestDeletedMirrorTopicIsRecreatedFake: a mirror topic deleted at the
// destination is recreated; replication continues from the checkpoint.
func TestDeletedMirrorTopicIsRecreatedFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
	dst := testbed.StartFake(t)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	first := produce(t, src.ListenAddrs(), "alerts", 1, 20, "a")
	l, stop := runLink(t, cfg, fastOpts)
	requireMirrored(t, first, readAll(t, dst.ListenAddrs(), "alerts", len(first)), "alerts")
	require.NoError(t, dst.DeleteTopic("alerts"))
	second := produce(t, src.ListenAddrs(), "alerts", 1, 20, "b")
	requireMirrored(t, second, readAll(t, dst.ListenAddrs(), "alerts", len(second)), "alerts")
	testbed.Eventually(t, 5*time.Second, func() error { return isLive(l) })
	require.NoError(t, stop())
}

// TestMirrorTopicConfigsFollowSourceFake: explicitly set source topic configs
// are copied at creation (less the excluded ones) and changes follow.
func TestMirrorTopicConfigsFollowSourceFake(t *testing.T) {
	src := testbed.StartFake(t)
	dst := testbed.StartFake(t)
	sadm := kadm.NewClient(mustClient(t, src.ListenAddrs()))
	dadm := kadm.NewClient(mustClient(t, dst.ListenAddrs()))
	resp, err := sadm.CreateTopic(t.Context(), 2, 1, map[string]*string{
		"retention.ms":        kadm.StringPtr("3600000"),
		"cleanup.policy":      kadm.StringPtr("compact"),
		"min.insync.replicas": kadm.StringPtr("1"),
	}, "alerts")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	_, stop := runLink(t, cfg, fastOpts)

	mirrorConfig := func(key string) (string, bool) {
		rcs, err := dadm.DescribeTopicConfigs(t.Context(), "alerts")
		if err != nil || len(rcs) != 1 || rcs[0].Err != nil {
			return "", false
		}
		for _, c := range rcs[0].Configs {
			if c.Key == key && c.Value != nil && c.Source == kmsg.ConfigSourceDynamicTopicConfig {
				return *c.Value, true
			}
		}
		return "", false
	}
	testbed.Eventually(t, 10*time.Second, func() error {
		if v, _ := mirrorConfig("retention.ms"); v != "3600000" {
			return fmt.Errorf("mirror retention.ms %q", v)
		}
		if v, _ := mirrorConfig("cleanup.policy"); v != "compact" {
			return fmt.Errorf("mirror cleanup.policy %q", v)
		}
		return nil
	})
	_, set := mirrorConfig("min.insync.replicas")
	require.False(t, set, "min.insync.replicas describes the source cluster and is not copied")

	_, err = sadm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("7200000")}}, "alerts")
	require.NoError(t, err)
	testbed.Eventually(t, 10*time.Second, func() error {
		if v, _ := mirrorConfig("retention.ms"); v != "7200000" {
			return fmt.Errorf("mirror retention.ms %q", v)
		}
		return nil
	})
	require.NoError(t, stop())
}

// TestBacklogAndStatesFake: a link with a backlog is catching-up and says how
// much is left; once everything is replicated it is live with no backlog.
func TestBacklogAndStatesFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(2, "alerts"))
	dst := testbed.StartFake(t)
	var slow atomic.Bool
	slow.Store(true)
	dst.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		dst.KeepControl()
		if slow.Load() {
			time.Sleep(300 * time.Millisecond) // a slow destination
		}
		return nil, nil, false
	})
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), "")
	recs := produce(t, src.ListenAddrs(), "alerts", 2, 400, "a")
	l, stop := runLink(t, cfg, link.Options{CommitInterval: 10 * time.Millisecond, MaxTransactionBytes: 4 << 10, DiscoveryInterval: time.Second})
	testbed.Eventually(t, 10*time.Second, func() error {
		s := l.Status()
		if s.State != link.StateCatchingUp || s.BacklogRecords <= 0 || s.BacklogAt.IsZero() {
			return fmt.Errorf("state %s, backlog %d", s.State, s.BacklogRecords)
		}
		return nil
	})
	slow.Store(false)
	requireMirrored(t, recs, readAll(t, dst.ListenAddrs(), "alerts", len(recs)), "alerts")
	testbed.Eventually(t, 10*time.Second, func() error { return isLive(l) })
	s := l.Status()
	require.EqualValues(t, len(recs), s.Records)
	require.Positive(t, s.WireBytes)
	require.Zero(t, s.BacklogBytes)
	require.False(t, s.StateSince.IsZero())
	require.NoError(t, stop())
}

// TestCompressionFollowsProfileFake: mirror batches use the profile's codec,
// or the link's explicit compression.
func TestCompressionFollowsProfileFake(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  uint8 // kgo RecordAttrs.CompressionType: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
	}{
		{"", 2},
		{"    compression: lz4", 3},
		{"    profile: satellite", 4},
		{"    profile: wan\n    compression: gzip", 1},
		{"    compression: none", 0},
	} {
		t.Run(strings.ReplaceAll(strings.TrimSpace(tc.extra), "\n", ","), func(t *testing.T) {
			src := testbed.StartFake(t, kfake.SeedTopics(1, "alerts"))
			dst := testbed.StartFake(t)
			cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), tc.extra)
			cl := mustClient(t, src.ListenAddrs())
			var recs []*kgo.Record
			for i := range 200 {
				recs = append(recs, &kgo.Record{Topic: "alerts", Value: []byte(strings.Repeat(fmt.Sprintf("reading %d ", i%7), 20))})
			}
			require.NoError(t, cl.ProduceSync(t.Context(), recs...).FirstErr())
			_, stop := runLink(t, cfg, fastOpts)
			got := readAll(t, dst.ListenAddrs(), "alerts", len(recs))
			require.Len(t, got, len(recs))
			require.Equal(t, tc.want, got[0].Attrs.CompressionType())
			require.NoError(t, stop())
		})
	}
}
