// Drives livekv serve's todo and chat pages in headless Chromium with two
// browser contexts (two users).
// Usage: node pages.mjs BASE_URL PHASE ARTIFACTS_DIR
//   PHASE "live":    changes in one window appear in the other; concurrent
//                    edits of one todo keep both; chat messages arrive.
//   PHASE "restart": after livekv serve restarted on the same folder, the
//                    data written in "live" is still there.
//   PHASE "reconnect": prints "stop-server" and waits for a line on stdin
//                    while the test restarts the server on the same address
//                    and writes a message: the open page shows it, resumed
//                    from its revision without reloading everything.
// Prints "ok" and exits 0 when every check passes.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';

const [base, phase, artifacts] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const timeout = 5000;

async function open(url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('page error:', err.message));
  await page.goto(base + url);
  await page.waitForSelector('body[data-loaded=true]', { timeout });
  await page.waitForSelector('#status[data-state=online]', { timeout });
  return page;
}

const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${phase}-${name}.png`), fullPage: true });

try {
  const a = await open('/todo/');
  const b = await open('/todo/');
  if (phase === 'live') {
    // An item added in one window appears in the other.
    await a.fill('#text', 'buy milk');
    await a.selectOption('#priority', 'low');
    await a.click('#add button');
    await b.waitForFunction(() => [...document.querySelectorAll('#list li textarea.text')].some((e) => e.value === 'buy milk'), null, { timeout });
    const itemB = b.locator('#list li').first();

    // Concurrent edits of the same todo, one field each: both survive.
    const itemA = a.locator('#list li').first();
    await Promise.all([
      itemA.locator('textarea.text').fill('buy oat milk').then(() => itemA.locator('textarea.text').press('Enter')),
      itemB.locator('select.priority').selectOption('high'),
    ]);
    for (const page of [a, b]) {
      await page.waitForFunction(() => {
        const li = document.querySelector('#list li');
        return li && li.querySelector('textarea.text').value === 'buy oat milk' && li.querySelector('select.priority').value === 'high';
      }, null, { timeout });
    }
    // Marking it done shows everywhere.
    await b.locator('#list li input.status').first().check();
    await a.waitForSelector('#list li.done', { timeout });
    await shot(a, 'todo');

    // Chat: a room created in one window, a message sent in it arrives in the other.
    const ca = await open('/chat/');
    const cb = await open('/chat/');
    await ca.fill('#name', 'ada');
    await ca.fill('#room', 'lobby');
    await ca.click('#newroom button');
    await cb.locator('#rooms button[data-room=lobby]').click({ timeout });
    await ca.fill('#text', 'hello from ada');
    await ca.click('#sendbtn');
    await cb.waitForFunction(() => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'hello from ada'), null, { timeout });
    await cb.fill('#text', 'hi ada');
    await cb.click('#sendbtn');
    await ca.waitForFunction(() => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'hi ada'), null, { timeout });
    await shot(cb, 'chat');
  } else if (phase === 'restart') {
    await a.waitForFunction(() => {
      const li = document.querySelector('#list li.done');
      return li && li.querySelector('textarea.text').value === 'buy oat milk' && li.querySelector('select.priority').value === 'high';
    }, null, { timeout });
    const c = await open('/chat/');
    await c.locator('#rooms button[data-room=lobby]').click({ timeout });
    await c.waitForFunction(() => {
      const texts = [...document.querySelectorAll('#messages .text')].map((e) => e.textContent);
      return texts.join('|') === 'hello from ada|hi ada';
    }, null, { timeout });
    await shot(a, 'todo');
    await shot(c, 'chat');
  } else if (phase === 'reconnect') {
    // The server stops while the page is open: the page says so, and once
    // the server is back it shows what was written meanwhile and goes on.
    const c = await open('/chat/');
    await c.locator('#rooms button[data-room=lobby]').click({ timeout });
    await c.waitForFunction(() => document.querySelectorAll('#messages .text').length === 2, null, { timeout });
    console.log('stop-server');
    await c.waitForSelector('#status[data-state=offline]', { timeout });
    await new Promise((resolve) => process.stdin.once('data', resolve)); // the server is back
    await c.waitForSelector('#status[data-state=online]', { timeout: 15000 });
    await c.waitForFunction(() => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'written while you were away'), null, { timeout });
    // The server's history outlived its restart: the page resumed from
    // the revision it had, and did not have to read everything again.
    assert.equal(await c.evaluate(() => document.body.dataset.reloads || '0'), '0', 'the page reloaded instead of resuming');
    const d = await open('/chat/');
    await d.locator('#rooms button[data-room=lobby]').click({ timeout });
    await d.fill('#text', 'after the restart');
    await d.click('#sendbtn');
    await c.waitForFunction(() => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'after the restart'), null, { timeout });
    await shot(c, 'chat');
    process.stdin.pause();
  } else {
    assert.fail(`unknown phase ${phase}`);
  }
  console.log('ok');
} finally {
  await browser.close();
}
