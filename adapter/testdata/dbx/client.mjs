// Drives DBX's documented DBXWebSocket class (dbx-websocket.mjs) against a
// livekv adapter's DBX dialect. The server must send heartbeats every
// 200 ms and close a client silent for 500 ms (see dbx_client_test.go).
// Usage: node --experimental-websocket client.mjs BASE_URL API_KEY
// (BASE_URL like http://127.0.0.1:8080/kv). Prints "ok" and exits 0 when
// every check passes.
import assert from 'node:assert/strict';
import { DBXWebSocket } from './dbx-websocket.mjs';
import { until } from './until.mjs';

const [base, apiKey] = process.argv.slice(2);
const url = base.replace(/^http/, 'ws') + '/dbx/ws';
const options = { apiKey, heartbeatInterval: 100, reconnectDelay: 50, quiet: true };

async function rejects(promise, code, what) {
  try {
    await promise;
  } catch (err) {
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return err;
  }
  assert.fail(`${what}: expected an error ${code}`);
}

const dbx = new DBXWebSocket(url, { ...options, clientId: 'dbx-client-test' });
await dbx.connect();
assert.equal(dbx.getState(), 'connected');
const call = (method, params) => dbx.sendRequest(method, params);

// every method
assert.deepEqual(await call('ping'), { pong: true });
assert.deepEqual(await call('ping', { message: 'hello' }), { pong: 'hello' });
let res = await call('string.set', { key: 'user:1', value: 'Ada', ttl: 3600 });
assert.equal(res.success, true);
assert.equal(res.key, 'user:1');
assert.ok(res.revision > 0);
res = await call('string.get', { key: 'user:1' });
assert.equal(res.value, 'Ada');
assert.ok(res.ttl > 3590 && res.ttl <= 3600, `ttl ${res.ttl}`);
assert.deepEqual(await call('string.setnx', { key: 'user:1', value: 'Bob' }), { success: true, created: false });
assert.equal((await call('string.setnx', { key: 'user:2', value: 'Bob' })).created, true);
assert.deepEqual(await call('string.exists', { key: 'user:2' }), { exists: true });
assert.deepEqual(await call('string.exists', { key: 'user:3' }), { exists: false });
assert.deepEqual(await call('string.strlen', { key: 'user:2' }), { length: 3 });
assert.equal((await call('string.append', { key: 'user:2', value: ' Smith' })).length, 9);
assert.equal((await call('string.get', { key: 'user:2' })).value, 'Bob Smith');
assert.equal((await call('string.incr', { key: 'visits' })).value, 1);
assert.equal((await call('string.incrby', { key: 'visits', amount: 10 })).value, 11);
assert.equal((await call('string.decr', { key: 'visits' })).value, 10);
assert.equal((await call('string.decrby', { key: 'visits', amount: 4 })).value, 6);
assert.equal((await call('string.mset', { pairs: { 'm:a': '1', 'm:b': '2' } })).success, true);
assert.deepEqual((await call('string.mget', { keys: ['m:a', 'm:none', 'm:b'] })).values, ['1', null, '2']);
assert.deepEqual(await call('string.ttl', { key: 'm:a' }), { ttl: -1 });
assert.deepEqual(await call('string.ttl', { key: 'm:none' }), { ttl: -2 });
assert.equal((await call('string.expire', { key: 'm:a', ttl: 60 })).success, true);
assert.ok((await call('string.ttl', { key: 'm:a' })).ttl > 58);
assert.equal((await call('string.persist', { key: 'm:a' })).success, true);
assert.deepEqual(await call('string.ttl', { key: 'm:a' }), { ttl: -1 });
assert.equal((await call('string.delete', { key: 'm:b' })).deleted, true);
assert.equal((await call('string.delete', { key: 'm:b' })).deleted, false);
// keys.scan pages in key order; the cursor is the last key
for (let i = 0; i < 7; i++) await call('string.set', { key: `scan:${i}`, value: 'x' });
let keys = [];
let cursor = '';
for (;;) {
  res = await call('keys.scan', { pattern: 'scan:*', cursor, count: 3 });
  keys = keys.concat(res.keys);
  if (res.done) break;
  assert.equal(res.cursor, keys[keys.length - 1]);
  cursor = res.cursor;
}
assert.deepEqual(keys, ['scan:0', 'scan:1', 'scan:2', 'scan:3', 'scan:4', 'scan:5', 'scan:6']);
assert.deepEqual(await call('keys.count', { pattern: 'user:*' }), { count: 2 });
// the upper-case spellings of DBX's per-type pages
await call('SET', { key: 'up', value: '5', expire: 100 });
assert.equal((await call('INCRBY', { key: 'up', amount: 5 })).value, 10);
assert.equal((await call('GET', { key: 'up' })).value, '10');
assert.deepEqual((await call('MGET', { keys: ['up'] })).values, ['10']);

