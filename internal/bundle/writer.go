package bundle

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/edgelink/edgelink/internal/signing"
)

// Chunk sizes.
const (
	// DefaultChunkBytes is the chunk size when none is given.
	DefaultChunkBytes = 256 << 20
	// MinChunkBytes is the smallest chunk size.
	MinChunkBytes = 1 << 20
)

// Bounds of what a chunk file may grow by beyond the bytes it holds: the
// compressor holds up to three blocks of 128 KiB (one filling, one being
// encoded, one being written) and age up to one chunk of its stream (64 KiB)
// before writing them; closing adds the last block's header, the checksum
// and age's last tag.
const (
	maxPending = 3*128<<10 + 64<<10 + 1<<10
	maxTrailer = 1 << 10
)

// expand bounds the size of n bytes once compressed and encrypted, when
// they do not compress: a block header per 128 KiB, a tag per 64 KiB.
func expand(n int64) int64 { return n + n/1024 + 64 }

// WriterOptions are the options of [Create].
type WriterOptions struct {
	// ChunkBytes is the largest size of a chunk file on disk:
	// DefaultChunkBytes when 0, MinChunkBytes at least (4 GiB - 1 for a
	// FAT32 disk). A record must fit in one chunk.
	ChunkBytes int64
	// Signer signs the manifest. Required.
	Signer *signing.Signer
	// Recipients, when given, are the age recipients every chunk is
	// encrypted to.
	Recipients []age.Recipient
	// Progress, when set, is called from Add, at most every 100 ms or so,
	// with the records and bytes (payload) written so far, and once more by
	// Close.
	Progress func(recordsDone, bytesDone int64)
}

// Writer writes a bundle; see [Create].
type Writer struct {
	dir     string
	created bool     // dir was created by Create: Abort removes it
	files   []string // names of the files written, for Abort
	m       Manifest
	o       WriterOptions

	parts  map[partitionName]*partitionState
	last   *partitionState // of the last record added
	enc    *zstd.Encoder
	chunk  *chunkWriter // the chunk being written, if any
	buf    []byte       // the frame being written
	prog   progress
	err    error // sticky: an I/O error, or closed
	closed bool  // closed successfully
}

// partitionName names a source partition in a record.
type partitionName struct {
	topic     string
	partition int32
}

// partitionState is what the writer knows of a partition of the bundle.
type partitionState struct {
	rng          *Range // in Writer.m.Ranges: its counts are filled as records come
	topic        int    // index in Manifest.Topics
	last         int64  // offset of the last record, From-1 before the first
	first, final int64  // timestamps of the first and last records
}

// chunkWriter is a chunk file being written.
type chunkWriter struct {
	name    string
	f       *os.File
	out     *hashWriter    // the file's bytes
	crypt   io.WriteCloser // age's writer, when encrypting
	plain   int64          // bytes given to the compressor
	records int64
	st      frameState
}

var errClosed = errors.New("bundle writer closed")

// Create starts writing a bundle into dir, which must not exist or be
// empty. m describes the bundle but for what the writer fills in: the
// chunks, the counts (also those of the ranges), and the format,
// compression, encryption and signer. The ID is random when m has none,
// Created is now when zero. Every record must lie in one of m.Ranges, at
// most one per partition, which the writer sorts.
func Create(dir string, m Manifest, o WriterOptions) (*Writer, error) {
	if o.Signer == nil {
		return nil, fmt.Errorf("create bundle %s: no signing key", dir)
	}
	switch {
	case o.ChunkBytes == 0:
		o.ChunkBytes = DefaultChunkBytes
	case o.ChunkBytes < MinChunkBytes:
		return nil, fmt.Errorf("create bundle %s: chunk size %d bytes: %d (1 MiB) at least", dir, o.ChunkBytes, MinChunkBytes)
	}
	m.raw = nil
	m.Format = Format
	m.Compression = Compression
	m.Encrypted = len(o.Recipients) > 0
	m.Recipients = len(o.Recipients)
	m.SignedBy = o.Signer.KeyID()
	m.Records, m.Bytes, m.Chunks = 0, 0, nil
	if m.ID == "" {
		var id [16]byte
		_, _ = rand.Read(id[:])
		m.ID = hex.EncodeToString(id[:])
	}
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	m.Created = m.Created.UTC().Round(0)
	m.Topics = slices.Clone(m.Topics)
	for i := range m.Topics {
		m.Topics[i].Config = maps.Clone(m.Topics[i].Config)
	}
	m.Ranges = slices.Clone(m.Ranges)
	slices.SortFunc(m.Ranges, compareRanges)
	topics, err := m.checkHeader()
	if err != nil {
		return nil, fmt.Errorf("create bundle %s: %w", dir, err)
	}

	w := &Writer{
		dir:   dir,
		m:     m,
		o:     o,
		parts: make(map[partitionName]*partitionState, len(m.Ranges)),
		prog:  progress{fn: o.Progress},
	}
	for i := range w.m.Ranges {
		r := &w.m.Ranges[i]
		r.Records, r.Bytes, r.FirstTimestamp, r.LastTimestamp = 0, 0, time.Time{}, time.Time{}
		w.parts[partitionName{r.Topic, r.Partition}] = &partitionState{rng: r, topic: topics[r.Topic], last: r.From - 1}
	}

	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create bundle: %w", err)
		}
		w.created = true
	case err != nil:
		return nil, fmt.Errorf("create bundle: %w", err)
	case len(entries) > 0:
		return nil, fmt.Errorf("create bundle %s: the directory is not empty", dir)
	}
	w.enc, err = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(2),
		zstd.WithWindowSize(zstdWindow))
	if err != nil {
		w.Abort()
		return nil, fmt.Errorf("create bundle %s: %w", dir, err)
	}
	return w, nil
}

