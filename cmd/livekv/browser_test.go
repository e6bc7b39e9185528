//go:build browser

package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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
	now := time.Now().UnixMilli()
	s = restartUnder(t, script(s.base, "reconnect"), s, func(addr string) *server { return startServe(t, bin, data, addr) }, data,
		fmt.Sprintf("chat:msg:lobby:%015d-away", now), fmt.Sprintf(`{"user":"bob","text":"written while you were away","ts":%d}`, now))
	s.stop(t)
	for _, png := range []string{"live-todo.png", "live-chat.png", "restart-todo.png", "restart-chat.png", "reconnect-chat.png"} {
		st, err := os.Stat(filepath.Join(artifacts, png))
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1000))
	}
}
