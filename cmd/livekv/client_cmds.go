package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	kvclient "github.com/livekv/livekv/client"
	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/pattern"
)

// clientCommands are the commands that talk to a running server.
var clientCommands = map[string]func([]string) error{
	"get": getCmd, "put": putCmd, "del": delCmd, "incr": incrCmd, "range": rangeCmd, "watch": watchCmd,
	"version": versionCmd,
}

// usageError is a command line that makes no sense: the command has
// printed its usage, and livekv exits 2.
type usageError struct{ error }

// exitCode is the status livekv exits with after err: 2 for a usage
// error, 1 for any other.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// defaultAddr is the default --addr of the commands that talk to a
// server: $LIVEKV_ADDR, else 127.0.0.1:8080.
func defaultAddr() string {
	if addr := os.Getenv("LIVEKV_ADDR"); addr != "" {
		return addr
	}
	return "127.0.0.1:8080"
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	fs      *flag.FlagSet
	addr    *string
	apiKey  *string
	output  *string
	timeout *time.Duration
	cacert  *string
}

func newClientFlags(name, usage string) *clientFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &clientFlags{fs: fs}
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	f.addr = fs.String("addr", defaultAddr(), "the server: HOST:PORT, or the URL of its API (http://HOST:PORT/kv); several, comma-separated, for the nodes of a cluster, tried in turn and on a lost connection; default $LIVEKV_ADDR, else 127.0.0.1:8080")
	f.apiKey = fs.String("api-key", "", "the server's API key; default $LIVEKV_API_KEY")
	f.output = fs.String("o", "plain", "output: plain, or json (one JSON object a line)")
	f.cacert = fs.String("cacert", "", "a PEM file of the certificates to trust for an https --addr, beside the system's")
	f.timeout = fs.Duration("timeout", 10*time.Second, "how long the command may wait for the server (watch: to connect and subscribe)")
	return f
}

// parse parses args, flags and arguments in any order, and checks that
// between min and max arguments (max -1: any number) are left. --help
// prints the usage to stdout and returns flag.ErrHelp; a bad command line
// prints it to stderr and returns a usageError.
func (f *clientFlags) parse(args []string, minArgs, maxArgs int) ([]string, error) {
	rest, err := parseArgs(f.fs, protectNegatives(f.fs, args))
	if err != nil {
		return nil, err
	}
	switch {
	case len(rest) < minArgs || maxArgs >= 0 && len(rest) > maxArgs:
		return nil, f.bad(fmt.Sprintf("wrong number of arguments (%d)", len(rest)))
	case *f.output != "plain" && *f.output != "json":
		return nil, f.bad(fmt.Sprintf("-o %s: give plain or json", *f.output))
	case *f.timeout <= 0:
		return nil, f.bad("--timeout must be positive")
	}
	return rest, nil
}

// negative marks an argument that is a negative number, such as incr's
// DELTA, so that flag parsing does not take it for a flag.
const negative = "\x00"

// protectNegatives marks the negative numbers in args that are arguments,
// not the values of flags (--limit -1 stays as it is), up to -- (after
// it parseArgs takes every argument as it is).
func protectNegatives(fs *flag.FlagSet, args []string) []string {
	out := slices.Clone(args)
	takesValue := false // the previous token is a flag whose value is this one
	for i, a := range args {
		if a == "--" && !takesValue {
			break
		}
		if _, err := strconv.ParseInt(a, 10, 64); err == nil && strings.HasPrefix(a, "-") && !takesValue {
			out[i] = negative + a
			continue
		}
		name := strings.TrimLeft(a, "-")
		takesValue = false
		if strings.HasPrefix(a, "-") && !strings.Contains(name, "=") {
			if fl := fs.Lookup(name); fl != nil {
				b, ok := fl.Value.(interface{ IsBoolFlag() bool })
				takesValue = !ok || !b.IsBoolFlag()
			}
		}
	}
	return out
}

// bad prints the usage and returns the usage error msg.
func (f *clientFlags) bad(msg string) error {
	return badUsage(f.fs, msg)
}

// serverURL turns --addr into the URL of the server's API.
func serverURL(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		return "http://" + addr + "/kv", nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/kv"
	}
	return u.String(), nil
}

