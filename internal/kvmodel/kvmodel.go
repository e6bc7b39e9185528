// Package kvmodel is a porcupine model of livekv's single-key operations,
// shared by the linearizability checks of the engine and of the cluster.
//
// Each key's history is checked alone. A call whose outcome its client
// could not learn (Output.Unknown: a cluster write that may or may not
// have committed) may have taken effect at any moment after it began, or
// never; after it the key's revision is unknown until a read shows it.
package kvmodel

import (
	"fmt"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

// CheckBudget is how long a check may search before it gives up with
// porcupine.Unknown, which proves nothing either way. A history with
// many concurrent uncertain writes (a failover's) once used up a
// minute's budget, on a 2-core machine busy with other tests; another
// run of the same seed alone decided in 2.3 s. The search returns as
// soon as it decides, so a larger budget costs nothing when it is not
// needed; it stays well inside go test's 10 minutes a package.
const CheckBudget = 3 * time.Minute

// Input is one call: Op is get (or txget, a Get inside a transaction),
// set, cas, patch, incr or del.
type Input struct {
	Op    string
	Key   string
	Value string // set, cas, patch: the value written
	Rev   int64  // cas: the expected revision, 0 for "must not exist"
	Delta int64  // incr
}

// Output is what the call returned. Err is "", "notfound", "conflict" or
// "notinteger"; Rev is the item's revision (get) or the one the call
// committed at; N is incr's result; Value is get's and patch's.
type Output struct {
	Unknown bool
	Err     string
	Value   string
	Rev     int64
	N       int64
}

// State is one key: its value if it exists, and the revision of its last
// change, -1 when an uncertain write leaves it unknown.
type State struct {
	Exists bool
	Value  string
	Rev    int64
}

// Model checks histories of Input and Output, partitioned by key.
var Model = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(Input).Key
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
	Init: func() []any { return []any{State{}} },
	Step: func(st, in, out any) []any {
		return Step(st.(State), in.(Input), out.(Output))
	},
	DescribeOperation: func(in, out any) string { return fmt.Sprintf("%+v -> %+v", in, out) },
	DescribeState:     func(st any) string { return fmt.Sprintf("%+v", st) },
}).ToModel()

// Step returns the states the key may be in after the call, given the
// state before it; none if the output cannot follow from that state.
func Step(s State, in Input, out Output) []any {
	// after is the state once the write took effect, if out allows it: a
	// write commits at a revision later than the key's last change.
	after := func(exists bool, value string) []any {
		if out.Unknown {
			return []any{s, State{Exists: exists, Value: value, Rev: -1}}
		}
		if out.Err != "" || (s.Rev >= 0 && out.Rev <= s.Rev) {
			return nil
		}
		return []any{State{Exists: exists, Value: value, Rev: out.Rev}}
	}
	// unchanged is the state after a call that must have done nothing:
	// out must say so (err is the error it gives), or be unknown.
	unchanged := func(err string) []any {
		if out.Unknown || out.Err == err {
			return []any{s}
		}
		return nil
	}
	switch in.Op {
	case "get", "txget":
		if !s.Exists {
			return unchanged("notfound")
		}
		if out.Err != "" || out.Value != s.Value || (s.Rev >= 0 && out.Rev != s.Rev) {
			return nil
		}
		return []any{State{Exists: true, Value: s.Value, Rev: out.Rev}}
	case "set":
		return after(true, in.Value)
	case "patch": // values in these histories are not JSON objects: a patch appends
		v := in.Value
		if s.Exists {
			v = s.Value + in.Value
		}
		if !out.Unknown && out.Value != v {
			return nil
		}
		return after(true, v)
	case "cas":
		if s.Exists && s.Rev < 0 && in.Rev != 0 {
			// The revision is unknown: the swap may match or not.
			switch {
			case out.Unknown:
				return []any{s, State{Exists: true, Value: in.Value, Rev: -1}}
			case out.Err == "conflict":
				return []any{s}
			case out.Err == "":
				return []any{State{Exists: true, Value: in.Value, Rev: out.Rev}}
			}
			return nil
		}
		if match := in.Rev == 0 && !s.Exists || in.Rev != 0 && s.Exists && s.Rev == in.Rev; !match {
			return unchanged("conflict")
		}
		return after(true, in.Value)
	case "incr":
		n := int64(0)
		if s.Exists {
			var err error
			if n, err = strconv.ParseInt(s.Value, 10, 64); err != nil {
				return unchanged("notinteger")
			}
		}
		n += in.Delta
		if !out.Unknown && out.Err == "" && out.N != n {
			return nil
		}
		return after(true, strconv.FormatInt(n, 10))
	case "del":
		if !s.Exists {
			return unchanged("notfound")
		}
		return after(false, "")
	}
	panic("kvmodel: unknown op " + in.Op)
}
