package cluster

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

var linDump = flag.String("cluster.lindump", "", "file to write a history that is not linearizable to")

// One key's history, modelled. A write whose outcome the client could
// not learn may have taken effect at any time after its call, or never;
// after it the key's revision is unknown (-1) until a read shows it.
type (
	linInput struct {
		op    string // get, set, cas, incr, del
		key   string
		value string
		rev   int64
		delta int64
	}
	linOutput struct {
		unknown bool
		err     string // "", notfound, conflict, notinteger
		value   string
		rev     int64
		n       int64
	}
	linState struct {
		exists bool
		value  string
		rev    int64
	}
)

var linModel = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(linInput).key
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
	Init: func() []any { return []any{linState{}} },
	Step: func(st, in, out any) []any {
		return linStep(st.(linState), in.(linInput), out.(linOutput))
	},
	DescribeOperation: func(in, out any) string { return fmt.Sprintf("%+v -> %+v", in, out) },
	DescribeState:     func(st any) string { return fmt.Sprintf("%+v", st) },
}).ToModel()

func linStep(s linState, in linInput, out linOutput) []any {
	// after is the state once the write took effect, if out allows it.
	after := func(exists bool, value string) []any {
		if out.unknown {
			return []any{s, linState{exists: exists, value: value, rev: -1}}
		}
		if out.err != "" || (s.rev >= 0 && out.rev <= s.rev) {
			return nil
		}
		return []any{linState{exists: exists, value: value, rev: out.rev}}
	}
	switch in.op {
	case "get":
		if !s.exists {
			if out.err == "notfound" {
				return []any{s}
			}
			return nil
		}
		if out.err != "" || out.value != s.value || (s.rev >= 0 && out.rev != s.rev) {
			return nil
		}
		return []any{linState{exists: true, value: s.value, rev: out.rev}}
	case "set":
		return after(true, in.value)
	case "cas":
		if s.exists && s.rev < 0 && in.rev != 0 {
			// The revision is unknown: the swap may match or not.
			switch {
			case out.unknown:
				return []any{s, linState{exists: true, value: in.value, rev: -1}}
			case out.err == "conflict":
				return []any{s}
			case out.err == "":
				return []any{linState{exists: true, value: in.value, rev: out.rev}}
			}
			return nil
		}
		// Revision 0 asks for a key that does not exist.
		if match := in.rev == 0 && !s.exists || in.rev != 0 && s.exists && s.rev == in.rev; !match {
			if out.unknown || out.err == "conflict" {
				return []any{s}
			}
			return nil
		}
		return after(true, in.value)
	case "incr":
		n := int64(0)
		if s.exists {
			var err error
			if n, err = strconv.ParseInt(s.value, 10, 64); err != nil {
				if out.unknown || out.err == "notinteger" {
					return []any{s}
				}
				return nil
			}
		}
		n += in.delta
		if !out.unknown && out.err == "" && out.n != n {
			return nil
		}
		return after(true, strconv.FormatInt(n, 10))
	case "del":
		if !s.exists {
			if out.unknown || out.err == "notfound" {
				return []any{s}
			}
			return nil
		}
		return after(false, "")
	}
	panic("unknown op " + in.op)
}

// linOutcome turns a call's error into its output; ok is false for a call
// that definitely did nothing, which the history leaves out.
func linOutcome(err error) (out linOutput, ok bool) {
	switch {
	case err == nil:
		return out, true
	case errors.Is(err, engine.ErrNotFound):
		out.err = "notfound"
	case errors.Is(err, engine.ErrConflict):
		out.err = "conflict"
	case errors.Is(err, engine.ErrNotInteger):
		out.err = "notinteger"
	case errors.Is(err, ErrUncertain):
		out.unknown = true
	case errors.Is(err, ErrNotCommitted), errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader):
		// ErrNoLeader without ErrUncertain: the write never reached a
		// leader.
		return out, false
	default:
		out.unknown = true
	}
	return out, true
}

// TestLinearizable_AcrossFailover runs clients that get, set,
// compare-and-swap, increment and delete a few keys through random nodes
// while the leader is killed and, later, cut off into a minority; it
// checks with porcupine that each key's history is linearizable, reads
// at the default (Linearizable) level included.
func TestLinearizable_AcrossFailover(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) { linearizableAcrossFailover(t, store, Linearizable) })
}