// dial connects to --addr with --api-key. With several addresses (the
// nodes of a cluster) the client tries them in turn, and moves to the
// next when a connection is lost, carrying its session.
func (f *clientFlags) dial(ctx context.Context) (*kvclient.Client, error) {
	if *f.apiKey = apiKeyOr(*f.apiKey); *f.apiKey == "" {
		return nil, errors.New("no API key: give --api-key or set $LIVEKV_API_KEY (livekv serve prints where it keeps its key)")
	}
	var urls []string
	for _, a := range strings.Split(*f.addr, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("--addr %q: an empty address", *f.addr)
		}
		u, err := serverURL(a)
		if err != nil {
			return nil, fmt.Errorf("--addr %s: %w", a, err)
		}
		urls = append(urls, u)
	}
	u := urls[0]
	o := &kvclient.Options{APIKey: *f.apiKey, DialTimeout: *f.timeout, URLs: urls[1:]}
	var err error
	if *f.cacert != "" {
		if o.HTTPClient, err = trusting(*f.cacert); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	c, err := kvclient.Dial(ctx, u, o)
	// The hint probes the one address given; with several, the error
	// is the last one's, and a probe of the first would mislead.
	if err != nil && len(urls) == 1 && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, kvclient.ErrUnauthorized) && !errors.Is(err, kvclient.ErrForbidden) {
		if hint := tlsHint(u); hint != "" {
			err = fmt.Errorf("%w\n(%s)", err, hint)
		}
	}
	return c, err
}

// tlsHint returns, when u is an http:// URL of a server that speaks TLS
// there, a hint to give its https:// URL instead; "" otherwise. It only
// learns whether a TLS handshake completes: nothing is sent.
func tlsHint(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" {
		return ""
	}
	host := p.Host
	if p.Port() == "" {
		host = net.JoinHostPort(p.Hostname(), "80")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} // a probe: no data is sent
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return ""
	}
	conn.Close()
	p.Scheme = "https"
	return fmt.Sprintf("the server speaks HTTPS: give --addr %s", p)
}

// trusting returns an HTTP client that trusts the certificates in the
// PEM file, beside the system's.
func trusting(file string) (*http.Client, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--cacert: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", file)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// run connects and runs fn with a context bound by --timeout.
func (f *clientFlags) run(fn func(ctx context.Context, c *kvclient.Client) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// printJSON writes v as one line of JSON.
func printJSON(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}

func getCmd(args []string) error {
	f := newClientFlags("get", "usage: livekv get [flags] KEY\n\nPrints KEY and its value on two lines (-o json: {\"key\",\"value\",\"revision\"}).\nA missing key is an error (exit 1).")
	rest, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return f.run(func(ctx context.Context, c *kvclient.Client) error {
		it, err := c.Get(ctx, rest[0])
		if errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("%q: key not found", rest[0])
		}
		if err != nil {
			return err
		}
		if *f.output == "json" {
			return printJSON(map[string]any{"key": it.Key, "value": it.Value, "revision": it.Revision})
		}
		_, err = fmt.Printf("%s\n%s\n", it.Key, it.Value)
		return err // a value not written is lost: exit 1
	})
}

func putCmd(args []string) error {
	f := newClientFlags("put", "usage: livekv put [flags] KEY [VALUE]\n\nSets KEY to VALUE (not empty; without it, all of standard input, as it is)\nand prints OK (-o json: {\"revision\"}).")
	ttl := f.fs.Duration("ttl", 0, "expire the key after this long (at least 1ms); 0 never")
	rest, err := f.parse(args, 1, 2)
	if err != nil {
		return err
	}
	if *ttl < 0 || *ttl > 0 && *ttl < time.Millisecond {
		return f.bad("--ttl: give 0 (never) or at least 1ms") // before stdin, which a terminal holds open
	}
	if len(rest) == 1 {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("reading the value from standard input: %w", err)
		}
		rest = append(rest, string(b))
	}
	if rest[1] == "" {
		return f.bad("VALUE must not be empty")
	}
	return f.run(func(ctx context.Context, c *kvclient.Client) error {
		rev, err := c.Set(ctx, rest[0], rest[1], &kvclient.SetOptions{TTL: *ttl})
		if err != nil {
			return err
		}
		if *f.output == "json" {
			return printJSON(map[string]any{"revision": rev})
		}
		_, err = fmt.Println("OK")
		return err
	})
}

func delCmd(args []string) error {
	f := newClientFlags("del", "usage: livekv del [flags] KEY\n\nDeletes KEY and prints how many keys it deleted: 1, or 0 when there was none\n(-o json: {\"deleted\",\"revision\"}).")
	rest, err := f.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return f.run(func(ctx context.Context, c *kvclient.Client) error {
		n := 1
		rev, err := c.Delete(ctx, rest[0])
		if errors.Is(err, engine.ErrNotFound) {
			n, err = 0, nil
		}
		if err != nil {
			return err
		}
		if *f.output == "json" {
			return printJSON(map[string]any{"deleted": n, "revision": rev})
		}
		_, err = fmt.Println(n)
		return err
	})
}

