package engine_test

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/vfs"
	"github.com/stretchr/testify/require"
)

var linearOps = flag.Int("linearizable.ops", 240, "operations per client in each linearizability run")

// TestDB_Linearizable runs clients that get, set, compare-and-swap, patch,
// increment and delete a few keys at once, records when each call began
// and returned and what it answered, and checks with porcupine that some
// order of the calls, each taking effect between its call and its return,
// explains every answer. On disk the log's fsyncs are slowed so that
// writes wait for the disk long enough for others to act meanwhile, and
// the database is closed and reopened at random moments.
func TestDB_Linearizable(t *testing.T) {
	for _, disk := range []bool{false, true} {
		for seed := uint64(1); seed <= 3; seed++ {
			name := fmt.Sprintf("memory/seed=%d", seed)
			if disk {
				name = fmt.Sprintf("disk/seed=%d", seed)
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				history := runClients(t, seed, disk)
				res, info := porcupine.CheckOperationsVerbose(kvModel, history, time.Minute)
				if res != porcupine.Ok {
					t.Logf("seed %d: %d operations", seed, len(history))
					explain(t, name, info)
					t.Fatalf("the history is %s, not linearizable (replay: -run 'TestDB_Linearizable/%s')", res, name)
				}
			})
		}
	}
}

// A linearizable history of one key, modelled.
type (
	kvInput struct {
		op    string // get, txget, set, cas, patch, incr, del
		key   string
		value string
		rev   int64 // cas: the expected revision
		delta int64
	}
	kvOutput struct {
		err   string // "", "notfound", "conflict", "notinteger"
		value string
		rev   int64 // the revision the call returned: the item's, or the one it committed at
		n     int64 // incr's result
	}
	// kvState is one key: its value, if it exists, and the revision of
	// its last change (the deletion's, if it was deleted).
	kvState struct {
		exists bool
		value  string
		rev    int64
	}
)

var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(kvInput).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(st, in, out any) (bool, any) {
		return kvStep(st.(kvState), in.(kvInput), out.(kvOutput))
	},
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%+v -> %+v", in, out)
	},
	DescribeState: func(st any) string { return fmt.Sprintf("%+v", st) },
}

func kvStep(s kvState, in kvInput, out kvOutput) (bool, any) {
	// written is the state after a write that returned revision r: a later
	// one than the key's.
	written := func(exists bool, value string) (bool, any) {
		if out.err != "" || out.rev <= s.rev {
			return false, s
		}
		return true, kvState{exists: exists, value: value, rev: out.rev}
	}
	switch in.op {
	case "get", "txget":
		if !s.exists {
			return out.err == "notfound", s
		}
		return out.err == "" && out.value == s.value && out.rev == s.rev, s
	case "set":
		return written(true, in.value)
	case "patch":
		v := in.value
		if s.exists {
			v = s.value + in.value
		}
		if out.value != v {
			return false, s
		}
		return written(true, v)
	case "cas":
		match := in.rev == 0 && !s.exists || in.rev != 0 && s.exists && s.rev == in.rev
		if out.err == "conflict" {
			return !match, s
		}
		if !match {
			return false, s
		}
		return written(true, in.value)
	case "incr":
		n := int64(0)
		if s.exists {
			var err error
			if n, err = strconv.ParseInt(s.value, 10, 64); err != nil {
				return out.err == "notinteger", s
			}
		}
		n += in.delta
		if out.n != n {
			return false, s
		}
		return written(true, strconv.FormatInt(n, 10))
	case "del":
		if !s.exists {
			return out.err == "notfound", s
		}
		return written(false, "")
	}
	panic("unknown op " + in.op)
}

// slowSyncFS makes every fsync take a while, as a real disk's does, so
// that writes wait for their sync long enough for other callers to act.
type slowSyncFS struct{ vfs.FS }

func (f slowSyncFS) Create(name string) (vfs.File, error) {
	h, err := f.FS.Create(name)
	return slowSyncFile{h}, err
}

func (f slowSyncFS) OpenAppend(name string) (vfs.File, error) {
	h, err := f.FS.OpenAppend(name)
	return slowSyncFile{h}, err
}

type slowSyncFile struct{ vfs.File }

func (f slowSyncFile) Sync() error {
	time.Sleep(time.Duration(200+rand.IntN(800)) * time.Microsecond)
	return f.File.Sync()
}

