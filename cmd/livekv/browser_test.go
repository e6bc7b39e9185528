//go:build browser

package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/stretchr/testify/require"
)

func startServe(t *testing.T, bin, data, addr string) *server {
	t.Helper()
	return runServe(t, bin, "serve", "--data", data, "--addr", addr, "--api-key", "browser-test")
}

// TestBrowser drives the todo and chat pages in headless Chromium with
// Playwright (testdata/browser/pages.mjs): two windows see each other's
// changes, concurrent edits of one todo keep both, chat messages arrive,
// after livekv serve restarts on the same folder everything is still
// there, and a page open across a restart says it is offline, then shows
// what was written meanwhile, resumed from the server's history without
// reading everything again. Screenshots go to testdata/browser/artifacts.
// It needs Node.js and Chromium, so it is behind the browser build tag,
// which make test (and so CI) always sets, after installing Chromium and
// playwright-core. With the tag and without them this test fails; it
// never skips.
func TestBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is required")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err = os.Stat(chromium)
	require.NoError(t, err, "Chromium is required (make test installs Debian's chromium)")
	dir := filepath.Join("testdata", "browser")
	_, err = os.Stat(filepath.Join(dir, "node_modules", "playwright-core"))
	require.NoError(t, err, "run `npm ci` in cmd/livekv/testdata/browser (make test does)")
	artifacts, err := filepath.Abs(filepath.Join(dir, "artifacts"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(artifacts, 0o755))

	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	script := func(base, phase string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, node, "pages.mjs", base, phase, artifacts)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
		return cmd
	}
	pages := func(base, phase string) {
		out, err := script(base, phase).CombinedOutput()
		require.NoError(t, err, "phase %s:\n%s", phase, out)
		require.Equal(t, "ok\n", string(out), "phase %s", phase)
	}
	s := startServe(t, bin, data, "127.0.0.1:0")
	pages(s.base, "live")
	s.stop(t)
	s = startServe(t, bin, data, "127.0.0.1:0")
	pages(s.base, "restart")

	// The server goes away under an open page and comes back on the same
	// address, with a message written meanwhile.
	cmd := script(s.base, "reconnect")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	require.True(t, lines.Scan(), "the page script stopped: %s", stderr.String())
	require.Equal(t, "stop-server", lines.Text(), stderr.String())
	s.stop(t)
	db, err := engine.Open(data, nil)
	require.NoError(t, err)
	now := time.Now().UnixMilli()
	_, err = db.Set(fmt.Sprintf("chat:msg:lobby:%015d-away", now), fmt.Sprintf(`{"user":"bob","text":"written while you were away","ts":%d}`, now), nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	s = startServe(t, bin, data, strings.TrimPrefix(s.base, "http://"))
	_, err = io.WriteString(stdin, "go\n")
	require.NoError(t, err)
	require.True(t, lines.Scan(), "the page script stopped: %s", stderr.String())
	require.Equal(t, "ok", lines.Text(), stderr.String())
	require.NoError(t, cmd.Wait(), stderr.String())
	s.stop(t)
	for _, png := range []string{"live-todo.png", "live-chat.png", "restart-todo.png", "restart-chat.png", "reconnect-chat.png"} {
		st, err := os.Stat(filepath.Join(artifacts, png))
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1000))
	}
}
