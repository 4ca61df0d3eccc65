package bundle_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/bundle"
)

var benchBytes = flag.Int64("bundle-bytes", 64<<20, "size of the bundle of BenchmarkWriteRead, in bytes of 1 KiB records")

// BenchmarkWriteRead writes a bundle of 1 KiB records (hex text, which
// compresses about 2:1) over 11 partitions, verifies it, then reads it, and
// reports the throughput of each step in MB of records per second, and the
// process's peak RSS. For a 1 GB bundle:
//
//	go test -run '^$' -bench WriteRead -benchtime 1x ./internal/bundle -args -bundle-bytes 1000000000
func BenchmarkWriteRead(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		name := "plain"
		if encrypted {
			name = "encrypted"
		}
		b.Run(name, func(b *testing.B) { benchWriteRead(b, encrypted) })
	}
}

func benchWriteRead(b *testing.B, encrypted bool) {
	signer, ring := keys(b, "site")
	id := identity(b)
	o := bundle.WriterOptions{Signer: signer}
	ro := bundle.ReaderOptions{Trusted: ring}
	if encrypted {
		o.Recipients = []age.Recipient{id.Recipient()}
		ro.Identities = []age.Identity{id}
	}
	m := manifest(1 << 50)
	// 4 MiB of distinct values, more than the compressor's window.
	rng := mathrand.NewChaCha8([32]byte{1})
	pool := make([][]byte, 4096)
	for i := range pool {
		raw := make([]byte, 512)
		_, _ = rng.Read(raw)
		pool[i] = []byte(hex.EncodeToString(raw))
	}
	headers := []bundle.Header{{Key: "trace-id", Value: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}}

	var write, verify, read time.Duration
	var records int64
	ops := 0
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), strconv.Itoa(ops))
		ops++

		start := time.Now()
		w, err := bundle.Create(dir, m, o)
		require.NoError(b, err)
		offsets := make([]int64, len(m.Ranges))
		rec := bundle.Record{Headers: headers}
		var n int64
		for i := 0; n < *benchBytes; i++ {
			// Runs of 100 records of a partition, as a fetch returns them.
			p := (i / 100) % len(m.Ranges)
			rec.Topic, rec.Partition, rec.Offset = m.Ranges[p].Topic, m.Ranges[p].Partition, offsets[p]
			offsets[p]++
			rec.Timestamp = time.UnixMilli(1_772_000_000_000 + int64(i))
			rec.Key = fmt.Appendf(rec.Key[:0], "sensor-%d", i%1000)
			rec.Value = pool[i%len(pool)]
			require.NoError(b, w.Add(&rec))
			n += int64(len(rec.Value))
		}
		got, err := w.Close()
		require.NoError(b, err)
		write += time.Since(start)
		records = got.Records

		start = time.Now()
		bdl, err := bundle.Open(dir, ro)
		require.NoError(b, err)
		require.NoError(b, bdl.Verify(b.Context()))
		verify += time.Since(start)

		start = time.Now()
		it := bdl.Records(b.Context())
		var seen int64
		for it.Next() {
			seen++
		}
		require.NoError(b, it.Err())
		require.NoError(b, it.Close())
		require.Equal(b, records, seen)
		read += time.Since(start)
		require.NoError(b, os.RemoveAll(dir))
	}
	mb := float64(ops) * float64(*benchBytes) / 1e6
	b.ReportMetric(mb/write.Seconds(), "write-MB/s")
	b.ReportMetric(mb/verify.Seconds(), "verify-MB/s")
	b.ReportMetric(mb/read.Seconds(), "read-MB/s")
	if rss := peakRSS(); rss > 0 {
		b.ReportMetric(rss, "peak-RSS-MB")
	}
}

// peakRSS returns the process's peak resident set size in MB (VmHWM), or 0
// where /proc does not tell.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := bytes.CutPrefix(s.Bytes(), []byte("VmHWM:")); ok {
			var kb float64
			if _, err := fmt.Sscanf(string(rest), "%f kB", &kb); err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}
