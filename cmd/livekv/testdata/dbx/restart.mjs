// A DBX subscription across a restart of livekv serve: the DBXWebSocket
// class of DBX's documentation (adapter/testdata/dbx/dbx-websocket.mjs)
// subscribes, the server stops and starts again on the same folder and
// port with a record written meanwhile, the class reconnects by itself,
// and the subscription resumes from the last revision it saw: every
// change arrives once, in order, none missing.
// Usage: node --experimental-websocket restart.mjs BASE_URL API_KEY
// (BASE_URL like http://127.0.0.1:8080/kv). It prints "stop-server" when
// the server may stop, reads "go" on stdin once it is back, writes r:3,
// and prints "ok" and exits 0 when every check passes. The test writes
// r:2 into the folder while the server is down.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { DBXWebSocket } from '../../../../adapter/testdata/dbx/dbx-websocket.mjs';
import { until } from '../../../../adapter/testdata/dbx/until.mjs';

const [base, apiKey] = process.argv.slice(2);
const url = base.replace(/^http/, 'ws') + '/dbx/ws';
const options = { apiKey, heartbeatInterval: 100, reconnectDelay: 100, maxReconnectAttempts: 10, quiet: true };
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const dbx = new DBXWebSocket(url, { ...options, clientId: 'restart-reader' });
await dbx.connect();
// Checked at the end: the class catches what its handlers throw.
const notes = [];
let lastRevision = 0;
dbx.on('message', (m) => {
  if (m.type !== 'notification') return;
  notes.push([m.key, m.value ?? null, m.revision]);
  lastRevision = Math.max(lastRevision, m.revision);
});
let drops = 0;
dbx.on('disconnect', () => drops++);
let resumed;
dbx.on('connect', () => {
  resumed = dbx.sendRequest('subscribe', { patterns: ['r:*'], fromRevision: lastRevision });
});
assert.ok((await dbx.sendRequest('subscribe', { patterns: ['r:*'] })).subscriptionId > 0);

let writer = new DBXWebSocket(url, { ...options, clientId: 'restart-writer' });
await writer.connect();
await writer.sendRequest('string.set', { key: 'r:1', value: 'before' });
await until(() => notes.length === 1, 'the notification of r:1');
writer.disconnect();

console.log('stop-server');
assert.deepEqual(await stdin.next(), { value: 'go', done: false });
await until(() => resumed !== undefined, 'the reconnect after the restart', 10000);
const sub = await resumed;
assert.ok(sub.subscriptionId > 0);
assert.equal(drops, 1, 'one disconnect, at the restart');
writer = new DBXWebSocket(url, { ...options, clientId: 'restart-writer' });
await writer.connect();
await writer.sendRequest('string.set', { key: 'r:3', value: 'after' });
await until(() => notes.length >= 3, 'the notifications of r:2 and r:3');
await new Promise((r) => setTimeout(r, 300)); // time for a duplicate to show
assert.deepEqual(notes.map(([k, v]) => [k, v]), [['r:1', 'before'], ['r:2', 'while away'], ['r:3', 'after']]);
for (let i = 1; i < notes.length; i++) {
  assert.ok(notes[i][2] > notes[i - 1][2], `revision ${notes[i][2]} after ${notes[i - 1][2]}`);
}
assert.equal(dbx.getState(), 'connected');
dbx.disconnect();
writer.disconnect();
console.log('ok');
process.exit(0); // stdin stays open
