// Command livekv runs a livekv database.
//
//	livekv serve [--data DIR] [--addr HOST:PORT] [--api-key KEY]
//	livekv check [--repair] DIR
//	livekv dump [--salvage] DIR > backup.jsonl
//	livekv load DIR < backup.jsonl
//	livekv backup [--addr URL] [-o FILE]
//	livekv restore FILE DIR
//	livekv get|put|del|incr|range|watch [--addr HOST:PORT] [--api-key KEY] [-o json] ARGS
//	livekv version
//	livekv serve ... --node ID --raft HOST:PORT --peers ID=HOST:PORT,... | --join HOST:PORT
//	livekv cluster status|remove ID|transfer [ID] [--raft HOST:PORT]
//	livekv cluster recover --data DIR --node ID --peers ID=HOST:PORT,...
//
// With --peers or --join, serve runs DIR as one node of a cluster
// replicated with raft (see docs/cluster.md): writes on any node go to the
// leader, reads are at the level each client asks for (consistency=, by
// default session: read-your-writes), and the showcase apps' quotas are
// off. --raft-profile lan shortens raft's timeouts for nodes on one
// network; --raft-log wal keeps the raft log in raft-wal's segment files
// rather than one BoltDB file (bolt, the default), and a node keeps the
// store it was made with; --lease-reads lets the leader serve
// linearizable reads under a lease instead of a quorum round each.
// cluster operates the cluster through any node's raft address; cluster
// recover rewrites a stopped node's membership to the survivors of a
// cluster that has lost its majority for good.
//
// serve opens the database in DIR (default ./livekv-data) and serves the
// HPKV WebSocket and REST API at /kv/ (and DBX's WebSocket API at
// /kv/dbx/ws) on HOST:PORT (default
// 127.0.0.1:8080) until SIGINT or SIGTERM, then closes it cleanly. The API
// key is KEY, else $LIVEKV_API_KEY, else the one kept in DIR/api-key
// (made at random, and printed, on the first run);
// $LIVEKV_TOKEN_SECRET, if set, signs tokens so that they outlive a
// restart. One client address may hold --max-conns-per-client (32)
// WebSockets and get --token-rate (30) tokens a minute from the pages'
// POST /apps/token. The keys of each app (todo:, chat:) may hold
// --app-quota-keys (10,000) keys and --app-quota-bytes (16 MiB) of keys
// and values, whoever writes them. A DBX WebSocket gets a heartbeat every
// --heartbeat-interval (30s) and is closed once silent for that plus
// --heartbeat-timeout (30s). HTTP requests must arrive within --read-timeout (30s, body
// included) and be answered within --write-timeout (60s); idle keep-alive
// connections close after --idle-timeout (120s). WebSockets, once open,
// are not bound by these. On SIGTERM, requests under way get most of
// --grace (10s); what is left is then closed, and serve exits 0 within
// it.
//
// GET /healthz answers 200 while serve runs, GET /readyz 200 only while
// the database is open and takes writes (503 otherwise), and GET /metrics
// gives Prometheus metrics; none needs the API key. With --metrics-addr
// they are served there instead (/metrics only there). With --tls-cert and
// --tls-key serve speaks HTTPS (and wss) only. --cors-origins lets pages
// of those origins call the REST API and open the WebSockets. A serve that fails to start writes
// nothing: no folder, no API key file.
//
// check verifies DIR's snapshot and log without changing them and exits
// non-zero on corruption; with --repair it copies DIR aside, then
// truncates a damaged log at its first bad record. dump writes every item
// as a JSON line (--salvage: those readable before a damaged log's first
// bad record); load adds such lines to a (new or existing) folder, with new
// revisions. backup fetches a consistent snapshot from a running serve
// (GET /backup, with the API key); restore makes a data folder of it. See
// docs/operations.md.
//
// get, put, del, incr, range and watch are clients of a running server
// (see "livekv COMMAND --help"). Every command exits 0 on success, 1 on an
// error and 2 on a command line that makes no sense (after printing its
// usage once); --help prints the usage and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/cluster"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/metrics"
	"github.com/livekv/livekv/vfs"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, "livekv: no command given\n\n")
		usage(os.Stderr)
		os.Exit(2)
	}
	if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		w := &firstErr{w: os.Stdout}
		usage(w) // asked for, as COMMAND --help prints it
		if w.err != nil {
			fmt.Fprintf(os.Stderr, "livekv: writing the usage: %v\n", w.err)
			os.Exit(1)
		}
		return
	}
	cmds := map[string]func([]string) error{"serve": serve, "check": check, "dump": dump, "load": load,
		"backup": backup, "restore": restore, "cluster": clusterCmd}
	maps.Copy(cmds, clientCommands)
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "livekv: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "livekv %s: %s\n", os.Args[1], message(err))
		os.Exit(exitCode(err))
	}
}