func incrCmd(args []string) error {
	f := newClientFlags("incr", "usage: livekv incr [flags] KEY [DELTA]\n\nAdds DELTA (default 1, may be negative) to KEY's integer, a missing key\nstarting at 0, and prints the result (-o json: {\"key\",\"value\",\"revision\"}).")
	rest, err := f.parse(args, 1, 2)
	if err != nil {
		return err
	}
	delta := int64(1)
	if len(rest) == 2 {
		if delta, err = strconv.ParseInt(rest[1], 10, 64); err != nil {
			return f.bad(fmt.Sprintf("DELTA %q is not an integer", rest[1]))
		}
	}
	return f.run(func(ctx context.Context, c *kvclient.Client) error {
		n, rev, err := c.Increment(ctx, rest[0], delta)
		if err != nil {
			return err
		}
		if *f.output == "json" {
			return printJSON(map[string]any{"key": rest[0], "value": n, "revision": rev})
		}
		_, err = fmt.Println(n)
		return err
	})
}

func rangeCmd(args []string) error {
	f := newClientFlags("range", "usage: livekv range [flags] START [END]\n       livekv range [flags] --prefix PREFIX\n\nPrints the keys from START up to END (excluded; none: to the last key), or\nthose that start with PREFIX, in order: each key and its value on two lines\n(-o json: one {\"key\",\"value\"} a line). Each page the server sends is read\nat one revision; the whole range is not.")
	prefix := f.fs.String("prefix", "", "the keys that start with this")
	limit := f.fs.Int("limit", 0, "print at most this many keys; 0 all")
	keysOnly := f.fs.Bool("keys-only", false, "print the keys alone")
	rest, err := f.parse(args, 0, 2)
	if err != nil {
		return err
	}
	byPrefix := false // --prefix given, even empty: every key
	f.fs.Visit(func(fl *flag.Flag) { byPrefix = byPrefix || fl.Name == "prefix" })
	if byPrefix == (len(rest) > 0) {
		return f.bad(fmt.Sprintf("wrong number of arguments (%d): give START [END] or --prefix", len(rest)))
	}
	if *limit < 0 {
		return f.bad("--limit must not be negative")
	}
	// --timeout bounds each wait for the server (a page), not the whole
	// range, which may have many pages, nor the time spent writing them
	// (to a pager, say).
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	c, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	timer := time.AfterFunc(*f.timeout, func() {
		cancel(fmt.Errorf("no answer from the server within %v (--timeout): %w", *f.timeout, context.DeadlineExceeded))
	})
	defer timer.Stop()
	o := &kvclient.RangeOptions{Limit: *limit}
	seq := c.Prefix(ctx, *prefix, o)
	if len(rest) > 0 {
		end := ""
		if len(rest) == 2 {
			end = rest[1]
		}
		seq = c.Range(ctx, rest[0], end, o)
	}
	for it, err := range seq {
		timer.Stop()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		switch {
		case *f.output == "json" && *keysOnly:
			err = printJSON(map[string]any{"key": it.Key})
		case *f.output == "json":
			err = printJSON(map[string]any{"key": it.Key, "value": it.Value})
		case *keysOnly:
			_, err = fmt.Println(it.Key)
		default:
			_, err = fmt.Printf("%s\n%s\n", it.Key, it.Value)
		}
		if err != nil {
			return err
		}
		timer.Reset(*f.timeout)
	}
	return nil
}

// patternList is a repeatable --pattern flag.
type patternList []string

func (p *patternList) String() string     { return strings.Join(*p, ",") }
func (p *patternList) Set(s string) error { *p = append(*p, s); return nil }

