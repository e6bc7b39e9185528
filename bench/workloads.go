package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// value100 is the value of the durable writes of the cluster workloads
// (livekv on both sides, neither of which compresses) and of the raw
// fsync rate.
var value100 = strings.Repeat("v", 100)

// valueCount is how many values loadValues makes: 6.5 MB of them, so that
// in a store's key order, where compression looks for repeats, values
// repeat about once in 65,536.
const valueCount = 1 << 16

// loadValues returns the 100-byte values the peers' workloads write:
// random hexadecimal digits, as the memory workload's, the same in every
// run. A store that compresses its blocks (pebble and badger, with
// Snappy by default) thus keeps and moves as many bytes of them as one
// that does not, where a value of one repeated letter shrank to almost
// nothing in their tables.
var loadValues = sync.OnceValue(func() []string {
	r := rand.New(rand.NewPCG(8, 8))
	vals := make([]string, valueCount)
	var buf []byte
	for i := range vals {
		buf = buf[:0]
		for len(buf) < 100 {
			buf = fmt.Appendf(buf, "%016x", r.Uint64())
		}
		vals[i] = string(buf[:100])
	}
	return vals
})

// valueAt is the i-th value the workloads write.
func valueAt(i int) string {
	v := loadValues()
	return v[i%len(v)]
}

func keyOf(i int) string { return fmt.Sprintf("key:%08d", i) }

// shuffled returns the keys 0..n-1 in an order fixed by seed.
func shuffled(n int, seed uint64) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = keyOf(i)
	}
	r := rand.New(rand.NewPCG(seed, seed))
	r.Shuffle(n, func(i, j int) { k[i], k[j] = k[j], k[i] })
	return k
}

// openFresh opens a peer in memory, or in a new temporary folder if it
// needs one or durable is asked; cleanup closes it and removes the folder,
// and returns Close's error, which the caller must not drop: a store that
// fails to close may not have done what its figure says.
func openFresh(p peer, durable bool) (KV, func() error, error) {
	dir := ""
	if durable || p.name == "bbolt" {
		d, err := os.MkdirTemp("", "livekv-bench-")
		if err != nil {
			return nil, nil, err
		}
		dir = d
	}
	kv, err := p.open(dir, durable)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return kv, func() error {
		err := kv.Close()
		if dir != "" {
			os.RemoveAll(dir)
		}
		if err != nil {
			return fmt.Errorf("closing: %w", err)
		}
		return nil
	}, nil
}

// load sets each of keys, in their order, to a value: the i-th key to
// valueAt(i), so every engine is given the same value for a key.
func load(kv KV, keys []string) error {
	loadValues() // made before any clock starts
	for i, k := range keys {
		if err := kv.Set(k, valueAt(i)); err != nil {
			return err
		}
	}
	return nil
}

// perPeer runs fn for each of ps cfg.runs times and collects one result
// per case that fn reports. A collection runs before each run, so that no
// run starts with the heap that the one before it left: a store closed
// at the end of a run is garbage that the next run's allocations would
// otherwise sweep, inside its clock, and that run was another engine's
// when an engine's first run follows the last of the engine before it.
func perPeer(cfg config, progress func(string), ps []peer, workload, unit string, higher bool,
	fn func(p peer) (map[string]float64, error)) ([]Result, error) {
	var results []Result
	for _, p := range ps {
		runs := map[string][]float64{}
		var order []string
		for r := 0; r < cfg.runs; r++ {
			progress(fmt.Sprintf("%s, run %d of %d", p.name, r+1, cfg.runs))
			runtime.GC()
			got, err := fn(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			for c, v := range got {
				if _, ok := runs[c]; !ok {
					order = append(order, c)
				}
				runs[c] = append(runs[c], v)
			}
		}
		sortCases(order)
		for _, c := range order {
			results = append(results, newResult(workload, c, p.name, unit, higher, runs[c]))
		}
	}
	return results, nil
}

// sortCases orders cases such as "goroutines=8" after "goroutines=1": by
// the number, then the text.
func sortCases(c []string) {
	num := func(s string) int {
		_, v, _ := strings.Cut(s, "=")
		n, _ := strconv.Atoi(v)
		return n
	}
	slices.SortFunc(c, func(a, b string) int { return cmp.Or(cmp.Compare(num(a), num(b)), strings.Compare(a, b)) })
}

func opsPerSec(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

func runInsert(cfg config, progress func(string)) ([]Result, error) {
	keys := shuffled(cfg.keys, 1)
	return perPeer(cfg, progress, cfg.engines(), "insert", "ops/s", true, func(p peer) (_ map[string]float64, err error) {
		kv, done, err := openFresh(p, false)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, done()) }()
		start := time.Now()
		if err := load(kv, keys); err != nil {
			return nil, err
		}
		return map[string]float64{"": opsPerSec(len(keys), time.Since(start))}, nil
	})
}