// requests sent without waiting take effect in the order sent
const pipelined = await Promise.all([
  call('SET', { key: 'order:z', value: 'a' }),
  call('DEL', { key: 'order:z' }),
  call('INCR', { key: 'order:n' }),
  call('SET', { key: 'order:z', value: 'b' }),
  call('INCR', { key: 'order:n' }),
  call('DEL', { key: 'order:z' }),
  call('SET', { key: 'order:z', value: 'c' }),
]);
assert.deepEqual(pipelined.map((r) => r.deleted ?? r.value ?? r.key), ['order:z', true, 1, 'order:z', 2, true, 'order:z']);
const pipelinedRevs = pipelined.map((r) => r.revision);
assert.deepEqual(pipelinedRevs, [...pipelinedRevs].sort((a, b) => a - b), `revisions ${pipelinedRevs}`);
assert.equal(new Set(pipelinedRevs).size, pipelinedRevs.length);
assert.equal((await call('GET', { key: 'order:z' })).value, 'c');

// a batch commits as one transaction: one revision for all its writes
res = await dbx.batchOperations([
  { method: 'string.set', params: { key: 'acct:a', value: '100' } },
  { method: 'string.set', params: { key: 'acct:b', value: '0' } },
  { method: 'string.decrby', params: { key: 'acct:a', amount: 30 } },
  { method: 'string.incrby', params: { key: 'acct:b', amount: 30 } },
  { method: 'string.get', params: { key: 'acct:a' } },
]);
assert.equal(res.results.length, 5);
assert.equal(res.results[4].value, '70');
const revs = new Set(res.results.slice(0, 4).map((r) => r.revision));
assert.equal(revs.size, 1, `one revision, got ${[...revs]}`);

// a batch that fails changes nothing, and says which operation failed
await call('string.set', { key: 'word', value: 'not a number' });
const err = await rejects(dbx.batchOperations([
  { method: 'string.set', params: { key: 'acct:a', value: '0' } },
  { method: 'string.incr', params: { key: 'word' } },
  { method: 'string.set', params: { key: 'acct:c', value: 'new' } },
]), 'type_mismatch', 'failing batch');
assert.equal(err.details.operation, 1);
assert.equal((await call('string.get', { key: 'acct:a' })).value, '70');
assert.deepEqual(await call('string.exists', { key: 'acct:c' }), { exists: false });

