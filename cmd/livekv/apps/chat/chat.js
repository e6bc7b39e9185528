// Rooms are chat:room:NAME; each message is its own key,
// chat:msg:ROOM:INV-ID, where INV is 10^13 minus the sending time in
// milliseconds, 13 digits: keys sort newest first, so that a range from
// the room's prefix reads the newest messages, and the next range, from
// the last key read, the older ones. Sending never rewrites the room.
// Messages are created with compare-and-swap on revision 0 under a key
// the page chose, so that one sent twice (its reply lost with the
// connection) is stored once. Pages show the messages read in the order
// of their time. Keys of the older scheme (chat:msg:ROOM:MS-ID, the time
// in 15 digits, oldest first) sort before all of these: livekv serve
// rewrites them into this scheme when it opens a folder (chatkeys.go).
//
// The time, in the key and in the message, is the sending page's clock:
// the server does not check it. A message from a machine whose clock is
// off sorts, and is paged, where that clock puts it (an hour fast: above
// the next hour's messages), and shows that time. The key is the page's
// choice so that a message sent twice is stored once; a server-side
// order would need the server to choose keys.
//
// Nor is a message protected: the page's token may write and delete
// every chat: key, so anyone with the page can change or delete any
// message, or write one under any name. The page vouches only for what
// this browser sent (see own).
import { Live, Outbox, statusBanner, notice, upTo, newId, store, unsavedNote } from '/live.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;
const rooms = new Set();
const messages = new Map(); // key -> message, for the current room
let room = null;
let cursor = null; // the last key read by a range, for "load older"

const me = store.get('livekv-chat-uid') || newId();
store.set('livekv-chat-uid', me);
// The messages this browser sent, its tabs alike, key -> the value it
// wrote: a message shows as "(you)" only while it holds that value, and
// one written over says so instead. Not the uid a message carries,
// which anyone who reads the room can copy into one of their own, nor
// the key alone, whose value anyone may write over. The newest 2,000
// are kept, in at most a million characters (a message longer than that
// is not vouched for once sent); the keys alone that an older page kept
// vouch for nothing.
const ownStore = 'livekv-chat-own';
const readOwn = () => {
  try {
    return new Map(JSON.parse(store.get(ownStore) || '[]').filter((x) => Array.isArray(x) && typeof x[1] === 'string'));
  } catch {
    return new Map();
  }
};
let own = readOwn();
function markOwn(key, value) {
  own = readOwn(); // another tab's too
  own.set(key, value);
  const kept = [];
  let left = 1e6;
  for (const [k, v] of [...own].reverse()) {
    if (kept.length === 2000) break;
    if (k.length + v.length > left) continue;
    left -= k.length + v.length;
    kept.unshift([k, v]);
  }
  own = new Map(kept);
  store.set(ownStore, JSON.stringify(kept));
}
addEventListener('storage', (ev) => {
  if (ev.key !== ownStore) return;
  own = readOwn();
  renderMessages();
});
$('name').value = store.get('livekv-chat-name') || `guest-${Math.random().toString(36).slice(2, 6)}`;
$('name').onchange = () => {
  const name = $('name').value.trim();
  if (name) store.set('livekv-chat-name', name);
  else $('name').value = store.get('livekv-chat-name') || 'guest';
};

const live = new Live({
  app: 'chat',
  onStatus(state) {
    statusBanner($('status'))(state);
    renderMessages();
  },
  onChange(key, value) {
    if (key.startsWith('chat:room:') && value !== null) {
      rooms.add(key.slice('chat:room:'.length));
      renderRooms();
    } else if (room && inRoom(key, room)) {
      const m = value === null ? null : readMsg(value);
      if (m === null) messages.delete(key);
      else messages.set(key, m);
      renderMessages();
    }
  },
  onReload: loadAll,
  onOpen: () => outbox.kick(),
});

