// Rooms are chat:room:NAME; each message is its own key,
// chat:msg:ROOM:TIME-ID, so sending never rewrites the room.
import { Live, statusBanner } from '/live.js';

const $ = (id) => document.getElementById(id);
const rooms = new Set();
const messages = new Map(); // key -> message, for the current room
let room = null;

$('name').value = localStorage.getItem('livekv-chat-name') || `guest-${Math.random().toString(36).slice(2, 6)}`;
$('name').onchange = () => localStorage.setItem('livekv-chat-name', $('name').value);

const live = new Live({
  app: 'chat',
  onStatus: statusBanner($('status')),
  onChange(key, value) {
    if (key.startsWith('chat:room:') && value !== null) {
      rooms.add(key.slice('chat:room:'.length));
      renderRooms();
    } else if (room && key.startsWith(`chat:msg:${room}:`)) {
      if (value === null) messages.delete(key);
      else messages.set(key, JSON.parse(value));
      renderMessages();
    }
  },
  onReload: loadAll,
});

async function loadRooms() {
  await live.load('chat:room:', 'chat:room:~', (records) => {
    for (const r of records) rooms.add(r.key.slice('chat:room:'.length));
  });
  renderRooms();
}

async function join(name) {
  room = name;
  $('title').textContent = `#${name}`;
  $('text').disabled = $('sendbtn').disabled = false;
  await live.load(`chat:msg:${name}:`, `chat:msg:${name}:~`, (records) => {
    messages.clear();
    for (const r of records) messages.set(r.key, JSON.parse(r.value));
  });
  renderRooms();
  renderMessages();
}

async function loadAll() {
  await loadRooms();
  if (room) await join(room);
}

function renderRooms() {
  const el = $('rooms');
  el.replaceChildren();
  for (const name of [...rooms].sort()) {
    const b = Object.assign(document.createElement('button'), { textContent: `#${name}` });
    b.dataset.room = name;
    if (name === room) b.className = 'current';
    b.onclick = () => join(name);
    el.append(b);
  }
}

function renderMessages() {
  const el = $('messages');
  el.replaceChildren();
  for (const key of [...messages.keys()].sort()) {
    const m = messages.get(key);
    const div = document.createElement('div');
    div.className = 'msg';
    const who = Object.assign(document.createElement('span'), { className: 'who', textContent: m.user });
    const text = Object.assign(document.createElement('span'), { className: 'text', textContent: m.text });
    div.append(who, text);
    el.append(div);
  }
  el.scrollTop = el.scrollHeight;
}

$('newroom').onsubmit = async (ev) => {
  ev.preventDefault();
  const name = $('room').value.trim().replace(/[^\w-]/g, '-');
  $('room').value = '';
  await live.set(`chat:room:${name}`, JSON.stringify({ created: Date.now() }));
  rooms.add(name);
  await join(name);
};

$('send').onsubmit = async (ev) => {
  ev.preventDefault();
  const now = Date.now();
  const key = `chat:msg:${room}:${String(now).padStart(15, '0')}-${Math.random().toString(36).slice(2, 8)}`;
  const text = $('text').value;
  $('text').value = '';
  await live.set(key, JSON.stringify({ user: $('name').value, text, ts: now }));
};

live.connect();
await live.ready;
await loadRooms();
document.body.dataset.loaded = 'true';
