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
	"github.com/livekv/livekv/internal/kvmodel"
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
				res, info := porcupine.CheckOperationsVerbose(kvmodel.Model, history, kvmodel.CheckBudget)
				if res != porcupine.Ok {
					t.Logf("seed %d: %d operations", seed, len(history))
					explain(t, name, info)
					t.Fatalf("the history is %s, not linearizable (replay: -run 'TestDB_Linearizable/%s')", res, name)
				}
			})
		}
	}
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
				if out.Rev > 0 {
					seen[in.Key] = out.Rev
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

func randomInput(r *rand.Rand, keys []string, seen map[string]int64, client, i int) kvmodel.Input {
	in := kvmodel.Input{Key: keys[r.IntN(len(keys))]}
	unique := fmt.Sprintf("c%di%d", client, i)
	switch p := r.IntN(100); {
	case p < 25:
		in.Op = "get"
	case p < 30:
		in.Op = "txget"
	case p < 45:
		in.Op = "set"
		in.Value = unique
		if r.IntN(2) == 0 {
			in.Value = strconv.Itoa(r.IntN(100))
		}
	case p < 65:
		in.Op, in.Value, in.Rev = "cas", unique, seen[in.Key]
		if r.IntN(4) == 0 {
			in.Rev = 0
		}
	case p < 70:
		in.Op, in.Value = "patch", "+"
	case p < 85:
		in.Op, in.Delta = "incr", int64(1+r.IntN(5))
	default:
		in.Op = "del"
	}
	return in
}

// apply makes one call; an error it returns is one the model has no
// answer for, and fails the test.
func apply(db *engine.DB, in kvmodel.Input) (kvmodel.Output, error) {
	var (
		out kvmodel.Output
		it  engine.Item
		err error
	)
	switch in.Op {
	case "get":
		it, err = db.Get(in.Key)
	case "txget":
		_, err = db.Update(func(tx *engine.Tx) error {
			it, err = tx.Get(in.Key)
			return err
		})
	case "set":
		it, err = db.Set(in.Key, in.Value, nil)
	case "cas":
		it, err = db.CompareAndSwap(in.Key, in.Rev, in.Value, nil)
	case "patch":
		it, err = db.Patch(in.Key, in.Value)
	case "incr":
		out.N, it.Revision, err = db.Increment(in.Key, in.Delta)
	case "del":
		it.Revision, err = db.Delete(in.Key)
	}
	switch {
	case errors.Is(err, engine.ErrNotFound):
		out.Err = "notfound"
	case errors.Is(err, engine.ErrConflict):
		out.Err = "conflict"
	case errors.Is(err, engine.ErrNotInteger):
		out.Err = "notinteger"
	case err != nil:
		return out, err
	default:
		out.Value, out.Rev = it.Value, it.Revision
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
			t.Logf("key %d: client %d: %s", p, op.ClientId, kvmodel.Model.DescribeOperation(op.Input, op.Output))
		}
	}
	path := filepath.Join(os.TempDir(), "livekv-"+strings.ReplaceAll(name, "/", "-")+".html")
	if err := porcupine.VisualizePath(kvmodel.Model, info, path); err == nil {
		t.Logf("the history, drawn: %s", path)
	}
}