// TestLinearizable_LeaderReadsAcrossFailover is
// TestLinearizable_AcrossFailover with reads at the Leader level, sent to
// whichever node leads at the time; a read refused with a
// *NotLeaderError observed nothing and is left out.
func TestLinearizable_LeaderReadsAcrossFailover(t *testing.T) {
	forEachStore(t, func(t *testing.T, store LogStore) { linearizableAcrossFailover(t, store, Leader) })
}

// leaderNow returns the node that leads now, as far as it knows, or nil.
func (c *dbCluster) leaderNow() *Node {
	for i := range c.nodes {
		if n := c.node(i); n != nil && n.IsLeader() {
			return n
		}
	}
	return nil
}

func linearizableAcrossFailover(t *testing.T, store LogStore, level Consistency) {
	rng := testRand(t)
	c := newDBClusterOn(t, store, 3, nil)
	c.leader()
	keys := []string{"a", "b", "c", "d", "e"}
	begin := time.Now()
	clock := func() int64 { return int64(time.Since(begin)) }
	var mu sync.Mutex
	var history []porcupine.Operation
	var leaderRefusals atomic.Int64
	var wg sync.WaitGroup
	const clients = 5
	ops := 60 * *rounds
	for cl := range clients {
		seed := rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(cl)))
			seen := map[string]int64{}
			for k := range ops {
				n := c.node(r.IntN(len(c.nodes)))
				if n == nil {
					continue
				}
				in := linInput{key: keys[r.IntN(len(keys))], value: fmt.Sprintf("%d.%d", cl, k)}
				var out linOutput
				var err error
				call := clock()
				switch p := r.IntN(10); {
				case p < 4:
					in.op = "get"
					if level == Leader {
						if l := c.leaderNow(); l != nil {
							n = l
						}
					}
					var it engine.Item
					it, err = n.Get(in.key, level)
					out.value, out.rev = it.Value, it.Revision
					if errors.Is(err, ErrNotLeader) {
						leaderRefusals.Add(1)
					}
				case p < 6:
					in.op = "set"
					var it engine.Item
					it, err = n.Set(in.key, in.value, nil)
					out.rev = it.Revision
				case p < 8:
					in.op = "cas"
					in.rev = seen[in.key] // the revision this client last saw, 0 if none
					var it engine.Item
					it, err = n.CompareAndSwap(in.key, in.rev, in.value, nil)
					out.rev = it.Revision
				case p < 9:
					in.op, in.delta = "incr", 1
					out.n, out.rev, err = n.Increment(in.key, in.delta)
				default:
					in.op = "del"
					out.rev, err = n.Delete(in.key)
				}
				ret := clock()
				o, ok := linOutcome(err)
				o.value, o.rev, o.n = out.value, out.rev, out.n
				if in.op == "get" && err != nil && !errors.Is(err, engine.ErrNotFound) {
					continue // a read that answered nothing
				}
				if !ok {
					continue
				}
				if o.unknown {
					ret = math.MaxInt64
				} else if o.err == "" && in.op != "del" {
					seen[in.key] = o.rev
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: o, Return: ret})
				mu.Unlock()
			}
		}()
	}
	// Faults while the clients run.
	time.Sleep(300 * time.Millisecond)
	l := c.leader()
	c.kill(l)
	c.leader()
	time.Sleep(300 * time.Millisecond)
	c.restart(l)
	l = c.leader()
	c.net.Isolate(l)
	c.leader(l)
	time.Sleep(300 * time.Millisecond)
	c.net.Isolate(l)
	c.net.Heal()
	wg.Wait()

	gets := 0
	for _, op := range history {
		if op.Input.(linInput).op == "get" {
			gets++
		}
	}
	require.NotZero(t, gets, "no read at %v observed anything", level)

	res, info := porcupine.CheckOperationsVerbose(linModel, history, time.Minute)
	if res != porcupine.Ok {
		for i, p := range info.PartialLinearizations() {
			t.Logf("partition %d: longest linearizable prefixes %v", i, p)
		}
		if *linDump != "" {
			f, err := os.Create(*linDump)
			require.NoError(t, err)
			for _, op := range history {
				fmt.Fprintf(f, "%d %d %d %+v %+v\n", op.ClientId, op.Call, op.Return, op.Input, op.Output)
			}
			f.Close()
		}
	}
	require.Equal(t, porcupine.Ok, res, "%d operations are not linearizable", len(history))
	t.Logf("%d operations (%d reads at %v), linearizable; %d reads refused by a node that no longer led", len(history), gets, level, leaderRefusals.Load())
}
