package bundle

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/edgelink/edgelink/internal/signing"
)

// Size limits of the files a reader reads whole.
const (
	maxManifest  = 64 << 20
	maxSignature = 64 << 10
)

// ReaderOptions are the options of [Open].
type ReaderOptions struct {
	// Trusted holds the keys a bundle may be signed by. Required.
	Trusted *signing.Keyring
	// Identities are the age identities to decrypt an encrypted bundle
	// with; any one that opens it will do.
	Identities []age.Identity
	// Progress, when set, is called while Verify or an iterator reads
	// records, at most every 100 ms or so, with the records and bytes
	// (payload) read so far, and once more at the end.
	Progress func(recordsDone, bytesDone int64)
}

// Bundle is a bundle whose manifest was verified. It is safe for
// concurrent use.
type Bundle struct {
	dir    string
	m      *Manifest
	o      ReaderOptions
	topics map[string]int // index of each topic by name
}

// Open opens the bundle in dir: it reads the manifest and verifies its
// signature only, which is cheap. The errors wrap [ErrUntrusted],
// [ErrTampered] or [ErrFormat], or are I/O errors (fs.ErrNotExist when dir
// holds no manifest: no bundle, or an export that did not finish).
func Open(dir string, o ReaderOptions) (*Bundle, error) {
	b, err := open(dir, o)
	if err != nil {
		return nil, fmt.Errorf("open bundle %s: %w", dir, err)
	}
	return b, nil
}

func open(dir string, o ReaderOptions) (*Bundle, error) {
	if o.Trusted == nil {
		return nil, errors.New("no trusted keys to check its signature with")
	}
	raw, err := readFileMax(filepath.Join(dir, ManifestFile), maxManifest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no %s: not a bundle, or an export that did not finish: %w", ManifestFile, err)
	}
	if err != nil {
		return nil, err
	}
	data, err := readFileMax(filepath.Join(dir, SignatureFile), maxSignature)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing: the manifest is not signed: %w", SignatureFile, ErrTampered)
	}
	if err != nil {
		return nil, err
	}
	var sig signatureFile
	if err := json.Unmarshal(data, &sig); err != nil || sig.Key == "" || len(sig.Signature) == 0 {
		return nil, fmt.Errorf("%s is not a signature: %w", SignatureFile, ErrTampered)
	}
	if err := o.Trusted.Verify(sig.Key, signing.DomainBundle, raw, sig.Signature); err != nil {
		switch {
		case errors.Is(err, signing.ErrUntrustedKey):
			return nil, fmt.Errorf("%s is signed by key %s, which is not trusted (trusted: %s): %w",
				ManifestFile, sig.Key, describeKeys(o.Trusted), ErrUntrusted)
		case errors.Is(err, signing.ErrBadSignature):
			return nil, fmt.Errorf("%s does not match its signature (%w): %w", ManifestFile, err, ErrTampered)
		}
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", ManifestFile, err, ErrFormat)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	if m.SignedBy != sig.Key {
		return nil, fmt.Errorf("%s names signer %s, but it is signed by %s: %w", ManifestFile, m.SignedBy, sig.Key, ErrFormat)
	}
	m.raw = raw
	topics := make(map[string]int, len(m.Topics))
	for i, t := range m.Topics {
		topics[t.Name] = i
	}
	return &Bundle{dir: dir, m: &m, o: o, topics: topics}, nil
}

// describeKeys lists the keys of a keyring for an operator.
func describeKeys(r *signing.Keyring) string {
	ids := r.KeyIDs()
	if len(ids) == 0 {
		return "none"
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = id
		if name, _ := r.Name(id); name != "" {
			keys[i] += " (" + name + ")"
		}
	}
	return strings.Join(keys, ", ")
}

// Manifest returns the bundle's manifest. Treat it as read-only.
func (b *Bundle) Manifest() *Manifest { return b.m }

// Verify reads the whole bundle: it checks every chunk file's size and
// SHA-256 against the manifest, decrypts and decompresses it, decodes every
// record, and checks that the records of each partition lie in its range in
// increasing offset order and that every count matches the manifest. Once
// Verify returned nil, reading the bundle can fail on I/O only, unless its
// files change. The errors wrap [ErrTampered], [ErrDecrypt] or [ErrFormat],
// or are I/O errors or ctx's.
func (b *Bundle) Verify(ctx context.Context) error {
	it := b.iterate(ctx, "verify")
	for it.Next() {
	}
	_ = it.Close()
	return it.Err()
}

// Records returns an iterator over the bundle's records, in the order they
// were written. It makes the checks of [Bundle.Verify] as it goes, hashing
// each chunk file again, so that its Err reports a file that changed since
// it was verified; that is known at the end of the chunk, once its records
// were yielded. Call Verify first to import nothing from a bundle that is
// not whole.
func (b *Bundle) Records(ctx context.Context) *Iterator {
	return b.iterate(ctx, "read")
}

