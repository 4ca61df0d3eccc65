package bundle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/internal/bundle"
	"github.com/edgelink/edgelink/internal/signing"
)

// keys returns a new signing key and a keyring trusting it.
func keys(t testing.TB, name string) (*signing.Signer, *signing.Keyring) {
	t.Helper()
	base := filepath.Join(t.TempDir(), name)
	require.NoError(t, signing.WriteKeyPair(base))
	s, err := signing.LoadPrivate(base + ".key")
	require.NoError(t, err)
	ring, err := signing.LoadKeyring([]string{base + ".pub"})
	require.NoError(t, err)
	return s, ring
}

func identity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	return id
}

// manifest returns the manifest of a bundle of topics "events" (3
// partitions) and "sensors" (8), with a range [0, to) per partition.
func manifest(to int64) bundle.Manifest {
	m := bundle.Manifest{
		Sequence:      1,
		Site:          "plant-1",
		Link:          "to-cloud",
		SourceCluster: "Xk3-cluster-id",
		Topics: []bundle.Topic{
			{Name: "sensors", ID: "3f1e0c6a-8d7b-4c55-9a0e-2b7f5b0d9e11", Partitions: 8, Config: map[string]string{"cleanup.policy": "delete"}},
			{Name: "events", ID: "9a7c1d2e-0b4f-4e6a-8c3d-5f2a1b0e7d44", Partitions: 3},
		},
	}
	for _, tp := range m.Topics {
		for p := range tp.Partitions {
			m.Ranges = append(m.Ranges, bundle.Range{Topic: tp.Name, Partition: p, From: 0, To: to})
		}
	}
	return m
}

// sampleRecords returns records of manifest's topics with all the shapes a
// record can take, interleaved between partitions, with gaps in offsets.
func sampleRecords() []bundle.Record {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var recs []bundle.Record
	next := map[string]int64{}
	add := func(topic string, p int32, r bundle.Record) {
		k := fmt.Sprintf("%s/%d", topic, p)
		r.Topic, r.Partition, r.Offset = topic, p, next[k]
		next[k] += 1 + int64(len(recs)%3) // gaps, as aborted transactions leave
		recs = append(recs, r)
	}
	for i := range 300 {
		ts := base.Add(time.Duration(i) * 1500 * time.Microsecond).Truncate(time.Millisecond)
		r := bundle.Record{Timestamp: ts, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)}
		switch i % 10 {
		case 0:
			r.Value = nil // tombstone
		case 1:
			r.Key = nil
		case 2:
			r.Key, r.Value = []byte{}, []byte{}
		case 3:
			r.Headers = []bundle.Header{{Key: "h", Value: []byte("1")}, {Key: "h", Value: []byte("1")}, {Key: "n", Value: nil}, {Key: "e", Value: []byte{}}, {Key: "", Value: []byte("x")}}
		case 4:
			r.Value = make([]byte, 200<<10-i) // incompressible
			_, _ = rand.Read(r.Value)
		case 5:
			r.Timestamp = base.Add(-time.Hour) // timestamps go back too
		case 6:
			r.Timestamp = time.UnixMilli(-1).UTC() // no timestamp
		}
		if i%4 == 0 {
			add("events", int32(i%3), r)
		} else {
			add("sensors", int32(i%7), r) // partition 7 gets none
		}
	}
	return recs
}

// write writes recs into a new bundle in dir and returns its manifest.
func write(t testing.TB, dir string, m bundle.Manifest, o bundle.WriterOptions, recs []bundle.Record) *bundle.Manifest {
	t.Helper()
	w, err := bundle.Create(dir, m, o)
	require.NoError(t, err)
	defer w.Abort()
	for i := range recs {
		require.NoError(t, w.Add(&recs[i]))
	}
	got, err := w.Close()
	require.NoError(t, err)
	return got
}

// readAll verifies the bundle and returns copies of its records.
func readAll(t testing.TB, b *bundle.Bundle) []bundle.Record {
	t.Helper()
	require.NoError(t, b.Verify(t.Context()))
	it := b.Records(t.Context())
	defer func() { require.NoError(t, it.Close()) }()
	var recs []bundle.Record
	for it.Next() {
		r := *it.Record()
		r.Key, r.Value = clone(r.Key), clone(r.Value)
		r.Headers = slices.Clone(r.Headers)
		for i := range r.Headers {
			r.Headers[i].Value = clone(r.Headers[i].Value)
		}
		recs = append(recs, r)
	}
	require.NoError(t, it.Err())
	return recs
}

