//go:build browser

package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
globalThis.WebSocket = class { static CONNECTING = 0; static OPEN = 1;
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
	// A script that spins (a page that froze) fails, not hangs the test.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "t.mjs")
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

// liveSocket drives live.js's fake socket as a server would: open opens
// the newest, sent lists what the page sent on it, note sends a
// notification, answer the reply to the i-th request sent on it.
const liveSocket = `
const sent = new Map();
const open = () => {
  const ws = sockets[sockets.length - 1];
  sent.set(ws, []);
  ws.send = (m) => sent.get(ws).push(JSON.parse(m));
  ws.readyState = 1;
  ws.onopen();
  return ws;
};
const drop = (ws) => { ws.readyState = 3; ws.onclose(); };
const note = (ws, key, revision) => ws.onmessage({ data: JSON.stringify({ type: 'notification', key, value: 'v', revision }) });
const answer = (ws, i, reply) => {
  if (!sent.get(ws)[i]) throw new Error('request ' + i + ' not sent on this socket');
  ws.onmessage({ data: JSON.stringify({ code: 200, messageId: sent.get(ws)[i].messageId, ...reply }) });
};
const got = [];
const live = new Live({ app: 'chat', onChange: (k, v, r) => got.push(k + '@' + r) });
const { upTo } = await import('./live.js');
`

// TestLiveJS_LoadSkipsOnlyItsKeys: a range's revision is the whole
// store's. The notifications held while it loads, and those that come
// after its reply (the server does not order them), are skipped only for
// the keys it read, up to that revision; other keys' are delivered,
// below it too, and after the records.
func TestLiveJS_LoadSkipsOnlyItsKeys(t *testing.T) {
	out := runLive(t, liveSocket+`
await live.connect();
const ws = open();
note(ws, 'x', 3);
const loaded = live.load('r:', upTo('r:'), (records) => got.push('apply ' + records.map((r) => r.key)));
await tick();
note(ws, 'y', 5); // held, then delivered: not a key read
note(ws, 'r:a', 6); // held, then skipped: read
answer(ws, 0, { records: [{ key: 'r:a', value: 'v', revision: 6 }], truncated: false, revision: 9 });
await loaded;
note(ws, 'r:b', 8); // after the reply: read, skipped
note(ws, 'z', 8); // after the reply: delivered
note(ws, 'r:c', 10);
console.log(JSON.stringify({ got, rev: live.rev }));
`)
	require.Equal(t, `{"got":["x@3","apply r:a","y@5","z@8","r:c@10"],"rev":10}`, out)
}

// TestLiveJS_ResumeAfterALoad: a load does not move where the
// notifications resume from: a drop after it resumes from the newest
// notification's revision, not the range's, and the notifications sent
// again are skipped only for the keys the load read.
func TestLiveJS_ResumeAfterALoad(t *testing.T) {
	out := runLive(t, liveSocket+`
await live.connect();
let ws = open();
note(ws, 'x', 3);
const loaded = live.load('r:', upTo('r:'), () => got.push('apply'));
await tick();
answer(ws, 0, { records: [], truncated: false, revision: 9 });
await loaded;
drop(ws);
await tick(400); // the backoff, 250 ms
ws = open();
for (const [key, rev] of [['x', 3], ['r:a', 4], ['y', 5], ['r:b', 10]]) note(ws, key, rev);
console.log(JSON.stringify({ got, url: ws.url, reloads: document.body.dataset.reloads }));
`)
	require.Equal(t, `{"got":["x@3","apply","x@3","y@5","r:b@10"],"url":"ws://x/kv/ws?token=t&fromRevision=2"}`, out)
}

// TestLiveJS_ResumeWithNoNotification: before any notification, a page
// that loaded resumes from the lowest revision its loads read at (every
// change after it is in a load or comes again), rather than reading
// everything again; one that loaded an empty store, from revision 0. A
// load whose apply threw (its records maybe partly applied) counts too.
func TestLiveJS_ResumeWithNoNotification(t *testing.T) {
	out := runLive(t, liveSocket+`
const urls = [];
for (const revs of [[9, 12], [0], [-5, 9]]) {
  const live = new Live({ app: 'chat' });
  sockets.length = 0;
  await live.connect();
  const ws = open();
  for (const [i, revision] of revs.entries()) {
    const loaded = live.load('r:' + i, upTo('r:' + i), () => { if (revision < 0) throw new SyntaxError('not JSON'); });
    await tick();
    answer(ws, i, { records: [], truncated: false, revision: Math.abs(revision) });
    await loaded.catch(() => {});
  }
  drop(ws);
  await tick(400);
  open();
  urls.push(sockets[1].url);
}
console.log(JSON.stringify({ urls, reloads: document.body.dataset.reloads }));
`)
	require.Equal(t, `{"urls":["ws://x/kv/ws?token=t&fromRevision=9","ws://x/kv/ws?token=t&fromRevision=0",`+
		`"ws://x/kv/ws?token=t&fromRevision=5"]}`, out)
}

// TestLiveJS_LoadedKeys: the keys a load read are those the server's
// range holds: in the order of their UTF-8 bytes, not of JavaScript's
// strings (UTF-16), and, when the reply is cut short, up to its last
// record only.
func TestLiveJS_LoadedKeys(t *testing.T) {
	out := runLive(t, liveSocket+`
await live.connect();
const ws = open();
const ranges = [
  // U+1D400 sorts after U+FF48 as UTF-8, before it as UTF-16.
  ['k:a', 'k:\uFF48', { truncated: false }, ['k:\u{1D400}', 'k:\uFF42']],
  ['p:', upTo('p:'), { truncated: false }, ['p:\uFFFD', 'q:']],
  ['t:', upTo('t:'), { truncated: true, records: [{ key: 't:b', value: 'v', revision: 2 }] }, ['t:a', 't:c']],
];
for (const [i, [start, end, reply, keys]] of ranges.entries()) {
  const loaded = live.load(start, end, () => {});
  await tick();
  keys.forEach((key, j) => note(ws, key, 3 * i + j + 1));
  answer(ws, i, { records: [], revision: 9 * (i + 1), ...reply });
  await loaded;
}
console.log(JSON.stringify(got).replace(/[^ -~]/gu, (c) => '\\u{' + c.codePointAt(0).toString(16) + '}'));
`)
	require.Equal(t, `["k:\u{1d400}@1","q:@5","t:c@8"]`, out)
}

// TestLiveJS_UpTo: upTo(prefix), a range's end, is at or above every key
// that starts with prefix as the server orders keys (their UTF-8 bytes),
// those that go on past U+10FFFF too; a range to it takes in one key
// more, upTo(prefix) itself, and a load skips the notifications of the
// same keys.
func TestLiveJS_UpTo(t *testing.T) {
	out := runLive(t, `
const { upTo, within } = await import('./live.js');
const bytes = (s) => Buffer.from(s, 'utf8');
const keys = ['p:', 'p:a', 'p:\uFFFF', 'p:\u{10FFFF}', 'p:\u{10FFFF}\u{10FFFF}x', 'p;', 'p;a', 'q'];
const end = upTo('p:');
const ranged = keys.filter((k) => Buffer.compare(bytes('p:'), bytes(k)) <= 0 && Buffer.compare(bytes(k), bytes(end)) <= 0);
const skipped = keys.filter((k) => within(k, { start: 'p:', end }));
const ends = [upTo('p\uD7FF'), upTo('p\u{10FFFF}'), upTo('\u{10FFFF}')];
console.log(JSON.stringify({ ranged, skipped, ends }).replace(/[^ -~]/gu, (c) => '\\u{' + c.codePointAt(0).toString(16) + '}'));
`)
	require.Equal(t, `{"ranged":["p:","p:a","p:\u{ffff}","p:\u{10ffff}","p:\u{10ffff}\u{10ffff}x","p;"],`+
		`"skipped":["p:","p:a","p:\u{ffff}","p:\u{10ffff}","p:\u{10ffff}\u{10ffff}x","p;"],"ends":["p\u{e000}","q",null]}`, out)
}

// TestLiveJS_LoadAgainAfterADrop: a load cut by a drop is made again on
// the next connection, where the page resumes, so that it does not keep
// a range partly read; a busy server's refusal is tried again; other
// refusals fail the load.
func TestLiveJS_LoadAgainAfterADrop(t *testing.T) {
	out := runLive(t, liveSocket+`
await live.connect();
let ws = open();
note(ws, 'x', 3);
const applied = [];
const loaded = live.load('r:', upTo('r:'), (records) => applied.push(records.length));
await tick();
drop(ws);
await tick(400);
ws = open();
await tick();
answer(ws, 0, { code: 503, error: 'busy' });
await tick(1100);
answer(ws, 1, { records: [{ key: 'r:a', value: 'v', revision: 4 }], truncated: false, revision: 9 });
const reply = await loaded;
const pending = live.load('s:', upTo('s:'), () => applied.push('s'));
await tick();
answer(ws, 2, { code: 403, error: 'no' });
console.log(JSON.stringify({ applied, revision: reply.revision, url: ws.url, asked: sent.get(ws).length,
  refused: await pending.catch((err) => err.code) }));
`)
	require.Equal(t, `{"applied":[1],"revision":9,"url":"ws://x/kv/ws?token=t&fromRevision=2","asked":3,"refused":403}`, out)
}

// TestLiveJS_WaitingForTheServer: a load the server refuses for now (503:
// no leader, behind) on a connection that stays open is made again, and
// meanwhile the page's status says that it waits for the server; once
// the load is served, or refused for good, it says live again.
func TestLiveJS_WaitingForTheServer(t *testing.T) {
	out := runLive(t, liveSocket+`
await live.connect();
const statuses = [];
live.onStatus = (s) => statuses.push(s);
const ws = open();
const loaded = live.load('r:', upTo('r:'), () => {});
await tick();
answer(ws, 0, { code: 503, error: 'no leader' });
await tick();
const during = statuses.slice();
await tick(1100);
answer(ws, 1, { records: [], truncated: false, revision: 3 });
await loaded;
const after = statuses.slice();
// Refused for now, then for good: the page is not left waiting.
const refused = live.load('s:', upTo('s:'), () => {});
await tick();
answer(ws, 2, { code: 503, error: 'no leader' });
await tick(1100);
answer(ws, 3, { code: 403, error: 'no' });
const code = await refused.catch((err) => err.code);
console.log(JSON.stringify({ during, after, then: statuses.slice(after.length), code }));
`)
	require.Equal(t, `{"during":["online","waiting"],"after":["online","waiting","online"],"then":["waiting","online"],"code":403}`, out)
}

// TestLiveJS_CallWhileTheSocketCloses: the server closed the socket
// (CLOSING), and the close event comes a round trip later. A call made
// meanwhile waits for the next connection instead of spinning on the
// settled promise of the closing one's opening, which froze the page.
func TestLiveJS_CallWhileTheSocketCloses(t *testing.T) {
	out := runLive(t, liveSocket+`
await live.connect();
const ws = open();
ws.readyState = 2; // CLOSING: no close event yet
const reply = live.get('k');
await tick(300); // the page's timers run: the next connection is made
const ws2 = open();
await tick();
answer(ws2, 0, { key: 'k', value: 'v' });
const r = await reply;
ws.onclose(); // late: changes nothing
console.log(JSON.stringify({ value: r.value, sockets: sockets.length }));
`)
	require.Equal(t, `{"value":"v","sockets":2}`, out)
}

// TestLiveJS_OutboxPageError: an entry the page's own code fails on (a
// stored value it cannot read) is not taken for a connection lost and
// sent again for good, holding up every entry after it: it fails, with
// a reason, and the next ones are sent. An entry whose request is lost
// with the connection is sent again on the next one.
func TestLiveJS_OutboxPageError(t *testing.T) {
	out := runLive(t, liveSocket+`
const { Outbox } = await import('./live.js');
await live.connect();
let ws = open();
const runs = [];
const outbox = new Outbox({ live, name: 'todo', run: async (e) => {
  runs.push(e.n);
  if (e.n === 1) return JSON.parse('plain text');
  await live.get(e.key);
} });
live.onOpen = () => outbox.kick();
for (const n of [1, 2, 3]) outbox.add({ n, key: 'k' + n });
await tick();
answer(ws, 0, { key: 'k2', value: 'v' });
await tick();
drop(ws); // k3's request, lost
await tick(400);
ws = open();
await tick();
answer(ws, 0, { key: 'k3', value: 'v' });
await tick();
const left = outbox.list().map((e) => e.n + ' ' + e.state + ': ' + e.reason.replace(/ \(.*/, ''));
console.log(JSON.stringify({ runs, left, asked: sent.get(ws).map((r) => r.key) }));
`)
	require.Equal(t, `{"runs":[1,2,3,3],"left":["1 failed: this page could not send it"],"asked":["k3"]}`, out)
}

// TestLiveJS_MessageTooBig: a write over the server's message size
// limit, which closes the connection with 1009 rather than answer it
// (adapter Options.MaxMessageSize), is refused as too large: not taken
// for a connection lost and sent again on every new connection, for
// ever, holding up every write after it. Only the largest request in
// flight was over the limit; the others are sent again.
func TestLiveJS_MessageTooBig(t *testing.T) {
	out := runLive(t, liveSocket+`
const { Outbox } = await import('./live.js');
await live.connect();
let ws = open();
const runs = [];
const outbox = new Outbox({ live, name: 'chat', run: async (e) => {
  runs.push(e.n);
  await live.set(e.key, e.value);
} });
live.onOpen = () => outbox.kick();
const small = live.get('k0');
// Over 2 MiB as UTF-8, under it in UTF-16 code units.
outbox.add({ n: 1, key: 'k1', value: 'é'.repeat(1100000) });
outbox.add({ n: 2, key: 'k2', value: 'v' });
await tick();
ws.readyState = 3;
ws.onclose({ code: 1009, reason: 'read limited at 2097153 bytes' });
const lost = await small.catch((err) => err.unanswered);
await tick(400);
ws = open();
await tick();
answer(ws, 0, {});
await tick();
const left = outbox.list().map((e) => e.n + ' ' + e.state + ': ' + e.reason);
console.log(JSON.stringify({ lost, runs, left, asked: sent.get(ws).map((r) => r.key) }));
`)
	require.Equal(t, `{"lost":true,"runs":[1,2],"left":["1 failed: too large for the server"],"asked":["k2"]}`, out)
}

// TestLiveJS_SlowUpload: a request's wait for its reply starts once the
// browser has sent it (its bytes left ws.bufferedAmount), so that a large
// message on a slow uplink is not given up, and sent again, while it
// still uploads; an upload that stops moving for the timeout is given up
// as before, and the connection with it.
func TestLiveJS_SlowUpload(t *testing.T) {
	out := runLive(t, `
const utf8 = (s) => new TextEncoder().encode(s).length;
const live = new Live({ app: 'chat', timeout: 300 });
await live.connect();
const ws = sockets[0];
const sent = [];
ws.bufferedAmount = 0;
ws.send = (m) => { sent.push(JSON.parse(m)); ws.bufferedAmount += utf8(m); };
ws.readyState = 1;
ws.onopen();
const reply = live.set('k', 'x'.repeat(100000)).then(() => 'answered', (err) => err.message);
// Uploads for 1 s, three times the timeout, then is answered.
for (let i = 0; i < 10; i++) {
  await tick(100);
  ws.bufferedAmount = Math.max(0, ws.bufferedAmount - 10100);
}
await tick(100);
ws.onmessage({ data: JSON.stringify({ code: 200, messageId: sent[0].messageId }) });
const slow = await reply;
if (slow !== 'answered') {
  console.log(JSON.stringify({ slow, sends: sent.length }));
  process.exit(0);
}
// An upload that stops: given up, and the connection too.
let closed = false;
ws.close = () => { closed = true; };
const stuck = live.set('k', 'y'.repeat(100000)).catch((err) => err.message);
const t0 = Date.now();
const why = await stuck;
console.log(JSON.stringify({ slow, sends: sent.length, why, closed, inTime: Date.now() - t0 < 1000 }));
`)
	require.Equal(t, `{"slow":"answered","sends":2,"why":"no answer from the server","closed":true,"inTime":true}`, out)
}

// TestLiveJS_MessageTooBigAfterItsTimeout: closed with 1009, the server
// read a message over its limit, the largest sent on the connection. If
// that request had already been given up (no answer in time), the
// requests still in flight are not the culprit: none is refused as too
// large, and the large one, sent again, is refused as too large without
// closing the next connection too.
func TestLiveJS_MessageTooBigAfterItsTimeout(t *testing.T) {
	out := runLive(t, liveSocket+`
live.timeout = 200;
await live.connect();
let ws = open();
const big = live.set('big', 'é'.repeat(1100000)).catch((err) => ({ unanswered: err.unanswered }));
await tick(150);
note(ws, 'x', 1); // the connection is alive
const first = await big;
const small = live.get('k').catch((err) => ({ code: err.code, unanswered: err.unanswered }));
ws.readyState = 3;
ws.onclose({ code: 1009, reason: 'read limited at 2097153 bytes' });
const innocent = await small;
const again = live.set('big', 'é'.repeat(1100000)).catch((err) => err.code);
await tick(400);
ws = open();
const refused = await again;
console.log(JSON.stringify({ first, innocent, refused, asked: sent.get(ws).length }));
`)
	require.Equal(t, `{"first":{"unanswered":true},"innocent":{"unanswered":true},"refused":413,"asked":0}`, out)
}

// chatHarness runs the chat page (chat.js) in Node, on a fake document
// that counts what is done to it (dom: nodes made, and nodes put in or
// taken out of a list) and a fake server (served) that holds keys,
// ordered by their UTF-8 bytes as livekv orders them, and answers the
// page's ranges and writes on its socket (serve).
const chatHarness = `
const dom = { made: 0, moved: 0 };
class El {
  constructor(tag) {
    Object.assign(this, { tagName: tag, childNodes: [], parentNode: null, dataset: {}, attrs: {}, hidden: false,
      textContent: '', className: '', scrollHeight: 0, scrollTop: 0, clientHeight: 0, value: '' });
    this.classList = { add: (c) => { this.className += ' ' + c; } };
  }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  get children() { return this.childNodes; }
  get firstChild() { return this.childNodes[0] ?? null; }
  get nextSibling() { const c = this.parentNode?.childNodes; return c ? c[c.indexOf(this) + 1] ?? null : null; }
  detach() { const c = this.parentNode.childNodes; c.splice(c.indexOf(this), 1); this.parentNode = null; }
  remove() { if (this.parentNode) { dom.moved++; this.detach(); } }
  insertBefore(n, ref) {
    if (n.parentNode) n.detach();
    dom.moved++;
    const i = ref ? this.childNodes.indexOf(ref) : this.childNodes.length;
    this.childNodes.splice(i, 0, n);
    n.parentNode = this;
    return n;
  }
  append(...ns) { for (const n of ns) this.insertBefore(n, null); }
  replaceChildren(...ns) { while (this.childNodes.length) this.childNodes[0].remove(); this.append(...ns); }
  before(...ns) { for (const n of ns) this.parentNode.insertBefore(n, this); }
}
const els = new Map();
globalThis.document = {
  title: '', body: new El('body'),
  getElementById: (id) => els.get(id) ?? els.set(id, new El('div')).get(id),
  createElement: (tag) => { dom.made++; return new El(tag); },
};
globalThis.addEventListener = () => {};
globalThis.history = { pushState() {} };
globalThis.location = { protocol: 'http:', host: 'x', hash: '#a' };
globalThis.fetch = async () => ({ ok: true, json: async () => ({ token: 't' }) });
const sockets = [];
globalThis.WebSocket = class { static CONNECTING = 0; static OPEN = 1;
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; sockets.push(this); }
  send(m) { this.sent.push(JSON.parse(m)); } close() {} };
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
const bytes = (s) => Buffer.from(s, 'utf8');
const served = new Map(); // key -> value
let revision = 0;
const answered = new Set();
const reply = (ws, req, r) => ws.onmessage({ data: JSON.stringify({ code: 200, messageId: req.messageId, revision, ...r }) });
const serve = (ws) => {
  for (const req of ws.sent) {
    if (answered.has(req)) continue;
    answered.add(req);
    if (req.op === 5) {
      const keys = [...served.keys()].sort((a, b) => Buffer.compare(bytes(a), bytes(b)))
        .filter((k) => Buffer.compare(bytes(req.key), bytes(k)) <= 0 && (!req.endKey || Buffer.compare(bytes(k), bytes(req.endKey)) <= 0));
      const records = keys.slice(0, req.limit || 100).map((key) => ({ key, value: served.get(key), revision: 1 }));
      reply(ws, req, { records, count: records.length, truncated: keys.length > records.length });
    } else if (req.op === 102) {
      served.set(req.key, req.value);
      reply(ws, req, { success: true, revision: ++revision });
    } else throw new Error('op ' + req.op);
  }
};
const note = (ws, key, value) => ws.onmessage({ data: JSON.stringify({ type: 'notification', key, value, revision: ++revision }) });
const msg = (text, ts = 1.7e12) => JSON.stringify({ user: 'u', text, ts });
// start opens the page on room a and serves its first loads.
const start = async () => {
  const page = import('./chat.js');
  while (!sockets.length) await tick();
  const ws = sockets[0];
  ws.readyState = 1;
  ws.onopen();
  for (let i = 0; i < 5; i++) {
    await tick();
    serve(ws);
  }
  await page;
  return ws;
};
const shown = () => document.getElementById('msglist').childNodes.filter((li) => li.dataset.key).map((li) => li.dataset.key);
const pr = (v) => console.log(JSON.stringify(v).replace(/[^ -~]/gu, (c) => '\\u{' + c.codePointAt(0).toString(16) + '}'));
`

// runChat runs script, after chatHarness, in Node, and returns what it
// printed on its standard output.
func runChat(t *testing.T, script string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is required")
	dir := t.TempDir()
	for _, f := range []struct{ from, to string }{{"apps/live.js", "live.js"}, {"apps/chat/chat.js", "chat.js"}} {
		src, err := os.ReadFile(f.from)
		require.NoError(t, err)
		src = []byte(strings.Replace(string(src), "from '/live.js'", "from './live.js'", 1))
		require.NoError(t, os.WriteFile(filepath.Join(dir, f.to), src, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "t.mjs"), []byte(chatHarness+script), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "t.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TZ=UTC") // days begin where the tests expect
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s%s", out, stderr.String())
	return strings.TrimSpace(string(out))
}

// TestChatJS_KeysPastTheLastCharacter: a room's messages are every key
// that starts with its prefix, as the server orders keys (by their UTF-8
// bytes), one that goes on past U+10FFFF too: a room loaded shows what
// it shows live, no more (not the key right after the prefix's keys).
func TestChatJS_KeysPastTheLastCharacter(t *testing.T) {
	out := runChat(t, `
served.set('chat:room:a', '{}');
served.set('chat:msg:a:1-x', msg('x'));
served.set('chat:msg:a:\u{10FFFF}\u{10FFFF}', msg('past', 1.7e12 + 1));
served.set('chat:msg:a;', msg('next room', 1.7e12 + 2));
const ws = await start();
const loaded = shown();
note(ws, 'chat:msg:a:\u{10FFFF}\u{10FFFF}live', msg('live', 1.7e12 + 3));
pr({ loaded, live: shown() });
`)
	require.Equal(t, `{"loaded":["chat:msg:a:1-x","chat:msg:a:\u{10ffff}\u{10ffff}"],`+
		`"live":["chat:msg:a:1-x","chat:msg:a:\u{10ffff}\u{10ffff}","chat:msg:a:\u{10ffff}\u{10ffff}live"]}`, out)
}

// TestChatJS_RoomsWithAColon: a room's messages are chat:msg:ROOM:INV-ID,
// with no colon after the room's; those of a room "a:b" (which only the
// API can make: the page takes colons out of names) are not room a's,
// neither loaded nor live.
func TestChatJS_RoomsWithAColon(t *testing.T) {
	out := runChat(t, `
served.set('chat:room:a', '{}');
served.set('chat:room:a:b', '{}');
served.set('chat:msg:a:1-x', msg('x'));
served.set('chat:msg:a:b:1-y', msg('y'));
const ws = await start();
const loaded = shown();
note(ws, 'chat:msg:a:b:2-z', msg('z'));
note(ws, 'chat:msg:a:2-w', msg('w'));
pr({ loaded, live: shown() });
`)
	require.Equal(t, `{"loaded":["chat:msg:a:1-x"],"live":["chat:msg:a:1-x","chat:msg:a:2-w"]}`, out)
}

// TestChatJS_RenderOneMessage: a message that comes, or goes, changes
// its own item in the list, not the whole list: the work done to the
// page for it is the same in a room of 10 messages as in one of 200, so
// that a flood of messages does not make every open page rebuild the
// room for each. The list stays in the order of the messages' times.
func TestChatJS_RenderOneMessage(t *testing.T) {
	out := runChat(t, `
const base = 1.7e12;
const key = (i) => 'chat:msg:a:' + String(1e13 - base - i * 1000) + '-m' + i;
const put = (i) => msg('m' + i, base + i * 1000);
served.set('chat:room:a', '{}');
for (let i = 0; i < 10; i++) served.set(key(i), put(i));
const ws = await start();
const cost = (f) => {
  const before = dom.made + dom.moved;
  f();
  return dom.made + dom.moved - before;
};
const small = cost(() => note(ws, key(10), put(10)));
for (let i = 11; i < 200; i++) note(ws, key(i), put(i));
const large = cost(() => note(ws, key(200), put(200)));
const middle = cost(() => note(ws, key(100.5), put(100.5)));
const gone = cost(() => note(ws, key(50), null));
const list = shown();
const want = [];
for (let i = 0; i <= 200; i++) if (i !== 50) want.push(key(i)), i === 100 && want.push(key(100.5));
console.log(JSON.stringify({ same: small === large, middle: middle === small, gone: gone < small, days: document.getElementById('msglist').childNodes.length - list.length,
  ordered: JSON.stringify(list) === JSON.stringify(want) }));
`)
	require.Equal(t, `{"same":true,"middle":true,"gone":true,"days":1,"ordered":true}`, out)
}
