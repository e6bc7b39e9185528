package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// build compiles the command once per test.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "livekv")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// TestServe runs livekv serve, writes and reads a record over its HPKV API,
// stops it with SIGTERM and finds the record in its folder.
func TestServe(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0", "--api-key", "k1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	var base string
	for base == "" && lines.Scan() {
		if m := regexp.MustCompile(`HPKV API at (http://\S+)`).FindStringSubmatch(lines.Text()); m != nil {
			base = m[1]
		}
	}
	require.NotEmpty(t, base, "serve did not print its address")
	go io.Copy(io.Discard, stdout)

	do := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("x-api-key", "k1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("POST", "/record", `{"key":"hello","value":"world"}`)
	require.Equal(t, 200, code, body)
	code, body = do("GET", "/record/hello", "")
	require.Equal(t, 200, code)
	require.JSONEq(t, `{"key":"hello","value":"world"}`, body)

	require.Equal(t, "world", stopAndGet(t, cmd, data, "hello"))
}

// stopAndGet stops serve (cmd, on the folder data) with SIGTERM, checks
// that it exits cleanly, and returns key's value as the folder holds it.
func stopAndGet(t *testing.T, cmd *exec.Cmd, data, key string) string {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "a clean exit on SIGTERM")
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	db, err := engine.Open(data, nil)
	require.NoError(t, err)
	defer db.Close()
	it, err := db.Get(key)
	require.NoError(t, err)
	return it.Value
}

// TestUsage: every command exits 2 on a command line that makes no sense,
// with its usage printed once to stderr and nothing written, and 0 on
// --help, with the usage on stdout.
func TestUsage(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--api-key")
	out, err = exec.Command(bin, "frobnicate").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, string(out), "unknown command")
	// No command at all makes no sense either.
	var noneOut, noneErr bytes.Buffer
	none := exec.Command(bin)
	none.Stdout, none.Stderr = &noneOut, &noneErr
	err = none.Run()
	require.ErrorAs(t, err, &exit, "livekv with no command: %s", noneErr.String())
	require.Equal(t, 2, exit.ExitCode())
	require.Contains(t, noneErr.String(), "no command given")
	require.Equal(t, 1, strings.Count(noneErr.String(), "Commands:"), "the usage once: %s", noneErr.String())
	require.Empty(t, noneOut.String())
	// Asked for, the usage goes to stdout, as a command's --help does.
	for _, h := range []string{"help", "--help", "-h"} {
		var o, e bytes.Buffer
		cmd := exec.Command(bin, h)
		cmd.Stdout, cmd.Stderr = &o, &e
		require.NoError(t, cmd.Run(), h)
		require.Contains(t, o.String(), "Commands:", h)
		require.Empty(t, e.String(), h)
	}

	c := cli{t: t, bin: bin, addr: closedAddr(t), key: "k1"}
	for _, args := range [][]string{
		{"serve", "--bogus"}, {"serve", "--data", data, "extra"}, {"serve", "--data", data, "--grace", "0"},
		{"serve", "--data", data, "--tls-cert", "c.pem"}, {"serve", "--data", data, "--raft", "127.0.0.1:0"},
		{"serve", "--data", data, "--cors-origins", "example.com"},
		{"serve", "--data", data, "--addr", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--peers", "a=127.0.0.1:1,a=127.0.0.1:2"},
		{"serve", "--data", data, "--addr", "127.0.0.1:0", "--raft", "nowhere", "--peers", "a=nowhere"},
		{"serve", "--data", data, "--addr", "127.0.0.1:0", "--max-key-size", "3000000000"},
		{"check"}, {"check", data, "other"}, {"check", "--bogus", data},
		{"dump"}, {"dump", "--salvage"}, {"load"}, {"load", data, "other"},
		{"restore", "a"}, {"restore", "a", "b", "c"}, {"restore", "--bogus", "a", "b"},
		{"restore", "--max-key-size", "-1", "a", "b"}, {"load", "--max-value-size", "-1", data},
		{"check", "--max-key-size", "x", data}, {"dump", "--max-value-size", "-5", data},
		{"backup", "x"}, {"backup", "--bogus"},
		{"cluster"}, {"cluster", "frob"}, {"cluster", "remove"}, {"cluster", "status", "x"},
		{"cluster", "transfer", "a", "b"}, {"cluster", "status", "--bogus"}, {"cluster", "status", "--timeout", "0s"},
		{"version", "--bogus"},
		{"check", "--", "-x", "-y"}, // after --, arguments (two: one too many), not flags
	} {
		stdout, stderr, code := c.run(args...)
		require.Equal(t, 2, code, "%v: %s", args, stderr)
		require.Equal(t, 1, strings.Count(stderr, "usage: livekv "+args[0]), "%v: the usage once: %s", args, stderr)
		require.NotContains(t, stderr, "flag provided but not defined: -y", "%v: an argument after -- taken for a flag", args)
		require.Equal(t, 1, strings.Count(stderr, "livekv "+args[0]+": "), "%v: the error once: %s", args, stderr)
		require.Empty(t, stdout, "%v", args)
	}
	require.NoDirExists(t, data, "a serve refused wrote nothing")
	c.key = "secret-from-the-environment" // --help must not print it, as a flag's default: it would land in logs
	for _, sub := range []string{"serve", "check", "dump", "load", "backup", "restore", "cluster", "version",
		"get", "put", "del", "incr", "range", "watch"} {
		stdout, stderr, code := c.run(sub, "--help")
		require.Equal(t, 0, code, "%s --help: %s", sub, stderr)
		require.Equal(t, 1, strings.Count(stdout, "usage: livekv "+sub), "%s --help: %s", sub, stdout)
		require.Empty(t, stderr, "%s --help", sub)
		require.NotContains(t, stdout, c.key, "%s --help shows $LIVEKV_API_KEY", sub)
	}
	// Flags may follow the arguments, as in the client commands.
	stdout, stderr, code := c.run("load", filepath.Join(dir, "loaded"), "--help")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "usage: livekv load")
}