// message is err's text without the "livekv: " or "livekv client: " that
// the engine's and the client's errors start with: livekv prints its own
// prefix.
func message(err error) string {
	s := err.Error()
	for _, p := range []string{"livekv: ", "livekv client: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// apiKeyOr returns key, or if it is empty $LIVEKV_API_KEY. The flags of
// an API key default to "" and take the variable after parsing, rather
// than have it as their default, which --help would print.
func apiKeyOr(key string) string {
	if key != "" {
		return key
	}
	return os.Getenv("LIVEKV_API_KEY")
}

// parseArgs parses args with fs, flags and arguments in any order ("--"
// ends the flags), and returns the arguments. --help prints fs.Usage to
// stdout and returns flag.ErrHelp, or the error writing it; a bad flag
// prints it to stderr and returns a usageError.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard) // the usage is printed once, here
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				w := &firstErr{w: os.Stdout}
				showUsage(fs, w)
				if w.err != nil {
					return nil, fmt.Errorf("writing the usage: %w", w.err)
				}
				return nil, err
			}
			return nil, badUsage(fs, err.Error())
		}
		if n := len(args) - len(fs.Args()); n > 0 && args[n-1] == "--" {
			// Parse stopped at --: the rest are arguments, even those
			// that start with - (it forgets the -- it passed, so this
			// loop must not parse them again).
			return append(rest, fs.Args()...), nil
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		rest = append(rest, strings.TrimPrefix(args[0], negative))
		args = args[1:]
	}
}

// firstErr is w, remembering its first error; it writes nothing after it.
type firstErr struct {
	w   io.Writer
	err error
}

func (f *firstErr) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.w.Write(p)
	f.err = err
	return n, err
}

// showUsage prints fs.Usage to w.
func showUsage(fs *flag.FlagSet, w io.Writer) {
	fs.SetOutput(w)
	fs.Usage()
	fs.SetOutput(io.Discard)
}

