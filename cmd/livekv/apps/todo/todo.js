// One key per todo, todo:DAY:ID, holding {text, priority, status, created}.
// Every write goes through an outbox (see live.js), so that nothing is
// lost offline or across a reload:
//   - a new todo is created with compare-and-swap on revision 0 under an
//     id the page chose, so that sending it twice creates it once;
//   - an edit changes one field, with compare-and-swap on the revision
//     the editor started from (a range and a notification both give
//     each todo's). If someone else wrote the todo meanwhile, what they
//     did to that field decides: left alone, the edit is applied on top
//     of theirs; already equal to ours, nothing is left to do; changed,
//     even if changed back since, both edits are shown and the user
//     chooses.
import { Live, Outbox, statusBanner, notice, upTo, within, newId, unsavedNote } from '/live.js';

const $ = (id) => document.getElementById(id);
const server = new Map(); // key -> {obj, rev}
const items = new Map(); // key -> li
// What the page saw each todo hold, of any day, since it first read the
// list: key -> {from, seen: [{rev, obj}]}, every change after revision
// from (obj null once deleted), so that an edit can tell whether its
// field was changed and changed back since the revision it started from.
// Only todos that an edit may ask about are kept (see needsSeen): at
// most maxSeen changes each, for the todos being edited or with an
// edit not yet acknowledged.
const seen = new Map();
const maxSeen = 50;
let loadedAt = Infinity; // the revision the page saw every change after; none yet
const priorities = ['high', 'medium', 'low'];