// errors and their codes
const e = await rejects(call('string.get', { key: 'nope' }), 'not_found', 'missing key');
assert.equal(e.message, "Key 'nope' not found");
await rejects(call('string.get', { key: '' }), 'invalid_key', 'empty key');
await rejects(call('string.set', { key: 'k' }), 'invalid_value', 'no value');
await rejects(call('string.set', { key: 'k', value: 'v', ttl: -5 }), 'invalid_ttl', 'negative ttl');
await rejects(call('string.incr', { key: 'word' }), 'type_mismatch', 'incr of text');
await rejects(call('hash.get', { key: 'k' }), 'invalid_request', 'unknown method');
// a token in place of the API key: its access pattern applies
const tokenResp = await fetch(`${base}/token/websocket`, {
  method: 'POST',
  headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
  body: JSON.stringify({ accessPattern: '^user:' }),
});
const { token } = await tokenResp.json();
const scoped = new DBXWebSocket(url, { ...options, apiKey: token });
await scoped.connect();
assert.equal((await scoped.sendRequest('string.get', { key: 'user:1' })).value, 'Ada');
await rejects(scoped.sendRequest('string.get', { key: 'visits' }), 'forbidden', 'key outside the token');
scoped.disconnect();
// a wrong key is refused at the handshake
const wrong = new DBXWebSocket(url, { ...options, apiKey: 'wrong' });
await assert.rejects(wrong.connect());
assert.equal(wrong.getState(), 'disconnected');
// and so is no key at all; a WebSocket only sees the connection fail, so
// the refusal's code is read over plain HTTP: unauthorized, 401
const anonymous = new DBXWebSocket(url, { ...options, apiKey: undefined, clientId: 'anonymous' });
await assert.rejects(anonymous.connect());
assert.equal(anonymous.getState(), 'disconnected');
for (const [query, code, status] of [['client_id=anonymous', 'unauthorized', 401], ['api_key=wrong', 'forbidden', 403]]) {
  const refused = await fetch(`${base}/dbx/ws?${query}`);
  assert.equal(refused.status, status, query);
  const body = await refused.json();
  assert.equal(body.error, code, `${query}: ${JSON.stringify(body)}`);
  assert.equal(body.status, status);
  assert.ok(body.message);
}

// heartbeats both ways: the server's arrive; ours keep the connection
// open well past the server's timeout
let beats = 0;
let drops = 0;
dbx.on('heartbeat', (h) => {
  assert.ok(!Number.isNaN(Date.parse(h.timestamp)));
  beats++;
});
dbx.on('disconnect', () => drops++);
await new Promise((r) => setTimeout(r, 1200));
assert.ok(beats >= 3, `${beats} heartbeats`);
assert.equal(drops, 0, 'a client sending heartbeats is not dropped');

// a subscription receives notifications in order...
const notes = [];
let lastRevision = 0;
dbx.on('message', (m) => {
  if (m.type !== 'notification') return;
  assert.ok(m.revision > lastRevision, `revision ${m.revision} after ${lastRevision}`);
  lastRevision = m.revision;
  notes.push(m);
});
const sub = await call('subscribe', { patterns: ['doc:*'] });
assert.ok(sub.subscriptionId > 0);
const writer = new DBXWebSocket(url, { ...options, clientId: 'writer' });
await writer.connect();
await writer.sendRequest('string.set', { key: 'doc:1', value: 'one' });
await writer.sendRequest('string.set', { key: 'other', value: 'x' });
await writer.sendRequest('string.set', { key: 'doc:2', value: 'two' });
await until(() => notes.length === 2, 'two notifications');
assert.deepEqual(notes.map((n) => [n.key, n.value]), [['doc:1', 'one'], ['doc:2', 'two']]);

// ...and resumes after a reconnect: the client stops its heartbeats, the
// server closes it, the class reconnects, and the subscription resumes
// from the last revision seen, missing nothing written meanwhile
let resumed;
const startHeartbeat = dbx.startHeartbeat;
dbx.on('connect', () => {
  dbx.startHeartbeat = startHeartbeat;
  dbx.startHeartbeat();
  resumed = call('subscribe', { patterns: ['doc:*'], fromRevision: lastRevision });
});
const dropped = new Promise((r) => dbx.on('disconnect', r));
dbx.startHeartbeat = () => {}; // silent until reconnected: the server must close it
dbx.stopHeartbeat();
const close = await dropped;
assert.equal(close.code, 1008);
await writer.sendRequest('string.set', { key: 'doc:3', value: 'three' });
await writer.sendRequest('string.delete', { key: 'doc:1' });
await until(() => resumed !== undefined, 'the reconnect');
await resumed;
await until(() => notes.length === 4, 'the notifications written while away');
assert.deepEqual(notes.slice(2).map((n) => [n.key, n.value ?? null, n.deleted ?? false]),
  [['doc:3', 'three', false], ['doc:1', null, true]]);
assert.equal(dbx.getState(), 'connected');

dbx.disconnect();
writer.disconnect();
console.log('ok');