// clone copies b, keeping nil and empty apart.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func TestRoundTrip(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b1")
	recs := sampleRecords()
	var progressed int
	m := write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer, Progress: func(int64, int64) { progressed++ }}, recs)
	require.Positive(t, progressed)

	require.Equal(t, bundle.Format, m.Format)
	require.Len(t, m.ID, 32)
	require.Equal(t, signer.KeyID(), m.SignedBy)
	require.Equal(t, "zstd", m.Compression)
	require.False(t, m.Encrypted)
	require.Equal(t, int64(len(recs)), m.Records)
	raw, err := os.ReadFile(filepath.Join(dir, bundle.ManifestFile))
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	require.Equal(t, hex.EncodeToString(sum[:]), m.Hash())

	var records, bytes int64
	for _, r := range m.Ranges {
		records += r.Records
		bytes += r.Bytes
		if r.Topic == "sensors" && r.Partition == 7 {
			require.Zero(t, r.Records)
			require.True(t, r.FirstTimestamp.IsZero())
		}
	}
	require.Equal(t, m.Records, records)
	require.Equal(t, m.Bytes, bytes)
	require.Equal(t, "events", m.Ranges[0].Topic, "ranges sorted")

	var read int64
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring, Progress: func(r, _ int64) { read = r }})
	require.NoError(t, err)
	require.Equal(t, m.Hash(), b.Manifest().Hash())
	require.Equal(t, m.Ranges, b.Manifest().Ranges)
	require.Equal(t, m.Topics, b.Manifest().Topics)
	got := readAll(t, b)
	require.Equal(t, recs, got)
	require.Equal(t, m.Records, read)
	for i, r := range got {
		require.Equal(t, recs[i].Key == nil, r.Key == nil, "key of record %d", i)
		require.Equal(t, recs[i].Value == nil, r.Value == nil, "value of record %d", i)
	}
}

func TestEmptyBundle(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	m := write(t, dir, manifest(0), bundle.WriterOptions{Signer: signer}, nil)
	require.Empty(t, m.Chunks)
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.NoError(t, err)
	require.Empty(t, readAll(t, b))
}

// randomRecords returns n records of incompressible values of up to max
// bytes, over the partitions of manifest.
func randomRecords(n, maxValue int) []bundle.Record {
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	recs := make([]bundle.Record, n)
	for i := range recs {
		v := make([]byte, rng.IntN(maxValue))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		recs[i] = bundle.Record{Topic: "sensors", Partition: int32(i % 8), Offset: int64(i), Timestamp: time.UnixMilli(int64(i)).UTC(), Key: []byte("k"), Value: v}
	}
	return recs
}

func TestChunkSplit(t *testing.T) {
	signer, ring := keys(t, "site")
	id := identity(t)
	recs := randomRecords(120, 200<<10)
	for _, tc := range []struct {
		name       string
		recipients []age.Recipient
	}{
		{"plain", nil},
		{"encrypted", []age.Recipient{id.Recipient()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			m := write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes, Recipients: tc.recipients}, recs)
			require.Greater(t, len(m.Chunks), 5)
			for i, c := range m.Chunks {
				fi, err := os.Stat(filepath.Join(dir, c.File))
				require.NoError(t, err)
				require.Equal(t, c.Bytes, fi.Size())
				require.LessOrEqual(t, fi.Size(), int64(bundle.MinChunkBytes), c.File)
				if i < len(m.Chunks)-1 {
					// The margin kept for what the compressor holds is 449 KiB.
					require.Greater(t, fi.Size(), int64(bundle.MinChunkBytes/4), c.File)
				}
			}
			b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring, Identities: []age.Identity{id}})
			require.NoError(t, err)
			require.Equal(t, recs, readAll(t, b))
		})
	}
}

func TestTooLargeRecord(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	w, err := bundle.Create(dir, manifest(10), bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes})
	require.NoError(t, err)
	defer w.Abort()
	require.ErrorContains(t, w.Add(&bundle.Record{Topic: "events", Offset: 0, Value: make([]byte, bundle.MinChunkBytes)}), "do not fit in a chunk")
	require.NoError(t, w.Add(&bundle.Record{Topic: "events", Offset: 1, Value: []byte("small")}))
	_, err = w.Close()
	require.NoError(t, err)
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.NoError(t, err)
	require.Len(t, readAll(t, b), 1)
}

