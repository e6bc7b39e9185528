// Command livekv runs a livekv database.
//
//	livekv serve [--data DIR]
//
// serve opens the database in DIR (default ./livekv-data) and keeps it
// open until SIGINT or SIGTERM, then closes it cleanly.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/livekv/livekv/engine"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		return
	}
	switch os.Args[1] {
	case "serve":
		if err := serve(os.Args[2:]); errors.Is(err, flag.ErrHelp) {
			return
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "livekv serve:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "livekv: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `livekv: an embeddable key-value store with a live change feed.

Commands:
  serve    open the database in ./livekv-data (or --data DIR) until Ctrl-C

Run "livekv COMMAND --help" for a command's flags.
`)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	data := fs.String("data", "livekv-data", "the database folder (created if missing)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv serve [--data DIR]\n\nOpens the database in DIR and keeps it open until Ctrl-C or SIGTERM.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := engine.Open(*data, &engine.Options{Logf: func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "livekv: "+format+"\n", args...)
	}})
	if err != nil {
		return fmt.Errorf("%w\n(is another livekv using %s? pass --data to use another folder)", err, *data)
	}
	abs, _ := filepath.Abs(*data)
	fmt.Printf("livekv: database open in %s at revision %d; Ctrl-C to stop\n", abs, db.Revision())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	fmt.Println("livekv: closing")
	return db.Close()
}