// withLoaded opens each peer and loads the keys once for all its runs. A
// collection runs after the load and before the runs, as Go's benchmark
// harness does before each benchmark: otherwise the first runs share the
// machine with the marking of everything just loaded, more or less of it
// from one run of the suite to the next (docs/benchmarks.md).
func withLoaded(cfg config, progress func(string), workload, unit string, higher bool,
	fn func(kv KV, keys []string) (map[string]float64, error)) ([]Result, error) {
	keys := shuffled(cfg.keys, 1)
	var results []Result
	for _, p := range cfg.engines() {
		progress(p.name + ", loading")
		kv, done, err := openFresh(p, false)
		if err != nil {
			return nil, err
		}
		if err := load(kv, keys); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, errors.Join(err, done()))
		}
		runtime.GC()
		r, err := perPeer(cfg, progress, []peer{p}, workload, unit, higher, func(peer) (map[string]float64, error) { return fn(kv, keys) })
		if cerr := done(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", p.name, cerr))
		}
		if err != nil {
			return nil, err
		}
		results = append(results, r...)
	}
	return results, nil
}

func runGet(cfg config, progress func(string)) ([]Result, error) {
	return withLoaded(cfg, progress, "get", "ops/s", true, func(kv KV, keys []string) (map[string]float64, error) {
		out := map[string]float64{}
		for _, g := range []int{1, 8} {
			var failed atomic.Pointer[error] // the first Get's error, of any type
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for w := 0; w < g; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 2))
					for next.Add(1) <= int64(cfg.ops) {
						if err := kv.Get(keys[r.IntN(len(keys))]); err != nil {
							failed.CompareAndSwap(nil, &err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := failed.Load(); err != nil {
				return nil, *err
			}
			out[fmt.Sprintf("goroutines=%d", g)] = opsPerSec(cfg.ops, time.Since(start))
		}
		return out, nil
	})
}

// rangeLen is how many keys a range of the range workload reads.
const rangeLen = 1000

func runRange(cfg config, progress func(string)) ([]Result, error) {
	if cfg.keys < rangeLen {
		return nil, fmt.Errorf("a %d-key range needs at least %d keys; -keys is %d", rangeLen, rangeLen, cfg.keys)
	}
	return withLoaded(cfg, progress, "range", "ranges/s", true, func(kv KV, keys []string) (map[string]float64, error) {
		// 10,000 ranges in a full run (10M keys read, about half a second
		// for livekv and buntdb): with a tenth of that, a run took some
		// 45 ms, and one pause of the shared machine moved a figure by a
		// fifth.
		n := max(cfg.ops/100, 200)
		r := rand.New(rand.NewPCG(3, 3))
		start := time.Now()
		for i := 0; i < n; i++ {
			// Any start that leaves rangeLen keys from it to the last.
			got, err := kv.Range(keyOf(r.IntN(len(keys)-rangeLen+1)), rangeLen)
			if err != nil {
				return nil, err
			}
			if got != rangeLen {
				return nil, fmt.Errorf("a %d-key range returned %d", rangeLen, got)
			}
		}
		return map[string]float64{"": opsPerSec(n, time.Since(start))}, nil
	})
}

func runIncrement(cfg config, progress func(string)) ([]Result, error) {
	keys := shuffled(cfg.keys, 1)
	return perPeer(cfg, progress, cfg.engines(), "increment", "ops/s", true, func(p peer) (_ map[string]float64, err error) {
		kv, done, err := openFresh(p, false)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, done()) }()
		r := rand.New(rand.NewPCG(4, 4))
		start := time.Now()
		for i := 0; i < cfg.ops; i++ {
			if err := kv.Incr(keys[r.IntN(len(keys))]); err != nil {
				return nil, err
			}
		}
		return map[string]float64{"": opsPerSec(cfg.ops, time.Since(start))}, nil
	})
}

