// live.js: a small client for livekv's HPKV-compatible WebSocket API, used
// by the todo and chat pages. It gets a scoped token from the server,
// keeps the connection open, reconnects with backoff, and resumes from the
// last revision it has seen, so that no change is missed while offline.
export class Live {
  constructor({ app, onStatus, onChange, onReload }) {
    this.app = app;
    this.onStatus = onStatus || (() => {});
    this.onChange = onChange || (() => {});
    this.onReload = onReload || (() => {});
    this.rev = 0; // newest revision applied
    this.nextId = 0;
    this.pending = new Map();
    this.backoff = 250;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }

  async connect() {
    this.onStatus('connecting');
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
    if (this.rev > 0) url += `&fromRevision=${this.rev}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 250;
      this.onStatus('online');
      this.markReady();
      if (this.stale) {
        this.stale = false;
        // Counted where a test can see it: a page should resume from the
        // server's history, and reload only when that no longer reaches.
        document.body.dataset.reloads = String(Number(document.body.dataset.reloads || 0) + 1);
        this.onReload();
      }
    };
    ws.onmessage = (ev) => this.receive(JSON.parse(ev.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const p of this.pending.values()) p.reject(new Error('connection lost'));
      this.pending.clear();
      this.retry();
    };
  }

  retry() {
    this.onStatus('offline');
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 5000);
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
    if (note.revision <= this.rev) return; // already reflected
    this.rev = note.revision;
    this.onChange(note.key, note.value);
  }

  async call(req) {
    await this.ready;
    const messageId = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(messageId, { resolve, reject });
      this.ws.send(JSON.stringify({ ...req, messageId }));
    });
  }

  set(key, value) { return this.call({ op: 2, key, value }); }
  patch(key, value) { return this.call({ op: 3, key, value }); }
  del(key) { return this.call({ op: 4, key }); }

  // load reads the keys from start to end (both included) at one
  // revision and hands them to apply; the notifications that arrive
  // meanwhile are held, and only those after that revision delivered.
  // Loads run one at a time.
  async load(start, end, apply) {
    this.buffer = [];
    let base = Infinity;
    try {
      const reply = await this.call({ op: 5, key: start, endKey: end, limit: 1000 });
      base = reply.revision;
      apply(reply.records);
      if (base > this.rev) this.rev = base;
    } finally {
      const held = this.buffer;
      this.buffer = null;
      for (const note of held) if (note.revision > base) this.deliver(note);
    }
  }
}

export function statusBanner(el) {
  return (state) => {
    el.dataset.state = state;
    el.textContent = { online: 'live', connecting: 'connecting…', offline: 'offline: reconnecting…' }[state];
  };
}
