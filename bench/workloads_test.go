package main

import (
	"bytes"
	"compress/flate"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// closeFails is a store whose Close reports a failure, as an engine
// whose last flush or fsync failed would.
type closeFails struct{ KV }

var errCloseFailed = errors.New("close failed")

func (c closeFails) Close() error {
	if err := c.KV.Close(); err != nil {
		return err
	}
	return errCloseFailed
}

// TestWorkloads_CloseError: a store's failed Close fails the workload, as
// a failed write does, rather than leaving a figure for it.
func TestWorkloads_CloseError(t *testing.T) {
	p := peers[0]
	p.name = "closefails"
	inner := p.open
	p.open = func(dir string, durable bool) (KV, error) {
		kv, err := inner(dir, durable)
		if err != nil {
			return nil, err
		}
		return closeFails{kv}, nil
	}
	cfg := quickConfig
	cfg.keys, cfg.ops, cfg.durableIn = 2000, 2000, 20*time.Millisecond
	cfg.peers = []peer{p}
	for _, w := range workloads {
		switch w.name {
		case "insert", "get", "range", "increment", "durable", "recovery":
			// memory measures in a child process, which knows only the
			// suite's engines: its run is below.
		default:
			continue
		}
		_, err := w.run(cfg, func(string) {})
		if !errors.Is(err, errCloseFailed) {
			t.Errorf("%s: %v, want the Close error", w.name, err)
		} else if !strings.Contains(err.Error(), "closefails") {
			t.Errorf("%s: %v does not name the engine", w.name, err)
		}
	}
	if _, err := memoryRun(p, shuffled(cfg.keys, 1)); !errors.Is(err, errCloseFailed) {
		t.Errorf("memory: %v, want the Close error", err)
	}
}

// TestMemory_Child: the memory workload measures each run in a process
// of its own, which reports its figure, and fails with the child's error.
func TestMemory_Child(t *testing.T) {
	cfg := quickConfig
	cfg.keys = 2000
	cfg.peers = peers[:1]
	res, err := runMemory(cfg, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Engine != "livekv" || !(res[0].Median > 0) {
		t.Errorf("memory results %+v", res)
	}
	if _, err := memoryInChild(peer{name: "nosuch"}, 10); err == nil || !strings.Contains(err.Error(), "no engine") {
		t.Errorf("a child for no engine: %v", err)
	}
}

// TestRecovery_Child: the recovery workload opens each store in a
// process of its own, which reports its figure, and fails with the
// child's error: an unknown engine, or a store without the key.
func TestRecovery_Child(t *testing.T) {
	cfg := quickConfig
	cfg.keys = 2000
	cfg.peers = peers[:1]
	res, err := runRecovery(cfg, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Engine != "livekv" || !(res[0].Median > 0) {
		t.Errorf("recovery results %+v", res)
	}
	if _, err := recoveryInChild(peer{name: "nosuch"}, t.TempDir(), "k"); err == nil || !strings.Contains(err.Error(), "no engine") {
		t.Errorf("a child for no engine: %v", err)
	}
	if _, err := recoveryInChild(peers[0], t.TempDir(), keyOf(1)); err == nil || !strings.Contains(err.Error(), "after reopening") {
		t.Errorf("a child reopening an empty store: %v", err)
	}
}

// TestRange_FewKeys: the range workload runs with as few keys as one
// range reads, every key in reach of a range, and refuses fewer, before
// loading anything, rather than panicking.
func TestRange_FewKeys(t *testing.T) {
	cfg := quickConfig
	cfg.peers = peers[:1]
	cfg.ops = 200
	cfg.keys = 1000
	res, err := runRange(cfg, func(string) {})
	if err != nil || len(res) != 1 || !(res[0].Median > 0) {
		t.Errorf("1000 keys: %+v, %v", res, err)
	}
	cfg.keys = 999
	if _, err := runRange(cfg, func(string) {}); err == nil || !strings.Contains(err.Error(), "at least 1000 keys") {
		t.Errorf("999 keys: %v, want a refusal", err)
	}
}

// recordKV keeps what is set in it.
type recordKV struct {
	KV
	set map[string]string
}

func (r recordKV) Set(k, v string) error { r.set[k] = v; return nil }

// TestLoad_Incompressible: the values the workloads load do not compress
// as a store that compresses its blocks (pebble and badger, Snappy by
// default) would find them, keys in order: otherwise those engines store
// a fraction of the bytes the others do, and write and read less.
func TestLoad_Incompressible(t *testing.T) {
	keys := shuffled(20_000, 1)
	rec := recordKV{set: map[string]string{}}
	if err := load(rec, keys); err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(rec.set)) {
		if len(rec.set[k]) != 100 {
			t.Fatalf("%s: a value of %d bytes", k, len(rec.set[k]))
		}
		raw.WriteString(rec.set[k])
	}
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestCompression)
	w.Write(raw.Bytes())
	w.Close()
	// Hexadecimal digits carry 4 bits a byte: an entropy coder takes them
	// to about half, and no further unless values repeat.
	if ratio := float64(z.Len()) / float64(raw.Len()); ratio < 0.45 {
		t.Errorf("the loaded values compress to %.1f%% of their size", 100*ratio)
	}
	// Every engine is given the same values for the same keys.
	again := recordKV{set: map[string]string{}}
	if err := load(again, keys); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(rec.set, again.set) {
		t.Error("two loads of the same keys set different values")
	}
}

// getFails is a store whose Gets fail after the first thousand (the
// workload's 1-goroutine case, with 1,000 ops), with errors of two types
// in turn, as an engine's errors come from more than one place.
type getFails struct {
	KV
	n *atomic.Int64
}

type otherError struct{}

func (otherError) Error() string { return "another failure" }

func (g getFails) Get(k string) error {
	n := g.n.Add(1)
	if n <= 1000 {
		return g.KV.Get(k)
	}
	if n%2 == 0 {
		return otherError{}
	}
	return errors.New("get failed")
}

// TestGet_Errors: the get workload fails with a Get's error whichever of
// its goroutines fail and however their errors are typed.
func TestGet_Errors(t *testing.T) {
	p := peers[0]
	inner := p.open
	p.open = func(dir string, durable bool) (KV, error) {
		kv, err := inner(dir, durable)
		return getFails{kv, new(atomic.Int64)}, err
	}
	cfg := quickConfig
	cfg.keys, cfg.ops = 100, 1000
	cfg.peers = []peer{p}
	_, err := runGet(cfg, func(string) {})
	var other otherError
	if err == nil || !strings.Contains(err.Error(), "get failed") && !errors.As(err, &other) {
		t.Errorf("get: %v, want a Get's error", err)
	}
}
