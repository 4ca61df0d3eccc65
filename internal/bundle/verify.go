package bundle

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
)

// FileBytes is the size of the bundle's chunk files, what [Bundle.VerifyFiles]
// reads.
func (b *Bundle) FileBytes() int64 {
	var n int64
	for _, c := range b.m.Chunks {
		n += c.Bytes
	}
	return n
}

// VerifyFiles checks that every chunk file is the one that was signed: its
// size and SHA-256 match the manifest and, when the bundle is encrypted,
// one of the identities opens it. It reads each file once, several files at
// a time, and decodes no record, so it costs a fraction of [Bundle.Verify]:
// it is what an importer checks before it writes anything. A bundle that
// passes was written by the holder of a trusted key as it is; the record
// checks of Verify (ranges, order, counts) are then made by [Bundle.Records]
// as it reads. progress, when set, is called with the bytes of the files
// read so far (of [Bundle.FileBytes]), from the goroutine that called
// VerifyFiles. The errors are those of Verify.
func (b *Bundle) VerifyFiles(ctx context.Context, progress func(done int64)) error {
	if err := b.verifyFiles(ctx, progress); err != nil {
		return fmt.Errorf("verify bundle %s: %w", b.dir, err)
	}
	return nil
}

func (b *Bundle) verifyFiles(ctx context.Context, progress func(done int64)) error {
	if b.m.Encrypted && len(b.o.Identities) == 0 {
		return fmt.Errorf("the bundle is encrypted to %s and no key to decrypt it was given: %w", plural(b.m.Recipients, "recipient"), ErrDecrypt)
	}
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		read  atomic.Int64
		next  atomic.Int64
		mu    sync.Mutex
		first = len(b.m.Chunks) // index of the first chunk that failed
		ferr  error
		wg    sync.WaitGroup
	)
	workers := min(runtime.GOMAXPROCS(0), len(b.m.Chunks))
	finished := make(chan struct{})
	for range workers {
		wg.Go(func() {
			buf := bufio.NewReaderSize(nil, 256<<10)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(b.m.Chunks) || wctx.Err() != nil {
					return
				}
				if err := b.verifyFile(wctx, &b.m.Chunks[i], buf, &read); err != nil {
					if errors.Is(err, errStopped) {
						return // another chunk failed
					}
					mu.Lock()
					// The first chunk's error is the one to report, as a
					// reader in order would.
					if i < first {
						first, ferr = i, err
					}
					mu.Unlock()
					stop(errStopped)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(finished) }()
	var tick <-chan time.Time
	if progress != nil {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-finished:
			if ferr == nil && ctx.Err() != nil {
				return ctx.Err()
			}
			if ferr == nil && progress != nil {
				progress(read.Load())
			}
			return ferr
		case <-tick:
			progress(read.Load())
		}
	}
}

// errStopped stops the other files' checks once one failed.
var errStopped = errors.New("stopped: another chunk failed")

// verifyFile checks one chunk file, counting the bytes it reads into read.
func (b *Bundle) verifyFile(ctx context.Context, c *Chunk, buf *bufio.Reader, read *atomic.Int64) error {
	f, err := os.Open(filepath.Join(b.dir, c.File))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing: %w", c.File, ErrTampered)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != c.Bytes {
		return fmt.Errorf("%s is %d bytes, the manifest says %d: %w", c.File, fi.Size(), c.Bytes, ErrTampered)
	}
	var hr hashReader
	hr.reset(&ctxReader{ctx: ctx, r: f, read: read})
	buf.Reset(&hr)
	var derr error
	if b.m.Encrypted {
		// age reads the header and unwraps the file key with the
		// identities; the rest is the hash's to check.
		_, derr = age.Decrypt(buf, b.o.Identities...)
	}
	if _, err := io.Copy(io.Discard, buf); err != nil {
		if hr.err != nil {
			return fmt.Errorf("read %s: %w", c.File, hr.err)
		}
		return err
	}
	if hr.n != c.Bytes {
		return fmt.Errorf("%s is %d bytes, the manifest says %d: %w", c.File, hr.n, c.Bytes, ErrTampered)
	}
	if sum := hex.EncodeToString(hr.sum()); sum != c.SHA256 {
		return fmt.Errorf("%s has SHA-256 %s, the manifest says %s: %w", c.File, sum, c.SHA256, ErrTampered)
	}
	if derr != nil {
		return b.chunkFault(c, derr)
	}
	return nil
}

// chunkFault explains why age could not open chunk c whose file is the
// one signed: the keys given do not open it, or the chunk is malformed.
func (b *Bundle) chunkFault(c *Chunk, err error) error {
	if _, ok := errors.AsType[*age.NoIdentityMatchError](err); ok {
		tried := "the key given does not open it"
		if n := len(b.o.Identities); n > 1 {
			tried = fmt.Sprintf("none of the %d keys given opens it", n)
		}
		return fmt.Errorf("%s: the bundle is encrypted to %s; %s: %w", c.File, plural(b.m.Recipients, "recipient"), tried, ErrDecrypt)
	}
	return fmt.Errorf("%s: %w: %w", c.File, err, ErrFormat)
}

// ctxReader reads r until ctx ends, counting what it read into read.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	read *atomic.Int64
}

func (cr *ctxReader) Read(p []byte) (int, error) {
	if err := cr.ctx.Err(); err != nil {
		return 0, context.Cause(cr.ctx)
	}
	n, err := cr.r.Read(p)
	cr.read.Add(int64(n))
	return n, err
}