// Iterator reads the records of a bundle; see [Bundle.Records].
//
//	it := b.Records(ctx)
//	defer it.Close()
//	for it.Next() {
//		r := it.Record()
//		...
//	}
//	if err := it.Err(); err != nil {
//		...
//	}
type Iterator struct {
	b    *Bundle
	ctx  context.Context
	verb string // of the errors: read or verify

	next    int    // index of the next chunk to open
	chunk   *Chunk // the chunk being read, when f is set
	f       *os.File
	hr      hashReader    // over f
	fileBuf *bufio.Reader // over hr
	zr      *zstd.Decoder
	plain   *bufio.Reader // over zr
	fr      frameReader   // over plain
	inChunk int64         // records read from the chunk

	parts   map[partitionKey]*readState
	cur     *readState // of the last record
	records int64
	bytes   int64
	calls   int // to Next, for the context's checks
	prog    progress
	err     error
	done    bool
}

// readState is what an iterator saw of a partition.
type readState struct {
	rng          *Range // the manifest's
	last         int64  // offset of the last record, From-1 before the first
	records      int64
	bytes        int64
	first, final int64 // timestamps of the first and last records
	topic        int
	partition    int32
}

// maxWindow bounds the window of a chunk's zstd stream: what a reader keeps
// to decompress it.
const maxWindow = 16 << 20

func (b *Bundle) iterate(ctx context.Context, verb string) *Iterator {
	it := &Iterator{
		b:     b,
		ctx:   ctx,
		verb:  verb,
		parts: make(map[partitionKey]*readState, len(b.m.Ranges)),
		prog:  progress{fn: b.o.Progress},
		fr:    frameReader{topics: b.m.Topics},
	}
	for i := range b.m.Ranges {
		r := &b.m.Ranges[i]
		t := b.topics[r.Topic]
		it.parts[partitionKey{t, r.Partition}] = &readState{rng: r, last: r.From - 1, topic: t, partition: r.Partition}
	}
	if b.m.Encrypted && len(b.o.Identities) == 0 {
		it.fail(fmt.Errorf("the bundle is encrypted to %s and no key to decrypt it was given: %w", plural(b.m.Recipients, "recipient"), ErrDecrypt))
		return it
	}
	zr, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		it.fail(err)
		return it
	}
	it.zr = zr
	// The chunk's hash is computed beside the decompression and whatever
	// the caller does with the records, not in front of them.
	it.hr.async = true
	it.fileBuf = bufio.NewReaderSize(nil, 64<<10)
	it.plain = bufio.NewReaderSize(nil, 64<<10)
	return it
}

// Next reads the next record and tells whether there is one. At the end of
// the bundle, or after an error, it returns false; then see Err.
func (it *Iterator) Next() bool {
	if it.err != nil || it.done {
		return false
	}
	if it.calls++; it.calls&63 == 0 {
		if err := it.ctx.Err(); err != nil {
			it.fail(err)
			return false
		}
	}
	for {
		if it.f == nil {
			if it.next == len(it.b.m.Chunks) {
				it.finish()
				return false
			}
			if err := it.ctx.Err(); err != nil {
				it.fail(err)
				return false
			}
			if err := it.open(); err != nil {
				it.fail(err)
				return false
			}
		}
		topic, err := it.fr.next()
		if err == nil {
			err = it.account(topic)
		}
		switch {
		case err == nil:
			return true
		case errors.Is(err, io.EOF):
			if err := it.closeChunk(); err != nil {
				it.fail(err)
				return false
			}
		default:
			it.fail(it.chunkError(err))
			return false
		}
	}
}

// Record returns the current record, valid until the next call to Next.
func (it *Iterator) Record() *Record { return &it.fr.rec }

// Err returns the error that ended the iteration, if any.
func (it *Iterator) Err() error { return it.err }

// Close releases the iterator's file and decompressor. It may be called at
// any time, more than once.
func (it *Iterator) Close() error {
	it.done = true
	it.hr.stop()
	if it.f != nil {
		it.f.Close()
		it.f = nil
	}
	if it.zr != nil {
		it.zr.Close()
		it.zr = nil
	}
	return nil
}

func (it *Iterator) fail(err error) {
	it.err = fmt.Errorf("%s bundle %s: %w", it.verb, it.b.dir, err)
	it.hr.stop()
	if it.f != nil {
		it.f.Close()
		it.f = nil
	}
}

// open starts reading the next chunk.
func (it *Iterator) open() error {
	c := &it.b.m.Chunks[it.next]
	it.next++
	it.chunk, it.inChunk, it.cur = c, 0, nil
	f, err := os.Open(filepath.Join(it.b.dir, c.File))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing: %w", c.File, ErrTampered)
	}
	if err != nil {
		return err
	}
	it.f = f
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != c.Bytes {
		return fmt.Errorf("%s is %d bytes, the manifest says %d: %w", c.File, fi.Size(), c.Bytes, ErrTampered)
	}
	it.hr.reset(f)
	it.fileBuf.Reset(&it.hr)
	var src io.Reader = it.fileBuf
	if it.b.m.Encrypted {
		if src, err = age.Decrypt(src, it.b.o.Identities...); err != nil {
			return it.chunkError(err)
		}
	}
	if err := it.zr.Reset(src); err != nil {
		return it.chunkError(err)
	}
	it.plain.Reset(it.zr)
	it.fr.reset(it.plain)
	return nil
}

