package engine_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/livekv/livekv/engine"
)

// Example_resume subscribes, stops part way through, and resumes exactly
// where it stopped after the database was closed and opened again, with
// engine as the only import: the event types, the positions and the
// errors are all engine's.
func Example_resume() {
	dir, err := os.MkdirTemp("", "livekv-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	// A history of two events, to show what resuming past it says.
	opts := &engine.Options{Sync: engine.SyncAlways, HistoryEvents: 2}
	db, err := engine.Open(dir, opts)
	if err != nil {
		panic(err)
	}
	sub, err := db.Subscribe([]string{"order:*"}, &engine.SubscribeOptions{FromRevision: db.Revision()})
	if err != nil {
		panic(err)
	}
	db.Set("order:1", "new", nil)
	db.Set("order:1", "paid", nil)
	db.Delete("order:1")

	ev := <-sub.Events() // read one event, then stop
	fmt.Printf("%s %s %q\n", ev.Type, ev.Key, ev.Value)
	sub.Close()
	at := sub.Position() // where the reader is: the next event not taken
	db.Close()

	db, err = engine.Open(dir, opts) // the history outlives the restart
	if err != nil {
		panic(err)
	}
	defer db.Close()
	sub, err = db.Subscribe([]string{"order:*"}, &engine.SubscribeOptions{From: at})
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	for range 2 {
		ev := <-sub.Events()
		fmt.Printf("%s %s %q\n", ev.Type, ev.Key, ev.Value)
	}

	// From before what the history holds: the error says where it starts.
	_, err = db.Subscribe([]string{"order:*"}, &engine.SubscribeOptions{From: engine.Position{Revision: 1}})
	var ce *engine.CompactedError
	fmt.Println(errors.Is(err, engine.ErrCompacted), errors.As(err, &ce) && ce.Oldest == 2)
	// Output:
	// put order:1 "new"
	// put order:1 "paid"
	// delete order:1 ""
	// true true
}