async function run(e) {
  try {
    await live.cas(e.key, e.value, 0);
    // Shown as sent until its notification comes, not gone meanwhile.
    if (e.kind === 'msg' && e.room === room) messages.set(e.key, JSON.parse(e.value));
    if (e.kind === 'room') rooms.add(e.room);
  } catch (err) {
    if (err.code !== 409) throw err; // 409: it exists, an earlier send arrived
  }
}
const outbox = new Outbox({ live, name: 'chat', run, onChange: () => { renderRooms(); renderMessages(); } });

const msgPrefix = (name) => `chat:msg:${name}:`;
// inRoom says whether key is a message of the room name: its prefix, then
// no colon. A room's prefix is also that of the rooms whose names go on
// with a colon (chat:msg:a:b:... is room a:b's, which the API, not this
// page, can make), whose messages its range reads too.
const inRoom = (key, name) => key.startsWith(msgPrefix(name)) && !key.includes(':', msgPrefix(name).length);

// readMsg reads a stored message, or gives null for a value that is not
// one (not JSON, or without a time a date can hold, or without text, or
// with a text or a name that is not a string): anyone with a token may
// write any value under chat:, and one such value must not keep the room
// from loading or rendering. An object JavaScript cannot make a string
// of ({"toString": 1}) throws where it is shown.
function readMsg(value) {
  try {
    const m = JSON.parse(value);
    if (m && typeof m === 'object' && Number.isFinite(m.ts) && Math.abs(m.ts) <= 8.64e15 &&
      typeof m.text === 'string' && (m.user === undefined || typeof m.user === 'string')) return m;
  } catch {
    // not JSON
  }
  return null;
}

