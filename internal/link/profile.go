package link

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgelink/edgelink/internal/config"
)

// tuning is what a network profile sets.
type tuning struct {
	compression   string
	dialTimeout   time.Duration
	requestExtra  time.Duration // franz-go's RequestTimeoutOverhead
	produceWait   time.Duration // ProduceRequestTimeout
	fetchMaxWait  time.Duration
	metadataEvery time.Duration // MetadataMinAge
	batchBytes    int           // ProducerBatchMaxBytes
	// bufferBytes is the most payload the producer holds unacknowledged
	// (MaxBufferedBytes); Produce waits beyond it. On a long, fast link it
	// must exceed what the link carries in a round trip and a commit.
	bufferBytes int
	// txTime is the target time to send one transaction; see txLimit.
	txTime time.Duration
}

// profiles hold each profile's defaults. The fetch wait is short: the
// source holds a fetch of quiet partitions that long, and franz-go sends
// one fetch per broker at a time, so a partition resumed by the scheduler
// waits for it. Timeouts bound how long a black
// hole (a link that answers nothing) goes unnoticed: a request that gets no
// answer fails after its own wait plus requestExtra. Smaller batches on slow
// links keep one partition from holding the link for long.
var profiles = map[config.Profile]tuning{
	config.ProfileLAN: {
		compression: "snappy", dialTimeout: 5 * time.Second, requestExtra: 5 * time.Second, produceWait: 10 * time.Second,
		fetchMaxWait: 50 * time.Millisecond, metadataEvery: 500 * time.Millisecond,
		batchBytes: 1 << 20, bufferBytes: 16 << 20, txTime: time.Second,
	},
	config.ProfileWAN: {
		compression: "zstd", dialTimeout: 10 * time.Second, requestExtra: 10 * time.Second, produceWait: 15 * time.Second,
		fetchMaxWait: 100 * time.Millisecond, metadataEvery: time.Second,
		batchBytes: 1 << 20, bufferBytes: 64 << 20, txTime: time.Second,
	},
	config.ProfileSatellite: {
		compression: "zstd", dialTimeout: 20 * time.Second, requestExtra: 20 * time.Second, produceWait: 30 * time.Second,
		fetchMaxWait: 250 * time.Millisecond, metadataEvery: 2 * time.Second,
		batchBytes: 256 << 10, bufferBytes: 16 << 20, txTime: 2 * time.Second,
	},
}

// tuningFor returns the link's tuning: its profile with its overrides.
func tuningFor(lc *config.Link) tuning {
	t, ok := profiles[lc.Profile]
	if !ok {
		t = profiles[config.ProfileLAN]
	}
	if lc.Compression != "" {
		t.compression = lc.Compression
	}
	o := lc.Tuning
	set(&t.dialTimeout, o.DialTimeout)
	set(&t.requestExtra, o.RequestTimeout)
	set(&t.produceWait, o.ProduceTimeout)
	set(&t.fetchMaxWait, o.FetchMaxWait)
	set(&t.batchBytes, o.BatchBytes)
	set(&t.txTime, o.TransactionTime)
	return t
}

// set overrides *dst with v unless v is zero.
func set[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// adminTimeout bounds one round of metadata and offset requests, so that an
// unreachable cluster ends the session instead of being retried in place.
func (t tuning) adminTimeout() time.Duration { return t.dialTimeout + t.requestExtra }

// clientOpts are the options every client of the link gets.
func (t tuning) clientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequestTimeoutOverhead(t.requestExtra),
		kgo.MetadataMinAge(t.metadataEvery),
	}
}

// producerOpts are the destination producer's options.
func (t tuning) producerOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.ProducerBatchCompression(codec(t.compression)),
		kgo.ProduceRequestTimeout(t.produceWait),
		kgo.ProducerBatchMaxBytes(int32(t.batchBytes)),
		kgo.MaxBufferedBytes(t.bufferBytes),
	}
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "zstd":
		return kgo.ZstdCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "snappy":
		return kgo.SnappyCompression()
	case "gzip":
		return kgo.GzipCompression()
	default:
		return kgo.NoCompression()
	}
}