func watchCmd(args []string) error {
	f := newClientFlags("watch", "usage: livekv watch [flags] KEY\n       livekv watch [flags] --prefix PREFIX\n       livekv watch [flags] --pattern PATTERN [--pattern PATTERN ...]\n\n"+
		"Prints each change of the keys watched as it happens, until Ctrl-C: PUT, the key\nand the value on three lines, or DELETE and the key on two (-o json: one\n{\"type\",\"key\",\"value\",\"revision\",\"time\"} a line). When the connection drops\n(a server restart), or a cluster node without a leader ends the watch, it\nsubscribes again and goes on after the last change it printed, with none\nmissed or repeated; it exits 1 if the server's history no longer reaches\nback that far.")
	prefix := f.fs.String("prefix", "", "watch the keys that start with this")
	var patterns patternList
	f.fs.Var(&patterns, "pattern", "watch the keys that match this pattern (user:*, *:session, /^order:\\d+$/); repeatable")
	rev := f.fs.Int64("rev", 0, "print the changes after this revision (as put -o json prints it) first; 0: from now")
	rest, err := f.parse(args, 0, 1)
	if err != nil {
		return err
	}
	byPrefix := false // --prefix given, even empty: every key, as range takes it
	f.fs.Visit(func(fl *flag.Flag) { byPrefix = byPrefix || fl.Name == "prefix" })
	switch {
	case len(rest) == 1 && (byPrefix || len(patterns) > 0):
		return f.bad("give a KEY, or --prefix and --pattern, not both")
	case len(rest) == 1:
		patterns = append(patterns, kvclient.KeyPattern(rest[0]))
	case byPrefix:
		patterns = append(patterns, kvclient.PrefixPattern(*prefix))
	case len(patterns) == 0:
		return f.bad("give a KEY, --prefix or --pattern")
	}
	if *rev < 0 {
		return f.bad("--rev must not be negative")
	}
	for _, p := range patterns {
		if _, err := pattern.Parse(p); err != nil {
			return f.bad(fmt.Sprintf("--pattern %s: %v", p, err))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := f.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while connecting
		}
		return err
	}
	defer c.Close()
	subCtx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	sub, err := c.Subscribe(subCtx, patterns, &kvclient.SubscribeOptions{FromRevision: *rev})
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while subscribing
		}
		return explainCompacted(err)
	}
	defer sub.Close()
	for {
		ev, err := sub.Next(ctx)
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		if err != nil {
			return explainCompacted(err)
		}
		typ := "PUT"
		if ev.Deleted {
			typ = "DELETE"
		}
		switch {
		case *f.output == "json":
			m := map[string]any{"type": typ, "key": ev.Key, "revision": ev.Revision, "time": ev.Time.UTC().Format(time.RFC3339Nano)}
			if !ev.Deleted {
				m["value"] = ev.Value
			}
			err = printJSON(m)
		case ev.Deleted:
			_, err = fmt.Printf("%s\n%s\n", typ, ev.Key)
		default:
			_, err = fmt.Printf("%s\n%s\n%s\n", typ, ev.Key, ev.Value)
		}
		if err != nil {
			return err
		}
	}
}

// explainCompacted says what to do about a watch whose changes the
// server no longer holds; other errors it returns as they are.
func explainCompacted(err error) error {
	var compacted *engine.CompactedError
	if !errors.As(err, &compacted) {
		if errors.Is(err, engine.ErrCompacted) { // a revision the server never reached
			return fmt.Errorf("%w.\nThe server has not reached that revision (restarted in memory, or restored from an older backup): watch again with --rev 0 for changes from now", err)
		}
		return err
	}
	return fmt.Errorf("the server's history no longer holds the changes after revision %d; the oldest it holds is %d.\n"+
		"Watch again with --rev %d or later (the changes between are lost), or --rev 0 for changes from now",
		compacted.Revision, compacted.Oldest, compacted.Oldest-1)
}

func versionCmd(args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	output := fs.String("o", "plain", "output: plain, or json")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: livekv version [-o json]\n\nPrints the module version, the VCS revision livekv was built from and the Go version.\n\nFlags:")
		fs.PrintDefaults()
	}
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *output != "plain" && *output != "json" {
		return badUsage(fs, "version takes no arguments; -o is plain or json")
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build information in this binary")
	}
	v := map[string]string{"version": info.Main.Version, "go": info.GoVersion}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v["revision"] = s.Value
		case "vcs.time":
			v["time"] = s.Value
		case "vcs.modified":
			v["modified"] = s.Value
		}
	}
	if *output == "json" {
		return printJSON(v)
	}
	rev := "revision unknown (built without VCS information)"
	if r := v["revision"]; r != "" {
		mod := ""
		if v["modified"] == "true" {
			mod = " (modified)"
		}
		rev = fmt.Sprintf("revision %s%s %s", r, mod, v["time"])
	}
	_, err = fmt.Printf("livekv %s\n%s\n%s\n", v["version"], rev, v["go"])
	return err
}
