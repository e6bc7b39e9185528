//go:build linux

package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

// TestClientCommands_OutputNotWritten: a command whose output cannot be
// written (a full disk: /dev/full) fails, exit 1, saying so, in plain
// output as in JSON: get's value, above all, is not lost with exit 0.
func TestClientCommands_OutputNotWritten(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	require.NoError(t, err)
	defer full.Close()
	bin := build(t)
	srv := runServe(t, bin, "serve", "--data", filepath.Join(t.TempDir(), "data"), "--addr", "127.0.0.1:0", "--api-key", "k1")
	c := cli{t: t, bin: bin, addr: strings.TrimPrefix(srv.base, "http://"), key: "k1"}
	c.ok("put", "k", "v")
	for _, args := range [][]string{
		{"get", "k"}, {"get", "-o", "json", "k"}, {"put", "k", "v"}, {"put", "-o", "json", "k", "v"},
		{"incr", "n"}, {"del", "k"}, {"range", "--prefix", ""}, {"version"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "LIVEKV_API_KEY=k1", "LIVEKV_ADDR="+c.addr)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = full, &stderr
		err := cmd.Run()
		require.Error(t, err, "%v", args)
		require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%v: %s", args, stderr.String())
		require.Contains(t, stderr.String(), "no space left on device", "%v", args)
	}
	srv.stop(t)
}

// TestTools_OutputNotWritten: check, load and restore whose report cannot
// be written (/dev/full) fail, exit 1, saying so: check's verdict is what
// it is run for, and load and restore say what they did.
func TestTools_OutputNotWritten(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	require.NoError(t, err)
	defer full.Close()
	bin := build(t)
	dir := t.TempDir()
	run := func(stdin string, stdout *os.File, args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), stdout, &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer devNull.Close()
	src := filepath.Join(dir, "src")
	code, stderr := run(`{"key":"a","value":"b"}`+"\n", devNull, "load", src)
	require.Equal(t, 0, code, stderr)
	backup := filepath.Join(dir, "backup")
	db, err := engine.Open(src, nil)
	require.NoError(t, err)
	f, err := os.Create(backup)
	require.NoError(t, err)
	_, err = db.Backup(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, db.Close())

	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"check", src}},
		{`{"key":"c","value":"d"}` + "\n", []string{"load", filepath.Join(dir, "loaded")}},
		{"", []string{"restore", backup, filepath.Join(dir, "restored")}},
	} {
		code, stderr := run(c.stdin, full, c.args...)
		require.Equal(t, 1, code, "%v: %s", c.args, stderr)
		require.Contains(t, stderr, "no space left on device", "%v", c.args)
	}
}

// TestHelp_OutputNotWritten: --help whose usage cannot be written
// (/dev/full) exits 1, saying so, as any command whose output is lost.
func TestHelp_OutputNotWritten(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	require.NoError(t, err)
	defer full.Close()
	bin := build(t)
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"get", "--help"}, {"check", "-h"}} {
		cmd := exec.Command(bin, args...)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = full, &stderr
		_ = cmd.Run()
		require.Equal(t, 1, cmd.ProcessState.ExitCode(), "%v: %s", args, stderr.String())
		require.Contains(t, stderr.String(), "no space left on device", "%v", args)
	}
}