// damage writes a bundle of several chunks, lets change alter it, and
// returns the errors of opening it and then verifying it with Verify and
// with VerifyFiles.
func damage(t *testing.T, change func(dir string)) (verify, files error) {
	t.Helper()
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	m := write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes}, randomRecords(40, 200<<10))
	require.Greater(t, len(m.Chunks), 2)
	change(dir)
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	if err != nil {
		return err, err
	}
	return b.Verify(t.Context()), b.VerifyFiles(t.Context(), nil)
}

// flip flips a bit of the byte at offset off of the file (from the end
// when negative).
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	if off < 0 {
		off += int64(len(data))
	}
	data[off] ^= 0x10
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

func TestTampered(t *testing.T) {
	chunk2 := "chunk-000002.elb"
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []string
		alsoIs error
	}{
		{"byte in the middle of a chunk", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, chunk2), 300<<10) }, []string{chunk2, "SHA-256"}, nil},
		{"byte in a chunk's header", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, chunk2), 1) }, []string{chunk2, "SHA-256"}, nil},
		{"byte in a chunk's checksum", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, chunk2), -1) }, []string{chunk2, "SHA-256"}, nil},
		{"truncated chunk", func(t *testing.T, dir string) {
			path := filepath.Join(dir, chunk2)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, fi.Size()/2))
		}, []string{chunk2, "bytes, the manifest says"}, nil},
		{"longer chunk", func(t *testing.T, dir string) {
			f, err := os.OpenFile(filepath.Join(dir, chunk2), os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte{0})
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, []string{chunk2, "bytes, the manifest says"}, nil},
		{"missing chunk", func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, chunk2))) }, []string{chunk2, "missing"}, nil},
		{"manifest", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, bundle.ManifestFile), 40) }, []string{"manifest.json does not match its signature"}, signing.ErrBadSignature},
		{"signature", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, bundle.SignatureFile), -8) }, []string{"manifest"}, nil},
		{"no signature", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, bundle.SignatureFile)))
		}, []string{"manifest.sig is missing"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verr, ferr := damage(t, func(dir string) { tc.change(t, dir) })
			for _, err := range []error{verr, ferr} {
				require.ErrorIs(t, err, bundle.ErrTampered)
				for _, w := range tc.want {
					require.ErrorContains(t, err, w)
				}
				if tc.alsoIs != nil {
					require.ErrorIs(t, err, tc.alsoIs)
				}
			}
		})
	}
}

// TestChangedAfterVerify changes a chunk between Verify and reading: the
// iterator reports it.
func TestChangedAfterVerify(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes}, randomRecords(40, 200<<10))
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.NoError(t, err)
	require.NoError(t, b.Verify(t.Context()))
	// Whatever the decompressor makes of it, the iterator finds the change.
	path := filepath.Join(dir, "chunk-000001.elb")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(data)/2] ^= 1
	require.NoError(t, os.WriteFile(path, data, 0o644))
	it := b.Records(t.Context())
	defer func() { require.NoError(t, it.Close()) }()
	for it.Next() {
	}
	require.ErrorIs(t, it.Err(), bundle.ErrTampered)
	require.ErrorContains(t, it.Err(), "chunk-000001.elb")
}

func TestUntrusted(t *testing.T) {
	signer, _ := keys(t, "site")
	_, other := keys(t, "ops-anna")
	dir := filepath.Join(t.TempDir(), "b")
	write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer}, sampleRecords())
	for _, ring := range []*signing.Keyring{other, {}} {
		_, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
		require.ErrorIs(t, err, bundle.ErrUntrusted)
		require.ErrorContains(t, err, signer.KeyID())
		if ring.Len() > 0 {
			require.ErrorContains(t, err, other.KeyIDs()[0]+" (ops-anna)")
		} else {
			require.ErrorContains(t, err, "(trusted: none)")
		}
	}
	_, err := bundle.Open(dir, bundle.ReaderOptions{})
	require.ErrorContains(t, err, "no trusted keys")
}