// account checks the record just decoded, of topic index topic, against the
// manifest, and counts it.
func (it *Iterator) account(topic int) error {
	r := &it.fr.rec
	s := it.cur
	if s == nil || s.topic != topic || s.partition != r.Partition {
		if s = it.parts[partitionKey{topic, r.Partition}]; s == nil {
			return fmt.Errorf("record %s/%d@%d: the manifest has no range for partition %s/%d", r.Topic, r.Partition, r.Offset, r.Topic, r.Partition)
		}
		it.cur = s
	}
	if r.Offset < s.rng.From || r.Offset >= s.rng.To {
		return fmt.Errorf("record %s/%d@%d: outside the partition's range [%d, %d)", r.Topic, r.Partition, r.Offset, s.rng.From, s.rng.To)
	}
	if r.Offset <= s.last {
		return fmt.Errorf("record %s/%d@%d: after offset %d: offsets of a partition must increase", r.Topic, r.Partition, r.Offset, s.last)
	}
	if it.inChunk++; it.inChunk > it.chunk.Records {
		return fmt.Errorf("more records than the %d the manifest says", it.chunk.Records)
	}
	size := r.size()
	ts := it.fr.st.timestamp
	if s.records == 0 {
		s.first = ts
	}
	s.final = ts
	s.last = r.Offset
	s.records++
	s.bytes += size
	it.records++
	it.bytes += size
	it.prog.tick(it.records, it.bytes)
	return nil
}

// closeChunk ends the chunk whose records were all read: it checks the
// rest of the file, its hash and its record count.
func (it *Iterator) closeChunk() error {
	if err := it.drain(); err != nil {
		return err
	}
	c := it.chunk
	if it.inChunk != c.Records {
		return fmt.Errorf("%s holds %d records, the manifest says %d: %w", c.File, it.inChunk, c.Records, ErrFormat)
	}
	it.f.Close()
	it.f = nil
	return nil
}

// drain reads the rest of the chunk file and checks its size and hash.
func (it *Iterator) drain() error {
	c := it.chunk
	if _, err := io.Copy(io.Discard, &it.hr); err != nil {
		return fmt.Errorf("read %s: %w", c.File, err)
	}
	if it.hr.n != c.Bytes {
		return fmt.Errorf("%s is %d bytes, the manifest says %d: %w", c.File, it.hr.n, c.Bytes, ErrTampered)
	}
	if sum := hex.EncodeToString(it.hr.sum()); sum != c.SHA256 {
		return fmt.Errorf("%s has SHA-256 %s, the manifest says %s: %w", c.File, sum, c.SHA256, ErrTampered)
	}
	return nil
}

// chunkError explains err, met while reading the chunk: an I/O error, a
// changed file, a key that does not open it, or a malformed chunk.
func (it *Iterator) chunkError(err error) error {
	c := it.chunk
	if it.hr.err != nil {
		return fmt.Errorf("read %s: %w", c.File, it.hr.err)
	}
	// A changed file explains anything: the rest of the file tells.
	if derr := it.drain(); derr != nil {
		return derr
	}
	return it.b.chunkFault(c, err)
}

// finish checks the counts of every range once all chunks were read.
func (it *Iterator) finish() {
	it.done = true
	for i := range it.b.m.Ranges {
		r := &it.b.m.Ranges[i]
		s := it.parts[partitionKey{it.b.topics[r.Topic], r.Partition}]
		var err error
		switch {
		case s.records != r.Records || s.bytes != r.Bytes:
			err = fmt.Errorf("partition %s/%d holds %d records of %d bytes, the manifest says %d of %d bytes: %w",
				r.Topic, r.Partition, s.records, s.bytes, r.Records, r.Bytes, ErrFormat)
		case s.records > 0 && (s.first != millis(r.FirstTimestamp) || s.final != millis(r.LastTimestamp)):
			err = fmt.Errorf("partition %s/%d holds records from %s to %s, the manifest says from %s to %s: %w",
				r.Topic, r.Partition, fromMillis(s.first).Format(time.RFC3339Nano), fromMillis(s.final).Format(time.RFC3339Nano),
				r.FirstTimestamp.Format(time.RFC3339Nano), r.LastTimestamp.Format(time.RFC3339Nano), ErrFormat)
		}
		if err != nil {
			it.fail(err)
			return
		}
	}
	it.prog.done(it.records, it.bytes)
}

// plural returns n and noun, in the plural unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
