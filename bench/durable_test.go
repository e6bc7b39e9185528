package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/tidwall/buntdb"
	bolt "go.etcd.io/bbolt"
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
		rec := []byte(value)
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
	type durable struct {
		name string
		open func(b *testing.B, dir string) (set func(k string) error, close func())
	}
	engines := []durable{
		{"livekv", func(b *testing.B, dir string) (func(string) error, func()) {
			db, err := engine.Open(dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			return func(k string) error { _, err := db.Set(k, value, nil); return err }, func() { db.Close() }
		}},
		{"buntdb", func(b *testing.B, dir string) (func(string) error, func()) {
			db, err := buntdb.Open(filepath.Join(dir, "bunt.db"))
			if err != nil {
				b.Fatal(err)
			}
			if err := db.SetConfig(buntdb.Config{SyncPolicy: buntdb.Always, AutoShrinkDisabled: true}); err != nil {
				b.Fatal(err)
			}
			return func(k string) error {
				return db.Update(func(tx *buntdb.Tx) error { _, _, err := tx.Set(k, value, nil); return err })
			}, func() { db.Close() }
		}},
		{"bbolt", func(b *testing.B, dir string) (func(string) error, func()) {
			db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			bucket := []byte("kv")
			if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
				b.Fatal(err)
			}
			return func(k string) error {
				return db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(k), []byte(value)) })
			}, func() { db.Close() }
		}},
	}
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
		rec := []byte(value)
		const block = 20
		var inLivekv, inRaw time.Duration
		b.ReportAllocs()
		for i := 0; i < b.N; i += block {
			n := min(block, b.N-i)
			t0 := time.Now()
			for j := 0; j < n; j++ {
				if _, err := db.Set(key(i+j), value, nil); err != nil {
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
		for _, e := range engines {
			b.Run(fmt.Sprintf("writers=%d/%s", writers, e.name), func(b *testing.B) {
				set, closeDB := e.open(b, b.TempDir())
				defer closeDB()
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
							if err := set(key(int(i % 100_000))); err != nil {
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
