// Opens livekv serve's chat and todo pages in headless Chromium on values
// a visitor may write with the pages' own token but no page writes:
// markup in messages, names, room names and todos, which must show as
// text and run nothing; and fields that are objects JavaScript cannot
// turn into text, which must be left out rather than stop the page from
// rendering, for everyone who opens the room or the day. Both when the
// page loads and when they arrive live. A message over the server's size
// limit is refused, not sent for ever. The pages run under their
// Content-Security-Policy without a violation, and it stops markup that
// would reach a page as markup from running.
// Usage: node hostile.mjs BASE_URL (serve's API key "browser-test")
// Prints "ok" and exits 0 when every check passes.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const [base] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const timeout = 10000;
const problems = [];

const put = async (key, value) => {
  const r = await fetch(`${base}/kv/record`, { method: 'POST', headers: { 'x-api-key': 'browser-test', 'content-type': 'application/json' },
    body: JSON.stringify({ key, value }) });
  assert.equal(r.status, 200, `${key}: ${await r.text()}`);
};

async function open(context, url) {
  const page = await context.newPage();
  await page.addInitScript(() => document.addEventListener('securitypolicyviolation',
    (e) => (window.violations ||= []).push(`${e.violatedDirective} ${e.blockedURI}`)));
  page.on('pageerror', (err) => problems.push(`script error on ${page.url()}: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
  page.on('dialog', (d) => {
    problems.push(`dialog on ${page.url()}: ${d.message()}`);
    d.dismiss();
  });
  await page.goto(base + url);
  try {
    await page.waitForSelector('body[data-loaded=true]', { timeout });
    await page.waitForSelector('#status[data-state=online]', { timeout });
  } catch (err) {
    throw new Error(`${url} did not load: ${problems.join('; ')}`, { cause: err });
  }
  return page;
}

const chatTexts = (page) => page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
const todoTexts = (page) => page.$$eval('#list li textarea.text', (els) => els.map((e) => e.value));
const ran = (page) => page.evaluate(() => window.pwned ?? null);

async function shows(page, list, texts) {
  const read = list === 'chat' ? chatTexts : todoTexts;
  try {
    await page.waitForFunction(([list, texts]) => {
      const shown = list === 'chat'
        ? [...document.querySelectorAll('#messages .msg:not(.pending) .text')].map((e) => e.textContent)
        : [...document.querySelectorAll('#list li:not(.pending) textarea.text')].map((e) => e.value);
      return JSON.stringify([...shown].sort()) === JSON.stringify([...texts].sort());
    }, [list, texts], { timeout });
  } catch (err) {
    throw new Error(`${page.url()} shows ${JSON.stringify(await read(page))}, not ${JSON.stringify(texts)}; ${problems.join('; ')}`, { cause: err });
  }
}

const img = (n) => `<img src=x onerror="window.pwned=${n}">`;
const day = '2031-02-03';
const ts = Date.now() - 60_000;
const msgKey = (id, t = ts) => `chat:msg:odd:${String(1e13 - t).padStart(13, '0')}-${id}`;

try {
  // Before the pages open: they read these with a range.
  await put('chat:room:odd', '{"created":0}');
  await put(`chat:room:${img(1)}`, '{"created":0}');
  await put(msgKey('markup'), JSON.stringify({ user: img(2), text: img(3), ts }));
  await put(msgKey('objtext'), JSON.stringify({ user: 'eve', text: { toString: 1 }, ts }));
  await put(msgKey('objuser'), JSON.stringify({ user: { toString: 1 }, text: 'an object for a name', ts }));
  await put(`todo:${day}:markup`, JSON.stringify({ text: img(4), priority: `"><img src=x onerror="window.pwned=5">`, status: 'todo' }));
  await put(`todo:${day}:objprio`, JSON.stringify({ text: 'an object for a priority', priority: { toString: 1 }, status: 'todo' }));
  await put(`todo:${day}:objstatus`, JSON.stringify({ text: 'an object for a status', priority: 'low', status: { valueOf: 1 } }));
  await put(`todo:${day}:classes`, JSON.stringify({ text: 'a priority of classes', priority: 'high pending failed', status: 'todo' }));

  const ctx = await browser.newContext();
  const chat = await open(ctx, '/chat/#odd');
  await shows(chat, 'chat', [img(3)]);
  assert.equal(await chat.textContent('#messages .msg .who'), img(2), 'a name shows as text');
  assert.ok(await chat.$$eval('#rooms button', (els, name) => els.some((e) => e.textContent === `#${name}`), img(1)), 'a room name shows as text');
  const todo = await open(ctx, `/todo/#${day}`);
  await shows(todo, 'todo', ['a priority of classes', img(4)]);
  // A priority no page writes names no class: it cannot dress the todo
  // up as pending or failed.
  const classes = await todo.$eval(`li.todo[data-text="a priority of classes"]`, (li) => li.className);
  assert.equal(classes, 'todo', 'a priority of classes');

  // Live: the same, as notifications.
  const t2 = Date.now();
  await put(msgKey('liveobj', t2), JSON.stringify({ user: 'eve', text: { toString: 1 }, ts: t2 }));
  await put(msgKey('livemarkup', t2 + 1), JSON.stringify({ user: img(6), text: img(7), ts: t2 + 1 }));
  await put(`todo:${day}:liveobj`, JSON.stringify({ text: 'live object for a priority', priority: { toString: 1 } }));
  await put(`todo:${day}:livemarkup`, JSON.stringify({ text: img(8), priority: 'high', status: 'done' }));
  await shows(chat, 'chat', [img(3), img(7)]);
  await shows(todo, 'todo', ['a priority of classes', img(4), img(8)]);
  // And the pages still work: what a user writes shows, and is stored.
  await chat.fill('#text', 'still talking');
  await chat.press('#text', 'Enter');
  await shows(chat, 'chat', [img(3), img(7), 'still talking']);
  await todo.fill('#text', 'still planning');
  await todo.press('#text', 'Enter');
  await shows(todo, 'todo', ['a priority of classes', img(4), img(8), 'still planning']);
  // A message over the server's message size limit (2 MiB), which closes
  // the connection rather than answer it, is refused with its reason, not
  // sent again for ever; the next goes on.
  await chat.evaluate(() => {
    document.getElementById('text').value = 'x'.repeat(2200000);
    document.getElementById('send').requestSubmit();
  });
  await chat.fill('#text', 'after the big one');
  await chat.press('#text', 'Enter');
  await chat.locator('#messages .msg.failed .failed-note').waitFor({ timeout });
  assert.match(await chat.textContent('#messages .msg.failed .failed-note'), /Not sent: too large for the server/);
  await chat.click('#messages .msg.failed button:text("Discard")');
  await shows(chat, 'chat', [img(3), img(7), 'still talking', 'after the big one']);
  // A reload reads them all again.
  for (const page of [chat, todo]) {
    await page.reload();
    await page.waitForSelector('body[data-loaded=true]', { timeout });
  }
  await shows(chat, 'chat', [img(3), img(7), 'still talking', 'after the big one']);
  await shows(todo, 'todo', ['a priority of classes', img(4), img(8), 'still planning']);
  for (const page of [chat, todo]) {
    assert.equal(await ran(page), null, `no markup ran on ${page.url()}`);
    assert.equal(await page.evaluate(() => window.violations ?? null), null, `${page.url()} works under its policy`);
  }
  assert.equal(await chat.$$eval('img', (els) => els.length), 0, 'no image element made from a message');
  assert.equal(await todo.$$eval('img', (els) => els.length), 0, 'no image element made from a todo');
  // Markup that did reach a page as markup: the policy keeps its inline
  // handler from running.
  await chat.evaluate(() => document.body.insertAdjacentHTML('beforeend', '<img src="data:," onerror="window.pwned=9">'));
  await chat.waitForFunction(() => window.violations?.length > 0, null, { timeout });
  assert.equal(await ran(chat), null, 'an inline handler does not run');
  assert.match((await chat.evaluate(() => window.violations)).join(), /script-src/);
  problems.splice(0, problems.length, ...problems.filter((p) => !/Content Security Policy/.test(p)));
  assert.deepEqual(problems, []);
  console.log('ok');
} finally {
  await browser.close();
}
