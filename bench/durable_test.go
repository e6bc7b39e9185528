package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
)

// BenchmarkDurable compares durable writes, each acknowledged only once it
// is on disk, with 1, 8 and 64 concurrent writers: livekv (SyncAlways, the
// default), buntdb (SyncPolicy Always) and bbolt (one write per Update),
// beside the disk's raw rate of a 100-byte write plus fsync. It reports
// writes/s; compare within one run:
//
//	go test -run '^$' -bench Durable -benchtime 3s
func BenchmarkDurable(b *testing.B) {
	b.Run("raw-fsync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "f"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		rec := []byte(value100)
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			if _, err := f.Write(rec); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
	})
	// The disk's speed drifts over seconds, so a lone writer is also
	// compared with raw fsyncs interleaved in blocks, in one loop.
	b.Run("writers=1/livekv-vs-raw", func(b *testing.B) {
		dir := b.TempDir()
		db, err := engine.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		f, err := os.Create(filepath.Join(dir, "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		rec := []byte(value100)
		const block = 20
		var inLivekv, inRaw time.Duration
		b.ReportAllocs()
		for i := 0; i < b.N; i += block {
			n := min(block, b.N-i)
			t0 := time.Now()
			for j := 0; j < n; j++ {
				if _, err := db.Set(keyOf(i+j), value100, nil); err != nil {
					b.Fatal(err)
				}
			}
			t1 := time.Now()
			for j := 0; j < n; j++ {
				if _, err := f.Write(rec); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
			inLivekv += t1.Sub(t0)
			inRaw += time.Since(t1)
		}
		b.ReportMetric(float64(b.N)/inLivekv.Seconds(), "writes/s")
		b.ReportMetric(float64(b.N)/inRaw.Seconds(), "raw-fsyncs/s")
		b.ReportMetric(inRaw.Seconds()/inLivekv.Seconds(), "of-raw")
	})
	for _, writers := range []int{1, 8, 64} {
		for _, p := range peers[:3] { // livekv, buntdb, bbolt
			b.Run(fmt.Sprintf("writers=%d/%s", writers, p.name), func(b *testing.B) {
				kv, err := p.open(b.TempDir(), true)
				if err != nil {
					b.Fatal(err)
				}
				defer kv.Close()
				b.ReportAllocs()
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				b.ResetTimer()
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							if err := kv.Set(keyOf(int(i%100_000)), value100); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			})
		}
	}
}
