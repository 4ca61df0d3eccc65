package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// profile is one shape of data: the value size and the compression of the
// producer batches the source is written with.
type profile struct {
	// name is how -profiles selects it and how topics are named after it.
	name string
	// size is the size of every value in bytes.
	size int
	// compression is the codec of the source's producer batches: "none" or "zstd".
	compression string
	// about says what the profile is, for the report.
	about string
}

// profiles are the shapes of data the bench knows, in report order.
var profiles = []profile{
	{name: "1kb", size: 1024, compression: "none", about: "1 KiB values, uncompressed source batches"},
	{name: "100b", size: 100, compression: "none", about: "100-byte values, uncompressed source batches"},
	{name: "zstd", size: 1024, compression: "zstd", about: "1 KiB values, zstd-compressed source batches"},
}

// profileNamed returns the profile called name.
func profileNamed(name string) (profile, error) {
	for _, p := range profiles {
		if p.name == name {
			return p, nil
		}
	}
	names := make([]string, len(profiles))
	for i, p := range profiles {
		names[i] = p.name
	}
	return profile{}, fmt.Errorf("unknown profile %q (want one of %s)", name, strings.Join(names, ", "))
}

// keySize is the size of every record key: the record's index within its
// partition, 8 bytes big-endian. The last key of a partition tells whether a
// copy is complete.
const keySize = 8

// dataset describes one profile's records: n records round-robin over the
// partitions, values of size bytes from a deterministic pool.
type dataset struct {
	profile    profile
	partitions int
	records    int64
}

// perPartition returns how many records each partition holds.
func (d dataset) perPartition() map[int32]int64 {
	out := make(map[int32]int64, d.partitions)
	for p := range d.partitions {
		n := d.records / int64(d.partitions)
		if int64(p) < d.records%int64(d.partitions) {
			n++
		}
		out[int32(p)] = n
	}
	return out
}

// bytes is the payload volume: keys plus values.
func (d dataset) bytes() int64 { return d.records * int64(keySize+d.profile.size) }

// poolBytes is about the size of every profile's value pool: far more than
// any codec's window, so that a batch (every partitions-th value) never
// repeats itself and compresses only as much as the values themselves do.
const poolBytes = 16 << 20

// datasetPool returns the value pool of a profile: an odd number of values,
// so that every partition sees every value.
func datasetPool(p profile) [][]byte { return valuePool(p.size, poolBytes/p.size|1) }

// valuePool returns count distinct values of size bytes: JSON-like telemetry
// text whose blob is random hex, so that zstd halves a 1 KiB value (like
// real sensor data rather than 100:1 like a repeated byte) while lz4 and
// snappy, which have no entropy coder, gain little beyond the JSON. The
// pool is the same in every process (fixed seed).
func valuePool(size, count int) [][]byte {
	rng := rand.New(rand.NewPCG(6, 2026))
	const hexdigits = "0123456789abcdef"
	pool := make([][]byte, count)
	for i := range pool {
		v := fmt.Appendf(make([]byte, 0, size+16), `{"site":"plant-%02d","sensor":"temp-%04d","seq":%d,"v":%.3f,"blob":"`,
			rng.IntN(100), rng.IntN(10000), i, rng.Float64()*100)
		for len(v) < size-2 {
			for bits := rng.Uint64(); bits != 0 && len(v) < size-2; bits >>= 4 {
				v = append(v, hexdigits[bits&15])
			}
		}
		v = append(v, `"}`...)
		pool[i] = v[:size]
	}
	return pool
}

// produceDataset writes the dataset, with values from pool (see
// datasetPool), to topic on the given client (which must use the manual
// partitioner) and waits for every acknowledgement.
func produceDataset(ctx context.Context, cl *kgo.Client, topic string, d dataset, pool [][]byte) error {
	var (
		mu       sync.Mutex
		firstErr error
	)
	next := make([]int64, d.partitions)
	for i := range d.records {
		p := int32(i % int64(d.partitions))
		key := make([]byte, keySize)
		binary.BigEndian.PutUint64(key, uint64(next[p]))
		next[p]++
		cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Key: key, Value: pool[i%int64(len(pool))]}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush %s: %w", topic, err)
	}
	if firstErr != nil {
		return fmt.Errorf("produce to %s: %w", topic, firstErr)
	}
	return nil
}

// load creates topic at the source and writes the dataset into it, with the
// profile's batch compression.
func load(ctx context.Context, seeds []string, topic string, d dataset, progress io.Writer) error {
	comp := kgo.NoCompression()
	if d.profile.compression == "zstd" {
		comp = kgo.ZstdCompression()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(metadataAge),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedBytes(256<<20),
		kgo.ProducerBatchCompression(comp))
	if err != nil {
		return fmt.Errorf("create loader: %w", err)
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, topic, d.partitions); err != nil {
		return err
	}
	began := time.Now()
	if err := produceDataset(ctx, cl, topic, d, datasetPool(d.profile)); err != nil {
		return err
	}
	took := time.Since(began)
	fmt.Fprintf(progress, "loaded %d records (%.0f MB, %s batches) into %s in %s (%.0f MB/s)\n",
		d.records, float64(d.bytes())/1e6, d.profile.compression, topic, took.Round(time.Millisecond), float64(d.bytes())/1e6/took.Seconds())
	return nil
}

func createTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int) error {
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// deleteTopics deletes topics, ignoring those that do not exist.
func deleteTopics(ctx context.Context, cl *kgo.Client, topics ...string) error {
	resps, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !isUnknownTopic(r.Err) {
			return fmt.Errorf("delete topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

func isUnknownTopic(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}