func runDurable(cfg config, progress func(string)) ([]Result, error) {
	var results []Result
	// The raw rate: a 100-byte write and an fsync, nothing else.
	var raw []float64
	for r := 0; r < cfg.runs; r++ {
		progress(fmt.Sprintf("raw fsync, run %d of %d", r+1, cfg.runs))
		v, err := rawFsync(cfg.durableIn)
		if err != nil {
			return nil, err
		}
		raw = append(raw, v)
	}
	for _, w := range []int{1, 8, 64} {
		results = append(results, newResult("durable", fmt.Sprintf("writers=%d", w), "raw fsync", "writes/s", true, raw))
	}
	r, err := perPeer(cfg, progress, cfg.engines(), "durable", "writes/s", true, func(p peer) (map[string]float64, error) {
		out := map[string]float64{}
		for _, w := range []int{1, 8, 64} {
			kv, done, err := openFresh(p, true)
			if err != nil {
				return nil, err
			}
			loadValues()
			d, err := drive(w, cfg.durableIn, false, func(g int) func(int) error {
				return func(i int) error { return kv.Set(keyOf(g*1_000_000+i%100_000), valueAt(g*1_000_000+i)) }
			})
			if err = errors.Join(err, done()); err != nil {
				return nil, err
			}
			out[fmt.Sprintf("writers=%d", w)] = d.perSec
		}
		return out, nil
	})
	return append(results, r...), err
}

func rawFsync(d time.Duration) (float64, error) {
	dir, err := os.MkdirTemp("", "livekv-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "raw"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rec := []byte(value100)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := f.Write(rec); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		n++
	}
	return opsPerSec(n, time.Since(start)), nil
}

func runRecovery(cfg config, progress func(string)) ([]Result, error) {
	keys := shuffled(cfg.keys, 1)
	return perPeer(cfg, progress, cfg.engines(), "recovery", "ms", false, func(p peer) (map[string]float64, error) {
		dir, err := os.MkdirTemp("", "livekv-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		kv, err := p.open(dir, false)
		if err != nil {
			return nil, err
		}
		err = load(kv, keys)
		if cerr := kv.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		ms, err := recoveryInChild(p, dir, keys[0])
		if err != nil {
			return nil, err
		}
		return map[string]float64{"": ms}, nil
	})
}

// recoveryChildEnv, set in a child process of the recovery workload,
// names the engine, a key the store holds and the store's folder:
// "name,key,folder".
const recoveryChildEnv = "LIVEKV_BENCH_RECOVERY_CHILD"

// recoveryInChild times the opening of p's store in dir, to its first
// read of key, in a process of its own, as after a restart: in the
// process that loaded the store, the runtime kept the heap that store
// grew, and an engine rebuilding its state in memory found it ready.
func recoveryInChild(p peer, dir, key string) (float64, error) {
	return inChild(recoveryChildEnv, p.name+","+key+","+dir)
}

// recoveryChild is the child process of the recovery workload: it opens
// the store spec names (recoveryChildEnv), reads its key, and writes the
// milliseconds that took to w.
func recoveryChild(spec string, w io.Writer) (err error) {
	parts := strings.SplitN(spec, ",", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return fmt.Errorf("%s=%q: want engine,key,folder", recoveryChildEnv, spec)
	}
	p, err := peerNamed(parts[0])
	if err != nil {
		return fmt.Errorf("%s=%q: %w", recoveryChildEnv, spec, err)
	}
	start := time.Now()
	kv, err := p.open(parts[2], false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, kv.Close()) }()
	if err := kv.Get(parts[1]); err != nil {
		return fmt.Errorf("after reopening: %w", err)
	}
	d := time.Since(start)
	_, err = fmt.Fprintln(w, strconv.FormatFloat(float64(d.Microseconds())/1000, 'g', -1, 64))
	return err
}