// runClients runs the clients and returns the history they recorded.
func runClients(t *testing.T, seed uint64, disk bool) []porcupine.Operation {
	const clients = 8
	keys := []string{"a", "b", "c"}
	o := &engine.Options{SweepInterval: -1, CheckpointBytes: 4 << 10, SegmentSize: 2 << 10}
	dir := ""
	if disk {
		o.FS = slowSyncFS{vfs.NewMemFS()}
		dir = "db"
	}
	db, err := engine.Open(dir, o)
	require.NoError(t, err)

	// Every call holds mu to read; a reopen holds it to write, so that a
	// call never meets a closed DB (which would answer ErrClosed).
	var mu sync.RWMutex
	cur := db
	begin := time.Now()
	clock := func() int64 { return int64(time.Since(begin)) }

	var (
		wg      sync.WaitGroup
		hmu     sync.Mutex
		history []porcupine.Operation
		reopens atomic.Int64
		running atomic.Int64
	)
	running.Store(clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			r := rand.New(rand.NewPCG(seed, uint64(c)))
			seen := map[string]int64{} // the newest revision this client saw of each key
			for i := range *linearOps {
				in := randomInput(r, keys, seen, c, i)
				mu.RLock()
				call := clock()
				out, err := apply(cur, in)
				ret := clock()
				mu.RUnlock()
				if err != nil {
					t.Errorf("client %d: %+v: %v", c, in, err)
					return
				}
				if out.rev > 0 {
					seen[in.key] = out.rev
				}
				hmu.Lock()
				history = append(history, porcupine.Operation{ClientId: c, Input: in, Output: out, Call: call, Return: ret})
				hmu.Unlock()
			}
		}()
	}
	if disk {
		r := rand.New(rand.NewPCG(seed, 99))
		for running.Load() > 0 {
			time.Sleep(time.Duration(5+r.IntN(30)) * time.Millisecond)
			mu.Lock()
			require.NoError(t, cur.Close())
			cur, err = engine.Open(dir, o)
			mu.Unlock()
			require.NoError(t, err)
			reopens.Add(1)
		}
	}
	wg.Wait()
	require.NoError(t, cur.Close())
	if disk {
		t.Logf("%d reopens", reopens.Load())
	}
	return history
}

func randomInput(r *rand.Rand, keys []string, seen map[string]int64, client, i int) kvInput {
	in := kvInput{key: keys[r.IntN(len(keys))]}
	unique := fmt.Sprintf("c%di%d", client, i)
	switch p := r.IntN(100); {
	case p < 25:
		in.op = "get"
	case p < 30:
		in.op = "txget"
	case p < 45:
		in.op = "set"
		in.value = unique
		if r.IntN(2) == 0 {
			in.value = strconv.Itoa(r.IntN(100))
		}
	case p < 65:
		in.op, in.value, in.rev = "cas", unique, seen[in.key]
		if r.IntN(4) == 0 {
			in.rev = 0
		}
	case p < 70:
		in.op, in.value = "patch", "+"
	case p < 85:
		in.op, in.delta = "incr", int64(1+r.IntN(5))
	default:
		in.op = "del"
	}
	return in
}

// apply makes one call; an error it returns is one the model has no
// answer for, and fails the test.
func apply(db *engine.DB, in kvInput) (kvOutput, error) {
	var (
		out kvOutput
		it  engine.Item
		err error
	)
	switch in.op {
	case "get":
		it, err = db.Get(in.key)
	case "txget":
		_, err = db.Update(func(tx *engine.Tx) error {
			it, err = tx.Get(in.key)
			return err
		})
	case "set":
		it, err = db.Set(in.key, in.value, nil)
	case "cas":
		it, err = db.CompareAndSwap(in.key, in.rev, in.value, nil)
	case "patch":
		it, err = db.Patch(in.key, in.value)
	case "incr":
		out.n, it.Revision, err = db.Increment(in.key, in.delta)
	case "del":
		it.Revision, err = db.Delete(in.key)
	}
	switch {
	case errors.Is(err, engine.ErrNotFound):
		out.err = "notfound"
	case errors.Is(err, engine.ErrConflict):
		out.err = "conflict"
	case errors.Is(err, engine.ErrNotInteger):
		out.err = "notinteger"
	case err != nil:
		return out, err
	default:
		out.value, out.rev = it.Value, it.Revision
	}
	return out, nil
}

// explain logs, for each key whose history failed, the end of the longest
// prefix porcupine could explain, and writes its visualization of the whole
// history to a file.
func explain(t *testing.T, name string, info porcupine.LinearizationInfo) {
	for p, lins := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, l := range lins {
			if len(l) > len(longest) {
				longest = l
			}
		}
		for _, op := range longest[max(0, len(longest)-8):] {
			t.Logf("key %d: client %d: %s", p, op.ClientId, kvModel.DescribeOperation(op.Input, op.Output))
		}
	}
	path := filepath.Join(os.TempDir(), "livekv-"+strings.ReplaceAll(name, "/", "-")+".html")
	if err := porcupine.VisualizePath(kvModel, info, path); err == nil {
		t.Logf("the history, drawn: %s", path)
	}
}
