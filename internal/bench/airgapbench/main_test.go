package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/config"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil)
	require.NoError(t, err)
	require.Equal(t, int64(1e9), o.volume)
	require.Equal(t, 1024, o.size)
	require.Equal(t, 12, o.partitions)
	require.Equal(t, 3, o.runs)
	require.True(t, o.encrypted)
	require.True(t, o.warmup)
	require.Empty(t, o.edgelink)
	require.Equal(t, 10*time.Minute, o.timeout)
	require.Equal(t, "go run ./internal/bench/airgapbench", o.command)

	args := []string{"-edgelink", "bin/edgelink", "-volume", "200MB", "-runs", "1", "-chunk-size", "64MiB", "-encrypted=false", "-write", "BENCHMARKS.md"}
	o, err = parseFlags(args)
	require.NoError(t, err)
	require.Equal(t, int64(200e6), o.volume)
	require.Equal(t, 1, o.runs)
	require.Equal(t, "64MiB", o.chunkSize)
	require.False(t, o.encrypted)
	require.Equal(t, "bin/edgelink", o.edgelink)
	require.Equal(t, "BENCHMARKS.md", o.write)
	require.Equal(t, "go run ./internal/bench/airgapbench "+strings.Join(args, " "), o.command)

	for _, tc := range []struct{ args, err string }{
		{"-volume 1TB", "-volume"},
		{"-volume 100", "less than one record"},
		{"-runs 0", "at least 1"},
		{"-partitions 0", "at least 1"},
		{"-chunk-size lots", "-chunk-size"},
		{"-timeout 0s", "-timeout"},
		{"extra", "unexpected arguments"},
	} {
		t.Run(tc.args, func(t *testing.T) {
			_, err := parseFlags(strings.Fields(tc.args))
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestRecords(t *testing.T) {
	require.Equal(t, 967_118, recordsFor(1e9, 1024), "1 GB of 10-byte keys and 1 KiB values")
	require.Equal(t, 1, recordsFor(1034, 1024))
	require.Equal(t, 2, recordsFor(1035, 1024))

	g, again := newGenerator(1, 1024), newGenerator(1, 1024)
	for i := range 3 {
		r := g.record("logs", 100_000+i)
		require.Equal(t, "logs", r.Topic)
		require.Equal(t, "key-00000"+string(rune('0'+i)), string(r.Key))
		require.Len(t, r.Key, keyLen)
		require.Len(t, r.Value, 1024)
		require.Len(t, r.Headers, 1)
		require.Equal(t, traceID, r.Headers[0].Key)
		require.Len(t, r.Headers[0].Value, 32)
		require.Equal(t, r.Value, again.record("logs", i).Value, "the same records for the same seed")
	}
	require.Len(t, newGenerator(1, 7).record("logs", 0).Value, 7, "odd sizes")
}

func TestConfigParses(t *testing.T) {
	k := keys{signingKey: "/k/site.key", publicKey: "/k/site.pub", recipient: "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p", identityFile: "/k/cloud.agekey"}
	ls := links(3)
	y := configYAML([]string{"127.0.0.1:9092"}, []string{"127.0.0.1:9093"}, k, "64MiB", ls)
	cfg, err := config.Parse("bench.yaml", []byte(y))
	require.NoError(t, err, y)
	require.Len(t, cfg.Links, len(ls))
	names := make([]string, len(cfg.Links))
	for i, lc := range cfg.Links {
		names[i] = lc.Name
		require.NotNil(t, lc.Bundle)
		require.Equal(t, "/k/site.key", lc.Bundle.SigningKey)
		require.Equal(t, []string{"/k/site.pub"}, lc.Bundle.TrustedKeys)
		require.Equal(t, int64(64<<20), lc.Bundle.ChunkSize)
		require.Equal(t, ls[i].encrypted, len(lc.Bundle.EncryptTo) == 1, lc.Name)
		require.Equal(t, ls[i].encrypted, len(lc.Bundle.DecryptWith) == 1, lc.Name)
		require.Equal(t, ls[i].mirror(), lc.DestinationTopic(cfg.Site, ls[i].topic), lc.Name)
	}
	require.Equal(t, []string{"warmup", "p1", "p2", "p3", "e1", "prof"}, names)
}

func TestWritten(t *testing.T) {
	n, err := writtenOf("imported bundle(s) up to 1 of bench/p1 into cluster cloud: 968055 records written, in 9.1s\nreceipt: r.json\n")
	require.NoError(t, err)
	require.Equal(t, int64(968055), n)
	_, err = writtenOf("bundle 1 of bench/p1 was imported before: nothing written\n")
	require.Error(t, err)
}

// TestMakeCommand: the report names what make bench-airgap runs.
func TestMakeCommand(t *testing.T) {
	mk, err := os.ReadFile("../../../Makefile")
	require.NoError(t, err)
	want := strings.ReplaceAll(makeCommand, "go run", "$(GO) run")
	want = strings.Replace(want, "-volume 1GB", "-volume $(AIRGAP_VOLUME)", 1)
	require.Contains(t, string(mk), "\t"+want+" $(AIRGAP_ARGS)\n")
}

func TestMarkdown(t *testing.T) {
	o, err := parseFlags([]string{"-runs", "2"})
	require.NoError(t, err)
	d := &dataset{topic: "logs", records: 1000, partitions: 12, size: 1024, bytes: 1_034_000, headers: 40_000, exampleKey: "key-000000"}
	mk := func(name string, enc bool, exp, imp time.Duration, peak int64) result {
		return result{
			link: link{name: name, topic: "logs", encrypted: enc}, records: 1000, chunks: 1, bundleBytes: 600_000, written: 1000, check: "ok",
			exp: usage{wall: exp, cpu: exp, peak: peak, broker: exp / 2}, imp: usage{wall: imp, cpu: imp, peak: peak, broker: 2 * imp},
		}
	}
	rep := &report{o: o, began: time.Now(), machine: "a machine", version: "edgelink dev", data: d, runs: []result{
		mk("p1", false, 10*time.Millisecond, 20*time.Millisecond, 30e6),
		mk("p2", false, 5*time.Millisecond, 40*time.Millisecond, 70e6),
		mk("e1", true, 20*time.Millisecond, 50*time.Millisecond, 30e6),
	}}
	md := rep.markdown()
	require.True(t, strings.HasPrefix(md, beginMarker+"\n## Air gaps: bundles (`make bench-airgap`)\n"), md)
	require.True(t, strings.HasSuffix(md, endMarker+"\n"), md)
	require.Contains(t, md, "```sh\ngo run ./internal/bench/airgapbench -runs 2\n```\n")
	// Medians of 1.034 MB: export 0.01 s and 0.005 s (155.1 MB/s), import
	// 0.02 and 0.04 s (25.9 MB/s); peak RSS 30 and 70 MB (50 MB).
	require.Contains(t, md, "| export | 0.01 | 0.01 | 0.01 | 155.1 | 0.01 | 50.0 | 0.00 | met |")
	require.Contains(t, md, "| import | 0.02 | 0.04 | 0.03 | 38.8 | 0.03 | 50.0 | 0.06 | not met: under 100 MB/s |")
	require.Contains(t, md, "| export, encrypted | 0.02 | – | 0.02 | 51.7 | 0.02 | 30.0 | 0.01 | not met: under 100 MB/s |")
	require.NotContains(t, md, "**Profiles.**")
	require.Equal(t, "not met: under 100 MB/s, over 64.0 MB", verdict(99, 65e6))

	rep.profile = &profileResult{export: 10 * time.Millisecond, imp: 20 * time.Millisecond, verify: 5 * time.Millisecond}
	require.Contains(t, strings.ReplaceAll(rep.markdown(), "\n", " "), "the import 0.02 s (51.7 MB/s), of which 0.01 s verifying the bundle")
}
