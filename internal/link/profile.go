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
}

// profiles hold each profile's defaults. Timeouts bound how long a black
// hole (a link that answers nothing) goes unnoticed: a request that gets no
// answer fails after its own wait plus requestExtra.
var profiles = map[config.Profile]tuning{
	config.ProfileLAN:       {"lz4", 5 * time.Second, 5 * time.Second, 10 * time.Second, 500 * time.Millisecond, 500 * time.Millisecond},
	config.ProfileWAN:       {"zstd", 10 * time.Second, 10 * time.Second, 15 * time.Second, 500 * time.Millisecond, time.Second},
	config.ProfileSatellite: {"zstd", 20 * time.Second, 20 * time.Second, 30 * time.Second, time.Second, 2 * time.Second},
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
	return t
}

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
