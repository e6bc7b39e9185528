//go:build browser

package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekv/livekv/engine"
	"github.com/livekv/livekv/internal/enginetest"
	"github.com/stretchr/testify/require"
)

// browserSetup finds Node.js, Chromium and playwright-core, failing the
// test when one is missing, and makes the folder for screenshots.
func browserSetup(t *testing.T) (node, chromium, dir, artifacts string) {
	t.Helper()
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is required")
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err = os.Stat(chromium)
	require.NoError(t, err, "Chromium is required (make test installs Debian's chromium)")
	dir = filepath.Join("testdata", "browser")
	_, err = os.Stat(filepath.Join(dir, "node_modules", "playwright-core"))
	require.NoError(t, err, "run `npm ci` in cmd/livekv/testdata/browser (make test does)")
	artifacts, err = filepath.Abs(filepath.Join(dir, "artifacts"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(artifacts, 0o755))
	return node, chromium, dir, artifacts
}

// syncBuffer collects a process's output, which a test may read while the
// process still writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

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
	node, chromium, dir, artifacts := browserSetup(t)
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
		fmt.Sprintf("chat:msg:lobby:%013d-away", 10_000_000_000_000-now), fmt.Sprintf(`{"user":"bob","text":"written while you were away","ts":%d}`, now))
	s.stop(t)
	for _, png := range []string{"live-todo.png", "live-chat.png", "restart-todo.png", "restart-chat.png", "reconnect-chat.png"} {
		st, err := os.Stat(filepath.Join(artifacts, png))
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1000))
	}
}

// TestBrowserApps drives the pages through what they must never get
// wrong (testdata/browser/apps.mjs), as two users in two browser
// contexts. Outage: the server stops, both users add todos and send chat
// messages, one closes the page; the server starts again, and every item
// arrives once, in every window and in the DB, the closed page's once it
// is opened again. UI: a same-field conflict resolved visibly, a refused
// write shown with its reason, room names and paging, and the pages at
// 390 px; it saves the screenshots that docs/ shows. Edits: a todo loaded
// by a range, changed and changed back underneath an editor, is a
// conflict, also underneath an edit waiting while the page switches days
// and back (the load skips the changes' notifications); edits of
// different fields merge; a write whose request or
// reply is lost on a connection that stays open times out, waits, and is
// sent again, stored once (on a new connection when the old one went
// silent); at 390 px a long todo wraps, shown whole, and
// grows while edited; a page keeps the changes of a todo only while an
// edit may ask for them; values no page writes are left out, and the
// room and the day still load. The folder starts with chat messages under the
// keys of the old scheme (seedOldChat), which serve rewrites: the room
// pages newest first, each message once.
func TestBrowserApps(t *testing.T) {
	node, chromium, dir, artifacts := browserSetup(t)
	bin := build(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seedOldChat(t, data)

	s := startServe(t, bin, data, "127.0.0.1:0")
	addr := strings.TrimPrefix(s.base, "http://")
	// run runs a phase of apps.mjs, doing what it asks for (stopping and
	// starting the server) and answering "done".
	run := func(phase string) {
		cmd := exec.CommandContext(ctx, node, "apps.mjs", s.base, phase, artifacts)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
		stdin, err := cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr syncBuffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		lines := bufio.NewScanner(stdout)
		for {
			if !lines.Scan() {
				cmd.Wait() // so that stderr is whole
				t.Fatalf("phase %s stopped: %s", phase, stderr.String())
			}
			line := lines.Text()
			if line == "ok" {
				break
			}
			switch line {
			case "stop-server":
				s.stop(t)
			case "start-server":
				s = startServe(t, bin, data, addr)
			default:
				t.Fatalf("phase %s: unexpected %q", phase, line)
			}
			_, err = io.WriteString(stdin, "done\n")
			require.NoError(t, err)
		}
		require.NoError(t, stdin.Close())
		require.NoError(t, cmd.Wait(), stderr.String())
	}
	run("outage")
	run("ui")
	run("edits")
	s.stop(t)

	// What the server kept: each item written offline, once.
	db, err := engine.Open(data, nil)
	require.NoError(t, err)
	defer db.Close()
	count := map[string]int{}
	for it, err := range enginetest.Items(db.Range("chat:msg:", "todo;", nil)) {
		require.NoError(t, err)
		var v struct{ Text string }
		if json.Unmarshal([]byte(it.Value), &v) == nil {
			count[v.Text]++
		}
	}
	for _, text := range []string{"from A offline", "from B offline", "from B, kept across a reload", "chat from A offline", "chat from B offline"} {
		require.Equal(t, 1, count[text], "%q stored once", text)
	}
	require.Zero(t, count["sent again"], "a create sent twice is stored once")
	// The chat keys of the old scheme were rewritten, each message once.
	archive := 0
	for it, err := range enginetest.Items(db.Prefix("chat:msg:archive:", nil)) {
		require.NoError(t, err)
		require.NotRegexp(t, `^chat:msg:archive:\d{15}-`, it.Key)
		archive++
	}
	require.Equal(t, archiveOld+archiveNew, archive)
	for _, png := range []string{"todo-desktop.png", "todo-phone.png", "chat-desktop.png", "chat-phone.png"} {
		st, err := os.Stat(filepath.Join(artifacts, png))
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1000))
	}
}

const archiveOld, archiveNew = 60, 5

// seedOldChat makes data a folder with chat messages in the room
// "archive", "archive 0" to "archive 64" a minute apart: the first 60
// under keys of the scheme the chat page used before it paged newest
// first (chat:msg:ROOM:MS-ID, the time in 15 digits, oldest first,
// values without uid), the last 5 under the current scheme.
func seedOldChat(t *testing.T, data string) {
	t.Helper()
	db, err := engine.Open(data, nil)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Set("chat:room:archive", `{"created":0}`, nil)
	require.NoError(t, err)
	t0 := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := range archiveOld + archiveNew {
		ms := t0 + int64(i)*60_000
		key := fmt.Sprintf("chat:msg:archive:%015d-old%d", ms, i)
		if i >= archiveOld {
			key = fmt.Sprintf("chat:msg:archive:%013d-new%d", 10_000_000_000_000-ms, i)
		}
		_, err := db.Set(key, fmt.Sprintf(`{"user":"carol","text":"archive %d","ts":%d}`, i, ms), nil)
		require.NoError(t, err)
	}
}

// TestBrowserHostile opens the chat and todo pages in headless Chromium
// on values any visitor may write with the pages' token
// (testdata/browser/hostile.mjs): markup shows as text and runs nothing,
// and a field no page writes (an object where text goes) is left out,
// rather than stop the room or the day from rendering for everyone; on
// the first load, live and after a reload; under the pages'
// Content-Security-Policy, which stops an inline handler.
func TestBrowserHostile(t *testing.T) {
	node, chromium, dir, _ := browserSetup(t)
	bin := build(t)
	s := startServe(t, bin, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "hostile.mjs", s.base)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "ok\n", string(out))
	s.stop(t)
}
