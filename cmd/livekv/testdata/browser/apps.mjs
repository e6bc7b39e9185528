// Drives livekv serve's todo and chat pages in headless Chromium as two
// users (two browser contexts), for what the pages must never get wrong:
// losing what was typed, diverging, failing silently, or not fitting a
// phone.
// Usage: node apps.mjs BASE_URL PHASE ARTIFACTS_DIR
//   PHASE "outage": prints "stop-server" and waits for a line on stdin
//       while the test stops the server; writes in both apps in both
//       contexts, and closes one page with a write not sent; prints
//       "start-server" and waits again while the server starts on the
//       same address. Every write arrives once, the closed page's too
//       once reopened; a write sent twice is stored once.
//   PHASE "ui": same-field conflict of a todo resolved visibly; a write
//       the server refuses shown with its reason and its text kept, also
//       after a reload; room names, the room in the URL, own messages,
//       "load older" paging, also of messages the test wrote under the
//       keys of the old scheme; the local day and counts; at 390 px (a phone
//       with viewport emulation) no horizontal scroll and text at full
//       size; screenshots at phone and desktop width for docs/.
//   PHASE "edits": an edit of a todo loaded by a range, made while
//       another user changed its text and changed it back, is a conflict
//       (compare-and-swap on the revision the editor started from), shown
//       with "Keep mine" and "Use theirs", also when the page
//       switched days and back while its edit waited, and read the
//       changes' notifications only after the list; edits of different
//       fields still merge. A create whose reply is lost, and an edit whose
//       request is lost, on a connection that stays open, wait as
//       pending until they time out, then are sent again and stored once;
//       when nothing at all came meanwhile, on a new connection.
//       What a page remembers of each todo's changes is dropped once no
//       edit may ask for it. Values no page writes (plain text, a
//       message with no date) are left out, live and after a reload; a
//       message of this browser's written over elsewhere no longer says
//       "(you)", and says it changed; an edit of a todo written over
//       with one is not saved, says why, and holds up no write after it.
//       At 390 px a long todo wraps, whole, and grows while edited.
// Every page must load without a 404 or a script error. Prints "ok" and
// exits 0 when every check passes.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';
import readline from 'node:readline';

const [base, phase, artifacts] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const timeout = 10000;
const problems = [];
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// ask has the test do something (stop or start the server) and waits
// until it says it is done.
async function ask(what) {
  console.log(what);
  const { value } = await lines.next();
  assert.equal(value, 'done', `the test did not ${what}`);
}

function watch(page) {
  if (process.env.DEBUG) {
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => console.error(page.url(), '>', String(f.payload).slice(0, 200)));
      ws.on('framereceived', (f) => console.error(page.url(), '<', String(f.payload).slice(0, 200)));
    });
    page.on('console', (m) => console.error(page.url(), 'console', m.text()));
  }
  page.on('pageerror', (err) => problems.push(`script error on ${page.url()}: ${err.message}`));
  page.on('response', (r) => {
    if (r.status() === 404) problems.push(`404 for ${r.url()}`);
  });
}

async function open(context, url, { online = true } = {}) {
  const page = await context.newPage();
  watch(page);
  await page.goto(base + url);
  if (online) {
    await page.waitForSelector('body[data-loaded=true]', { timeout });
    await page.waitForSelector('#status[data-state=online]', { timeout });
  }
  return page;
}

const shot = (page, name) => page.mouse.move(0, 0).then(() => page.screenshot({ path: path.join(artifacts, `${name}.png`) }));

// The texts shown by the todos and chat messages of a page.
const todoTexts = (page) => page.$$eval('#list li textarea.text', (els) => els.map((e) => e.value));
const chatTexts = (page) => page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));

// settled waits until the page shows each of texts exactly once and has
// nothing left to send.
async function settled(page, texts, list) {
  await waitOr(page, texts, list);
}
async function waitOr(page, texts, list) {
  try {
    await waitSettled(page, texts, list);
  } catch (err) {
    const state = await page.evaluate(() => ({
      status: document.querySelector('#status').dataset.state,
      items: [...document.querySelectorAll('#list li, #messages .msg')].map((e) => `${e.className}: ${e.querySelector('.text')?.value ?? e.querySelector('.text')?.textContent} ${e.querySelector('.note')?.textContent ?? ''}`),
      outbox: document.querySelector('#outbox').textContent,
      notice: document.querySelector('#notice').textContent,
    }));
    throw new Error(`${page.url()} did not settle on ${JSON.stringify(texts)}: ${JSON.stringify(state)}`, { cause: err });
  }
}
async function waitSettled(page, texts, list) {
  await page.waitForFunction(([texts, list]) => {
    const shown = list === 'todo'
      ? [...document.querySelectorAll('#list li textarea.text')].map((e) => e.value)
      : [...document.querySelectorAll('#messages .msg .text')].map((e) => e.textContent);
    return texts.every((t) => shown.filter((s) => s === t).length === 1) &&
      document.querySelectorAll('.pending').length === 0 && document.querySelector('#outbox').hidden;
  }, [texts, list], { timeout: 20000 });
}

