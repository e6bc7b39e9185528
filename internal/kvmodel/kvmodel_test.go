package kvmodel

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// op is a call on key k that runs from call to ret.
func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	in.Key = "k"
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func TestModel(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
		h    []porcupine.Operation
	}{
		{"a read after a set sees it", true, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "set", Value: "a"}, Output{Rev: 1}),
			op(1, 2, 3, Input{Op: "get"}, Output{Value: "a", Rev: 1}),
		}},
		{"a read after a set misses it", false, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "set", Value: "a"}, Output{Rev: 1}),
			op(1, 2, 3, Input{Op: "get"}, Output{Err: "notfound"}),
		}},
		{"a read overlapping a set may miss it", true, []porcupine.Operation{
			op(0, 0, 3, Input{Op: "set", Value: "a"}, Output{Rev: 1}),
			op(1, 1, 2, Input{Op: "get"}, Output{Err: "notfound"}),
		}},
		{"revisions go back", false, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "set", Value: "a"}, Output{Rev: 2}),
			op(0, 2, 3, Input{Op: "set", Value: "b"}, Output{Rev: 1}),
		}},
		{"an uncertain set that took effect", true, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "set", Value: "a"}, Output{Unknown: true}),
			op(1, 2, 3, Input{Op: "get"}, Output{Value: "a", Rev: 7}),
			op(1, 4, 5, Input{Op: "cas", Value: "b", Rev: 7}, Output{Rev: 8}),
		}},
		{"an uncertain set that did not", true, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "set", Value: "a"}, Output{Unknown: true}),
			op(1, 2, 3, Input{Op: "get"}, Output{Err: "notfound"}),
		}},
		{"a cas on a stale revision that succeeds", false, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "set", Value: "a"}, Output{Rev: 1}),
			op(0, 2, 3, Input{Op: "set", Value: "b"}, Output{Rev: 2}),
			op(1, 4, 5, Input{Op: "cas", Value: "c", Rev: 1}, Output{Rev: 3}),
		}},
		{"increments add up", true, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "incr", Delta: 2}, Output{N: 2, Rev: 1}),
			op(1, 2, 3, Input{Op: "incr", Delta: 3}, Output{N: 5, Rev: 2}),
			op(1, 4, 5, Input{Op: "del"}, Output{Rev: 3}),
			op(0, 6, 7, Input{Op: "incr", Delta: 1}, Output{N: 1, Rev: 4}),
		}},
		{"an increment that lost one", false, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "incr", Delta: 2}, Output{N: 2, Rev: 1}),
			op(1, 2, 3, Input{Op: "incr", Delta: 3}, Output{N: 3, Rev: 2}),
		}},
		{"a patch appends", true, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "patch", Value: "+"}, Output{Value: "+", Rev: 1}),
			op(0, 2, 3, Input{Op: "patch", Value: "+"}, Output{Value: "++", Rev: 2}),
			op(1, 4, 5, Input{Op: "txget"}, Output{Value: "++", Rev: 2}),
		}},
		{"a delete of a missing key that succeeds", false, []porcupine.Operation{
			op(0, 0, 1, Input{Op: "del"}, Output{Rev: 1}),
		}},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(Model, c.h); got != c.ok {
			t.Errorf("%s: linearizable %v, want %v", c.name, got, c.ok)
		}
	}
}
