package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livekv/livekv/adapter"
	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// cli runs the livekv binary with args against addr with the API key,
// and returns its stdout, stderr and exit code.
type cli struct {
	t    *testing.T
	bin  string
	addr string
	key  string
}

func (c cli) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY="+c.key, "LIVEKV_ADDR="+c.addr)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	require.NoError(c.t, err)
	return out.String(), errOut.String(), 0
}

// ok runs args, which must succeed, and returns stdout.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	require.Equal(c.t, 0, code, "%v: %s", args, errOut)
	return out
}

// fails runs args, which must exit with code, and returns stderr.
func (c cli) fails(code int, args ...string) string {
	c.t.Helper()
	out, errOut, got := c.run(args...)
	require.Equal(c.t, code, got, "%v: %s%s", args, out, errOut)
	return errOut
}

func TestClientCommands(t *testing.T) {
	bin := build(t)
	srv := runServe(t, bin, "serve", "--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0", "--api-key", "k1")
	c := cli{t: t, bin: bin, addr: strings.TrimPrefix(srv.base, "http://"), key: "k1"}

	require.Equal(t, "OK\n", c.ok("put", "greeting", "hello world"))
	require.Equal(t, "greeting\nhello world\n", c.ok("get", "greeting"))
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.ok("get", "-o", "json", "greeting")), &got))
	require.Equal(t, "hello world", got["value"])
	rev := got["revision"].(float64)
	require.Positive(t, rev)
	require.NoError(t, json.Unmarshal([]byte(c.ok("put", "greeting", "again", "-o", "json")), &got), "flags after arguments")
	require.Equal(t, rev+1, got["revision"])
	require.Equal(t, "greeting\nagain\n", c.ok("get", "--addr", "http://"+c.addr, "greeting"), "--addr as a URL")
	require.Equal(t, "greeting\nagain\n", c.ok("get", "--addr", freeAddr(t)+", "+c.addr, "greeting"),
		"several --addr: the next when the first is down")
	require.Contains(t, c.fails(1, "get", "--addr", c.addr+",,", "greeting"), "an empty address")
	require.Equal(t, "OK\n", c.ok("put", "--ttl", "1h", "soon", "x"))
	require.Equal(t, "OK\n", c.ok("put", "--", "-dash", "v"), "-- ends the flags")
	put := exec.Command(bin, "put", "fromstdin")
	put.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+c.addr)
	put.Stdin = strings.NewReader("line 1\nline 2\n")
	out, err := put.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, json.Unmarshal([]byte(c.ok("get", "-o", "json", "fromstdin")), &got))
	require.Equal(t, "line 1\nline 2\n", got["value"], "the value from standard input, as it is")
	require.Equal(t, "-dash\nv\n", c.ok("get", "--", "-dash"))
	// After --, every argument is one, even after the first.
	c.ok("put", "--", "-k", "-v")
	require.Equal(t, "-k\n-v\n", c.ok("get", "--", "-k"))
	c.ok("put", "k2", "--", "--x")
	require.Equal(t, "k2\n--x\n", c.ok("get", "k2"))

	require.Contains(t, c.fails(1, "get", "missing"), `"missing": key not found`)
	require.Equal(t, "1\n", c.ok("incr", "n"))
	require.Equal(t, "6\n", c.ok("incr", "n", "5"))
	require.Equal(t, "-4\n", c.ok("incr", "n", "-10"))
	require.NoError(t, json.Unmarshal([]byte(c.ok("incr", "-o", "json", "n")), &got))
	require.Equal(t, map[string]any{"key": "n", "value": -3.0, "revision": got["revision"]}, got)
	errOut := c.fails(1, "incr", "greeting")
	require.Contains(t, errOut, "not an integer")
	require.True(t, strings.HasPrefix(errOut, "livekv incr: 400 "), "one prefix: %s", errOut)
	require.NotContains(t, errOut, "livekv: ")

	require.Equal(t, "1\n", c.ok("del", "greeting"))
	require.Equal(t, "0\n", c.ok("del", "greeting"), "nothing to delete")
	require.NoError(t, json.Unmarshal([]byte(c.ok("del", "-o", "json", "n")), &got))
	require.Equal(t, 1.0, got["deleted"])

	for i := 1; i <= 4; i++ {
		c.ok("put", fmt.Sprintf("r:%d", i), fmt.Sprintf("v%d", i))
	}
	require.Equal(t, "r:1\nv1\nr:2\nv2\n", c.ok("range", "r:1", "r:3"))
	require.Equal(t, "r:1\nr:2\nr:3\nr:4\n", c.ok("range", "--prefix", "r:", "--keys-only"))
	require.Equal(t, "r:1\nv1\nr:2\nv2\n", c.ok("range", "--prefix=r:", "--limit", "2"))
	lines := strings.Split(strings.TrimSpace(c.ok("range", "-o", "json", "r:3", "s")), "\n")
	require.Equal(t, []string{`{"key":"r:3","value":"v3"}`, `{"key":"r:4","value":"v4"}`}, lines)
	// The arguments are those the flags leave: after --, a key that looks
	// like --prefix is START; an empty --prefix is every key.
	c.ok("put", "--", "--prefix", "p")
	require.Equal(t, "--prefix\n", c.ok("range", "--keys-only", "--limit", "1", "--", "--prefix"))
	require.Equal(t, "--prefix\n-dash\n", c.ok("range", "--keys-only", "--prefix=", "--limit", "2"))

	// Usage errors: exit 2, the usage once.
	for _, args := range [][]string{
		{"get"}, {"get", "a", "b"}, {"put"}, {"put", "k", "v", "w"}, {"put", "k", ""}, {"put", "--ttl", "-1s", "k", "v"}, {"incr", "k", "x"},
		{"get", "--bogus", "k"}, {"get", "-o", "yaml", "k"}, {"range"}, {"range", "--prefix", "a", "b"}, {"del"},
		{"watch"}, {"watch", "k", "--prefix", "p"}, {"version", "extra"}, {"range", "--limit", "-1", "a"},
		{"range", "--prefix=", "a"}, {"range", "a", "b", "c"}, {"range", "--prefix", "a", "--", "b"},
	} {
		errOut := c.fails(2, args...)
		require.Equal(t, 1, strings.Count(errOut, "usage: livekv "+args[0]), "%v: %s", args, errOut)
	}
	for _, sub := range []string{"get", "put", "del", "incr", "range", "watch", "version"} {
		out := c.ok(sub, "--help")
		require.Contains(t, out, "usage: livekv "+sub)
	}

	// Errors of the connection: exit 1.
	require.Contains(t, cli{t: t, bin: bin, addr: c.addr, key: "wrong"}.fails(1, "get", "r:1"), "forbidden")
	require.Contains(t, cli{t: t, bin: bin, addr: c.addr}.fails(1, "get", "r:1"), "no API key")
	require.Contains(t, c.fails(1, "get", "--addr", closedAddr(t), "--timeout", "2s", "r:1"), "connect")

	srv.stop(t)
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestWatch: watch prints changes, past ones from --rev first, goes on
// across a restart of the server with none missed or repeated, and exits
// 0 on Ctrl-C.
func TestWatch(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	addr := closedAddr(t)
	srv := runServe(t, bin, "serve", "--data", data, "--addr", addr, "--api-key", "k1")
	c := cli{t: t, bin: bin, addr: addr, key: "k1"}
	c.ok("put", "other", "x") // --rev 0 is "from now": w:0 comes after revision 1
	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.ok("put", "-o", "json", "w:0", "before")), &first))
	c.ok("put", "other", "y")

	watch := exec.Command(bin, "watch", "--prefix", "w:", "--rev", fmt.Sprint(first["revision"].(float64)-1), "-o", "json")
	watch.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+addr)
	stdout, err := watch.StdoutPipe()
	require.NoError(t, err)
	watch.Stderr = os.Stderr
	require.NoError(t, watch.Start())
	defer watch.Process.Kill()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case l, ok := <-lines:
			require.True(t, ok, "watch ended")
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m), l)
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no change printed")
			return nil
		}
	}
	m := next()
	require.Equal(t, map[string]any{"type": "PUT", "key": "w:0", "value": "before", "revision": first["revision"], "time": m["time"]}, m)
	for i := 1; i <= 20; i++ {
		c.ok("put", "w:a", fmt.Sprint(i))
	}
	c.ok("del", "w:0")
	srv.stop(t)
	srv = runServe(t, bin, "serve", "--data", data, "--addr", addr, "--api-key", "k1")
	for i := 21; i <= 40; i++ {
		c.ok("put", "w:a", fmt.Sprint(i))
	}
	var last float64
	for i := 1; i <= 40; i++ {
		m := next()
		require.Equal(t, fmt.Sprint(i), m["value"], "in order, none missed or repeated")
		require.Greater(t, m["revision"], last)
		last = m["revision"].(float64)
		if i == 20 {
			m := next()
			require.Equal(t, map[string]any{"type": "DELETE", "key": "w:0", "revision": m["revision"], "time": m["time"]}, m)
		}
	}
	require.NoError(t, watch.Process.Signal(syscall.SIGINT))
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, stdout)
		done <- watch.Wait()
	}()
	select {
	case err := <-done:
		require.NoError(t, err, "exit 0 on Ctrl-C")
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on Ctrl-C")
	}
	srv.stop(t)

	// Plain output, for one key.
	srv = runServe(t, bin, "serve", "--data", data, "--addr", addr, "--api-key", "k1")
	plain := exec.Command(bin, "watch", "w:a", "--rev", fmt.Sprint(last-1))
	plain.Env = watch.Env
	out, err := plain.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, plain.Start())
	defer plain.Process.Kill()
	c.ok("del", "w:a")
	sc := bufio.NewScanner(out)
	var got []string
	for len(got) < 5 && sc.Scan() {
		got = append(got, sc.Text())
	}
	require.Equal(t, []string{"PUT", "w:a", "40", "DELETE", "w:a"}, got)
	require.NoError(t, plain.Process.Signal(syscall.SIGTERM))
	go io.Copy(io.Discard, out)
	require.NoError(t, plain.Wait())
	srv.stop(t)
}