// TestCheckDumpLoad: check passes a sound folder and fails a corrupted
// one; dump and load carry every live item to a new folder.
func TestCheckDumpLoad(t *testing.T) {
	bin := build(t)
	src := filepath.Join(t.TempDir(), "src")
	db, err := engine.Open(src, &engine.Options{SegmentSize: 4 << 10})
	require.NoError(t, err)
	for i := 0; i < 200; i++ {
		_, err := db.Set(fmt.Sprintf("k%03d", i), strings.Repeat("v", i), nil)
		require.NoError(t, err)
	}
	_, err = db.Set("ttl", "soon", &engine.SetOptions{TTL: time.Hour})
	require.NoError(t, err)
	require.NoError(t, db.Checkpoint())
	_, err = db.Set("after", `{"json":true}`, nil)
	require.NoError(t, err)
	_, err = db.Delete("k000")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	out, err := exec.Command(bin, "check", src).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "snapshot at revision 201 with 201 keys")
	require.Contains(t, string(out), "ok")

	dumped, err := exec.Command(bin, "dump", src).Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(dumped)), "\n")
	require.Len(t, lines, 201) // 200 + ttl + after - k000

	dst := filepath.Join(t.TempDir(), "dst")
	load := exec.Command(bin, "load", dst)
	load.Stdin = bytes.NewReader(dumped)
	out, err = load.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "loaded 201 items")
	a, err := engine.Open(src, nil)
	require.NoError(t, err)
	b, err := engine.Open(dst, nil)
	require.NoError(t, err)
	var left, right []string
	for it, err := range enginetest.Items(a.Range("", "", nil)) {
		require.NoError(t, err)
		left = append(left, it.Key+"="+it.Value+"@"+fmt.Sprint(!it.ExpiresAt.IsZero()))
	}
	for it, err := range enginetest.Items(b.Range("", "", nil)) {
		require.NoError(t, err)
		right = append(right, it.Key+"="+it.Value+"@"+fmt.Sprint(!it.ExpiresAt.IsZero()))
	}
	require.Equal(t, left, right)
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())

	bad := exec.Command(bin, "load", filepath.Join(t.TempDir(), "x"))
	bad.Stdin = strings.NewReader("{\"key\":\"a\",\"value\":\"b\"}\nnot json\n")
	out, err = bad.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "line 2")

	// Corrupt a record that has good records after it.
	segs, err := filepath.Glob(filepath.Join(src, "wal", "*.log"))
	require.NoError(t, err)
	raw, err := os.ReadFile(segs[len(segs)-1])
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	require.NoError(t, os.WriteFile(segs[len(segs)-1], raw, 0o644))
	out, err = exec.Command(bin, "check", src).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, string(out), "corrupt")
	_, err = exec.Command(bin, "dump", src).Output()
	require.Error(t, err, "dump refuses a corrupted folder too")

	out, err = exec.Command(bin, "check", filepath.Join(t.TempDir(), "missing")).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "not a folder")
	for _, sub := range []string{"check", "dump", "load"} {
		out, err := exec.Command(bin, sub, "--help").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "usage: livekv "+sub)
	}
}

