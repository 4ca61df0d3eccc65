package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/edgelink/edgelink/internal/config"
	elink "github.com/edgelink/edgelink/internal/link"
	"github.com/edgelink/edgelink/internal/signing"
)

// profile exports and imports the link once more with the engine running
// inside this process (link.Export and link.Import, as the commands call
// them), each under the CPU profiler, and writes into the pprof directory
// export.cpu.pprof and import.cpu.pprof, and per step a heap profile taken
// before it (.heap-before.pprof), at its largest heap in use, sampled every
// 100 ms (.peak-heap.pprof), and after it (.heap.pprof): compare
// allocations with go tool pprof -sample_index=alloc_space -diff_base
// import.heap-before.pprof import.heap.pprof. These runs are not part of
// the figures: they share the process with the bench.
func (b *bench) profile(ctx context.Context, l link, want int64) (*profileResult, error) {
	if err := os.MkdirAll(b.o.pprofDir, 0o755); err != nil {
		return nil, fmt.Errorf("create pprof directory: %w", err)
	}
	data, err := os.ReadFile(b.config)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(b.config, data)
	if err != nil {
		return nil, err
	}
	lc := cfg.Link(l.name)
	signer, err := signing.LoadPrivate(lc.Bundle.SigningKey)
	if err != nil {
		return nil, err
	}
	trusted, err := signing.LoadKeyring(lc.Bundle.TrustedKeys)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(b.dir, "bundle-"+l.name)
	var recipients []age.Recipient
	var identities []age.Identity
	if l.encrypted {
		recipients, identities = []age.Recipient{b.keys.identity.Recipient()}, []age.Identity{b.keys.identity}
	}
	rate := func(took time.Duration) float64 { return float64(b.data.bytes) / 1e6 / took.Seconds() }

	res := &profileResult{}
	res.export, err = profiled(filepath.Join(b.o.pprofDir, "export"), func() error {
		_, err := elink.Export(ctx, cfg, lc, elink.ExportOptions{Out: out, Signer: signer, Recipients: recipients, ChunkSize: lc.Bundle.ChunkSize})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("profile export: %w", err)
	}
	fmt.Fprintf(os.Stderr, "profiled export in-process: %.2f s (%.1f MB/s)\n", res.export.Seconds(), rate(res.export))
	var began, verified time.Time
	res.imp, err = profiled(filepath.Join(b.o.pprofDir, "import"), func() error {
		began = time.Now()
		_, err := elink.Import(ctx, cfg, lc, []string{out}, elink.ImportOptions{
			Trusted: trusted, Identities: identities,
			// Writing is called every 200 ms once the bundle is verified
			// and the link that writes it runs.
			Writing: func(elink.Status) {
				if verified.IsZero() {
					verified = time.Now()
				}
			},
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("profile import: %w", err)
	}
	if !verified.IsZero() {
		res.verify = verified.Sub(began)
	}
	fmt.Fprintf(os.Stderr, "profiled import in-process: %.2f s (%.1f MB/s), verified after %.2f s; profiles in %s\n",
		res.imp.Seconds(), rate(res.imp), res.verify.Seconds(), b.o.pprofDir)
	if !b.o.keep {
		if err := os.RemoveAll(out); err != nil {
			return nil, err
		}
	}
	check, err := b.check(ctx, l, want)
	if err != nil {
		return nil, err
	}
	if check != "ok" {
		return nil, fmt.Errorf("profiled import: %w: %s", errCheck, check)
	}
	return res, nil
}

// profileResult is what the profiled export and import took in-process,
// and how long the import took to verify the bundle (to within 200 ms, and
// with the profiles' own cost).
type profileResult struct {
	export, imp, verify time.Duration
}

// profiled runs f under the CPU profiler, writing base.cpu.pprof, and
// heap profiles before f (base.heap-before.pprof), at the largest heap in
// use while it runs (base.peak-heap.pprof) and after it (base.heap.pprof).
func profiled(base string, f func() error) (took time.Duration, err error) {
	runtime.GC()
	if err := writeHeap(base + ".heap-before.pprof"); err != nil {
		return 0, err
	}
	cpu, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return 0, fmt.Errorf("create cpu profile: %w", err)
	}
	defer cpu.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return 0, fmt.Errorf("start cpu profile: %w", err)
	}
	done := make(chan struct{})
	var (
		wg      sync.WaitGroup
		peakErr error
	)
	wg.Go(func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak && peakErr == nil {
				peak = v
				peakErr = writeHeap(base + ".peak-heap.pprof")
			}
		}
	})
	began := time.Now()
	err = f()
	took = time.Since(began)
	close(done)
	wg.Wait()
	pprof.StopCPUProfile()
	if err != nil {
		return took, err
	}
	if peakErr != nil {
		return took, peakErr
	}
	return took, writeHeap(base + ".heap.pprof")
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return fmt.Errorf("write heap profile: %w", err)
	}
	return f.Close()
}