// TestClientTLS: an https --addr, trusted with --cacert.
func TestClientTLS(t *testing.T) {
	bin := build(t)
	db, err := engine.Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	a, err := adapter.New(db, &adapter.Options{APIKeys: []string{"k1"}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/kv/", http.StripPrefix("/kv", a))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	defer a.Shutdown(context.Background())
	cert := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	c := cli{t: t, bin: bin, addr: srv.URL + "/kv", key: "k1"}
	require.Contains(t, c.fails(1, "put", "k", "v"), "certificate", "not trusted without --cacert")
	require.Equal(t, "OK\n", c.ok("put", "--cacert", cert, "k", "v"))
	require.Equal(t, "k\nv\n", c.ok("get", "--cacert", cert, "k"))
	require.Contains(t, c.fails(1, "get", "--cacert", filepath.Join(t.TempDir(), "none.pem"), "k"), "--cacert")

	// HOST:PORT alone is plain HTTP: the error says to give https://.
	hostPort := strings.TrimPrefix(srv.URL, "https://")
	for _, addr := range []string{hostPort, "http://" + hostPort + "/kv"} {
		errOut := c.fails(1, "get", "--addr", addr, "k")
		require.Contains(t, errOut, "(the server speaks HTTPS: give --addr https://"+hostPort+"/kv)", errOut)
	}
	// A server that does not speak TLS gets no such hint.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	errOut := c.fails(1, "get", "--addr", strings.TrimPrefix(plain.URL, "http://"), "k")
	require.NotContains(t, errOut, "HTTPS", errOut)
	require.Equal(t, 1, strings.Count(errOut, "livekv"), "one prefix: %s", errOut)
}

// TestWatch_Patterns: watch --pattern, repeated, one of them a regex,
// prints the changes of the keys either matches, and only those; a
// pattern that does not parse is a usage error; and a --rev older than
// the server's history ends watch with exit 1 and what to do instead.
func TestWatch_Patterns(t *testing.T) {
	bin := build(t)
	// A restored folder has no history before the backup's revision.
	src, err := engine.Open("", nil)
	require.NoError(t, err)
	for i := range 10 {
		_, err := src.Set(fmt.Sprintf("old:%d", i), "v", nil)
		require.NoError(t, err)
	}
	var b strings.Builder
	rev, err := src.Backup(&b)
	require.NoError(t, err)
	require.NoError(t, src.Close())
	data := filepath.Join(t.TempDir(), "data")
	_, err = engine.RestoreDir(strings.NewReader(b.String()), data, nil)
	require.NoError(t, err)

	srv := runServe(t, bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1")
	c := cli{t: t, bin: bin, addr: strings.TrimPrefix(srv.base, "http://"), key: "k1"}
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.ok("put", "-o", "json", "start", "x")), &got))
	from := fmt.Sprint(got["revision"])

	watch := exec.Command(bin, "watch", "--pattern", "p:*", "--pattern", `/^q:\d+$/`, "--rev", from, "-o", "json")
	watch.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+c.addr)
	stdout, err := watch.StdoutPipe()
	require.NoError(t, err)
	watch.Stderr = os.Stderr
	require.NoError(t, watch.Start())
	defer watch.Process.Kill()
	for _, k := range []string{"p:1", "q:2", "q:x", "pp:1", "other", "q:12", "p:2"} {
		c.ok("put", k, "v-"+k)
	}
	c.ok("del", "p:1")
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var keys []string
	for len(keys) < 5 {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "watch ended")
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m), l)
			keys = append(keys, m["type"].(string)+" "+m["key"].(string))
		case <-time.After(20 * time.Second):
			t.Fatalf("only %v printed", keys)
		}
	}
	require.Equal(t, []string{"PUT p:1", "PUT q:2", "PUT q:12", "PUT p:2", "DELETE p:1"}, keys)
	require.NoError(t, watch.Process.Signal(syscall.SIGINT))
	var more []string
	for l := range lines { // until watch closes its stdout
		more = append(more, l)
	}
	require.Empty(t, more, "nothing else printed")
	require.NoError(t, watch.Wait(), "exit 0 on Ctrl-C")

	// --prefix "" is every key, as for range.
	all := exec.Command(bin, "watch", "--prefix", "", "--rev", from, "-o", "json")
	all.Env = watch.Env
	stdout, err = all.StdoutPipe()
	require.NoError(t, err)
	all.Stderr = os.Stderr
	require.NoError(t, all.Start())
	defer all.Process.Kill()
	sc := bufio.NewScanner(stdout)
	keys = nil
	for len(keys) < 8 && sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		keys = append(keys, m["type"].(string)+" "+m["key"].(string))
	}
	require.Equal(t, []string{"PUT p:1", "PUT q:2", "PUT q:x", "PUT pp:1", "PUT other", "PUT q:12", "PUT p:2", "DELETE p:1"}, keys)
	require.NoError(t, all.Process.Signal(syscall.SIGINT))
	require.NoError(t, all.Wait(), "exit 0 on Ctrl-C")

	for _, p := range []string{`/[/`, `/^a(/`} {
		errOut := c.fails(2, "watch", "--pattern", "ok:*", "--pattern", p)
		require.Equal(t, 1, strings.Count(errOut, "usage: livekv watch"), errOut)
		require.Contains(t, errOut, "--pattern "+p)
	}

	errOut := c.fails(1, "watch", "--prefix", "old:", "--rev", "1")
	require.Contains(t, errOut, "livekv watch: the server's history no longer holds the changes after revision 1; "+
		fmt.Sprintf("the oldest it holds is %d.\nWatch again with --rev %d or later", rev+1, rev), errOut)
	srv.stop(t)
}

// TestPut_BadTTLBeforeStdin: a usage error does not wait for standard
// input first: `put --ttl -1s KEY` typed at a terminal sat waiting for a
// value before it refused the flag.
func TestPut_BadTTLBeforeStdin(t *testing.T) {
	bin := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "put", "--ttl", "-1s", "k")
	cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k", "LIVEKV_ADDR=127.0.0.1:1")
	w, err := cmd.StdinPipe() // held open, as a terminal's is
	require.NoError(t, err)
	defer w.Close()
	_ = cmd.Run()
	require.NoError(t, ctx.Err(), "put still waited on standard input")
	require.Equal(t, 2, cmd.ProcessState.ExitCode())
}