// zstdWindow is the compressor's window: what a reader needs to keep.
const zstdWindow = 1 << 20

// Add writes r to the bundle; r may be reused once Add returns. The records
// of a partition must come in increasing offset order, within the
// partition's range. A record refused for this leaves the writer as it was;
// after any other error the writer is done: Abort it.
func (w *Writer) Add(r *Record) error {
	if w.err != nil {
		return w.err
	}
	p := w.last
	if p == nil || p.rng.Partition != r.Partition || p.rng.Topic != r.Topic {
		if p = w.parts[partitionName{r.Topic, r.Partition}]; p == nil {
			return fmt.Errorf("add record %s/%d@%d: the bundle has no range for partition %s/%d", r.Topic, r.Partition, r.Offset, r.Topic, r.Partition)
		}
		w.last = p
	}
	if r.Offset < p.rng.From || r.Offset >= p.rng.To {
		return fmt.Errorf("add record %s/%d@%d: outside the partition's range [%d, %d)", r.Topic, r.Partition, r.Offset, p.rng.From, p.rng.To)
	}
	if r.Offset <= p.last {
		return fmt.Errorf("add record %s/%d@%d: after offset %d: offsets of a partition must increase", r.Topic, r.Partition, r.Offset, p.last)
	}

	// Encode the frame after the chunk's last one, or as a chunk's first.
	var st frameState
	if w.chunk != nil {
		st = w.chunk.st
	}
	var frame []byte
	w.buf, frame = encodeFrame(w.buf, &st, p.topic, r)
	if len(frame) > maxFrame {
		return fmt.Errorf("add record %s/%d@%d: %d bytes, more than a record may take (%d)", r.Topic, r.Partition, r.Offset, len(frame), maxFrame)
	}
	if c := w.chunk; c != nil && !c.fits(len(frame), w.o.ChunkBytes) {
		if err := w.closeChunk(); err != nil {
			return w.fail(err)
		}
		st = frameState{}
		w.buf, frame = encodeFrame(w.buf, &st, p.topic, r)
	}
	if w.chunk == nil {
		if err := w.openChunk(); err != nil {
			return w.fail(err)
		}
		if !w.chunk.fits(len(frame), w.o.ChunkBytes) {
			if err := w.closeChunk(); err != nil {
				return w.fail(err)
			}
			return fmt.Errorf("add record %s/%d@%d: %d bytes do not fit in a chunk of %d bytes", r.Topic, r.Partition, r.Offset, len(frame), w.o.ChunkBytes)
		}
	}
	if _, err := w.enc.Write(frame); err != nil {
		return w.fail(fmt.Errorf("write %s: %w", w.chunk.name, err))
	}
	c := w.chunk
	c.st = st
	c.plain += int64(len(frame))
	c.records++

	size := r.size()
	ts := st.timestamp
	if p.rng.Records == 0 {
		p.first = ts
	}
	p.final = ts
	p.last = r.Offset
	p.rng.Records++
	p.rng.Bytes += size
	w.m.Records++
	w.m.Bytes += size
	w.prog.tick(w.m.Records, w.m.Bytes)
	return nil
}

// fits tells whether a frame of n bytes fits in c without c's file
// exceeding limit bytes.
func (c *chunkWriter) fits(n int, limit int64) bool {
	return c.out.n.Load()+expand(min(c.plain, maxPending))+expand(int64(n))+maxTrailer <= limit
}