// TestCheck_TailDamage: check passes a folder whose log ends in a torn
// write, which the next open truncates, and fails one whose last record
// has a flipped bit, naming the segment and the record's offset.
func TestCheck_TailDamage(t *testing.T) {
	bin := build(t)
	src := filepath.Join(t.TempDir(), "src")
	db, err := engine.Open(src, nil)
	require.NoError(t, err)
	for i := 0; i < 10; i++ {
		_, err := db.Set(fmt.Sprintf("k%d", i), strings.Repeat("v", 50), nil)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())
	segs, err := filepath.Glob(filepath.Join(src, "wal", "*.log"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	good, err := os.ReadFile(segs[0])
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(segs[0], good[:len(good)-3], 0o644))
	out, err := exec.Command(bin, "check", src).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "torn tail: ")
	require.Contains(t, string(out), "ok")

	flipped := bytes.Clone(good)
	flipped[len(flipped)-10] ^= 0x04 // in the payload of the last record
	require.NoError(t, os.WriteFile(segs[0], flipped, 0o644))
	out, err = exec.Command(bin, "check", src).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, string(out), "corrupt")
	require.Contains(t, string(out), filepath.Base(segs[0]))
	require.Contains(t, string(out), "not a torn write")
	require.NotContains(t, string(out), "ok\n")
}

// TestServe_KeepsAPIKey: without a key, serve makes one, keeps it in the
// data folder and uses it again on the next run.
func TestServe_KeepsAPIKey(t *testing.T) {
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	run := func() string {
		cmd := exec.Command(bin, "serve", "--data", data, "--addr", "127.0.0.1:0")
		cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		defer cmd.Wait()
		defer cmd.Process.Signal(syscall.SIGTERM)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if strings.Contains(lines.Text(), "API key") {
				go io.Copy(io.Discard, stdout)
				return lines.Text()
			}
		}
		t.Fatal("serve said nothing of its API key")
		return ""
	}
	first := run()
	m := regexp.MustCompile(`API key (\w+) \(new, kept in (.*)\)`).FindStringSubmatch(first)
	require.NotNil(t, m, first)
	second := run()
	require.Contains(t, second, "API key in "+m[2])
	require.NotContains(t, second, m[1], "the key is shown once")
	kept, err := os.ReadFile(filepath.Join(data, "api-key"))
	require.NoError(t, err)
	require.Equal(t, m[1], strings.TrimSpace(string(kept)))
}
