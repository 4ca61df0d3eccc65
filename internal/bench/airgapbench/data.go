package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/testbed"
)

// Keys of the records: keyCount distinct ones, all keyLen bytes long.
const (
	keyCount  = 100_000
	keyFormat = "key-%06d"
	keyLen    = 10
	traceID   = "trace-id"
)

// dataset describes the records loaded into a source topic.
type dataset struct {
	topic            string
	records          int
	partitions, size int
	// bytes counts keys plus values, the payload the rates are of;
	// headers the headers' keys and values.
	bytes, headers int64
	// example is the first record, for the report.
	exampleKey, exampleValue, exampleTrace string
	took                                   time.Duration
}

// recordsFor is how many records with values of size bytes make up volume
// bytes of keys and values.
func recordsFor(volume int64, size int) int {
	per := int64(keyLen + size)
	return int((volume + per - 1) / per)
}

// generator makes the records: key i mod keyCount, a value of size bytes
// of hex text (random bytes, hex-encoded: it compresses about 2:1) and a
// trace-id header of 32 random hex digits; the same ones for the same seed.
type generator struct {
	rng  *rand.ChaCha8
	size int
	raw  []byte
}

func newGenerator(seed uint64, size int) *generator {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &generator{rng: rand.NewChaCha8(s), size: size, raw: make([]byte, (size+1)/2)}
}

func (g *generator) record(topic string, i int) *kgo.Record {
	_, _ = g.rng.Read(g.raw)
	value := make([]byte, 2*len(g.raw))
	hex.Encode(value, g.raw)
	var trace [16]byte
	_, _ = g.rng.Read(trace[:])
	return &kgo.Record{
		Topic:   topic,
		Key:     fmt.Appendf(make([]byte, 0, keyLen), keyFormat, i%keyCount),
		Value:   value[:g.size],
		Headers: []kgo.RecordHeader{{Key: traceID, Value: []byte(hex.EncodeToString(trace[:]))}},
	}
}

// load creates topic with the given partitions and writes n records of
// gen to it, keyed (Kafka's default partitioner spreads the keys over the
// partitions), in uncompressed batches.
func load(ctx context.Context, c *testbed.Cluster, topic string, partitions, n int, gen *generator) (*dataset, error) {
	cl, err := c.Client(kgo.ProducerLinger(10*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedBytes(64<<20))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", topic, err)
	}
	d := &dataset{topic: topic, records: n, partitions: partitions, size: gen.size}
	var (
		mu       sync.Mutex
		firstErr error
	)
	began := time.Now()
	for i := range n {
		rec := gen.record(topic, i)
		if i == 0 {
			d.exampleKey, d.exampleValue, d.exampleTrace = string(rec.Key), string(rec.Value), string(rec.Headers[0].Value)
		}
		d.bytes += int64(len(rec.Key) + len(rec.Value))
		for _, h := range rec.Headers {
			d.headers += int64(len(h.Key) + len(h.Value))
		}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				defer mu.Unlock()
				if firstErr == nil {
					firstErr = err
				}
			}
		})
		if i%100_000 == 0 && ctx.Err() != nil {
			break
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	d.took = time.Since(began)
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return nil, fmt.Errorf("load %s: %w", topic, firstErr)
	}
	fmt.Fprintf(os.Stderr, "loaded %d records (%.1f MB of keys and values) into %s in %s\n",
		n, float64(d.bytes)/1e6, topic, d.took.Round(time.Millisecond))
	return d, nil
}
