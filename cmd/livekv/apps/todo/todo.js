// One key per todo, todo:DAY:ID, holding {text, priority, status, created}.
// Edits send only the changed field as a JSON merge patch, so that two
// windows editing the same todo at once keep both edits.
import { Live, statusBanner } from '/live.js';

const $ = (id) => document.getElementById(id);
const todos = new Map(); // key -> todo
let day = new Date().toISOString().slice(0, 10);
$('day').value = day;

const prefix = () => `todo:${day}:`;
const live = new Live({
  app: 'todo',
  onStatus: statusBanner($('status')),
  onChange(key, value) {
    if (!key.startsWith(prefix())) return;
    if (value === null) todos.delete(key);
    else todos.set(key, JSON.parse(value));
    render();
  },
  onReload: load,
});

async function load() {
  await live.load(prefix(), prefix() + '~', (records) => {
    todos.clear();
    for (const li of items.values()) li.remove();
    items.clear();
    for (const r of records) todos.set(r.key, JSON.parse(r.value));
  });
  render();
}

// render updates the list in place: a field being edited keeps its
// element (and what the user is typing) while other changes arrive.
const items = new Map(); // key -> li
function render() {
  const list = $('list');
  for (const [key, li] of items) {
    if (!todos.has(key)) {
      li.remove();
      items.delete(key);
    }
  }
  const keys = [...todos.keys()].sort();
  keys.forEach((key, i) => {
    const t = todos.get(key);
    let li = items.get(key);
    if (!li) {
      li = item(key);
      items.set(key, li);
      const next = items.get(keys[i + 1]);
      list.insertBefore(li, next && next.isConnected ? next : null);
    }
    li.className = `priority-${t.priority}` + (t.status === 'done' ? ' done' : '');
    const text = li.querySelector('.text');
    if (document.activeElement !== text) text.value = t.text;
    li.querySelector('.priority').value = t.priority;
    li.querySelector('.status').checked = t.status === 'done';
  });
}

function item(key) {
  const li = document.createElement('li');
  li.dataset.key = key;
  const done = Object.assign(document.createElement('input'), { type: 'checkbox', title: 'done', className: 'status' });
  done.onchange = () => live.patch(key, JSON.stringify({ status: done.checked ? 'done' : 'todo' }));
  const text = Object.assign(document.createElement('input'), { className: 'text' });
  text.onchange = () => live.patch(key, JSON.stringify({ text: text.value }));
  const prio = Object.assign(document.createElement('select'), { className: 'priority' });
  for (const p of ['low', 'medium', 'high']) prio.add(new Option(p, p));
  prio.onchange = () => live.patch(key, JSON.stringify({ priority: prio.value }));
  const del = Object.assign(document.createElement('button'), { textContent: '✕', title: 'delete', className: 'delete' });
  del.onclick = () => live.del(key);
  li.append(done, text, prio, del);
  return li;
}

$('add').onsubmit = async (ev) => {
  ev.preventDefault();
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const todo = { text: $('text').value, priority: $('priority').value, status: 'todo', created: Date.now() };
  $('text').value = '';
  await live.set(prefix() + id, JSON.stringify(todo));
};

$('day').onchange = () => {
  day = $('day').value;
  load();
};

live.connect();
await live.ready;
await load();
document.body.dataset.loaded = 'true';
