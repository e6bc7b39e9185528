package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/livekv/livekv/engine"
)

// revisionTrailer carries a backup's revision once it is all written: a
// response without it was cut short.
const revisionTrailer = "Livekv-Revision"

// mountBackup serves GET /backup, with the API key in x-api-key: a
// snapshot of db at one revision (engine.DB.Backup), taken while writes
// go on.
func mountBackup(mux *http.ServeMux, db *engine.DB, key string, logf func(string, ...any)) {
	keySum := sha256.Sum256([]byte(key)) // digests, of one length: the time tells not the key's
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) {
		given := r.Header.Get("x-api-key")
		givenSum := sha256.Sum256([]byte(given))
		switch {
		case given == "": // no credentials
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"code":401,"error":"x-api-key header with the API key required"}`)
			return
		case subtle.ConstantTimeCompare(givenSum[:], keySum[:]) != 1: // a wrong key, or an app's token
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, `{"code":403,"error":"invalid API key: a backup needs the server's API key"}`)
			return
		}
		// A backup takes as long as the database is large: it is not
		// bound by --write-timeout.
		http.NewResponseController(w).SetWriteDeadline(time.Time{})
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="livekv.backup"`)
		w.Header().Set("Trailer", revisionTrailer)
		rev, err := db.Backup(w)
		if err != nil {
			// Break the connection: the client sees the body cut short
			// and no trailer, rather than a backup that looks whole.
			logf("backup: %v", err)
			panic(http.ErrAbortHandler)
		}
		w.Header().Set(revisionTrailer, strconv.FormatInt(rev, 10))
	})
}

func backup(args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	addr := fs.String("addr", defaultAddr(), "the server: HOST:PORT for http, http(s)://HOST:PORT, or the URL of its API (http://HOST:PORT/kv); several, comma-separated, for the nodes of a cluster, tried in turn until one answers; default $LIVEKV_ADDR, else 127.0.0.1:8080")
	key := fs.String("api-key", "", "the server's API key; default $LIVEKV_API_KEY")
	out := fs.String("o", "", "write the backup to this file (made whole or not at all) instead of stdout")
	caFile := fs.String("cacert", "", "trust the PEM certificates in this file for https (a self-signed server's)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long each of connecting to a server, its TLS handshake and the start of its answer may take, after which the next --addr is tried; then how long the backup may go without a byte, after which it fails, trying no other --addr (the backup as a whole may take longer)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv backup [--addr URL] [--api-key KEY] [--timeout D] [-o FILE] > FILE\n\n"+
			"Fetches a consistent backup of a running server's database, at one revision, taken\n"+
			"while writes go on. livekv restore makes a data folder of it.")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return badUsage(fs, fmt.Sprintf("backup takes no arguments (%q): the server is --addr", rest[0]))
	}
	if *timeout <= 0 {
		return badUsage(fs, fmt.Sprintf("--timeout %v: give a positive duration", *timeout))
	}
	if *key = apiKeyOr(*key); *key == "" {
		return errors.New("give --api-key or set $LIVEKV_API_KEY")
	}
	if *out == "" && isTerminal(os.Stdout) {
		return errors.New("the backup is binary: redirect stdout to a file, or give -o FILE")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if *caFile != "" {
		c, err := trusting(*caFile)
		if err != nil {
			return err
		}
		tr = c.Transport.(*http.Transport)
	}
	// A node that accepts and never answers (stopped, cut off) would hold
	// the request for ever: the connection and the answer's headers are
	// bounded here, the body by idleReader below.
	tr.DialContext = (&net.Dialer{Timeout: *timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout = *timeout, *timeout
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var urls []string
	for _, a := range strings.Split(*addr, ",") {
		u, err := backupURL(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("--addr %q: %w", *addr, err)
		}
		urls = append(urls, u)
	}
	var req *http.Request
	var resp *http.Response
	for i, u := range urls { // in turn, as the client commands do, until one answers
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil); err != nil {
			return err
		}
		req.Header.Set("x-api-key", *key)
		if resp, err = client.Do(req); err == nil {
			if resp.StatusCode != http.StatusServiceUnavailable || i == len(urls)-1 {
				break
			}
			resp.Body.Close() // a node shutting down: the next may serve
		}
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("%s: %s %s", req.URL, resp.Status, strings.TrimSpace(string(b)))
		if hint := tlsHint(strings.TrimSuffix(req.URL.String(), "/backup")); resp.StatusCode == http.StatusBadRequest && hint != "" {
			err = fmt.Errorf("%w\n(%s)", err, hint)
		}
		return err
	}
	// A node that stops sending midway would hold it for ever too. It
	// answered: the backup is its, and no other node is tried (part of it
	// may be on stdout already).
	stalled := fmt.Errorf("%s stalled: nothing came for %v (--timeout)", req.URL, *timeout)
	body := &idleReader{ctx: ctx, r: resp.Body, timeout: *timeout,
		timer: time.AfterFunc(*timeout, func() { cancel(stalled) })}
	defer body.timer.Stop()
	var n int64
	var rev string
	copyBackup := func(w io.Writer) (err error) {
		if n, err = io.Copy(w, body); err != nil {
			return fmt.Errorf("after %d bytes: %w (the backup is incomplete)", n, err)
		}
		if rev = resp.Trailer.Get(revisionTrailer); rev == "" {
			return fmt.Errorf("the server cut the backup short after %d bytes", n)
		}
		return nil
	}
	if *out == "" {
		err = copyBackup(os.Stdout)
	} else {
		// SIGINT or SIGTERM would kill the process before writeWhole
		// removes its temporary file: they stop the copy instead, which
		// then fails, leaving no file.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		go func() {
			select {
			case s := <-sigs:
				cancel(fmt.Errorf("%w (%v)", errInterrupted, s))
			case <-ctx.Done():
			}
		}()
		err = writeWhole(*out, copyBackup) // a crash after the message below keeps it
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "livekv backup: revision %s, %d bytes\n", rev, n)
	return nil
}

