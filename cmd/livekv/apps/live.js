// live.js: a small client for livekv's HPKV-compatible WebSocket API, used
// by the todo and chat pages. It gets a scoped token from the server,
// keeps the connection open, reconnects with backoff, and resumes from the
// last revision it has seen (that revision's changes included, in case
// the drop cut a transaction), so that no change is missed while offline.
// Before any notification has come, it resumes from the lowest revision a
// load was read at (see load), and with neither it reads everything again
// (onReload).
//
// Writes go through an Outbox: each is kept in the page and in
// localStorage until the server has answered it, so that nothing typed is
// lost while the server is unreachable, nor across a reload. Every write
// an outbox sends can be sent twice without effect (a key the client
// chose, created with compare-and-swap on revision 0; an edit made with
// compare-and-swap on the revision it started from), since a reply lost
// with the connection leaves the client unsure whether the write happened.
export class Live {
  // timeout is how long a request waits for its reply, in milliseconds,
  // once the browser has sent it (or for its upload to move on), on a
  // connection that stays open (a server that lost it, or is stuck):
  // then it fails as if the connection had gone, and an outbox sends the
  // write again.
  constructor({ app, onStatus, onChange, onReload, onOpen, timeout = 10000 }) {
    this.app = app;
    this.timeout = timeout;
    // The page's callbacks may throw (on a stored value it cannot read,
    // say): that must not stop the connection's own work, such as
    // reconnecting, so each runs guarded.
    const guard = (f) => (...args) => {
      try {
        return f(...args);
      } catch (err) {
        console.error('live.js: a callback failed', err);
      }
    };
    this.onStatus = guard(onStatus || (() => {}));
    this.onChange = guard(onChange || (() => {}));
    this.onReload = guard(onReload || (() => {}));
    this.onOpen = guard(onOpen || (() => {}));
    // rev is where the notifications are: the newest revision of one
    // received, 0 before the first. Only notifications move it, never a
    // load (see load).
    this.rev = 0;
    // since is, while rev is 0, the lowest revision a load was read at
    // (null: none), which the next connection resumes from.
    this.since = null;
    // loaded holds a {start, end, base} for each load whose range's
    // notifications up to base (its revision) may still come: these are
    // skipped. Bases never fall along the list (see remember).
    this.loaded = [];
    this.heard = 0; // messages received
    this.nextId = 0;
    this.pending = new Map();
    this.tooLarge = Infinity; // bytes of a message the server refused (see closed)
    this.backoff = 250;
    this.open = false;
    this.waiting = false; // a load waits for the server to serve it (onStatus 'waiting')
    // ready resolves when a connection opens. It is replaced only when an
    // open connection closes, never by a failed attempt to reconnect, so
    // that a call waiting on it is woken by the next connection.
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    addEventListener('online', () => this.reconnectNow());
  }

