package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/tidwall/buntdb"
)

// The engine benchmarks compare livekv with buntdb in memory, side by side
// in one run: go test -bench . -benchtime 1x ... (see docs/benchmarks.md).

const numKeys = 1_000_000

var value = string(make([]byte, 100))

func key(i int) string { return fmt.Sprintf("key:%08d", i) }

// keys returns the keys in a random order fixed by seed.
func keys(seed uint64) []string {
	k := make([]string, numKeys)
	for i := range k {
		k[i] = key(i)
	}
	r := rand.New(rand.NewPCG(seed, seed))
	r.Shuffle(len(k), func(i, j int) { k[i], k[j] = k[j], k[i] })
	return k
}

var loadOnce sync.Once
var shuffled []string

func shuffledKeys() []string {
	loadOnce.Do(func() { shuffled = keys(1) })
	return shuffled
}

type store interface {
	set(k, v string)
	get(k string) bool
	incr(k string)
	rangeN(start string, n int) int
	cas(k, v string) // read k, then replace it only if unchanged since
	close()
}

type livekv struct{ db *engine.DB }

func newLivekv(b *testing.B) store {
	db, err := engine.Open("", nil)
	if err != nil {
		b.Fatal(err)
	}
	return livekv{db}
}
func (s livekv) set(k, v string) {
	if _, err := s.db.Set(k, v, nil); err != nil {
		panic(err)
	}
}
func (s livekv) get(k string) bool { _, err := s.db.Get(k); return err == nil }
func (s livekv) incr(k string) {
	if _, err := s.db.Increment(k, 1); err != nil {
		panic(err)
	}
}
func (s livekv) rangeN(start string, n int) int {
	c := 0
	for range s.db.Range(start, "", &engine.RangeOptions{Limit: n}) {
		c++
	}
	return c
}
func (s livekv) cas(k, v string) {
	it, err := s.db.Get(k)
	if err == nil {
		_, err = s.db.CompareAndSwap(k, it.Revision, v, nil)
	}
	if err != nil {
		panic(err)
	}
}
func (s livekv) close() { s.db.Close() }

type bunt struct{ db *buntdb.DB }

func newBunt(b *testing.B) store {
	db, err := buntdb.Open(":memory:")
	if err != nil {
		b.Fatal(err)
	}
	return bunt{db}
}
func (s bunt) set(k, v string) {
	err := s.db.Update(func(tx *buntdb.Tx) error { _, _, err := tx.Set(k, v, nil); return err })
	if err != nil {
		panic(err)
	}
}
func (s bunt) get(k string) bool {
	err := s.db.View(func(tx *buntdb.Tx) error { _, err := tx.Get(k); return err })
	return err == nil
}
func (s bunt) incr(k string) {
	err := s.db.Update(func(tx *buntdb.Tx) error {
		v, err := tx.Get(k)
		n := 0
		if err == nil {
			n, err = strconv.Atoi(v)
			if err != nil {
				return err
			}
		}
		_, _, err = tx.Set(k, strconv.Itoa(n+1), nil)
		return err
	})
	if err != nil {
		panic(err)
	}
}
func (s bunt) rangeN(start string, n int) int {
	c := 0
	s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", start, func(k, v string) bool { c++; return c < n })
	})
	return c
}
func (s bunt) cas(k, v string) {
	old := ""
	err := s.db.View(func(tx *buntdb.Tx) error { var err error; old, err = tx.Get(k); return err })
	if err == nil {
		err = s.db.Update(func(tx *buntdb.Tx) error {
			cur, err := tx.Get(k)
			if err != nil || cur != old {
				return errors.New("conflict")
			}
			_, _, err = tx.Set(k, v, nil)
			return err
		})
	}
	if err != nil {
		panic(err)
	}
}
func (s bunt) close() { s.db.Close() }

var peers = []struct {
	name string
	open func(b *testing.B) store
}{{"livekv", newLivekv}, {"buntdb", newBunt}}

func loaded(b *testing.B, open func(*testing.B) store) store {
	s := open(b)
	for _, k := range shuffledKeys() {
		s.set(k, value)
	}
	return s
}

// BenchmarkInsert inserts the keys in random order into an empty store; one
// op is one insert.
func BenchmarkInsert(b *testing.B) {
	ks := shuffledKeys()
	for _, p := range peers {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			s := p.open(b)
			defer s.close()
			for i := 0; b.Loop(); i++ {
				if i == len(ks) {
					b.StopTimer()
					s.close()
					s = p.open(b)
					i = 0
					b.StartTimer()
				}
				s.set(ks[i], value)
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	ks := shuffledKeys()
	for _, p := range peers {
		s := loaded(b, p.open)
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", p.name, par), func(b *testing.B) {
				b.ReportAllocs()
				parallel(b, par, func(r *rand.Rand) {
					if !s.get(ks[r.IntN(len(ks))]) {
						panic("missing key")
					}
				})
			})
		}
		s.close()
	}
}

// parallel makes b.N calls of op, spread over exactly goroutines
// goroutines, which take the calls in chunks.
func parallel(b *testing.B, goroutines int, op func(r *rand.Rand)) {
	const chunk = 256
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g)+1, 7))
			for {
				end := next.Add(chunk)
				start := end - chunk
				if start >= int64(b.N) {
					return
				}
				for i := start; i < min(end, int64(b.N)); i++ {
					op(r)
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRange1000(b *testing.B) {
	for _, p := range peers {
		s := loaded(b, p.open)
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			r := rand.New(rand.NewPCG(2, 2))
			for b.Loop() {
				if n := s.rangeN(key(r.IntN(numKeys-1000)), 1000); n != 1000 {
					panic(n)
				}
			}
		})
		s.close()
	}
}

// BenchmarkCompareAndSwap reads a random key and replaces its value only if
// it has not changed since (livekv compares revisions, buntdb values).
func BenchmarkCompareAndSwap(b *testing.B) {
	randomKeyOps(b, true, 4, func(s store, k string) { s.cas(k, value) })
}

// BenchmarkIncrement increments random keys of an empty store.
func BenchmarkIncrement(b *testing.B) {
	randomKeyOps(b, false, 3, func(s store, k string) { s.incr(k) })
}

// BenchmarkSet overwrites random keys of a store loaded with 1M keys.
func BenchmarkSet(b *testing.B) {
	randomKeyOps(b, true, 4, func(s store, k string) { s.set(k, value) })
}

// randomKeyOps runs op on random keys of each peer's store, loaded with
// the 1M keys first if load.
func randomKeyOps(b *testing.B, load bool, seed uint64, op func(s store, key string)) {
	ks := shuffledKeys()
	for _, p := range peers {
		var s store
		if load {
			s = loaded(b, p.open)
		} else {
			s = p.open(b)
		}
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			r := rand.New(rand.NewPCG(seed, seed))
			for b.Loop() {
				op(s, ks[r.IntN(len(ks))])
			}
		})
		s.close()
	}
}
