package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/livekv/livekv/engine"
)

// Example is the embedding example of README.md; keep the two the same.
func Example() {
	db, err := engine.Open("", nil) // "" keeps everything in memory
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	db.Set("user:1", `{"name":"Ada"}`, nil)
	db.Patch("user:1", `{"role":"admin"}`) // JSON merge: {"name":"Ada","role":"admin"}
	visits, _, _ := db.Increment("visits", 1)

	it, _ := db.Get("user:1")
	fmt.Println(it.Value, it.Revision, visits)
	users, err := db.Prefix("user:", nil)
	if err != nil {
		log.Fatal(err)
	}
	for it, err := range users {
		fmt.Println(it.Key, err)
	}
	// Output:
	// {"name":"Ada","role":"admin"} 2 1
	// user:1 <nil>
}

func ExampleDB_Update() {
	db, _ := engine.Open("", nil)
	defer db.Close()
	_, _ = db.Set("alice", "100", nil)

	// Move 30 from alice to bob: both writes commit together, or neither.
	_, err := db.Update(func(tx *engine.Tx) error {
		if n, err := tx.Increment("alice", -30); err != nil {
			return err
		} else if n < 0 {
			return errors.New("insufficient funds") // rolls back
		}
		_, err := tx.Increment("bob", 30)
		return err
	})
	fmt.Println(err)
	a, _ := db.Get("alice")
	b, _ := db.Get("bob")
	fmt.Println(a.Value, b.Value, a.Revision == b.Revision)
	// Output:
	// <nil>
	// 70 30 true
}

func ExampleDB_CompareAndSwap() {
	db, _ := engine.Open("", nil)
	defer db.Close()
	_, _ = db.Set("doc", "v1", nil)

	it, _ := db.Get("doc")
	_, _ = db.Set("doc", "changed by someone else", nil)
	_, err := db.CompareAndSwap("doc", it.Revision, "v2", nil)
	fmt.Println(errors.Is(err, engine.ErrConflict))
	// Output: true
}

func ExampleDB_Range() {
	db, _ := engine.Open("", nil)
	defer db.Close()
	for _, k := range []string{"log:1", "log:2", "log:3", "log:4"} {
		_, _ = db.Set(k, "entry", nil)
	}
	// Pages of two, newest first; each page continues below the last key.
	end := ""
	for {
		var last string
		page, err := db.Range("log:", end, &engine.RangeOptions{Limit: 2, Reverse: true, KeysOnly: true})
		if err != nil {
			log.Fatal(err)
		}
		for it, err := range page {
			if err != nil {
				log.Fatal(err)
			}
			fmt.Print(it.Key, " ")
			last = it.Key
		}
		if last == "" {
			break
		}
		end = last
		fmt.Println("|")
	}
	// Output:
	// log:4 log:3 |
	// log:2 log:1 |
}

func ExampleSetOptions() {
	db, _ := engine.Open("", nil)
	defer db.Close()
	it, _ := db.Set("session:42", "token", &engine.SetOptions{TTL: 30 * time.Minute})
	fmt.Println(!it.ExpiresAt.IsZero())
	// Output: true
}

func ExampleDB_Subscribe() {
	db, _ := engine.Open("", nil)
	defer db.Close()
	_, _ = db.Set("todo:1", "buy milk", nil)

	// Load the current todos, then watch every change after them.
	sub, err := db.Subscribe([]string{"todo:*"}, &engine.SubscribeOptions{Initial: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for _, it := range sub.Initial {
		fmt.Println("initial", it.Key, it.Value)
	}

	_, _ = db.Set("todo:2", "call mum", nil)
	_, _ = db.Delete("todo:1")
	_, _ = db.Set("note:1", "not a todo", nil)

	for i := 0; i < 2; i++ {
		ev, err := sub.Next(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Revision, ev.Type, ev.Key, ev.Value)
	}
	// Output:
	// initial todo:1 buy milk
	// 2 put todo:2 call mum
	// 3 delete todo:1
}