func TestEncrypted(t *testing.T) {
	signer, ring := keys(t, "site")
	cloud, spare, stranger := identity(t), identity(t), identity(t)
	dir := filepath.Join(t.TempDir(), "b")
	recs := sampleRecords()
	m := write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer, Recipients: []age.Recipient{cloud.Recipient(), spare.Recipient()}}, recs)
	require.True(t, m.Encrypted)
	require.Equal(t, 2, m.Recipients)
	data, err := os.ReadFile(filepath.Join(dir, m.Chunks[0].File))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(data, []byte("age-encryption.org/v1\n")))

	for _, ids := range [][]age.Identity{{cloud}, {spare}, {stranger, spare}} {
		b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring, Identities: ids})
		require.NoError(t, err)
		require.Equal(t, recs, readAll(t, b))
	}

	for _, tc := range []struct {
		name string
		ids  []age.Identity
		want string
	}{
		{"wrong key", []age.Identity{stranger}, "chunk-000001.elb: the bundle is encrypted to 2 recipients; the key given does not open it"},
		{"no key", nil, "the bundle is encrypted to 2 recipients and no key to decrypt it was given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring, Identities: tc.ids})
			require.NoError(t, err, "the manifest is in clear")
			for _, err := range []error{b.Verify(t.Context()), b.VerifyFiles(t.Context(), nil)} {
				require.ErrorIs(t, err, bundle.ErrDecrypt)
				require.ErrorContains(t, err, tc.want)
			}
			it := b.Records(t.Context())
			require.False(t, it.Next())
			require.ErrorIs(t, it.Err(), bundle.ErrDecrypt)
			require.NoError(t, it.Close())
		})
	}
}

func TestAddRefuses(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	m := manifest(0)
	m.Ranges = []bundle.Range{{Topic: "sensors", Partition: 2, From: 100, To: 200}}
	w, err := bundle.Create(dir, m, bundle.WriterOptions{Signer: signer})
	require.NoError(t, err)
	defer w.Abort()
	add := func(topic string, p int32, off int64) error {
		return w.Add(&bundle.Record{Topic: topic, Partition: p, Offset: off, Value: []byte("v")})
	}
	require.NoError(t, add("sensors", 2, 150))
	for _, tc := range []struct {
		topic     string
		partition int32
		offset    int64
		want      string
	}{
		{"sensors", 2, 99, "outside the partition's range [100, 200)"},
		{"sensors", 2, 200, "outside the partition's range [100, 200)"},
		{"sensors", 2, 150, "after offset 150: offsets of a partition must increase"},
		{"sensors", 2, 120, "after offset 150"},
		{"sensors", 3, 150, "no range for partition sensors/3"},
		{"nope", 0, 150, "no range for partition nope/0"},
	} {
		require.ErrorContains(t, add(tc.topic, tc.partition, tc.offset), tc.want)
	}
	require.NoError(t, add("sensors", 2, 199))
	got, err := w.Close()
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Records)
	require.ErrorContains(t, add("sensors", 2, 150), "closed")
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.NoError(t, err)
	recs := readAll(t, b)
	require.Len(t, recs, 2)
	require.Equal(t, int64(199), recs[1].Offset)
}

func TestCreateRefuses(t *testing.T) {
	signer, _ := keys(t, "site")
	full := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(full, "x"), nil, 0o644))
	opts := bundle.WriterOptions{Signer: signer}
	for _, tc := range []struct {
		name string
		dir  string
		edit func(*bundle.Manifest)
		o    bundle.WriterOptions
		want string
	}{
		{"directory not empty", full, nil, opts, "not empty"},
		{"no signer", "", nil, bundle.WriterOptions{}, "no signing key"},
		{"small chunks", "", nil, bundle.WriterOptions{Signer: signer, ChunkBytes: 1000}, "1 MiB"},
		{"no link", "", func(m *bundle.Manifest) { m.Link = "" }, opts, "no link name"},
		{"sequence 0", "", func(m *bundle.Manifest) { m.Sequence = 0 }, opts, "sequence 0"},
		{"no previous", "", func(m *bundle.Manifest) { m.Sequence = 2 }, opts, "previous \"\" is not the hash of a bundle"},
		{"previous of the first", "", func(m *bundle.Manifest) { m.Previous = "ab" }, opts, "bundle 1 names a previous bundle"},
		{"range twice", "", func(m *bundle.Manifest) { m.Ranges = append(m.Ranges, m.Ranges[0]) }, opts, "listed twice"},
		{"range of no topic", "", func(m *bundle.Manifest) { m.Ranges[0].Topic = "other" }, opts, "not among the bundle's topics"},
		{"partition out of the topic", "", func(m *bundle.Manifest) { m.Ranges[0].Partition = 8 }, opts, "sensors has 8 partitions"},
		{"backward range", "", func(m *bundle.Manifest) { m.Ranges[0].From = 2000 }, opts, "offsets [2000, 1000)"},
		{"topic twice", "", func(m *bundle.Manifest) { m.Topics = append(m.Topics, m.Topics[0]) }, opts, "listed twice"},
		{"bad id", "", func(m *bundle.Manifest) { m.ID = "xyz" }, opts, "want 32 hex digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := manifest(1000)
			if tc.edit != nil {
				tc.edit(&m)
			}
			dir := tc.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "b")
			}
			_, err := bundle.Create(dir, m, tc.o)
			require.ErrorContains(t, err, tc.want)
			if tc.dir == "" {
				require.NoDirExists(t, dir)
			}
		})
	}
}

