//go:build browser

package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// liveHarness gives live.js, run in Node, the browser's globals it uses:
// fetch (the token), WebSocket (fakes, listed in sockets), location.
const liveHarness = `
globalThis.addEventListener = () => {};
globalThis.location = { protocol: 'http:', host: 'x' };
globalThis.document = { body: { dataset: {} } };
globalThis.fetch = async () => ({ ok: true, json: async () => ({ token: 't' }) });
const sockets = [];
globalThis.WebSocket = class { static OPEN = 1;
  constructor(url) { this.url = url; this.readyState = 0; sockets.push(this); }
  send() {} close() {} };
const { Live } = await import('./live.js');
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
`

// runLive runs script, after liveHarness, in Node, and returns what it
// printed on its standard output.
func runLive(t *testing.T, script string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is required")
	dir := t.TempDir()
	src, err := os.ReadFile("apps/live.js")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "live.js"), src, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "t.mjs"), []byte(liveHarness+script), 0o644))
	cmd := exec.Command(node, "t.mjs")
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s%s", out, stderr.String())
	return strings.TrimSpace(string(out))
}

// TestLiveJS_EveryKeyOfARevision: one transaction's notifications all
// carry its revision; the pages get every one of them, and a page that
// reconnects resumes from the revision before the newest it saw, so that
// a transaction cut by the drop comes again whole.
func TestLiveJS_EveryKeyOfARevision(t *testing.T) {
	out := runLive(t, `
const got = [];
const live = new Live({ app: 'chat', onChange: (k) => got.push(k) });
for (const [key, revision] of [['a', 6], ['b', 7], ['c', 7], ['b', 6]]) {
  live.receive({ type: 'notification', key, value: 'v', revision });
}
await live.connect();
console.log(JSON.stringify({ got, url: sockets[0].url }));
`)
	require.Equal(t, `{"got":["a","b","c"],"url":"ws://x/kv/ws?token=t&fromRevision=6"}`, out)
}

// TestLiveJS_CallbackThatThrows: a page's callback that throws (on a
// stored value it cannot read) stops neither the notifications after it
// nor the reconnecting.
func TestLiveJS_CallbackThatThrows(t *testing.T) {
	out := runLive(t, `
const got = [];
const live = new Live({ app: 'chat',
  onStatus: () => { throw new RangeError('Invalid time value'); },
  onChange: (k) => { if (k === 'bad') throw new SyntaxError('not JSON'); got.push(k); } });
live.receive({ type: 'notification', key: 'bad', value: '{', revision: 1 });
live.receive({ type: 'notification', key: 'good', value: 'v', revision: 2 });
await live.connect();
sockets[0].onopen();
sockets[0].onclose();
await tick(400); // the backoff, 250 ms
console.log(JSON.stringify({ got, sockets: sockets.length }));
`)
	require.Equal(t, `{"got":["good"],"sockets":2}`, out)
}
