package testbed_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

// TestRealKafkaMirrorMaker proves the test bed runs Apache Kafka's
// MirrorMaker 2 in dedicated mode between two real clusters: 1,000 records
// arrive under the same topic name (identity replication policy), in order
// per partition, with keys, values and headers intact, and the JVM's pid
// exposes its CPU time and peak memory.
func TestRealKafkaMirrorMaker(t *testing.T) {
	cs := testbed.StartKafkaClusters(t, testbed.Options{Name: "mm2-src"}, testbed.Options{Name: "mm2-dst"})
	src, dst := cs[0], cs[1]
	ctx := t.Context()
	admin, err := src.Client()
	require.NoError(t, err)
	defer admin.Close()
	const topic, partitions, n = "orders", 3, 1000
	createTopic(ctx, t, admin, topic, partitions, 1)

	prod, err := src.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer prod.Close()
	for i := range n {
		prod.Produce(ctx, &kgo.Record{
			Topic: topic, Partition: int32(i % partitions),
			Key:     fmt.Appendf(nil, "k%d", i),
			Value:   fmt.Appendf(nil, "v%d-%s", i, strings.Repeat("x", i%50)),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(strconv.Itoa(i))}},
		}, nil)
	}
	require.NoError(t, prod.Flush(ctx))

	m := testbed.RunMirrorMaker(t, testbed.MirrorMakerOptions{
		Name: "mm2", Source: src.Bootstrap(), Target: dst.Bootstrap(),
		SourceAlias: "edge", TargetAlias: "cloud",
		Topics: topic, TasksMax: partitions,
		Props: map[string]string{"replication.policy.class": "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"},
	})
	require.Equal(t, topic, m.RemoteTopic(topic))
	props, err := os.ReadFile(filepath.Join(m.Dir, "mm2.properties"))
	require.NoError(t, err)
	require.Contains(t, string(props), "edge->cloud.enabled = true")
	require.Contains(t, string(props), "tasks.max = 3")

	got := consumeAll(ctx, t, dst.Bootstrap(), topic, n)
	require.Len(t, got, n, "MirrorMaker must copy every record once")
	next := map[int32]int{}
	for _, r := range got {
		i, err := strconv.Atoi(strings.TrimPrefix(string(r.Key), "k"))
		require.NoError(t, err)
		require.Equal(t, int(r.Partition), i%partitions, "record %d in partition %d", i, r.Partition)
		require.GreaterOrEqual(t, i, next[r.Partition], "order within partition %d", r.Partition)
		next[r.Partition] = i + 1
		require.Equal(t, fmt.Sprintf("v%d-%s", i, strings.Repeat("x", i%50)), string(r.Value))
		var h string
		for _, hd := range r.Headers {
			if hd.Key == "h" {
				h = string(hd.Value)
			}
		}
		require.Equal(t, strconv.Itoa(i), h, "header of record %d", i)
	}

	pid := m.PID()
	require.Positive(t, pid)
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	require.NoError(t, err)
	require.Contains(t, string(stat), "VmHWM:")
	require.NoError(t, m.Exited())
	m.Stop(15 * time.Second)
	require.Zero(t, m.PID(), "Stop ends the JVM")
	require.Error(t, m.Exited())
}