// The local day, as the date input shows it, not UTC's.
const localDay = (d = new Date()) =>
  `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
let day = /^#\d{4}-\d{2}-\d{2}$/.test(location.hash) ? location.hash.slice(1) : localDay();
$('day').value = day;
const prefix = () => `todo:${day}:`;

const live = new Live({
  app: 'todo',
  onStatus(state) {
    statusBanner($('status'))(state);
    renderSummary();
  },
  onChange(key, value, rev) {
    const obj = value === null ? null : readTodo(value); // null too for a value that is no todo
    saw(key, obj, rev);
    if (!key.startsWith(prefix())) return;
    if (obj === null) server.delete(key);
    else server.set(key, { obj, rev });
    render();
  },
  onReload() {
    // Changes were missed: what was seen no longer tells.
    seen.clear();
    remembered();
    loadedAt = Infinity;
    load();
  },
  onOpen: () => outbox.kick(),
});

// readTodo reads a stored todo, or gives null for a value that is not
// one (not JSON, or without text, or with a text, priority or status that
// is not a string): anyone with a token may write any value under todo:,
// and one such value must not keep the day from loading or rendering. An
// object JavaScript cannot make a string of ({"toString": 1}) throws
// where it is shown.
function readTodo(value) {
  try {
    const o = JSON.parse(value);
    if (o && typeof o === 'object' && !Array.isArray(o) && typeof o.text === 'string' &&
      ['priority', 'status'].every((f) => o[f] === undefined || typeof o[f] === 'string')) return o;
  } catch {
    // not JSON
  }
  return null;
}

const conflict = (theirs) => Object.assign(new Error('edited elsewhere'), { conflict: true, theirs });

// askedFrom is the oldest revision from which an edit may yet ask what
// happened to key: that of the edit waiting in the outbox or of the text
// being edited; Infinity if they have none; null if there is none. Any
// edit made later starts from the revision the page then holds for the
// todo, never older than the last change the page saw of it: what came
// before may go.
function askedFrom(key) {
  const revs = outbox.list().filter((e) => e.kind === 'edit' && e.key === key).map((e) => e.rev);
  const st = items.get(key)?.editStart;
  if (st) revs.push(st.rev);
  if (!revs.length) return null;
  return Math.min(...revs.map((r) => (typeof r === 'number' ? r : Infinity)));
}

// forget drops what was seen of the todos no edit may ask about. The
// body's data-remembered says of how many todos changes are kept.
function forget() {
  for (const key of [...seen.keys()]) if (askedFrom(key) === null) seen.delete(key);
  remembered();
}
const remembered = () => (document.body.dataset.remembered = String(seen.size));

function saw(key, obj, rev) {
  if (loadedAt === Infinity) return;
  const from = askedFrom(key);
  if (from === null) {
    seen.delete(key);
    remembered();
    return;
  }
  let h = seen.get(key);
  // Every change after from, at least, is seen from now on.
  if (!h) seen.set(key, (h = { from: Math.max(loadedAt, from), seen: [] }));
  h.seen.push({ rev, obj });
  if (h.seen.length > maxSeen) h.from = h.seen.shift().rev;
  remembered();
}

// reread records what a load skips: the notifications of the keys it
// read (from start to last; null: to the end of the range), up to its
// revision, base (see Live.load). A todo an edit may ask about may have
// changed in between without the page seeing it, up to the revision the
// load gives it (base if it is gone): from there on only has the page
// seen its every change.
function reread(start, last, records, base) {
  if (loadedAt === Infinity) return; // nothing kept yet
  const revs = new Map((records || []).map((r) => [r.key, r.revision]));
  const keys = new Set(seen.keys());
  for (const e of outbox.list()) if (e.kind === 'edit') keys.add(e.key);
  for (const [key, li] of items) if (li.editStart) keys.add(key);
  for (const key of keys) {
    if (!within(key, { start, end: last }) || askedFrom(key) === null) continue;
    const at = revs.get(key) ?? base;
    let h = seen.get(key);
    if (!h) seen.set(key, (h = { from: loadedAt, seen: [] }));
    if (h.from < at) {
      h.from = at;
      h.seen = h.seen.filter((c) => c.rev > at);
    }
  }
  remembered();
}

// changedBetween says whether key's field held anything but base after
// revision from, up to revision to; undefined when the page did not see
// every change of key in between (it was not open, kept too few, or has
// not had the notifications up to to yet).
function changedBetween(key, field, base, from, to) {
  const h = seen.get(key);
  const start = h ? h.from : loadedAt;
  if (from === undefined || from === null || from < start || live.rev < to) return undefined;
  return (h?.seen || []).some((c) => c.rev > from && c.rev <= to && c.obj?.[field] !== base);
}

const sameObj = (a, b) => {
  const ka = Object.keys(a || {});
  return ka.length === Object.keys(b || {}).length && ka.every((k) => a[k] === b[k]);
};

// wrote records a write the server has accepted as the server's value,
// unless a newer one arrived first, so that the todo does not show its
// old value between the reply and the notification.
function wrote(key, obj, rev) {
  const s = server.get(key);
  if (s && s.rev !== undefined && s.rev >= rev) return;
  if (key.startsWith(prefix())) server.set(key, { obj, rev });
}

async function run(e) {
  if (e.kind === 'create') {
    try {
      const reply = await live.cas(e.key, JSON.stringify(e.obj), 0);
      wrote(e.key, e.obj, reply.revision);
    } catch (err) {
      if (err.code !== 409) throw err; // 409: it exists, an earlier send arrived
    }
  } else if (e.kind === 'del') {
    try {
      await live.del(e.key);
      server.delete(e.key);
    } catch (err) {
      if (err.code !== 404) throw err;
    }
  } else if (e.kind === 'edit') {
    // cur and rev: the todo the edit goes on top of, and its revision;
    // the one the editor started from first.
    let cur = e.obj;
    let rev = e.rev;
    let fresh = rev === undefined || rev === null; // no revision to start from: the server's now
    for (let i = 0; i < 10; i++) {
      if (fresh) {
        let reply;
        try {
          reply = await live.get(e.key);
        } catch (err) {
          if (err.code === 404) throw Object.assign(new Error('someone else deleted this todo'), { code: 404 });
          throw err;
        }
        // A value that is no todo (anyone may write one) is left out of
        // the list, as by a load: to this edit the todo is gone.
        const now = readTodo(reply.value);
        if (now === null) throw Object.assign(new Error('someone else replaced this todo with something that is not a todo'), { code: 404 });
        if (now[e.field] === e.value) return; // already so: an earlier send, or the same edit elsewhere
        if (now[e.field] !== e.base) throw conflict(now[e.field]);
        if (rev !== undefined && rev !== null) {
          // Written since rev, and the field holds what the edit started
          // from: left alone, or changed and changed back?
          let changed = changedBetween(e.key, e.field, e.base, rev, reply.revision);
          // Not seen by this page: the same todo at a newer revision was
          // written over, and may have been changed and back.
          if (changed === undefined) changed = sameObj(now, cur);
          if (changed) throw Object.assign(conflict(now[e.field]), { back: true });
        }
        cur = now;
        rev = reply.revision;
      }
      try {
        const obj = { ...cur, [e.field]: e.value };
        const reply = await live.cas(e.key, JSON.stringify(obj), rev);
        wrote(e.key, obj, reply.revision);
        return;
      } catch (err) {
        if (err.code !== 409) throw err;
        fresh = true; // written meanwhile: read it again
      }
    }
    throw Object.assign(new Error('the todo keeps changing: try again'), { code: 409 });
  }
}

const outbox = new Outbox({ live, name: 'todo', run, onChange: () => render() });

async function load() {
  const want = prefix();
  try {
    let start = want;
    for (;;) {
      const reply = await live.load(start, upTo(want), (records, reply) => {
        // Cut short, the reply read the keys up to its last record only
        // (none: it skips nothing).
        const last = reply.truncated ? records?.[records.length - 1]?.key : upTo(want);
        if (last !== undefined) reread(start, last, records, reply.revision);
        if (want !== prefix()) return;
        if (start === want) {
          // The first page: what the server has now replaces what was
          // shown; the first ever, the page sees every change after it.
          server.clear();
          if (loadedAt === Infinity) loadedAt = reply.revision;
        }
        // Every record, the last of the page before too, read again:
        // the load skips its changes up to this read.
        for (const r of records) {
          const obj = r.key.startsWith(want) && readTodo(r.value); // not upTo(want)
          if (obj) server.set(r.key, { obj, rev: r.revision });
        }
      });
      if (!reply.truncated || reply.records.length === 0) break;
      start = reply.records[reply.records.length - 1].key;
    }
    notice($('notice'), '');
  } catch (err) {
    notice($('notice'), `Could not load the list: ${err.message}`);
  }
  render();
}

// view is what a todo shows: the server's value, or the one being
// created, with the edits not yet sent on top; and the outbox's state.
function view(key) {
  let obj = server.get(key)?.obj;
  const mine = outbox.list().filter((e) => e.key === key);
  const create = mine.find((e) => e.kind === 'create');
  if (!obj && create) obj = create.obj;
  // Not loaded (offline since a reload), or deleted: as it was when edited.
  if (!obj) obj = mine.find((e) => e.kind === 'edit')?.obj;
  if (!obj) return null;
  obj = { ...obj };
  for (const e of mine) if (e.kind === 'edit' && e.state === 'pending') obj[e.field] = e.value;
  return {
    obj,
    pending: mine.some((e) => e.state === 'pending'),
    deleting: mine.some((e) => e.kind === 'del' && e.state === 'pending'),
    failed: mine.filter((e) => e.state === 'failed'),
    conflicts: mine.filter((e) => e.state === 'conflict'),
  };
}

function render() {
  forget();
  const list = $('list');
  const p = prefix();
  const keys = new Set([...server.keys()].filter((k) => k.startsWith(p)));
  for (const e of outbox.list()) if (e.key.startsWith(p)) keys.add(e.key);
  const sorted = [...keys].sort();
  const views = new Map();
  for (const key of sorted) {
    const v = view(key);
    if (v) views.set(key, v);
  }
  for (const [key, li] of items) {
    if (!views.has(key)) {
      li.remove();
      items.delete(key);
    }
  }
  let prev = null;
  for (const [key, v] of views) {
    let li = items.get(key);
    if (!li) {
      li = item(key);
      items.set(key, li);
    }
    if (li.previousElementSibling !== prev || li.parentNode !== list) list.insertBefore(li, prev ? prev.nextSibling : list.firstChild);
    prev = li;
    update(li, key, v);
  }
  $('empty').hidden = views.size > 0;
  const done = [...views.values()].filter((v) => v.obj.status === 'done').length;
  $('counts').textContent = views.size ? `${views.size - done} to do · ${done} done` : '';
  renderSummary();
}

function renderSummary() {
  const waiting = outbox.list().filter((e) => e.state === 'pending').length;
  const failed = outbox.list().filter((e) => e.state !== 'pending').length;
  const parts = [];
  if (waiting) parts.push(`${waiting} change${waiting > 1 ? 's' : ''} waiting to be sent`);
  if (failed) parts.push(`${failed} need${failed > 1 ? '' : 's'} your attention`);
  $('outbox').textContent = parts.join(' · ');
  $('outbox').hidden = parts.length === 0;
}

function update(li, key, v) {
  const t = v.obj;
  // Only a known priority names a class: another value, which anyone with
  // a token may write, could otherwise add classes (" pending", " failed")
  // and dress the todo up as something it is not.
  const prioClass = priorities.includes(t.priority) ? ` prio-${t.priority}` : '';
  li.className = `todo${prioClass}` + (t.status === 'done' ? ' done' : '') + (v.pending ? ' pending' : '') +
    (v.failed.length ? ' failed' : '') + (v.conflicts.length ? ' conflict' : '') + (v.deleting ? ' deleting' : '');
  li.dataset.text = t.text;
  const text = li.querySelector('.text');
  const notes = li.querySelector('.notes');
  // The text being edited stays as typed, while its notes have focus too.
  const editing = li.editStart && (document.activeElement === text || notes.contains(document.activeElement));
  if (!editing) {
    text.value = t.text;
    li.editStart = null;
  }
  li.querySelector('.status').checked = t.status === 'done';
  li.querySelector('.status').setAttribute('aria-label', `Done: ${t.text}`);
  li.querySelector('.delete').setAttribute('aria-label', `Delete: ${t.text}`);
  const prio = li.querySelector('.priority');
  prio.value = t.priority;
  prio.dataset.p = t.priority;

  const want = [];
  const textConflict = v.conflicts.some((e) => e.field === 'text');
  const back = li.editStart && t.text === li.editStart.text &&
    changedBetween(key, 'text', t.text, li.editStart.rev, server.get(key)?.rev ?? -1);
  if (li.editStart && (t.text !== li.editStart.text || back) && !textConflict) {
    want.push(['underneath', back ? `Changed elsewhere while you were editing, and changed back to “${t.text}”.`
      : `Changed elsewhere while you were editing, to “${t.text}”.`,
      ['Use theirs', () => {
        text.value = t.text;
        text.focus();
        li.editStart = start(key);
        render();
      }]]);
  }
  const done = () => {
    if (document.activeElement !== text) li.editStart = null;
  };
  for (const e of v.conflicts) {
    const theirs = e.back ? `changed the ${e.field} and changed it back to “${e.theirs}”` : `changed the ${e.field} to “${e.theirs}”`;
    want.push(['conflict-note', `Someone else ${theirs} meanwhile; yours is “${e.value}”.`,
      ['Keep mine', () => { done(); outbox.retry(e.id, { base: e.theirs, rev: null }); }],
      ['Use theirs', () => { done(); outbox.remove(e.id); }]]);
  }
  for (const e of v.failed) {
    const what = { create: 'Not saved', edit: `Change of ${e.field} not saved`, del: 'Not deleted' }[e.kind];
    want.push(['failed-note', `${what}: ${e.reason}`,
      ['Retry', () => outbox.retry(e.id)], ['Discard', () => outbox.remove(e.id)]]);
  }
  if (v.pending && !v.failed.length && !v.conflicts.length) {
    const unsaved = outbox.list().some((e) => e.key === key && e.unsaved);
    want.push(['pending-note', (v.deleting ? 'deleting…' : live.open ? 'saving…' : 'waiting for the connection…') + (unsaved ? unsavedNote : '')]);
  }
  // Rebuilt only when they change, so that a button is not replaced
  // between the press and the release of a click.
  const sig = JSON.stringify(want.map(([c, t, ...b]) => [c, t, b.map((x) => x[0])]));
  if (notes.dataset.sig !== sig) {
    notes.dataset.sig = sig;
    notes.replaceChildren(...want.map(([c, t, ...b]) => note(c, t, ...b.map(([label, fn]) => button(label, fn)))));
  } else {
    // The same notes, with the actions of this render.
    const fns = want.flatMap(([, , ...b]) => b.map((x) => x[1]));
    notes.querySelectorAll('button').forEach((b, i) => (b.onclick = fns[i]));
  }
}

function note(className, text, ...buttons) {
  const div = Object.assign(document.createElement('div'), { className: `note ${className}` });
  div.append(Object.assign(document.createElement('span'), { textContent: text }), ...buttons);
  return div;
}

function button(label, onclick) {
  return Object.assign(document.createElement('button'), { type: 'button', textContent: label, onclick });
}

// start is where an edit of key's text begins: the text shown, and the
// server's value and revision it rests on.
function start(key) {
  const s = server.get(key);
  return { text: view(key)?.obj.text, obj: s?.obj, rev: s?.rev };
}

// edit queues a change of one field, merged into a write of the same
// field not yet sent (or into the todo's creation) when there is one.
function edit(key, field, base, value, obj, rev) {
  const waiting = outbox.list().filter((e) => e.key === key && e.state === 'pending' && e !== outbox.current);
  const same = waiting.find((e) => e.kind === 'edit' && e.field === field);
  const create = waiting.find((e) => e.kind === 'create');
  if (same) {
    if (value === same.base) outbox.remove(same.id);
    else {
      same.value = value;
      outbox.put(same);
    }
  } else if (create) {
    create.obj = { ...create.obj, [field]: value };
    outbox.put(create);
  } else if (obj) {
    outbox.add({ kind: 'edit', key, field, base, value, obj, rev });
  } else {
    const s = server.get(key);
    outbox.add({ kind: 'edit', key, field, base, value, obj: s?.obj || { [field]: base }, rev: s?.rev });
  }
  outbox.kick();
}

function item(key) {
  const li = document.createElement('li');
  li.dataset.key = key;
  const done = Object.assign(document.createElement('input'), { type: 'checkbox', className: 'status' });
  done.onchange = () => {
    const s = server.get(key);
    edit(key, 'status', done.checked ? 'todo' : 'done', done.checked ? 'done' : 'todo', s?.obj, s?.rev);
  };
  const notes = Object.assign(document.createElement('div'), { className: 'notes' });
  notes.setAttribute('aria-live', 'polite');
  // A textarea, so that a long text wraps, on a phone too, rather than
  // being cut off; it is one line of text (Enter ends the edit).
  const text = Object.assign(document.createElement('textarea'), { className: 'text', enterKeyHint: 'done', rows: 1, maxLength: 500 });
  text.setAttribute('aria-label', 'Todo text');
  text.onfocus = () => (li.editStart = start(key));
  text.onchange = () => {
    const st = li.editStart || start(key);
    const value = text.value.replace(/\s*\n\s*/g, ' ').trim();
    if (!value) {
      text.value = st.text;
      notice($('notice'), 'A todo needs some text; use ✕ to delete it.');
      return;
    }
    notice($('notice'), '');
    if (value !== st.text) edit(key, 'text', st.text, value, st.obj, st.rev);
    if (document.activeElement === text) li.editStart = start(key);
  };
  text.onkeydown = (ev) => {
    if (ev.key === 'Escape' && li.editStart) {
      text.value = li.editStart.text;
      text.blur();
    } else if (ev.key === 'Enter') {
      ev.preventDefault(); // no line break
      text.blur(); // done editing: the change event sends it
    }
  };
  text.onblur = (ev) => {
    if (notes.contains(ev.relatedTarget)) return; // a note's button: still editing
    li.editStart = null;
    render();
  };
  const prio = Object.assign(document.createElement('select'), { className: 'priority' });
  prio.setAttribute('aria-label', 'Priority');
  for (const p of priorities) prio.add(new Option(p, p));
  prio.onchange = () => {
    const s = server.get(key);
    edit(key, 'priority', prio.dataset.p, prio.value, s?.obj, s?.rev);
  };
  const del = Object.assign(document.createElement('button'), { type: 'button', textContent: '✕', className: 'delete' });
  del.onclick = () => {
    // Its edits and its creation, unless under way, are dropped: a
    // creation not sent (or refused) leaves nothing to delete.
    const mine = outbox.list().filter((e) => e.key === key && e !== outbox.current);
    for (const e of mine) if (e.kind !== 'del') outbox.remove(e.id);
    if (server.has(key) || !mine.some((e) => e.kind === 'create')) outbox.add({ kind: 'del', key });
  };
  li.append(done, text, prio, del, notes);
  return li;
}

$('add').onsubmit = (ev) => {
  ev.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  const obj = { text, priority: $('priority').value, status: 'todo', created: Date.now() };
  outbox.add({ kind: 'create', key: prefix() + newId(), obj });
  $('text').value = '';
};

function setDay(d) {
  day = d || localDay();
  $('day').value = day;
  history.replaceState(null, '', `#${day}`);
  for (const li of items.values()) li.remove();
  items.clear();
  server.clear();
  render();
  load(); // once connected, if offline
}
$('day').onchange = () => setDay($('day').value);
$('today').onclick = () => setDay(localDay());
addEventListener('hashchange', () => {
  if (/^#\d{4}-\d{2}-\d{2}$/.test(location.hash) && location.hash.slice(1) !== day) setDay(location.hash.slice(1));
});

render(); // what the outbox kept shows before the connection opens
live.connect();
await live.ready;
await load();
document.body.dataset.loaded = 'true';
