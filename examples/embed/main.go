// Command embed shows livekv inside a program: it opens a database,
// subscribes to a key pattern, writes, and prints the changes it is told
// about.
//
//	go run ./examples/embed
package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/livekv/livekv/engine"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer) error {
	db, err := engine.Open("", nil) // in memory; give a folder to keep the data
	if err != nil {
		return err
	}
	defer db.Close()

	sub, err := db.Subscribe([]string{"user:*"}, nil)
	if err != nil {
		return err
	}
	defer sub.Close()

	if _, err := db.Set("user:1", `{"name":"Ada"}`, nil); err != nil {
		return err
	}
	if _, err := db.Patch("user:1", `{"role":"admin"}`); err != nil {
		return err
	}
	if _, err := db.Set("order:7", "not watched", nil); err != nil {
		return err
	}
	if _, err := db.Delete("user:1"); err != nil {
		return err
	}

	for ev := range sub.Events() {
		fmt.Fprintf(w, "revision %d: %s %s %s\n", ev.Revision, ev.Type, ev.Key, ev.Value)
		if ev.Revision == db.Revision() {
			break
		}
	}
	return nil
}