// roomName makes a typed name a room's: Unicode letters kept, spaces
// made dashes, no colon (it ends the room's part of a key), no control
// characters; it needs a letter or a digit. It returns null for a name
// that is none.
function roomName(raw) {
  const name = raw.normalize('NFC').trim().replace(/\s+/gu, '-').replace(/[:#/?\p{Cc}\p{Cf}]/gu, '');
  if (!/[\p{L}\p{N}]/u.test(name)) return null;
  return [...name].slice(0, 40).join('');
}

async function loadRooms() {
  let start = 'chat:room:';
  for (;;) {
    // A page after the first starts at the last key of the one before,
    // read again and applied again: the load skips its changes up to
    // this read.
    const reply = await live.load(start, upTo('chat:room:'), (records) => {
      for (const r of records) if (r.key.startsWith('chat:room:')) rooms.add(r.key.slice('chat:room:'.length));
    });
    if (!reply.truncated || reply.records.length === 0) break;
    start = reply.records[reply.records.length - 1].key;
  }
  renderRooms();
}

async function join(name, push) {
  if (push) history.pushState(null, '', `#${encodeURIComponent(name)}`);
  room = name;
  document.title = `#${name} · Chat · livekv`;
  $('title').textContent = `#${name}`;
  $('text').disabled = $('sendbtn').disabled = false;
  messages.clear();
  cursor = null;
  $('older').hidden = true;
  renderRooms();
  renderMessages(true);
  // Offline, or cut off by a drop, this waits for the connection.
  try {
    const reply = await live.load(msgPrefix(name), upTo(msgPrefix(name)), (records) => {
      if (room !== name) return;
      for (const r of records) {
        const m = inRoom(r.key, name) && readMsg(r.value);
        if (m) messages.set(r.key, m);
      }
    }, PAGE);
    if (room !== name) return;
    pageRead(reply);
    notice($('notice'), '');
  } catch (err) {
    notice($('notice'), `Could not load #${name}: ${err.message}`);
  }
  renderMessages(true);
}

function pageRead(reply) {
  if (reply.records.length) cursor = reply.records[reply.records.length - 1].key;
  $('older').hidden = !reply.truncated;
}

$('older').onclick = async () => {
  const name = room;
  const el = $('messages');
  const below = el.scrollHeight - el.scrollTop;
  $('older').disabled = true;
  try {
    const reply = await live.range(cursor, upTo(msgPrefix(name)), PAGE + 1);
    if (room !== name) return;
    for (const r of reply.records) {
      const m = r.key !== cursor && inRoom(r.key, name) && readMsg(r.value);
      if (m) messages.set(r.key, m);
    }
    pageRead(reply);
    renderMessages();
    el.scrollTop = el.scrollHeight - below; // the messages read stay in place
  } catch (err) {
    notice($('notice'), `Could not load older messages: ${err.message}`);
  } finally {
    $('older').disabled = false;
  }
};

async function loadAll() {
  try {
    await loadRooms();
    if (room) await join(room);
  } catch (err) {
    notice($('notice'), `Could not load the rooms: ${err.message}`);
  }
}

function renderRooms() {
  const el = $('rooms');
  const names = new Set(rooms);
  for (const e of outbox.list()) if (e.kind === 'room') names.add(e.room);
  if (room) names.add(room);
  el.replaceChildren();
  for (const name of [...names].sort((a, b) => a.localeCompare(b))) {
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: `#${name}` });
    b.dataset.room = name;
    if (name === room) b.setAttribute('aria-current', 'true');
    if (outbox.list().some((e) => e.kind === 'room' && e.room === name)) b.classList.add('pending');
    b.onclick = () => join(name, true);
    el.append(b);
  }
  $('norooms').hidden = names.size > 0;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const SHOWN = 500; // characters of a long message shown

// The list's items, made once and kept while they show the same: a
// message's, key -> {li, src (its message, or its outbox entry's value),
// look (what else it shows)}, and a day's heading, by day. A message that
// comes or goes changes its own item only: a flood of them does not make
// every open page rebuild the whole room for each.
const items = new Map();
const days = new Map();

function renderMessages(toBottom) {
  const el = $('messages');
  const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  const list = $('msglist');
  const all = [];
  if (room) {
    for (const [key, m] of messages) all.push({ key, m });
    for (const e of outbox.list()) {
      if (e.kind === 'msg' && e.room === room && !messages.has(e.key)) all.push({ key: e.key, m: JSON.parse(e.value), e });
    }
  }
  all.sort((a, b) => (a.m.ts - b.m.ts) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const want = [];
  let lastDay = null;
  for (const { key, m, e } of all) {
    const when = new Date(m.ts);
    const d = when.toDateString();
    if (d !== lastDay) {
      lastDay = d;
      if (!days.has(d)) days.set(d, Object.assign(document.createElement('li'), { className: 'day', textContent: dayFmt.format(when) }));
      want.push(days.get(d));
    }
    // Sent by this browser, and still what it sent (a value the page
    // wrote reads back, stringified, as it was written).
    const sent = own.get(key);
    const changed = !e && sent !== undefined && sent !== JSON.stringify(m);
    const mine = Boolean(e) || (sent !== undefined && !changed);
    const src = e ? e.value : m;
    const look = JSON.stringify([mine, changed, e && [e.id, e.state, e.reason, e.unsaved, live.open]]);
    let item = items.get(key);
    if (!item || item.src !== src || item.look !== look) {
      item = { li: messageItem(key, m, e, mine, changed), src, look };
      items.set(key, item);
    }
    want.push(item.li);
  }
  // The items no longer shown go; the others are put in order, those out
  // of place moved.
  const wanted = new Set(want);
  for (const [key, item] of items) if (!wanted.has(item.li)) items.delete(key);
  for (const [d, li] of days) if (!wanted.has(li)) days.delete(d);
  for (const li of [...list.children]) if (!wanted.has(li)) li.remove();
  let next = list.firstChild;
  for (const li of want) {
    if (li === next) next = li.nextSibling;
    else list.insertBefore(li, next);
  }
  $('empty').hidden = all.length > 0;
  $('empty').textContent = room ? `No messages in #${room} yet. Say hello!` : 'Pick a room, or create one, to start talking.';
  if (toBottom || atBottom) el.scrollTop = el.scrollHeight;
  const waiting = outbox.list().filter((x) => x.state === 'pending').length;
  const failed = outbox.list().filter((x) => x.state === 'failed').length;
  const parts = [];
  if (waiting) parts.push(`${waiting} waiting to be sent`);
  if (failed) parts.push(`${failed} not sent`);
  $('outbox').textContent = parts.join(' · ');
  $('outbox').hidden = parts.length === 0;
}

// messageItem makes the list's item of the message m under key; e is its
// outbox entry while it is not sent.
function messageItem(key, m, e, mine, changed) {
  const when = new Date(m.ts);
  const li = document.createElement('li');
  li.dataset.key = key;
  li.className = 'msg' + (mine ? ' own' : '') + (e ? ` ${e.state === 'failed' ? 'failed' : 'pending'}` : '');
  const meta = Object.assign(document.createElement('div'), { className: 'meta' });
  const who = m.user ?? '';
  meta.append(Object.assign(document.createElement('span'), { className: 'who', textContent: mine ? `${who} (you)` : who }));
  const time = Object.assign(document.createElement('time'), { textContent: timeFmt.format(when), dateTime: when.toISOString(), title: fullFmt.format(when) });
  meta.append(time);
  if (changed) meta.append(Object.assign(document.createElement('span'), { className: 'edited', textContent: 'changed since you sent it' }));
  const text = m.text;
  const body = Object.assign(document.createElement('div'), { className: 'text',
    textContent: text.length > SHOWN ? `${text.slice(0, SHOWN)}… (${text.length.toLocaleString()} characters)` : text });
  li.append(meta, body);
  if (e && e.state === 'failed') {
    const why = Object.assign(document.createElement('div'), { className: 'note failed-note' });
    why.append(Object.assign(document.createElement('span'), { textContent: `Not sent: ${e.reason}${e.unsaved ? unsavedNote : ''}` }),
      button('Retry', () => outbox.retry(e.id)),
      button('Edit', () => {
        $('text').value = text;
        outbox.remove(e.id);
        $('text').focus();
      }),
      button('Discard', () => outbox.remove(e.id)));
    li.append(why);
  } else if (e) {
    li.append(Object.assign(document.createElement('div'), { className: 'note pending-note',
      textContent: (live.open ? 'sending…' : 'waiting for the connection…') + (e.unsaved ? unsavedNote : '') }));
  }
  return li;
}

function button(label, onclick) {
  return Object.assign(document.createElement('button'), { type: 'button', textContent: label, onclick });
}

$('newroom').onsubmit = (ev) => {
  ev.preventDefault();
  const name = roomName($('room').value);
  if (!name) {
    notice($('notice'), 'A room name needs at least one letter or digit.');
    return;
  }
  notice($('notice'), '');
  $('room').value = '';
  if (!rooms.has(name)) {
    outbox.add({ kind: 'room', room: name, key: `chat:room:${name}`, value: JSON.stringify({ created: Date.now() }) });
  }
  join(name, true);
};

$('send').onsubmit = (ev) => {
  ev.preventDefault();
  const text = $('text').value;
  if (!room || !text.trim()) return;
  if (!rooms.has(room) && !outbox.list().some((e) => e.kind === 'room' && e.room === room)) {
    // A room reached by its link, not created yet: the first message creates it.
    outbox.add({ kind: 'room', room, key: `chat:room:${room}`, value: JSON.stringify({ created: Date.now() }) });
  }
  const ts = Date.now();
  const key = `${msgPrefix(room)}${String(1e13 - ts).padStart(13, '0')}-${Math.random().toString(36).slice(2, 8)}`;
  const value = JSON.stringify({ user: $('name').value.trim() || 'guest', uid: me, text, ts });
  markOwn(key, value);
  outbox.add({ kind: 'msg', room, key, value });
  $('text').value = '';
  renderMessages(true);
};

function fromHash() {
  if (location.hash.length < 2) return null;
  try {
    return roomName(decodeURIComponent(location.hash.slice(1)));
  } catch {
    return null;
  }
}
addEventListener('hashchange', () => {
  const name = fromHash();
  if (name && name !== room) join(name);
});

const first = fromHash();
renderMessages();
renderRooms();
live.connect();
const joined = first ? join(first) : null;
await live.ready;
try {
  await loadRooms();
} catch (err) {
  notice($('notice'), `Could not load the rooms: ${err.message}`);
}
await joined;
document.body.dataset.loaded = 'true';