func TestAbort(t *testing.T) {
	signer, _ := keys(t, "site")
	recs := randomRecords(20, 200<<10)

	created := filepath.Join(t.TempDir(), "b")
	w, err := bundle.Create(created, manifest(1000), bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes})
	require.NoError(t, err)
	for i := range recs {
		require.NoError(t, w.Add(&recs[i]))
	}
	w.Abort()
	require.NoDirExists(t, created)

	existing := t.TempDir()
	w, err = bundle.Create(existing, manifest(1000), bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes})
	require.NoError(t, err)
	for i := range recs {
		require.NoError(t, w.Add(&recs[i]))
	}
	w.Abort()
	w.Abort()
	entries, err := os.ReadDir(existing)
	require.NoError(t, err)
	require.Empty(t, entries)

	// After Close, Abort leaves the bundle alone.
	done := filepath.Join(t.TempDir(), "b")
	write(t, done, manifest(1000), bundle.WriterOptions{Signer: signer}, recs)
	require.FileExists(t, filepath.Join(done, bundle.ManifestFile))
}

func TestUnfinished(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	w, err := bundle.Create(dir, manifest(1000), bundle.WriterOptions{Signer: signer})
	require.NoError(t, err)
	defer w.Abort()
	require.NoError(t, w.Add(&bundle.Record{Topic: "events", Offset: 1}))
	_, err = bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "an export that did not finish")
}

// TestSignedButWrong checks what Verify finds in bundles signed as they
// are, but written wrong.
func TestSignedButWrong(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*bundle.Manifest)
		open  bool // the error is Open's
		wants string
	}{
		{"newer format", func(m *bundle.Manifest) { m.Format = 2 }, true, "format 2: this edgelink reads format 1 only; upgrade it"},
		{"compression", func(m *bundle.Manifest) { m.Compression = "lz4" }, true, "compression \"lz4\""},
		{"chunk name", func(m *bundle.Manifest) { m.Chunks[0].File = "../../etc/passwd" }, true, "want \"chunk-000001.elb\""},
		{"counts", func(m *bundle.Manifest) { m.Records++ }, true, "the ranges hold"},
		{"signer", func(m *bundle.Manifest) { m.SignedBy = "ed25519:0000000000000000" }, true, "names signer ed25519:0000000000000000"},
		{"records outside the range", func(m *bundle.Manifest) {
			for i := range m.Ranges {
				m.Ranges[i].From = 2
			}
		}, false, "outside the partition's range [2, 1000)"},
		{"records of no range", func(m *bundle.Manifest) {
			// Drop the range of events/1, its counts going to events/0.
			i := slices.IndexFunc(m.Ranges, func(r bundle.Range) bool { return r.Topic == "events" && r.Partition == 1 })
			m.Ranges[0].Records += m.Ranges[i].Records
			m.Ranges[0].Bytes += m.Ranges[i].Bytes
			m.Ranges = slices.Delete(m.Ranges, i, i+1)
		}, false, "no range for partition events/1"},
		{"chunk holds more", func(m *bundle.Manifest) { m.Chunks[0].Records--; m.Chunks[1].Records++ }, false, "chunk-000001.elb: more records than"},
		{"chunk holds fewer", func(m *bundle.Manifest) { m.Chunks[0].Records++; m.Chunks[1].Records-- }, false, "chunk-000001.elb holds"},
		{"range counts", func(m *bundle.Manifest) { m.Ranges[0].Records--; m.Ranges[1].Records++ }, false, "partition events/0 holds"},
		{"range bytes", func(m *bundle.Manifest) { m.Ranges[0].Bytes--; m.Ranges[1].Bytes++ }, false, "partition events/0 holds"},
		{"timestamps", func(m *bundle.Manifest) { m.Ranges[0].LastTimestamp = m.Ranges[0].LastTimestamp.Add(time.Second) }, false, "partition events/0 holds records from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, ring := keys(t, "site")
			dir := filepath.Join(t.TempDir(), "b")
			write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes}, sampleRecords())
			require.NoError(t, bundle.Resign(dir, signer, tc.edit))
			b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
			if !tc.open {
				require.NoError(t, err)
				// The files are those signed: VerifyFiles passes, and the
				// reader finds what Verify finds.
				require.NoError(t, b.VerifyFiles(t.Context(), nil))
				it := b.Records(t.Context())
				for it.Next() {
				}
				require.NoError(t, it.Close())
				require.ErrorIs(t, it.Err(), bundle.ErrFormat)
				require.ErrorContains(t, it.Err(), tc.wants)
				err = b.Verify(t.Context())
			}
			require.ErrorIs(t, err, bundle.ErrFormat)
			require.ErrorContains(t, err, tc.wants)
		})
	}
}

