// Command livekv runs a livekv database.
//
//	livekv serve [--data DIR]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
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
		if err := serve(os.Args[2:]); err != nil {
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
  serve    open a database and keep it open until Ctrl-C

Run "livekv COMMAND --help" for a command's flags.
`)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv serve\n\nOpens a database and keeps it open until Ctrl-C or SIGTERM.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, err := engine.Open("", nil)
	if err != nil {
		return err
	}
	fmt.Println("livekv: database open in memory (nothing is written to disk); Ctrl-C to stop")
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	fmt.Println("livekv: closing")
	return db.Close()
}
