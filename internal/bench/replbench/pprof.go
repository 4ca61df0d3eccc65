package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/edgelink/edgelink/internal/config"
	"github.com/edgelink/edgelink/internal/link"
)

// profileEdgelink copies the dataset once more per delivery mode with the
// link engine running inside this process, under the CPU profiler, and
// writes <profile>-<mode>.cpu.pprof and .heap.pprof into the pprof
// directory. These copies are not part of the figures: they share the
// process with the bench.
func (b *bench) profileEdgelink(ctx context.Context, d dataset, topic string) error {
	if err := os.MkdirAll(b.o.pprofDir, 0o755); err != nil {
		return fmt.Errorf("create pprof directory: %w", err)
	}
	for _, mode := range []struct{ delivery, short string }{{"exactly-once", "eos"}, {"at-least-once", "alo"}} {
		name := fmt.Sprintf("pprof-%s-%s", mode.short, d.profile.name)
		cfg, err := config.Parse(name+".yaml", []byte(linkConfig(b.src.Bootstrap(), b.dst.Bootstrap(), name, mode.delivery, "", "127.0.0.1:0", 0, append([]string{topic}, b.idle...)...)))
		if err != nil {
			return fmt.Errorf("parse link config: %w", err)
		}
		logger := slog.New(slog.NewTextHandler(b.o.progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
		l := link.New(cfg, cfg.Links[0], link.Options{}, logger)
		base := filepath.Join(b.o.pprofDir, d.profile.name+"-"+mode.short)
		took, err := profileCopy(ctx, l, newWatcher(b.dstCl, name+"."+topic, d.perPartition()), base)
		if err != nil {
			return fmt.Errorf("profile %s: %w", name, err)
		}
		fmt.Fprintf(b.o.progress, "profiled %s: %s in-process (%.1f MB/s); %s.{cpu,heap}.pprof\n",
			name, took.Round(time.Millisecond), float64(d.bytes())/1e6/took.Seconds(), base)
		if err := b.cleanup(ctx, topic); err != nil {
			return err
		}
	}
	return nil
}

// profileCopy runs l under the CPU profiler until w sees the copy complete,
// then writes a heap profile (allocations since start included). Meanwhile
// it keeps the heap profile of the largest heap seen (sampled every second)
// as .peak-heap.pprof.
func profileCopy(ctx context.Context, l *link.Link, w *watcher, base string) (took time.Duration, err error) {
	cpu, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return 0, fmt.Errorf("create cpu profile: %w", err)
	}
	defer cpu.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return 0, fmt.Errorf("start cpu profile: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- l.Run(runCtx) }()
	defer func() {
		cancel()
		if rerr := <-done; rerr != nil && err == nil {
			err = fmt.Errorf("link: %w", rerr)
		}
	}()
	var peak uint64
	nextPeek := time.Now()
	for {
		if time.Now().After(nextPeek) {
			nextPeek = time.Now().Add(time.Second)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak {
				peak = ms.HeapInuse
				if err := writeHeap(base + ".peak-heap.pprof"); err != nil {
					pprof.StopCPUProfile()
					return 0, err
				}
			}
		}
		_, complete, err := w.poll(ctx)
		if err != nil {
			pprof.StopCPUProfile()
			return 0, err
		}
		if complete {
			break
		}
		select {
		case err := <-done:
			pprof.StopCPUProfile()
			done <- err
			return 0, fmt.Errorf("link stopped early: %w", err)
		case <-ctx.Done():
			pprof.StopCPUProfile()
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	took = time.Since(began)
	pprof.StopCPUProfile()
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