// badUsage prints fs.Usage to stderr and returns the usage error msg.
func badUsage(fs *flag.FlagSet, msg string) error {
	showUsage(fs, os.Stderr)
	fmt.Fprintln(os.Stderr)
	return usageError{errors.New(msg)}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `livekv: an embeddable key-value store with a live change feed.

Commands:
  serve    serve the database in ./livekv-data over HPKV's API until Ctrl-C
  check    verify a data folder's snapshot and log, changing nothing
  dump     write a data folder's items to stdout as JSON lines
  load     add JSON lines from stdin (as dump writes them) to a data folder
  backup   fetch a consistent backup of a running server's database
  restore  make a data folder from a backup
  cluster  status, remove ID, transfer [ID]: operate a cluster through a node;
           recover: make a stopped node's survivors its cluster

Commands for a running server (--addr, --api-key or $LIVEKV_API_KEY, -o json):
  get      print a key's value
  put      set a key's value
  del      delete a key
  incr     add to a key's integer
  range    print the keys in a range, or under a prefix
  watch    print changes as they happen, until Ctrl-C
  version  print the version and the VCS revision livekv was built from

Run "livekv COMMAND --help" for a command's flags.
`)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	data := fs.String("data", "livekv-data", "the database folder (created if missing)")
	addr := fs.String("addr", "127.0.0.1:8080", "where to listen for HTTP (the HPKV API at /kv/)")
	key := fs.String("api-key", "", "the API key clients use; default $LIVEKV_API_KEY, else the one kept in DIR/api-key")
	readTimeout := fs.Duration("read-timeout", 30*time.Second, "the longest an HTTP request may take to arrive, body included (not WebSockets once open)")
	writeTimeout := fs.Duration("write-timeout", 60*time.Second, "the longest an HTTP response may take to write (not WebSockets once open)")
	idleTimeout := fs.Duration("idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	grace := fs.Duration("grace", 10*time.Second, "on SIGTERM, how long requests under way may take; what is left is closed and serve exits within it")
	tokenRate := fs.Int("token-rate", 30, "tokens per minute (and at once) one client address may get from the pages' POST /apps/token")
	maxConns := fs.Int("max-conns-per-client", 32, "WebSockets one client address may hold open at once")
	quotaKeys := fs.Int64("app-quota-keys", 10_000, "keys each showcase app (todo:, chat:) may hold; writes past it get 507")
	quotaBytes := fs.Int64("app-quota-bytes", 16<<20, "bytes of keys and values each showcase app (todo:, chat:) may hold; writes past it get 507")
	ops := addOpsFlags(fs)
	heartbeat := fs.Duration("heartbeat-interval", 30*time.Second, "how often a DBX WebSocket gets a heartbeat from the server")
	heartbeatTimeout := fs.Duration("heartbeat-timeout", 30*time.Second, "how long past a missed heartbeat a silent DBX client is closed")
	node := fs.String("node", "", "cluster mode: this node's ID (default: the --raft address)")
	raftAddr := fs.String("raft", "", "cluster mode: this node's raft and cluster RPC address, HOST:PORT, reachable by the others")
	peers := fs.String("peers", "", "cluster mode: the founding voters, ID=HOST:PORT,... (the same on every founding node)")
	join := fs.String("join", "", "cluster mode: raft addresses of members to join through, HOST:PORT,...")
	profile := fs.String("raft-profile", "default", "cluster mode: raft timeouts, default (1 s) or lan (200 ms; followers learn of a commit within 5-10 ms)")
	leaseReads := fs.Bool("lease-reads", false, "cluster mode: the leader serves linearizable reads under a lease rather than a quorum round each; assumes the nodes' clocks run at rates within 10% of each other (docs/cluster.md)")
	maxKey := fs.Int("max-key-size", engine.DefaultMaxKeySize, "the largest key taken, in bytes (engine.Options.MaxKeySize); a folder loaded with larger keys (livekv load --max-key-size) needs as much, or they cannot be read")
	maxValue := fs.Int("max-value-size", engine.DefaultMaxValueSize, "the largest value taken, in bytes (engine.Options.MaxValueSize); a client's message may be up to twice the largest key and value, and at least 2 MiB")
	raftTLS := addRaftTLSFlags(fs)
	raftLog := fs.String("raft-log", "bolt", "cluster mode: where the raft log is kept, bolt (raft-boltdb, one file) or wal (raft-wal segment files, experimental); a node keeps the store it started with")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv serve [--data DIR] [--addr HOST:PORT] [--api-key KEY] [flags]\n\n"+
			"Opens the database in DIR and serves HPKV's WebSocket and REST API at /kv/ until Ctrl-C or SIGTERM.")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	*key = apiKeyOr(*key)
	cf := clusterFlags{node: *node, raft: *raftAddr, peers: *peers, join: *join, profile: *profile, raftLog: *raftLog, leaseReads: *leaseReads, tls: *raftTLS}
	switch {
	case len(rest) > 0:
		return badUsage(fs, fmt.Sprintf("serve takes no arguments (%q): the folder is --data", rest[0]))
	case *data == "":
		// The engine keeps a database of no folder in memory only: every
		// write would be lost when serve stops.
		return badUsage(fs, "--data must name a folder")
	case *readTimeout <= 0 || *writeTimeout <= 0 || *idleTimeout <= 0 || *grace <= 0 || *tokenRate <= 0 || *maxConns <= 0 ||
		*quotaKeys <= 0 || *quotaBytes <= 0 || *heartbeat <= 0 || *heartbeatTimeout <= 0 || *maxKey <= 0 || *maxValue <= 0:
		return badUsage(fs, "timeouts, --grace, --token-rate, --max-conns-per-client, the --app-quota, --heartbeat and --max-*-size flags must be positive")
	}
	if strings.TrimSpace(*key) != *key {
		// HTTP trims a header's value: a client could not send this key
		// in x-api-key, only in a query.
		return badUsage(fs, "--api-key must not start or end with a space")
	}
	if err := ops.check(); err != nil {
		return badUsage(fs, err.Error())
	}
	if err := cf.check(); err != nil {
		return badUsage(fs, err.Error())
	}
	// Everything that can fail without writing comes first: a serve that
	// does not start leaves no folder and no key file behind.
	tlsConf, err := ops.tlsConfig()
	if err != nil {
		return err
	}
	if cf.tlsConfig, err = cf.tls.load(cf.raft); err != nil {
		return err
	}
	cors, err := ops.corsOrigins()
	if err != nil {
		return err
	}
	var secret []byte
	if s := os.Getenv("LIVEKV_TOKEN_SECRET"); s != "" {
		if len(s) < adapter.MinTokenSecretSize {
			return fmt.Errorf("$LIVEKV_TOKEN_SECRET must be at least %d bytes", adapter.MinTokenSecretSize)
		}
		secret = []byte(s)
	}
	ln, monLn, err := ops.listeners(*addr)
	if err != nil {
		return err
	}
	made, err := makeFolder(*data) // the outermost folder this run made, if any
	madeKey := ""                  // the api-key file this run made, if any
	fail := func(err error) error {
		ln.Close()
		if monLn != nil {
			monLn.Close()
		}
		if madeKey != "" {
			os.Remove(madeKey)
		}
		removeIfCreated(made)
		return err
	}
	if err != nil {
		return fail(err)
	}
	// A server outlives whoever reads its output: once stdout or stderr
	// is a pipe nobody reads (a log collector that stopped), a line
	// written there must fail, not kill serve with SIGPIPE, say while it
	// closes the database on SIGTERM.
	signal.Ignore(syscall.SIGPIPE)
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "livekv: "+format+"\n", args...) }
	// Signals are caught before the store opens: one that comes while a
	// node waits to join its cluster stops the opening, which leaves the
	// folder closed; and one that comes right after the banner closes
	// serve cleanly.
	sigCtx, stopSigs := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSigs()
	st, err := openStore(sigCtx, *data, engine.Options{Logf: logf, MaxKeySize: *maxKey, MaxValueSize: *maxValue}, cf)
	if err != nil && sigCtx.Err() != nil {
		return fail(fmt.Errorf("stopped by a signal before serving: %w", err))
	}
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			// Another process holds the folder, whoever made it: nothing
			// here is this run's to remove.
			made = ""
			err = fmt.Errorf("%w\n(is another livekv using %s? pass --data to use another folder)", err, *data)
		}
		if !errors.Is(err, cluster.ErrJoinRefused) && (errors.Is(err, cluster.ErrInvalidOptions) || errors.Is(err, engine.ErrInvalidOptions)) {
			// Flags the checks above let through (a peer listed twice,
			// a --raft that is no address): the command line's fault.
			return fail(badUsage(fs, err.Error()))
		}
		return fail(openHint(err, "serve"))
	}
	keyNote := ""
	if *key == "" {
		k, created, err := storedKey(filepath.Join(*data, "api-key"))
		if err != nil {
			st.Close()
			return fail(err)
		}
		*key = k
		keyNote = fmt.Sprintf("API key in %s", filepath.Join(*data, "api-key"))
		if created { // shown this once
			keyNote = fmt.Sprintf("API key %s (new, kept in %s)", k, filepath.Join(*data, "api-key"))
			madeKey = filepath.Join(*data, "api-key")
		}
	}
	// In cluster mode db is the node's own copy, for health, metrics and
	// backups; the API goes through the node.
	db := st.local()
	var quota adapter.Quota
	if st.node == nil {
		// Before anyone reads: the chat page pages newest first only
		// through keys of the new scheme.
		if _, err := migrateChatKeys(db, logf); err != nil {
			st.Close()
			return fail(err)
		}
		// A cluster node's writes go to the leader: the quota, which
		// checks and writes in one local transaction, serves one DB only.
		if quota, err = appQuota(db, *quotaKeys, *quotaBytes); err != nil {
			st.Close()
			return fail(err)
		}
	}
	if st.node != nil {
		// A node's copy changes through raft only: it is not rewritten,
		// but said.
		if n, err := countOldChatKeys(db); err == nil && n > 0 {
			logf("chat: %d message keys of the old scheme (oldest first) are not rewritten in cluster mode: their rooms page oldest first", n)
		}
	}
	var src metrics.Source = db
	if st.node != nil {
		src = st.node // its log is raft's
	}
	m := metrics.New(src)
	a, err := adapter.New(st.store, &adapter.Options{APIKeys: []string{*key}, TokenSecret: secret, Quota: quota, Logf: logf,
		// The pages allowed to call the REST API may open the WebSockets
		// too, whatever Host a proxy in front of serve sends.
		CORSOrigins: cors, AllowedOrigins: originPatterns(cors), OnRequest: m.OnRequest, HeartbeatInterval: *heartbeat, HeartbeatTimeout: *heartbeatTimeout,
		MaxMessageSize: max(2<<20, 2*(int64(*maxKey)+int64(*maxValue)))})
	if err != nil {
		st.Close()
		return fail(err)
	}
	m.SetAdapter(a)
	mux := http.NewServeMux()
	clients := newClientLimits(*tokenRate, *maxConns)
	clients.refused = m.Refused
	mux.Handle("/kv/", http.StripPrefix("/kv", clients.limitConns(a)))
	mountApps(mux, a, clients)
	mountHealth(mux, st.ready)
	mountBackup(mux, db, *key, logf)
	monMux := ops.mountMetrics(mux, st.ready, m)
	// A WebSocket is hijacked from the server, which clears these
	// deadlines: they bound plain requests and the upgrade, not a
	// connection once open (the adapter pings those).
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: min(10*time.Second, *readTimeout),
		ReadTimeout: *readTimeout, WriteTimeout: *writeTimeout, IdleTimeout: *idleTimeout, TLSConfig: tlsConf,
		ErrorLog: log.New(os.Stderr, "livekv: ", 0)} // TLS handshake errors, say

	served := make(chan error, 2)
	go func() {
		if tlsConf != nil {
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()
	var monSrv *http.Server
	if monMux != nil {
		monSrv = &http.Server{Handler: monMux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
		go func() { served <- monSrv.Serve(monLn) }()
	}

	abs, _ := filepath.Abs(*data)
	web, ws := scheme(tlsConf)
	fmt.Printf("livekv: database open in %s at revision %d\n", abs, db.Revision())
	if st.node != nil {
		fmt.Printf("livekv: cluster node %s on %s\n", st.node.ID(), st.node.Addr())
	}
	fmt.Printf("livekv: todo app at %s://%s/todo/, chat at %s://%s/chat/\n", web, ln.Addr(), web, ln.Addr())
	fmt.Printf("livekv: HPKV API at %s://%s/kv (WebSocket %s://%s/kv/ws)\n", web, ln.Addr(), ws, ln.Addr())
	fmt.Printf("livekv: DBX WebSocket API at %s://%s/kv/dbx/ws?api_key=KEY\n", ws, ln.Addr())
	if monLn != nil {
		fmt.Printf("livekv: metrics at http://%s/metrics\n", monLn.Addr())
	} else {
		fmt.Printf("livekv: metrics at %s://%s/metrics\n", web, ln.Addr())
	}
	if keyNote != "" {
		fmt.Printf("livekv: %s\n", keyNote)
	}
	fmt.Println("livekv: Ctrl-C to stop")
	select {
	case <-sigCtx.Done():
	case err := <-served:
		srv.Close()
		if monSrv != nil {
			monSrv.Close()
		}
		st.Close()
		return err
	}
	fmt.Println("livekv: closing")
	if monSrv != nil {
		monSrv.Close()
	}
	shutdown(a, srv, *grace, logf)
	return st.Close()
}

// shutdown lets requests and connections under way finish, for most of
// grace, then closes what is left: a client that trickles a body or
// keeps a connection does not hold the process, which exits within grace.
func shutdown(a *adapter.Adapter, srv *http.Server, grace time.Duration, logf func(string, ...any)) {
	margin := min(time.Second, grace/4) // for closing what is left, and the DB
	ctx, cancel := context.WithTimeout(context.Background(), grace-margin)
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- a.Shutdown(ctx) }()
	go func() { done <- srv.Shutdown(ctx) }()
	err := errors.Join(<-done, <-done)
	if err != nil {
		logf("closing connections still open after %v: %v", grace-margin, err)
		srv.Close()
		// The adapter has dropped the WebSockets still open; give their
		// requests what is left of the margin to return.
		ctx, cancel := context.WithTimeout(context.Background(), margin/2)
		defer cancel()
		a.Shutdown(ctx)
	}
}