// openChunk starts the next chunk file.
func (w *Writer) openChunk() error {
	name := chunkName(len(w.m.Chunks) + 1)
	f, err := os.OpenFile(filepath.Join(w.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	w.files = append(w.files, name)
	c := &chunkWriter{name: name, f: f, out: newHashWriter(f)}
	w.chunk = c
	var dst io.Writer = c.out
	if len(w.o.Recipients) > 0 {
		if c.crypt, err = age.Encrypt(c.out, w.o.Recipients...); err != nil {
			return fmt.Errorf("encrypt %s: %w", name, err)
		}
		dst = c.crypt
	}
	w.enc.Reset(dst)
	return nil
}

// closeChunk finishes the chunk being written and lists it in the
// manifest; a chunk without records is removed instead.
func (w *Writer) closeChunk() error {
	c := w.chunk
	w.chunk = nil
	if c.records == 0 {
		c.f.Close()
		w.enc.Reset(nil)
		return os.Remove(filepath.Join(w.dir, c.name))
	}
	err := w.enc.Close()
	if err == nil && c.crypt != nil {
		err = c.crypt.Close()
	}
	if err == nil {
		err = c.f.Sync()
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", c.name, err)
	}
	size := c.out.n.Load()
	if size > w.o.ChunkBytes {
		// The bounds of fits are wrong: a bug, not the operator's problem.
		return fmt.Errorf("write %s: %d bytes, over the chunk size of %d", c.name, size, w.o.ChunkBytes)
	}
	w.m.Chunks = append(w.m.Chunks, Chunk{
		File:    c.name,
		Bytes:   size,
		SHA256:  hex.EncodeToString(c.out.h.Sum(nil)),
		Records: c.records,
	})
	return nil
}

// fail makes err the writer's error and returns it.
func (w *Writer) fail(err error) error {
	w.err = fmt.Errorf("write bundle %s: %w", w.dir, err)
	return w.err
}

// signatureFile is manifest.sig.
type signatureFile struct {
	Key       string `json:"key"`
	Signature []byte `json:"signature"`
}

// Close finishes the bundle: it closes the last chunk, fills in the counts
// and the chunks, signs the manifest and writes manifest.sig then
// manifest.json, each atomically. It returns the final manifest. After an
// error, Abort the writer.
func (w *Writer) Close() (*Manifest, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.chunk != nil {
		if err := w.closeChunk(); err != nil {
			return nil, w.fail(err)
		}
	}
	for _, p := range w.parts {
		if p.rng.Records > 0 {
			p.rng.FirstTimestamp, p.rng.LastTimestamp = fromMillis(p.first), fromMillis(p.final)
		}
	}
	raw, err := w.m.marshal()
	if err != nil {
		return nil, w.fail(err)
	}
	sig, err := json.MarshalIndent(signatureFile{
		Key:       w.o.Signer.KeyID(),
		Signature: w.o.Signer.Sign(signing.DomainBundle, raw),
	}, "", "  ")
	if err != nil {
		return nil, w.fail(fmt.Errorf("encode signature: %w", err))
	}
	if err := w.writeManifest(raw, append(sig, '\n')); err != nil {
		return nil, w.fail(err)
	}
	w.m.raw = raw
	w.closed = true
	w.err = errClosed
	w.prog.done(w.m.Records, w.m.Bytes)
	m := w.m
	return &m, nil
}

// writeManifest writes manifest.sig and manifest.json under temporary
// names, syncs them, then renames them, manifest.json last.
func (w *Writer) writeManifest(manifest, sig []byte) error {
	files := []struct {
		name string
		data []byte
	}{{SignatureFile, sig}, {ManifestFile, manifest}}
	for _, f := range files {
		w.files = append(w.files, f.name+".tmp", f.name)
		if err := writeTemp(filepath.Join(w.dir, f.name+".tmp"), f.data); err != nil {
			return err
		}
	}
	if err := syncDir(w.dir); err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(w.dir, f.name)
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
	}
	return syncDir(w.dir)
}

// Abort removes what the writer wrote: the directory when Create made it,
// else the files in it. It does nothing after a successful Close, so that
// it can be deferred.
func (w *Writer) Abort() {
	if w.closed {
		return
	}
	w.err = errClosed
	if c := w.chunk; c != nil {
		w.enc.Reset(nil) // waits for the compressor's goroutines
		c.f.Close()
		w.chunk = nil
	}
	if w.created {
		os.RemoveAll(w.dir)
		return
	}
	for _, name := range w.files {
		_ = os.Remove(filepath.Join(w.dir, name))
	}
}