async function addTodo(page, text, priority = 'medium') {
  await page.fill('#text', text);
  await page.selectOption('#priority', priority);
  await page.press('#text', 'Enter');
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

const todoItem = (page, text) => page.locator(`#list li[data-text="${text}"]`);

try {
  if (phase === 'outage') {
    const one = await browser.newContext();
    const two = await browser.newContext();
    const ta = await open(one, '/todo/');
    let tb = await open(two, '/todo/');
    const ca = await open(one, '/chat/');
    await ca.fill('#room', 'lobby');
    await ca.press('#room', 'Enter');
    await ca.waitForFunction(() => location.hash === '#lobby' && !document.querySelector('#rooms .pending'), null, { timeout });
    const cb = await open(two, '/chat/#lobby');
    // A room to open while the server is down: its messages are read once
    // it is back, however many attempts to reconnect failed meanwhile.
    const cw = await open(one, '/chat/#second');
    await say(cw, 'in the second room');
    await cw.waitForSelector('#messages .msg:not(.pending) .text:text("in the second room")', { timeout });
    await cw.click('#rooms button[data-room=lobby]');

    await addTodo(ta, 'to edit offline', 'low');
    await todoItem(tb, 'to edit offline').waitFor({ timeout });

    await ask('stop-server');
    for (const page of [ta, tb, ca, cb, cw]) await page.waitForSelector('#status[data-state=offline]', { timeout });
    await cw.click('#rooms button[data-room=second]');
    // Edits of one todo offline, a field each: both are kept.
    await todoItem(ta, 'to edit offline').locator('select.priority').selectOption('high');
    await todoItem(tb, 'to edit offline').locator('textarea.text').fill('edited offline by B');
    await tb.locator('#list li textarea.text').first().press('Enter');
    await addTodo(ta, 'from A offline', 'high');
    await addTodo(tb, 'from B offline', 'low');
    await addTodo(tb, 'from B, kept across a reload');
    await say(ca, 'chat from A offline');
    await say(cb, 'chat from B offline');
    // Shown at once, as waiting; the inputs are free for the next one.
    for (const [page, sel] of [[ta, '#list li.pending'], [tb, '#list li.pending'], [ca, '#messages .msg.pending'], [cb, '#messages .msg.pending']]) {
      await page.waitForSelector(sel, { timeout });
      assert.equal(await page.inputValue('#text'), '', 'the input is cleared once the write is kept');
      assert.match(await page.textContent('#outbox'), /waiting to be sent/);
    }
    assert.deepEqual((await todoTexts(tb)).sort(), ['edited offline by B', 'from B offline', 'from B, kept across a reload']);
    await shot(tb, 'todo-offline');
    assert.deepEqual(await chatTexts(ca), ['chat from A offline']);
    // A page closed with writes not sent: they wait in localStorage.
    await tb.close();

    await ask('start-server');
    // The page opened again shows them as waiting before it connects (its
    // token request held back here), then sends them.
    let release;
    const held = new Promise((resolve) => (release = resolve));
    await two.route('**/apps/token', async (route) => {
      await held;
      await route.continue();
    });
    tb = await open(two, '/todo/', { online: false });
    await tb.waitForFunction(() => document.querySelectorAll('#list li.pending').length === 3, null, { timeout });
    assert.notEqual(await tb.getAttribute('#status', 'data-state'), 'online');
    assert.match(await tb.textContent('#outbox'), /3 changes waiting to be sent/);
    release();
    await tb.waitForSelector('#status[data-state=online]', { timeout });

    const todos = ['from A offline', 'from B offline', 'from B, kept across a reload', 'edited offline by B'];
    const chats = ['chat from A offline', 'chat from B offline'];
    for (const page of [tb, ta]) await settled(page, todos, 'todo');
    for (const page of [ta, tb]) {
      assert.equal(await todoItem(page, 'edited offline by B').locator('select.priority').inputValue(), 'high', 'both offline edits kept');
    }
    for (const page of [ca, cb]) await settled(page, chats, 'chat');
    await settled(cw, ['in the second room'], 'chat');
    // A third user, who was never offline, sees each once too.
    const three = await browser.newContext();
    const tc = await open(three, '/todo/');
    await settled(tc, todos, 'todo');
    assert.equal((await todoTexts(tc)).length, 4);
    const cc = await open(three, '/chat/#lobby');
    await settled(cc, chats, 'chat');
    assert.equal((await chatTexts(cc)).length, 2);

    // A write sent twice (its reply lost with the connection) is stored
    // once: a create whose key the server has changes nothing.
    const key = await todoItem(ta, 'from A offline').getAttribute('data-key');
    // So is an edit: sent again from a revision now stale, it finds its
    // value there and neither conflicts nor writes.
    await ta.evaluate((key) => {
      const e = { id: 'again', seq: 1, state: 'pending', kind: 'create', key, obj: { text: 'sent again', priority: 'low', status: 'todo', created: 0 } };
      localStorage.setItem('livekv-outbox:todo:again', JSON.stringify(e));
      const edit = { id: 'again2', seq: 2, state: 'pending', kind: 'edit', key, field: 'text', base: 'before', value: 'from A offline',
        obj: { text: 'before', priority: 'high', status: 'todo', created: 0 }, rev: 1 };
      localStorage.setItem('livekv-outbox:todo:again2', JSON.stringify(edit));
    }, key);
    await ta.reload();
    await ta.waitForSelector('body[data-loaded=true]', { timeout });
    await settled(ta, todos, 'todo');
    assert.deepEqual((await todoTexts(ta)).sort(), [...todos].sort());
    assert.equal(await ta.evaluate(() => localStorage.getItem('livekv-outbox:todo:again')), null);
    assert.equal(await ta.evaluate(() => localStorage.getItem('livekv-outbox:todo:again2')), null);
    assert.equal(await ta.locator('.conflict-note, .failed-note').count(), 0);
  } else if (phase === 'ui') {
    // A time zone whose day is not UTC's now, so that a page showing UTC's
    // day fails.
    const zone = new Date().getUTCHours() >= 10 ? 'Pacific/Kiritimati' : 'Pacific/Pago_Pago';
    const one = await browser.newContext({ timezoneId: zone, viewport: { width: 1280, height: 800 } });
    const two = await browser.newContext({ timezoneId: zone, viewport: { width: 1280, height: 800 } });
    const ta = await open(one, '/todo/');
    const tb = await open(two, '/todo/');
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(new Date());
    assert.notEqual(today, new Date().toISOString().slice(0, 10));
    assert.equal(await ta.inputValue('#day'), today, 'the todo page opens on the local day');
    assert.ok(await ta.isVisible('#empty'), 'an empty day says so');

    // Same field, two editors: B started editing before A's change
    // arrived; B is told while still typing, then chooses.
    await addTodo(ta, 'shared', 'high');
    await todoItem(tb, 'shared').waitFor({ timeout });
    await tb.locator('#list li textarea.text').first().click();
    await ta.locator('#list li textarea.text').first().fill('from A');
    await ta.locator('#list li textarea.text').first().press('Enter');
    await tb.waitForSelector('#list li .underneath', { timeout });
    assert.match(await tb.textContent('#list li .underneath'), /from A/);
    assert.equal(await tb.locator('#list li textarea.text').first().inputValue(), 'shared', 'what B sees while typing is not overwritten');
    await tb.locator('#list li textarea.text').first().fill('from B');
    await tb.locator('#list li textarea.text').first().press('Enter');
    await tb.waitForSelector('#list li .conflict-note', { timeout });
    const said = await tb.textContent('#list li .conflict-note');
    assert.match(said, /from A/);
    assert.match(said, /from B/);
    await ta.waitForFunction(() => document.querySelector('#list li textarea.text').value === 'from A', null, { timeout });
    await tb.click('#list li .conflict-note button:text("Keep mine")');
    for (const page of [ta, tb]) {
      await page.waitForFunction(() => document.querySelector('#list li textarea.text').value === 'from B' &&
        !document.querySelector('.conflict-note') && !document.querySelector('.pending'), null, { timeout });
    }
    // The other way: A starts from a stale value, and takes B's.
    await ta.locator('#list li textarea.text').first().click();
    await tb.locator('#list li textarea.text').first().fill('from B again');
    await tb.locator('#list li textarea.text').first().press('Enter');
    await ta.waitForSelector('#list li .underneath', { timeout });
    await ta.locator('#list li textarea.text').first().fill('from A again');
    await ta.locator('#list li textarea.text').first().press('Enter');
    await ta.waitForSelector('#list li .conflict-note', { timeout });
    await ta.click('#list li .conflict-note button:text("Use theirs")');
    await ta.locator('#list li textarea.text').first().blur();
    for (const page of [ta, tb]) {
      await page.waitForFunction(() => document.querySelector('#list li textarea.text').value === 'from B again' &&
        !document.querySelector('.conflict-note'), null, { timeout });
    }

    await tb.locator('#list li textarea.text').first().fill('buy oat milk');
    await tb.locator('#list li textarea.text').first().press('Enter');
    await ta.waitForFunction(() => document.querySelector('#list li textarea.text').value === 'buy oat milk', null, { timeout });

    // Counts and priorities, and the desktop screenshot.
    await addTodo(ta, 'water the plants', 'low');
    await addTodo(ta, 'call the plumber', 'medium');
    await addTodo(ta, 'send the invoice', 'high');
    await todoItem(tb, 'send the invoice').waitFor({ timeout });
    await todoItem(tb, 'water the plants').locator('input.status').check();
    await ta.waitForFunction(() => document.querySelector('#counts').textContent === '3 to do · 1 done', null, { timeout });
    assert.equal(await todoItem(ta, 'send the invoice').locator('select.priority').getAttribute('data-p'), 'high');
    await ta.locator('#text').focus();
    await shot(ta, 'todo-desktop');
    await todoItem(tb, 'send the invoice').locator('button.delete').click();
    await ta.waitForFunction(() => document.querySelector('#counts').textContent === '2 to do · 1 done', null, { timeout });
    assert.equal(await todoItem(ta, 'send the invoice').count(), 0, 'a deleted todo goes from every window');

    // Chat: a blank room name is refused, a Unicode one kept, and in the URL.
    const ca = await open(one, '/chat/');
    assert.ok(await ca.isVisible('#empty'));
    await ca.fill('#name', 'Ada');
    await ca.dispatchEvent('#name', 'change');
    await ca.fill('#room', '   ');
    await ca.press('#room', 'Enter');
    await ca.waitForSelector('#notice:not([hidden])', { timeout });
    assert.deepEqual(await ca.$$eval('#rooms button', (bs) => bs.map((b) => b.textContent)), ['#archive', '#lobby', '#second'], 'no nameless room');
    await ca.fill('#room', ' Général café ');
    await ca.press('#room', 'Enter');
    await ca.waitForFunction(() => document.querySelector('#title').textContent === '#Général-café', null, { timeout });
    assert.equal(await ca.evaluate(() => decodeURIComponent(location.hash)), '#Général-café');
    const cb = await open(two, `/chat/#${encodeURIComponent('Général-café')}`);
    await cb.fill('#name', 'Bruno');
    await cb.dispatchEvent('#name', 'change');
    await cb.waitForSelector('#rooms button[aria-current]:text("#Général-café")', { timeout });
    await say(ca, 'Bonjour ! Le café est prêt ☕');
    await cb.waitForSelector('#messages .msg:not(.own) .text:text("Bonjour")', { timeout });
    await say(cb, 'J’arrive dans cinq minutes.');
    await say(ca, 'Parfait, à tout de suite.');
    await ca.waitForSelector('#messages .msg:not(.own) .text:text("J’arrive")', { timeout });
    await cb.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 3, null, { timeout });
    assert.equal(await ca.locator('#messages .msg.own').count(), 2, 'own messages are marked');
    assert.equal(await ca.locator('#messages .msg time').count(), 3, 'every message has its time');

    // The room is kept in the URL across a reload.
    await ca.reload();
    await ca.waitForSelector('body[data-loaded=true]', { timeout });
    await ca.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 3, null, { timeout });

    // A write the server refuses (a value over 1 MiB) is shown as not
    // sent, with the server's reason; its text is kept, across a reload too.
    const big = 'x'.repeat(1_100_000);
    await ca.evaluate((big) => (document.querySelector('#text').value = big), big);
    await ca.click('#sendbtn');
    await ca.waitForSelector('#messages .msg.failed .failed-note', { timeout });
    assert.match(await ca.textContent('#messages .msg.failed .failed-note'), /Not sent: .*too large/);
    assert.match(await ca.textContent('#outbox'), /1 not sent/);
    await ca.reload();
    await ca.waitForSelector('#messages .msg.failed .failed-note', { timeout });
    await shot(ca, 'chat-failed');
    await ca.click('#messages .msg.failed button:text("Edit")');
    assert.equal((await ca.inputValue('#text')).length, big.length, 'the text is back in the input');
    assert.equal(await ca.locator('#messages .msg.failed').count(), 0);
    await ca.fill('#text', '');
    assert.equal(await cb.locator('#messages .msg').count(), 3, 'nothing of the refused write reached the other user');
    await shot(ca, 'chat-desktop');

    // "Load older": 120 messages in a room, the newest 50 first.
    const res = await fetch(`${base}/kv/record`, { method: 'POST', headers: { 'x-api-key': 'browser-test' },
      body: JSON.stringify({ key: 'chat:room:history', value: '{"created":0}' }) });
    assert.equal(res.status, 200);
    const t0 = Date.now() - 120 * 60_000;
    for (let i = 0; i < 120; i++) {
      const ts = t0 + i * 60_000;
      const key = `chat:msg:history:${String(1e13 - ts).padStart(13, '0')}-h${i}`;
      const r = await fetch(`${base}/kv/record`, { method: 'POST', headers: { 'x-api-key': 'browser-test' },
        body: JSON.stringify({ key, value: JSON.stringify({ user: 'bot', text: `message ${i}`, ts }) }) });
      assert.equal(r.status, 200);
    }
    const ch = await open(two, '/chat/#history');
    const numbers = () => chatTexts(ch).then((t) => t.map((s) => Number(s.split(' ')[1])));
    await ch.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 50, null, { timeout });
    assert.deepEqual(await numbers(), Array.from({ length: 50 }, (_, i) => 70 + i));
    for (const n of [100, 120]) {
      await ch.click('#older');
      await ch.waitForFunction((n) => document.querySelectorAll('#messages .msg').length === n, n, { timeout });
    }
    assert.deepEqual(await numbers(), Array.from({ length: 120 }, (_, i) => i));
    assert.ok(await ch.isHidden('#older'), 'no "load older" once the first message is shown');

    // A folder written before keys sorted newest first (the test seeds
    // "archive 0" to "archive 59" under the old keys, oldest first, and
    // "archive 60" to "archive 64" under new ones): the first page is
    // the newest 50, "load older" the rest, each once.
    const ar = await open(two, '/chat/#archive');
    const archived = () => chatTexts(ar).then((t) => t.map((s) => Number(s.split(' ')[1])));
    await ar.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 50, null, { timeout });
    assert.deepEqual(await archived(), Array.from({ length: 50 }, (_, i) => 15 + i));
    await ar.click('#older');
    await ar.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 65, null, { timeout });
    assert.deepEqual(await archived(), Array.from({ length: 65 }, (_, i) => i));
    assert.ok(await ar.isHidden('#older'), 'no "load older" once the first message is shown');

    // A phone: 390 px wide, with the viewport emulation that renders a
    // page without a viewport meta at 980 px.
    const phone = await browser.newContext({ timezoneId: zone, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    for (const [url, name] of [['/', null], ['/todo/', 'todo-phone'], [`/chat/#${encodeURIComponent('Général-café')}`, 'chat-phone']]) {
      const p = await phone.newPage();
      watch(p);
      await p.goto(base + url);
      if (name) await p.waitForSelector('body[data-loaded=true]', { timeout });
      if (name === 'chat-phone') await p.waitForFunction(() => document.querySelectorAll('#messages .msg').length === 3, null, { timeout });
      const m = await p.evaluate(() => ({
        inner: innerWidth,
        scroll: document.documentElement.scrollWidth,
        scale: visualViewport.scale,
        sizes: [...document.querySelectorAll('p, input, select, button, .text, label, h1')]
          .filter((e) => e.getClientRects().length).map((e) => parseFloat(getComputedStyle(e).fontSize)),
      }));
      assert.equal(m.inner, 390, `${url}: laid out at the phone's width`);
      assert.equal(m.scale, 1, `${url}: not zoomed out`);
      assert.ok(m.scroll <= 390, `${url}: no horizontal scroll (${m.scroll} px wide)`);
      assert.ok(m.sizes.length > 3 && Math.min(...m.sizes) >= 13, `${url}: text at full size (${Math.min(...m.sizes)} px)`);
      if (name) assert.equal(await p.evaluate(() => getComputedStyle(document.querySelector('#text')).fontSize), '16px', `${url}: inputs at 16 px`);
      if (name === 'chat-phone') {
        await p.fill('#name', 'Chloé');
        await p.dispatchEvent('#name', 'change');
        await say(p, 'On my way too!');
        await p.waitForSelector('#messages .msg.own:not(.pending) .text:text("On my way too!")', { timeout });
        assert.equal(await p.evaluate(() => document.documentElement.scrollWidth), 390);
      }
      if (name) await shot(p, name);
    }
  } else if (phase === 'edits') {
    const one = await browser.newContext();
    const two = await browser.newContext();
    const ta = await open(one, '/todo/');
    const tb = await open(two, '/todo/');
    await addTodo(ta, 'changed and back', 'medium');
    await todoItem(tb, 'changed and back').waitFor({ timeout });
    const key = await todoItem(ta, 'changed and back').getAttribute('data-key');
    const byKey = (page) => page.locator(`#list li[data-key="${key}"]`);
    const shows = (page, text, priority) => page.waitForFunction(([key, text, priority]) => {
      const li = document.querySelector(`#list li[data-key="${key}"]`);
      return li && li.querySelector('.text').value === text && li.querySelector('select.priority').value === priority &&
        !li.classList.contains('pending') && !li.querySelector('.conflict-note');
    }, [key, text, priority], { timeout });
    const write = async (page, text) => {
      await byKey(page).locator('.text').fill(text);
      await byKey(page).locator('.text').press('Enter');
      await page.waitForFunction((key) => !document.querySelector(`#list li[data-key="${key}"]`).classList.contains('pending'), key, { timeout });
    };

    // B has the todo from a range (a reload), and starts editing; A
    // changes the text and changes it back. B's edit, from the revision
    // it started from, is a conflict, though the text is the same again.
    await tb.reload();
    await tb.waitForSelector('body[data-loaded=true]', { timeout });
    await byKey(tb).locator('.text').click();
    await write(ta, 'changed');
    await byKey(tb).locator('.underneath').waitFor({ timeout });
    await write(ta, 'changed and back');
    await tb.waitForFunction((key) => document.querySelector(`#list li[data-key="${key}"]`).dataset.text === 'changed and back', key, { timeout });
    await byKey(tb).locator('.underneath').waitFor({ timeout });
    assert.match(await byKey(tb).locator('.underneath').textContent(), /back/, 'B is told while typing that it changed, and back');
    await byKey(tb).locator('.text').fill('mine');
    await byKey(tb).locator('.text').press('Enter');
    await byKey(tb).locator('.conflict-note').waitFor({ timeout });
    assert.match(await byKey(tb).locator('.conflict-note').textContent(), /mine/);
    assert.equal(await byKey(tb).locator('.conflict-note button').allTextContents().then((t) => t.join(',')), 'Keep mine,Use theirs');
    await shows(ta, 'changed and back', 'medium');
    await byKey(tb).locator('.conflict-note button:text("Keep mine")').click();
    for (const page of [ta, tb]) await shows(page, 'mine', 'medium');

    // Different fields still merge: B (loaded by a range again) edits the
    // text while A changes the priority.
    await tb.reload();
    await tb.waitForSelector('body[data-loaded=true]', { timeout });
    await byKey(tb).locator('.text').click();
    await byKey(ta).locator('select.priority').selectOption('high');
    await tb.waitForFunction((key) => document.querySelector(`#list li[data-key="${key}"] select.priority`).value === 'high', key, { timeout });
    await write(tb, 'mine, with A\'s priority');
    for (const page of [ta, tb]) await shows(page, 'mine, with A\'s priority', 'high');
    assert.equal(await tb.locator('.conflict-note, .failed-note').count(), 0);

    // What a page remembers of each todo's changes (to tell whether an
    // edit's field was changed and back) is kept only while an edit may
    // ask: for the todo being edited, until the edit is acknowledged.
    const remembered = (page) => page.evaluate(() => document.body.dataset.remembered);
    const rewrite = async (page, from, to) => {
      await todoItem(page, from).locator('.text').fill(to);
      await todoItem(page, from).locator('.text').press('Enter');
      await settled(page, [to], 'todo');
    };
    for (let i = 0; i < 6; i++) await addTodo(ta, `busy ${i}`);
    await settled(ta, Array.from({ length: 6 }, (_, i) => `busy ${i}`), 'todo');
    for (let i = 0; i < 6; i++) await rewrite(ta, `busy ${i}`, `busy ${i}!`);
    await todoItem(tb, 'busy 5!').waitFor({ timeout });
    assert.equal(await remembered(tb), '0', 'nothing kept of todos nobody edits');
    await todoItem(tb, 'busy 0!').locator('.text').click();
    await rewrite(ta, 'busy 0!', 'busy 0, again');
    await rewrite(ta, 'busy 1!', 'busy 1, again');
    await todoItem(tb, 'busy 1, again').waitFor({ timeout });
    assert.equal(await remembered(tb), '1', 'the changes of the todo being edited are kept');
    await todoItem(tb, 'busy 0, again').locator('.text').press('Escape');
    await tb.waitForFunction(() => document.body.dataset.remembered === '0', null, { timeout });
    // B's own edit, once acknowledged, leaves nothing kept.
    await rewrite(tb, 'busy 2!', 'busy 2, from B');
    await tb.waitForFunction(() => document.body.dataset.remembered === '0', null, { timeout });
    await todoItem(ta, 'busy 2, from B').waitFor({ timeout });

    // Requests the server never answers, on a connection that stays open:
    // a create whose reply is lost (the server wrote it), and an edit the
    // server never received. Each waits, shown as such, until its
    // request times out, then is sent again, and arrives once.
    const three = await browser.newContext();
    let drop = null; // what to lose of the next compare-and-swap: "reply" or "request"
    const cas = []; // every compare-and-swap the page sent
    let connections = 0;
    await three.routeWebSocket(/\/kv\/ws/, (ws) => {
      connections++;
      const server = ws.connectToServer();
      const lost = new Set();
      ws.onMessage((m) => {
        const msg = JSON.parse(m);
        if (msg.op === 102) {
          cas.push(msg);
          const what = drop;
          drop = null;
          if (what === 'request') return;
          if (what === 'reply') lost.add(msg.messageId);
        }
        server.send(m);
      });
      server.onMessage((m) => {
        if (!lost.has(JSON.parse(m).messageId)) ws.send(m);
      });
    });
    const tc = await three.newPage();
    watch(tc);
    await tc.clock.install();
    await tc.goto(base + '/todo/');
    await tc.waitForSelector('body[data-loaded=true]', { timeout });
    await tc.waitForSelector('#status[data-state=online]', { timeout });
    const waiting = async (page, text) => {
      await page.waitForFunction((text) => document.querySelector(`#list li[data-text="${text}"]`)?.classList.contains('pending'), text, { timeout });
      assert.match(await page.textContent('#outbox'), /1 change waiting to be sent/);
    };

    drop = 'reply';
    await addTodo(tc, 'reply lost');
    await waiting(tc, 'reply lost');
    await todoItem(ta, 'reply lost').waitFor({ timeout }); // the server has it
    await tc.clock.fastForward(5000);
    await waiting(tc, 'reply lost'); // not timed out yet
    assert.equal(cas.length, 1);
    await tc.clock.fastForward(6000);
    await settled(tc, ['reply lost'], 'todo');
    const lostKey = await todoItem(tc, 'reply lost').getAttribute('data-key');
    assert.deepEqual(cas.map((c) => [c.key, c.revision]), [[lostKey, 0], [lostKey, 0]], 'sent again, idempotently');
    assert.equal(connections, 1, 'on the same connection, which had the notification meanwhile');

    drop = 'request';
    await todoItem(tc, 'reply lost').locator('.text').fill('request lost');
    await todoItem(tc, 'reply lost').locator('.text').press('Enter');
    await waiting(tc, 'request lost');
    await tc.clock.fastForward(11000);
    await settled(tc, ['request lost'], 'todo');
    assert.equal(cas.length, 4);
    assert.deepEqual(cas[3], { ...cas[2], messageId: cas[3].messageId }, 'the same edit, sent again');
    assert.equal(connections, 2, 'nothing heard while waiting: the connection is taken for dead and another opened');
    await todoItem(ta, 'request lost').waitFor({ timeout });
    assert.equal(await tc.locator('.conflict-note, .failed-note').count(), 0);
    const res = await fetch(`${base}/kv/records?startKey=todo:&endKey=todo:~&limit=1000`, { headers: { 'x-api-key': 'browser-test' } });
    const stored = (await res.json()).records.map((r) => JSON.parse(r.value).text);
    assert.deepEqual(stored.filter((t) => t === 'request lost' || t === 'reply lost'), ['request lost'], 'stored once');

    // A page that switches to another day and back while its edit of a
    // todo waits (its request lost): the todo is changed and changed
    // back meanwhile, and the notifications of both changes reach the
    // page only after the list is read again, so that the load skips
    // them (its records hold their result). The edit, sent again, must
    // still be a conflict: the page did not see every change since the
    // revision it started from.
    const until = async (cond, what) => {
      for (const end = Date.now() + timeout; !cond(); await new Promise((r) => setTimeout(r, 20))) {
        assert.ok(Date.now() < end, `timed out waiting for ${what}`);
      }
    };
    const four = await browser.newContext();
    let loseCas = false;
    let holdKey = null; // notifications of this key are held until a range that reads it is answered
    let rangeId = null;
    const held = [];
    await four.routeWebSocket(/\/kv\/ws/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => {
        const msg = JSON.parse(m);
        if (msg.op === 102 && loseCas) {
          loseCas = false;
          return;
        }
        if (msg.op === 5 && holdKey && msg.key <= holdKey && holdKey <= msg.endKey) rangeId = msg.messageId;
        server.send(m);
      });
      server.onMessage((m) => {
        const msg = JSON.parse(m);
        if (holdKey && msg.type === 'notification' && msg.key === holdKey) {
          held.push(m);
          return;
        }
        ws.send(m);
        if (rangeId !== null && msg.messageId === rangeId) {
          holdKey = rangeId = null;
          for (const h of held.splice(0)) ws.send(h);
        }
      });
    });
    const td = await four.newPage();
    watch(td);
    await td.clock.install();
    await td.goto(base + '/todo/');
    await td.waitForSelector('body[data-loaded=true]', { timeout });
    await td.waitForSelector('#status[data-state=online]', { timeout });
    await addTodo(ta, 'switched away');
    await settled(td, ['switched away'], 'todo');
    const away = await todoItem(td, 'switched away').getAttribute('data-key');
    loseCas = true;
    holdKey = away;
    await todoItem(td, 'switched away').locator('.text').fill('mine, from away');
    await todoItem(td, 'switched away').locator('.text').press('Enter');
    await waiting(td, 'mine, from away');
    await todoItem(ta, 'switched away').locator('.text').fill('switched and changed');
    await todoItem(ta, 'switched away').locator('.text').press('Enter');
    await settled(ta, ['switched and changed'], 'todo');
    await todoItem(ta, 'switched and changed').locator('.text').fill('switched away');
    await todoItem(ta, 'switched and changed').locator('.text').press('Enter');
    await settled(ta, ['switched away'], 'todo');
    await until(() => held.length === 2, 'the notifications of both changes held');
    const today = await td.evaluate(() => document.getElementById('day').value);
    await td.evaluate(() => { location.hash = '#2001-01-01'; });
    await td.waitForFunction(() => document.getElementById('day').value === '2001-01-01', null, { timeout });
    await td.evaluate((day) => { location.hash = `#${day}`; }, today);
    await until(() => holdKey === null, 'the list read again, and the held notifications sent after it');
    await td.locator(`#list li[data-key="${away}"]`).waitFor({ timeout });
    await td.clock.fastForward(11000); // the lost request times out, and the edit is sent again
    const awayItem = td.locator(`#list li[data-key="${away}"]`);
    await awayItem.locator('.conflict-note').waitFor({ timeout });
    assert.equal(await awayItem.locator('.conflict-note button').allTextContents().then((t) => t.join(',')), 'Keep mine,Use theirs',
      'changed and back while the page skipped the notifications: a conflict, not written over');

    // Values no page writes (any token may write anything under chat:
    // and todo:, as may an admin's livekv put of plain text) are left
    // out: the room and the day still load and render, live and after a
    // reload.
    const put = async (key, value) => {
      const r = await fetch(`${base}/kv/record`, { method: 'POST', headers: { 'x-api-key': 'browser-test', 'content-type': 'application/json' }, body: JSON.stringify({ key, value }) });
      assert.equal(r.status, 200, `${key}: ${await r.text()}`);
    };
    const ch = await open(one, '/chat/#odd');
    await say(ch, 'before the odd ones');
    await settled(ch, ['before the odd ones'], 'chat');
    const day = await ta.inputValue('#day');
    for (const [key, value] of [['chat:msg:odd:zz-1', 'plain text'], ['chat:msg:odd:zz-2', '{"ts":"soon","text":"no date"}'],
      ['chat:msg:odd:zz-3', '{"ts":1}'], [`todo:${day}:zz-1`, 'plain text'], [`todo:${day}:zz-2`, '{"priority":"high"}']]) {
      await put(key, value);
    }
    await say(ch, 'after the odd ones');
    await settled(ch, ['before the odd ones', 'after the odd ones'], 'chat');
    // A message that carries this browser's uid, written elsewhere, is
    // not this browser's: only the messages it sent say "(you)".
    const uid = await ch.evaluate(() => localStorage.getItem('livekv-chat-uid'));
    await put('chat:msg:odd:zz-4', JSON.stringify({ user: 'Mallory', uid, text: 'not you', ts: Date.now() }));
    await settled(ch, ['before the odd ones', 'after the odd ones', 'not you'], 'chat');
    const whose = () => ch.$$eval('#messages .msg', (els) => els.map((e) => `${e.querySelector('.who').textContent}|${e.classList.contains('own')}`));
    const wantWhose = (name) => [`${name} (you)|true`, `${name} (you)|true`, 'Mallory|false'];
    const name = await ch.inputValue('#name');
    assert.deepEqual((await whose()).sort(), wantWhose(name).sort(), 'a copied uid makes no message "(you)"');
    // Anyone with the chat page may write over any message: one this
    // browser sent, written over, no longer says "(you)", and says that
    // it changed.
    const overKey = await ch.$$eval('#messages .msg', (els) => els.find((e) => e.querySelector('.text').textContent === 'after the odd ones').dataset.key);
    await put(overKey, JSON.stringify({ user: name, uid, text: 'after the odd ones, forged', ts: Date.now() }));
    const chats = ['before the odd ones', 'after the odd ones, forged', 'not you'];
    await settled(ch, chats, 'chat');
    const forged = [`${name}|false`, `${name} (you)|true`, 'Mallory|false'].sort();
    assert.deepEqual((await whose()).sort(), forged, 'a message written over is not "(you)"');
    assert.equal(await ch.textContent(`#messages .msg[data-key="${overKey}"] .edited`), 'changed since you sent it');
    // An edit waiting in the outbox, of a todo someone then wrote over
    // with plain text: read again after its compare-and-swap fails, the
    // todo is gone to it, as to a load. It is shown as not saved, with
    // why, and the writes after it go on.
    const odd = `todo:${day}:zz-1`;
    await ta.evaluate((key) => {
      const e = { id: 'odd', seq: 1, state: 'pending', kind: 'edit', key, field: 'status', base: 'todo', value: 'done',
        obj: { text: 'edited, then written over', priority: 'low', status: 'todo', created: 0 }, rev: 1 };
      localStorage.setItem('livekv-outbox:todo:odd', JSON.stringify(e));
    }, odd);
    await ta.reload();
    await ta.waitForSelector('body[data-loaded=true]', { timeout });
    await addTodo(ta, 'after the odd ones');
    await ta.waitForFunction(() => {
      const li = document.querySelector('#list li[data-text="after the odd ones"]');
      return li && !li.classList.contains('pending');
    }, null, { timeout });
    const oddNote = `#list li[data-key="${odd}"] .failed-note`;
    assert.match(await ta.textContent(oddNote), /Change of status not saved: someone else replaced this todo with something that is not a todo/);
    await ta.click(`${oddNote} button:text("Discard")`);
    await settled(ta, ['after the odd ones'], 'todo');
    assert.equal(await ta.locator(`#list li[data-key="${odd}"]`).count(), 0, 'discarded, the todo is left out');
    for (const page of [ch, ta]) {
      await page.reload();
      await page.waitForSelector('body[data-loaded=true]', { timeout });
    }
    await settled(ch, chats, 'chat');
    await settled(ta, ['after the odd ones'], 'todo');
    assert.equal(await ch.locator('#messages .msg').count(), 3, 'the odd values left out');
    assert.deepEqual((await whose()).sort(), forged, 'after a reload too');
    assert.equal(await ta.textContent('#notice'), '', 'the day loaded');

    // A phone: a long todo is shown whole, wrapped, and grows while edited.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const tp = await open(phone, '/todo/');
    const long = 'Call the landlord about the leaking kitchen tap, and ask whether the plumber can come on Thursday morning before nine';
    await addTodo(tp, long, 'high');
    await settled(tp, [long], 'todo');
    const fits = () => tp.evaluate((text) => {
      const el = document.querySelector(`#list li[data-text="${text}"] .text`);
      const line = parseFloat(getComputedStyle(el).lineHeight);
      return { lines: Math.round((el.clientHeight - parseFloat(getComputedStyle(el).paddingTop) * 2) / line),
        hidden: el.scrollHeight - el.clientHeight, wide: el.scrollWidth - el.clientWidth, page: document.documentElement.scrollWidth };
    }, text);
    let text = long;
    let m = await fits();
    assert.ok(m.lines >= 3, `the long todo wraps (${m.lines} lines)`);
    assert.ok(m.hidden <= 1 && m.wide <= 1, `none of it is cut off (${m.hidden} px below, ${m.wide} px aside)`);
    assert.ok(m.page <= 390, `no horizontal scroll (${m.page} px wide)`);
    await todoItem(tp, long).locator('.text').click();
    await tp.keyboard.press('Control+End');
    await tp.keyboard.type(', or on Friday afternoon after three if that suits him better');
    const grown = await tp.evaluate((text) => {
      const el = document.querySelector(`#list li[data-text="${text}"] .text`);
      return { value: el.value, hidden: el.scrollHeight - el.clientHeight, height: el.clientHeight };
    }, long);
    assert.ok(grown.value.endsWith('suits him better'));
    assert.ok(grown.hidden <= 1, `the text being typed is shown whole (${grown.hidden} px below)`);
    await shot(tp, 'todo-phone-long-editing');
    await tp.keyboard.press('Enter');
    text = grown.value;
    await settled(tp, [text], 'todo');
    m = await fits();
    assert.ok(m.lines > 3 && m.hidden <= 1 && m.page <= 390, `after the edit: ${JSON.stringify(m)}`);
    await shot(tp, 'todo-phone-long');
  } else {
    assert.fail(`unknown phase ${phase}`);
  }
  assert.deepEqual(problems, []);
  console.log('ok');
} finally {
  await browser.close();
  lines.return?.();
  process.stdin.destroy();
}