  async connect() {
    this.timer = null;
    if (!this.offline) this.onStatus('connecting'); // once offline, it says so until online
    let token;
    try {
      const resp = await fetch('/apps/token', { method: 'POST', body: JSON.stringify({ app: this.app }) });
      if (!resp.ok) throw new Error(`token: ${resp.status}`);
      token = (await resp.json()).token;
    } catch (err) {
      return this.retry();
    }
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    let url = `${proto}://${location.host}/kv/ws?token=${encodeURIComponent(token)}`;
    const from = this.resumeFrom();
    if (from !== null) url += `&fromRevision=${from}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 250;
      this.open = true;
      this.offline = false;
      this.waiting = false;
      this.onStatus('online');
      this.markReady();
      if (this.stale) {
        this.stale = false;
        // Counted where a test can see it: a page should resume from the
        // server's history, and reload only when that no longer reaches.
        document.body.dataset.reloads = String(Number(document.body.dataset.reloads || 0) + 1);
        this.onReload();
      }
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return; // given up for dead, still closing
      this.heard++;
      this.receive(JSON.parse(ev.data));
    };
    ws.onclose = (ev) => this.closed(ws, ev?.code);
  }

  // resumeFrom is the revision the next connection's notifications start
  // after, or null for none (from now). From the revision before the
  // newest seen: a connection cut in the middle of a transaction's
  // notifications, which all carry one revision, gets the whole
  // transaction again (applying one twice changes nothing). With no
  // notification yet, all the page holds comes from loads: from the
  // lowest revision one was read at, after which every change comes
  // again. Where a connection's notifications began is not known (the
  // server does not say), only that a range read on it saw every change
  // before: the connection subscribes before it reads any request
  // (adapter/conn.go, run), so that the notifications take over where a
  // load's records end.
  resumeFrom() {
    return this.rev > 0 ? this.rev - 1 : this.since;
  }

  // closed is the end of ws: its requests fail, and another connection
  // is tried. Closed with code 1009, the server read a message over its
  // size limit (MaxMessageSize), and the largest sent on ws, in UTF-8, is
  // at least as large: that request, if still in flight, is refused as a
  // 413 would be, rather than sent again on each new connection for
  // ever; the others went with the connection. A request given up
  // before (no answer in time) may have been that one: so that it is
  // not sent again, no message as large is sent from then on (tooLarge),
  // each refused at once as too large.
  closed(ws, code) {
    if (this.ws !== ws) return;
    this.ws = null;
    if (this.open) {
      this.open = false;
      // Nothing to resume from (no notification came, and nothing was
      // loaded): read everything again once the next one opens.
      if (this.resumeFrom() === null) this.stale = true;
      this.ready = new Promise((resolve) => (this.markReady = resolve));
    }
    let big = null;
    if (code === 1009 && ws.largest) {
      this.tooLarge = Math.min(this.tooLarge, ws.largest.size);
      if (this.pending.get(ws.largest.messageId) === ws.largest) big = ws.largest;
    }
    for (const p of this.pending.values()) {
      p.reject(p === big ? Object.assign(new Error('message too large for the server'), { code: 413 })
        : Object.assign(new Error('connection lost'), { unanswered: true }));
    }
    this.pending.clear();
    this.retry();
  }

  retry() {
    this.offline = true;
    this.onStatus('offline');
    this.timer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 5000);
  }

  // reconnectNow skips the backoff's wait, when the browser says it is
  // back online.
  reconnectNow() {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.backoff = 250;
    this.connect();
  }

  receive(msg) {
    if (msg.type === 'notification') {
      if (this.buffer) this.buffer.push(msg); // a load is under way
      else this.deliver(msg);
      return;
    }
    if (msg.code === 410 && msg.messageId === undefined) {
      // The server's history no longer reaches back to our revision (it
      // restarted, or we were away long): the server closes this
      // connection; read everything again once the next one opens.
      this.rev = 0;
      this.since = null;
      this.loaded = []; // the next connection's notifications start anew
      this.stale = true;
      return;
    }
    const p = this.pending.get(msg.messageId);
    if (!p) return;
    this.pending.delete(msg.messageId);
    if (msg.code === 200) p.resolve(msg);
    else p.reject(Object.assign(new Error(msg.error || `error ${msg.code}`), { code: msg.code }));
  }

  deliver(note) {
    // Below the newest revision seen: already delivered, sent again on a
    // resume. At it: another key of the same transaction, or one sent
    // again.
    if (note.revision < this.rev) return;
    this.rev = note.revision;
    // A load whose base the notifications have passed skips nothing
    // more, even on a resume (from rev - 1).
    if (this.loaded.length && this.loaded[0].base < this.rev) this.loaded = this.loaded.filter((l) => l.base >= this.rev);
    // A key a load read at a revision at or above this one: the load
    // holds this change, or a newer one.
    if (this.loaded.some((l) => note.revision <= l.base && within(note.key, l))) return;
    this.onChange(note.key, note.value, note.revision);
  }

  async call(req) {
    while (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      // A socket closing (the server closed it) fires its close event
      // only a round trip later, and ready is still the settled promise
      // of its opening: waiting on it would spin without end.
      if (this.ws && this.ws.readyState !== WebSocket.CONNECTING) this.closed(this.ws);
      await this.ready;
    }
    const messageId = ++this.nextId;
    const ws = this.ws;
    const heard = this.heard;
    const data = JSON.stringify({ ...req, messageId });
    const size = encoder.encode(data).length; // as sent, in UTF-8
    if (size >= this.tooLarge) throw Object.assign(new Error('message too large for the server'), { code: 413 });
    return new Promise((resolve, reject) => {
      let timer;
      // Unanswered in time: given up, with no code (a reply that comes
      // later is dropped) and marked unanswered, so that the write is
      // tried again. If nothing at all came meanwhile, the connection is
      // taken for dead (a network that changed under it can leave it
      // open for minutes) and a new one opened.
      const expire = () => {
        if (!this.pending.delete(messageId)) return;
        reject(Object.assign(new Error('no answer from the server'), { unanswered: true, timedOut: true }));
        if (this.ws === ws && this.heard === heard) {
          this.closed(ws);
          ws.close();
        }
      };
      const settle = (fn) => (v) => {
        clearTimeout(timer);
        fn(v);
      };
      const p = { messageId, size, resolve: settle(resolve), reject: settle(reject) };
      this.pending.set(messageId, p);
      if (!ws.largest || size > ws.largest.size) ws.largest = p; // see closed
      // ws.queued counts the bytes handed to ws, this message's last:
      // it has left the browser once all but bufferedAmount of them
      // have. The wait for the reply starts then, so that a large
      // message on a slow uplink is not given up while it uploads; an
      // upload that does not move for the timeout is given up as well.
      ws.queued = (ws.queued || 0) + size;
      const mark = ws.queued;
      ws.send(data);
      const gone = () => ws.queued - (ws.bufferedAmount || 0);
      let moved = gone();
      let since = Date.now();
      const upload = () => {
        const now = gone();
        if (now >= mark) {
          timer = setTimeout(expire, this.timeout);
          return;
        }
        if (now > moved) {
          moved = now;
          since = Date.now();
        }
        if (Date.now() - since >= this.timeout) expire();
        else timer = setTimeout(upload, Math.min(250, this.timeout));
      };
      upload();
    });
  }

  get(key) { return this.call({ op: 1, key }); }
  set(key, value) { return this.call({ op: 2, key, value }); }
  del(key) { return this.call({ op: 4, key }); }
  // cas sets key only if its revision is revision (0: only if absent).
  cas(key, value, revision) { return this.call({ op: 102, key, value, revision }); }
  range(start, end, limit) { return this.call({ op: 5, key: start, endKey: end, limit }); }

  // load reads the keys from start to end (both included, at most limit)
  // at one revision, the reply's, its base, and hands them to apply. The
  // notifications that arrive meanwhile are held until apply has run;
  // from then on those of the keys read (up to the last record, when the
  // reply is cut short) at or below base are skipped: the records hold
  // them. Every other notification is delivered, whatever its revision:
  // base is the whole store's, and the keys outside the range may have
  // changed below it. Skipped are also those that come after the reply:
  // the server sends a connection's notifications and its replies as
  // each is ready, from goroutines of their own (adapter/conn.go, forward
  // and readLoop), so that a change at or below base may be notified
  // after the range's reply. load does not move rev.
  //
  // A load that fails for want of the server (the connection went, no
  // answer came, or it was busy: unanswered, 429, 503) is made again, on
  // the next connection if this one went, so that a page never keeps a
  // range it asked for partly read; any other refusal, or an error
  // thrown by apply, fails it. Loads run one at a time, in the order
  // asked. It returns the range's reply.
  load(start, end, apply, limit = 1000) {
    const done = (this.loading || Promise.resolve()).then(() => this.loadNow(start, end, apply, limit));
    this.loading = done.catch(() => {});
    return done;
  }

  async loadNow(start, end, apply, limit) {
    for (;;) {
      this.buffer = [];
      let reply;
      try {
        reply = await this.range(start, end, limit);
      } catch (err) {
        this.release();
        if (!transient(err)) {
          this.served();
          throw err;
        }
        // Gone with the connection: call waits for the next one. Busy,
        // or unanswered on a connection that stays open: in a moment,
        // and the page says that it waits for the server meanwhile.
        if (this.open) {
          this.waiting = true;
          this.onStatus('waiting');
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
        continue;
      }
      this.served();
      const base = reply.revision;
      // Before apply, which may apply some records and throw.
      if (this.rev === 0) this.since = Math.min(this.since ?? base, base);
      try {
        apply(reply.records, reply);
        // Cut short, the reply read the keys up to its last record only.
        const records = reply.records || [];
        const last = reply.truncated ? records[records.length - 1]?.key : end || null;
        if (last !== undefined) this.remember(start, last, base);
      } finally {
        this.release();
      }
      return reply;
    }
  }

  // served ends the 'waiting' status of a load the server refused for
  // now, once it has answered otherwise.
  served() {
    if (!this.waiting) return;
    this.waiting = false;
    if (this.open) this.onStatus('online');
  }

  // release delivers the notifications held while a range was read.
  release() {
    const held = this.buffer;
    this.buffer = null;
    for (const note of held) this.deliver(note);
  }

  // remember records that a load applied the keys from start to end (null:
  // every key after start) as they were at revision base.
  remember(start, end, base) {
    if (base === 0) return; // no change at or below it
    // A load read at a lower revision than one before (from a server
    // behind another) takes the earlier ones down to it: the changes of
    // their keys above it are then delivered, older than what those
    // loads applied, but each followed by the newer ones; none is
    // missed. So bases never fall along the list, and a load whose range
    // covers an earlier one's replaces it.
    for (const l of this.loaded) l.base = Math.min(l.base, base);
    this.loaded = this.loaded.filter((l) => !(keyOrder(start, l.start) <= 0 &&
      (end === null || (l.end !== null && keyOrder(l.end, end) <= 0))));
    this.loaded.push({ start, end, base });
  }
}

const encoder = new TextEncoder();

// keyOrder compares two keys as the server orders them, by their UTF-8
// bytes, which is the order of their code points. JavaScript's < compares
// UTF-16 code units, which put a character above U+FFFF (two surrogates,
// 0xD800 to 0xDFFF) before those from U+E000 to U+FFFF: a fullwidth
// letter, say, would fall outside a range from a key it follows.
function keyOrder(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates up above U+E000 to U+FFFF, which come down.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

// within says whether key is in a load's range, from l.start to l.end
// (null: no end), both included, as the server orders keys.
export const within = (key, l) => keyOrder(l.start, key) <= 0 && (l.end === null || keyOrder(key, l.end) <= 0);

// upTo is the end of a range of every key that starts with prefix: the
// prefix with its last character made the next one ("room:" gives
// "room;"), the least key above all of them; null (no end) for a prefix
// of U+10FFFF alone. Not the prefix and U+10FFFF: the server orders keys
// by their UTF-8 bytes, and a key that goes on past that character sorts
// above it. A range's end is included: a page keeps, of the records, those
// that start with prefix, leaving out upTo(prefix) itself.
export function upTo(prefix) {
  const chars = [...prefix];
  while (chars.length) {
    const c = chars.pop().codePointAt(0);
    if (c < 0x10ffff) return chars.join('') + String.fromCodePoint(c === 0xd7ff ? 0xe000 : c + 1); // no surrogates
  }
  return null;
}

// store is localStorage, or nothing where a browser refuses it (full,
// or disabled): the page works on, without keeping anything.
export const store = {
  get(k) { try { return localStorage.getItem(k); } catch { return null; } },
  set(k, v) { try { localStorage.setItem(k, v); return true; } catch { return false; } },
  remove(k) { try { localStorage.removeItem(k); } catch { /* nothing kept */ } },
  keys() { try { return Object.keys(localStorage); } catch { return []; } },
};

// unsavedNote is what a page adds to a write kept in the page only.
export const unsavedNote = ' (kept in this page only: too large for this browser’s storage)';

// A random id for keys the client chooses: time first, so that keys sort
// by creation.
export const newId = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

// Errors worth trying again as they are: the connection went away or
// the request went unanswered (Live.call marks these unanswered), the
// server is busy or stopping. Any other refusal is final for that write,
// and so is an error of the page's own (a value its code could not
// handle): tried again, it would fail again, for good.
const transient = (err) => err.unanswered === true || err.code === 429 || err.code === 503;

// reason says why the server refused a write, or that the page failed on
// it, in words for the page.
export function reason(err) {
  if (!err.code) return `this page could not send it (${err.message})`;
  const limit = /limit (\d+)/.exec(err.message);
  switch (err.code) {
    case 413: return limit ? `too large (the server takes at most ${Number(limit[1]).toLocaleString()} bytes)` : 'too large for the server';
    case 507: return 'the server has no room left for this app';
    case 403: return 'not allowed';
    default: return err.message;
  }
}

// Outbox holds writes until the server has answered them. An entry is
// {id, seq, state, ...fields}; state is "pending" (waiting or being
// sent), "failed" (refused: reason says why) or "conflict" (the app's run
// found another edit in the way: theirs holds it). run(entry) sends an
// entry and returns once the server has it; it throws an error with a
// code for a refusal, or one with conflict set. Any other error it
// throws, but Live's for a request unanswered, fails the entry too, with
// the error's message as the reason: the entries after it go on.
export class Outbox {
  constructor({ live, name, run, onChange }) {
    this.live = live;
    this.prefix = `livekv-outbox:${name}:`;
    this.run = run;
    this.onChange = onChange || (() => {});
    this.entries = new Map();
    this.seq = 0;
    for (const k of store.keys()) {
      if (!k.startsWith(this.prefix)) continue;
      try {
        const e = JSON.parse(store.get(k));
        this.entries.set(e.id, e);
        this.seq = Math.max(this.seq, e.seq);
      } catch {
        store.remove(k);
      }
    }
  }

  list() { return [...this.entries.values()].sort((a, b) => a.seq - b.seq); }
  get size() { return this.entries.size; }

  add(fields) {
    const e = { id: newId(), seq: Math.max(++this.seq, Date.now()), state: 'pending', ...fields };
    this.seq = e.seq;
    this.put(e);
    this.kick();
    return e;
  }

  // put stores e, in the page and in localStorage; an entry too large for
  // localStorage is kept in the page only, and says so.
  put(e) {
    this.entries.set(e.id, e);
    delete e.unsaved;
    if (!store.set(this.prefix + e.id, JSON.stringify(e))) e.unsaved = true;
    this.onChange();
  }

  remove(id) {
    this.entries.delete(id);
    store.remove(this.prefix + id);
    this.onChange();
  }

  // retry sends a failed or conflicting entry again, with changes.
  retry(id, changes = {}) {
    const e = this.entries.get(id);
    if (!e) return;
    Object.assign(e, changes, { state: 'pending' });
    delete e.reason;
    delete e.theirs;
    delete e.back;
    this.put(e);
    this.kick();
  }

  // kick sends the pending entries, oldest first, one at a time, while
  // connected.
  async kick() {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        for (const e of this.list()) {
          if (!this.live.open) return;
          if (e.state !== 'pending' || this.entries.get(e.id) !== e) continue;
          this.current = e;
          try {
            await this.run(e);
            if (this.entries.get(e.id) === e) this.remove(e.id);
          } catch (thrown) {
            if (this.entries.get(e.id) !== e) continue;
            const err = thrown !== null && typeof thrown === 'object' ? thrown : new Error(String(thrown));
            if (err.conflict) {
              e.state = 'conflict';
              e.theirs = err.theirs;
              if (err.back) e.back = true; // changed and changed back
              this.put(e);
            } else if (transient(err)) {
              // Sent again when the next connection opens, or in a
              // moment if this one stays open (busy server).
              if (this.live.open) setTimeout(() => this.kick(), 1000);
              return;
            } else {
              if (!err.code) console.error('live.js: an outbox entry failed in the page', err);
              e.state = 'failed';
              e.reason = reason(err);
              this.put(e);
            }
          } finally {
            this.current = null;
          }
        }
      } while (this.again);
    } finally {
      this.running = false;
    }
  }
}

export function statusBanner(el) {
  return (state) => {
    el.dataset.state = state;
    el.textContent = {
      online: 'live',
      connecting: 'connecting…',
      offline: 'offline: reconnecting…',
      waiting: 'waiting for the server…',
    }[state];
  };
}

// notice shows a message in el (a role=alert element) until dismissed or
// replaced.
export function notice(el, text) {
  el.textContent = text;
  el.hidden = !text;
}