// peerNamed returns the engine of that name.
func peerNamed(name string) (peer, error) {
	i := slices.IndexFunc(peers, func(p peer) bool { return p.name == name })
	if i < 0 {
		return peer{}, fmt.Errorf("no engine %q", name)
	}
	return peers[i], nil
}

// runChild runs this process as a child of the memory or the recovery
// workload, if its environment says it is one: it reports whether it
// was, and the run's error.
func runChild(w io.Writer) (bool, error) {
	if spec := os.Getenv(memoryChildEnv); spec != "" {
		return true, memoryChild(spec, w)
	}
	if spec := os.Getenv(recoveryChildEnv); spec != "" {
		return true, recoveryChild(spec, w)
	}
	return false, nil
}

// rss returns the process's resident memory in bytes.
func rss() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b))
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	return pages * int64(os.Getpagesize()), err
}

func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// memoryChildEnv, set in a child process of the memory workload, names
// the engine and the key count of the one run it measures: "name,keys".
const memoryChildEnv = "LIVEKV_BENCH_MEMORY_CHILD"

// runMemory measures each run in a process of its own (this program, run
// again with memoryChildEnv set), so that every run starts from the same
// fresh process: in one process, what earlier runs left resident (12 MiB
// after one run of livekv and three of pebble at 300,000 keys) raised
// the resident memory counted before each later run, and an engine that
// reused it was measured short of what it holds.
func runMemory(cfg config, progress func(string)) ([]Result, error) {
	return perPeer(cfg, progress, cfg.engines(), "memory", "bytes/key", false, func(p peer) (map[string]float64, error) {
		v, err := memoryInChild(p, cfg.keys)
		if err != nil {
			return nil, err
		}
		return map[string]float64{"": v}, nil
	})
}

// memoryInChild runs memoryRun for p and n keys in a child process and
// returns its figure. A heap limit set in this process (the memory guard,
// or GOMEMLIMIT) is the child's too.
func memoryInChild(p peer, n int) (float64, error) {
	return inChild(memoryChildEnv, fmt.Sprintf("%s,%d", p.name, n))
}

// inChild runs this program again with env set to spec, and returns the
// number the child writes. A heap limit set in this process (the memory
// guard, or GOMEMLIMIT) is the child's too.
func inChild(env, spec string) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env+"="+spec)
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMEMLIMIT=%d", limit))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("the measuring process: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("the measuring process wrote %q: %w", out, err)
	}
	return v, nil
}

// memoryChild is the child process of the memory workload: it measures
// the run spec names (memoryChildEnv) and writes its bytes per key to w.
func memoryChild(spec string, w io.Writer) error {
	name, count, _ := strings.Cut(spec, ",")
	n, err := strconv.Atoi(count)
	if err != nil || n < 1 {
		return fmt.Errorf("%s=%q: no key count", memoryChildEnv, spec)
	}
	p, err := peerNamed(name)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", memoryChildEnv, spec, err)
	}
	if err := noHugePages(); err != nil {
		return err
	}
	v, err := memoryRun(p, shuffled(n, 1))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, strconv.FormatFloat(v, 'g', -1, 64))
	return err
}

// memoryRun loads keys into a fresh store of p and returns the resident
// memory it added, per key, each reading taken after a collection.
func memoryRun(p peer, keys []string) (_ float64, err error) {
	settle()
	before, err := rss()
	if err != nil {
		return 0, err
	}
	kv, done, err := openFresh(p, false)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, done()) }()
	// Keys and values made here, each its own: an engine that keeps
	// the strings it is given pays for them, as one that copies does.
	// Random values, so that an engine that compresses gains nothing.
	r := rand.New(rand.NewPCG(6, 6))
	var buf []byte
	for _, k := range keys {
		buf = buf[:0]
		for len(buf) < 100 {
			buf = fmt.Appendf(buf, "%016x", r.Uint64())
		}
		if err := kv.Set(strings.Clone(k), string(buf[:100])); err != nil {
			return 0, err
		}
	}
	settle()
	after, err := rss()
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(len(keys)), nil
}