// idleReader reads a request's body, r, whose context is ctx: timer,
// reset by each Read and stopped when it returns, cancels the request,
// with the cause that names the stall, if a Read waits too long for a
// byte. A backup may take long but must keep coming; the time spent
// writing what was read is not counted.
type idleReader struct {
	ctx     context.Context
	r       io.Reader
	timeout time.Duration
	timer   *time.Timer
}

func (ir *idleReader) Read(p []byte) (int, error) {
	ir.timer.Reset(ir.timeout)
	n, err := ir.r.Read(p)
	ir.timer.Stop()
	if err != nil && ir.ctx.Err() != nil {
		err = context.Cause(ir.ctx) // the stall, rather than "context canceled"
	}
	return n, err
}

// backupURL is the URL of GET /backup on the server at addr, given as
// to the client commands: HOST:PORT, or the URL of the server or of its
// API (/kv), beside which serve mounts /backup.
func backupURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("an empty address")
	}
	api, err := serverURL(addr)
	if err != nil {
		return "", err
	}
	// The URL of the WebSocket API (as for the client commands, its
	// /kv/ws too) names the same server over HTTP.
	if rest, ok := strings.CutPrefix(api, "ws"); ok && (strings.HasPrefix(rest, "://") || strings.HasPrefix(rest, "s://")) {
		api = "http" + strings.TrimSuffix(strings.TrimRight(rest, "/"), "/ws") // ws:// to http://, wss:// to https://
	}
	return strings.TrimSuffix(strings.TrimRight(api, "/"), "/kv") + "/backup", nil
}

func restore(args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv restore [--max-key-size N] [--max-value-size N] FILE DIR\n\n"+
			"Makes the data folder DIR (missing or empty) from a backup that livekv backup wrote\n"+
			"(FILE - reads stdin): livekv serve --data DIR then serves the database as it was at\n"+
			"the backup's revision.")
		fmt.Fprintln(fs.Output())
		fs.PrintDefaults()
	}
	var lim engine.Options
	sizeFlags(fs, &lim)
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return badUsage(fs, fmt.Sprintf("give a backup file and a folder (%d given)", len(rest)))
	}
	var r io.Reader = os.Stdin
	if f := rest[0]; f != "-" {
		file, err := os.Open(f)
		if err != nil {
			return err
		}
		defer file.Close()
		r = file
	}
	rev, err := engine.RestoreDir(r, rest[1], &lim)
	if errors.Is(err, engine.ErrNotEmpty) {
		return fmt.Errorf("%w: restore makes a new folder; give one that is missing or empty", err)
	}
	if err != nil {
		return openHint(err, "restore")
	}
	if _, err := fmt.Printf("restored revision %d into %s\n", rev, rest[1]); err != nil {
		return fmt.Errorf("restored revision %d into %s, but could not say so: %w", rev, rest[1], err)
	}
	return nil
}