func TestChain(t *testing.T) {
	signer, ring := keys(t, "site")
	first := write(t, filepath.Join(t.TempDir(), "b1"), manifest(1000), bundle.WriterOptions{Signer: signer}, sampleRecords())
	m := manifest(2000)
	m.Sequence, m.Previous = 2, first.Hash()
	dir := filepath.Join(t.TempDir(), "b2")
	second := write(t, dir, m, bundle.WriterOptions{Signer: signer}, nil)
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.NoError(t, err)
	require.Equal(t, first.Hash(), b.Manifest().Previous)
	require.Equal(t, second.Hash(), b.Manifest().Hash())
	require.NotEqual(t, first.ID, second.ID)
}

func TestCanceled(t *testing.T) {
	signer, ring := keys(t, "site")
	dir := filepath.Join(t.TempDir(), "b")
	write(t, dir, manifest(1000), bundle.WriterOptions{Signer: signer}, sampleRecords())
	b, err := bundle.Open(dir, bundle.ReaderOptions{Trusted: ring})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, b.Verify(ctx), context.Canceled)
	require.ErrorIs(t, b.VerifyFiles(ctx, nil), context.Canceled)
}

// TestVerifyFiles checks a whole bundle of several chunks file by file,
// with progress up to the size of its files.
func TestVerifyFiles(t *testing.T) {
	signer, ring := keys(t, "site")
	cloud := identity(t)
	for _, enc := range []bool{false, true} {
		o := bundle.WriterOptions{Signer: signer, ChunkBytes: bundle.MinChunkBytes}
		ro := bundle.ReaderOptions{Trusted: ring}
		if enc {
			o.Recipients, ro.Identities = []age.Recipient{cloud.Recipient()}, []age.Identity{cloud}
		}
		dir := filepath.Join(t.TempDir(), "b")
		m := write(t, dir, manifest(1000), o, randomRecords(40, 200<<10))
		require.Greater(t, len(m.Chunks), 2)
		b, err := bundle.Open(dir, ro)
		require.NoError(t, err)
		var last int64
		require.NoError(t, b.VerifyFiles(t.Context(), func(done int64) {
			require.GreaterOrEqual(t, done, last)
			last = done
		}))
		require.Equal(t, b.FileBytes(), last)
		var sum int64
		for _, c := range m.Chunks {
			sum += c.Bytes
		}
		require.Equal(t, sum, b.FileBytes())
	}
}

func TestReceipt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "receipt.json")
	r := bundle.Receipt{
		BundleID:           "00112233445566778899aabbccddeeff",
		BundleHash:         hex.EncodeToString(make([]byte, 32)),
		Sequence:           3,
		Site:               "plant-1",
		Link:               "to-cloud",
		Imported:           time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC),
		Ranges:             []bundle.Range{{Topic: "sensors", Partition: 0, From: 10, To: 20, Records: 7, Bytes: 700}},
		Records:            7,
		DestinationCluster: "cloud-1",
	}
	require.NoError(t, bundle.WriteReceipt(path, r))
	got, err := bundle.ReadReceipt(path)
	require.NoError(t, err)
	r.Format = bundle.ReceiptFormat
	require.Equal(t, r, *got)

	for _, tc := range []struct {
		name, data, want string
	}{
		{"not json", "receipt", "invalid character"},
		{"newer", `{"format": 2}`, "format 2"},
		{"no hash", `{"format": 1, "bundle_id": "x", "sequence": 1, "link": "l"}`, "bundle hash"},
		{"trailing", `{"format": 1} {}`, "data after the receipt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bundle.ParseReceipt([]byte(tc.data))
			require.ErrorIs(t, err, bundle.ErrFormat)
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.Error(t, bundle.WriteReceipt(path, bundle.Receipt{}))
}
