package bundle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"
)

// hashWriter counts and hashes the bytes written through it to a file. The
// compressor writes from its own goroutine: the count may be read while it
// does, the hash once the compressor is closed.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n atomic.Int64
}

func newHashWriter(w io.Writer) *hashWriter { return &hashWriter{w: w, h: sha256.New()} }

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n.Add(int64(n))
	return n, err
}

// hashReader counts and hashes the bytes read through it from a file, and
// keeps the file's error apart from those of the readers stacked on it.
type hashReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error // the first error other than io.EOF
	// async hashes in a goroutine of its own, which the reads hand copies
	// of what they read (through work, in buffers from free), so that
	// hashing overlaps what the reader does with the bytes; sum waits for
	// it. done is closed when it has hashed everything handed to it.
	async      bool
	work, free chan []byte
	done       chan struct{}
}

// hashBuffers and hashBufferSize bound what an async hashReader holds.
const (
	hashBuffers    = 8
	hashBufferSize = 64 << 10
)

func (hr *hashReader) reset(r io.Reader) {
	hr.stop()
	hr.r, hr.n, hr.err = r, 0, nil
	if hr.h == nil {
		hr.h = sha256.New()
	}
	hr.h.Reset()
	if !hr.async {
		return
	}
	if hr.free == nil {
		hr.free = make(chan []byte, hashBuffers)
		for range hashBuffers {
			hr.free <- make([]byte, 0, hashBufferSize)
		}
	}
	work, done, h, free := make(chan []byte, hashBuffers), make(chan struct{}), hr.h, hr.free
	hr.work, hr.done = work, done
	go func() { // owned by the reader: stop waits for it
		defer close(done)
		for b := range work {
			h.Write(b)
			free <- b[:0]
		}
	}()
}

// stop ends the hashing goroutine, once it hashed what it was handed.
func (hr *hashReader) stop() {
	if hr.work != nil {
		close(hr.work)
		<-hr.done
		hr.work = nil
	}
}

// sum returns the hash of what was read since reset.
func (hr *hashReader) sum() []byte {
	hr.stop()
	return hr.h.Sum(nil)
}

func (hr *hashReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	if hr.work == nil {
		hr.h.Write(p[:n])
	}
	for rest := p[:n]; len(rest) > 0 && hr.work != nil; {
		b := <-hr.free
		k := min(len(rest), cap(b))
		hr.work <- append(b, rest[:k]...)
		rest = rest[k:]
	}
	hr.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && hr.err == nil {
		hr.err = err
	}
	return n, err
}

// writeTemp writes data to a new file tmp, synced.
func writeTemp(tmp string, data []byte) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir syncs the directory dir, so that the files created and renamed in
// it last. Windows cannot sync a directory, nor needs to.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFileAtomic replaces path with data: a reader sees the old file or the
// new one, whole, even across a crash.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := writeTemp(tmp, data); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// readFileMax reads the file at path, refusing one larger than limit bytes.
func readFileMax(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", filepath.Base(path), limit)
	}
	return data, nil
}

// progress calls a progress function at most every progressEvery.
type progress struct {
	fn    func(records, bytes int64)
	count int   // calls since the clock was read
	bytes int64 // bytes when the clock was read
	next  time.Time
}

const progressEvery = 100 * time.Millisecond

// tick reports records and bytes when the time has come. It reads the clock
// every 64 records or 1 MiB only.
func (p *progress) tick(records, bytes int64) {
	if p.fn == nil {
		return
	}
	if p.count++; p.count < 64 && bytes-p.bytes < 1<<20 {
		return
	}
	p.count, p.bytes = 0, bytes
	if now := time.Now(); now.After(p.next) {
		p.next = now.Add(progressEvery)
		p.fn(records, bytes)
	}
}

// done reports the final counts.
func (p *progress) done(records, bytes int64) {
	if p.fn != nil {
		p.fn(records, bytes)
	}
}
