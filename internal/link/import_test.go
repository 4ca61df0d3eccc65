package link_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/signing"
	"github.com/edgelink/edgelink/internal/testbed"
)

// TestImportFake carries a topic in a bundle between two fake clusters:
// the import writes every record exactly once, a second import writes
// nothing, and a bundle its trusted signer got wrong (counts that do not
// match its records) stops the import with the fault named instead of
// retrying it for ever.
func TestImportFake(t *testing.T) {
	src := testbed.StartFake(t, kfake.SeedTopics(3, "sensors.temp"))
	dst := testbed.StartFake(t)
	seeds, dseeds := src.ListenAddrs(), dst.ListenAddrs()
	dir := t.TempDir()
	key, signer, trusted := siteKeys(t, dir)
	cfg := linkConfig(t, seeds, dseeds, "    bundle: {signing_key: "+key+".key, trusted_keys: ["+key+".pub]}")
	lc := cfg.Links[0]
	recs := produce(t, seeds, "sensors.temp", 3, 300, "a")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out := filepath.Join(dir, "b1")
	_, err := link.Export(ctx, cfg, lc, link.ExportOptions{Out: out, Signer: signer, ChunkSize: bundle.MinChunkBytes})
	require.NoError(t, err)

	// Wrong counts, signed: the files are those signed, so the import
	// starts, and stops where the reader finds the fault.
	wrong := filepath.Join(dir, "b1-wrong")
	require.NoError(t, os.CopyFS(wrong, os.DirFS(out)))
	resign(t, wrong, signer, func(m map[string]any) {
		ranges := m["ranges"].([]any)
		r0, r1 := ranges[0].(map[string]any), ranges[1].(map[string]any)
		r0["bytes"], r1["bytes"] = r0["bytes"].(float64)-1, r1["bytes"].(float64)+1
	})
	opts := link.ImportOptions{Trusted: trusted, Link: fastOpts, Logger: testLogger(t)}
	began := time.Now()
	_, err = link.Import(ctx, cfg, lc, []string{wrong}, opts)
	require.ErrorIs(t, err, bundle.ErrFormat)
	require.ErrorContains(t, err, "partition sensors.temp/0 holds")
	require.Less(t, time.Since(began), 30*time.Second, "stopped, not retried")

	res, err := link.Import(ctx, cfg, lc, []string{out}, opts)
	require.NoError(t, err)
	requireMirrored(t, recs, readAll(t, dseeds, "sensors.temp", len(recs)), "sensors.temp")
	require.Equal(t, int64(len(recs)), res.Written+res.Skipped)
	res, err = link.Import(ctx, cfg, lc, []string{out}, opts)
	require.NoError(t, err)
	require.Zero(t, res.Written)
	require.True(t, res.Receipt.AlreadyImported)
}

// TestImportStuckTopicFake: a topic whose mirror cannot be created (its
// renamed name is too long for Kafka) stops the import, naming the topic
// and why, once it waited long enough, instead of waiting for ever.
func TestImportStuckTopicFake(t *testing.T) {
	link.SetStuckFor(t, 2*time.Second)
	long := "sensors." + strings.Repeat("x", 237) // 245 characters: legal at the source
	src := testbed.StartFake(t, kfake.SeedTopics(1, long, "alerts"))
	dst := testbed.StartFake(t)
	dir := t.TempDir()
	key, signer, trusted := siteKeys(t, dir)
	cfg := linkConfig(t, src.ListenAddrs(), dst.ListenAddrs(), `    rename: "{site}.{topic}"
    bundle: {signing_key: `+key+`.key, trusted_keys: [`+key+`.pub]}`)
	produce(t, src.ListenAddrs(), long, 1, 5, "a")
	produce(t, src.ListenAddrs(), "alerts", 1, 5, "b")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out := filepath.Join(dir, "b1")
	_, err := link.Export(ctx, cfg, cfg.Links[0], link.ExportOptions{Out: out, Signer: signer})
	require.NoError(t, err)
	_, err = link.Import(ctx, cfg, cfg.Links[0], []string{out}, link.ImportOptions{Trusted: trusted, Link: fastOpts, Logger: testLogger(t)})
	require.ErrorContains(t, err, "records of topic "+long+" cannot be written")
	require.ErrorContains(t, err, "Kafka allows 249")
}

// siteKeys writes a site's key pair into dir and returns its path (without
// extension), the signer and a keyring trusting it.
func siteKeys(t *testing.T, dir string) (string, *signing.Signer, *signing.Keyring) {
	t.Helper()
	key := filepath.Join(dir, "site")
	require.NoError(t, signing.WriteKeyPair(key))
	signer, err := signing.LoadPrivate(key + ".key")
	require.NoError(t, err)
	trusted, err := signing.LoadKeyring([]string{key + ".pub"})
	require.NoError(t, err)
	return key, signer, trusted
}

// resign edits the manifest of the bundle in dir as JSON and signs it
// again with s, as a site whose exporter got it wrong would.
func resign(t *testing.T, dir string, s *signing.Signer, edit func(map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, bundle.ManifestFile))
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	edit(m)
	raw, err = json.Marshal(m)
	require.NoError(t, err)
	sig, err := json.Marshal(map[string]any{"key": s.KeyID(), "signature": s.Sign(signing.DomainBundle, raw)})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, bundle.ManifestFile), raw, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, bundle.SignatureFile), sig, 0o600))
}
