// Drives the official HPKV client, unmodified, against a livekv adapter.
// Usage: node client.mjs BASE_URL API_KEY   (BASE_URL like http://127.0.0.1:8080/kv)
// Prints "ok" and exits 0 when every check passes.
import assert from 'node:assert/strict';
import { HPKVClientFactory, WebsocketTokenManager } from '@hpkv/websocket-client';

const [base, apiKey] = process.argv.slice(2);
const config = { maxReconnectAttempts: 0, connectionTimeout: 5000 };

async function rejects(promise, code, what) {
  try {
    await promise;
  } catch (err) {
    if (code !== undefined) assert.equal(err.code, code, `${what}: ${err.message}`);
    return err;
  }
  assert.fail(`${what}: expected a rejection`);
}

async function until(cond, what) {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const api = HPKVClientFactory.createApiClient(apiKey, base, config);
await api.connect();

// set, get
await api.set('user:1', { name: 'Ada' });
assert.equal((await api.get('user:1')).value, '{"name":"Ada"}');

// both kinds of patch: a JSON merge and a string append
await api.set('user:1', { city: 'London' }, true);
assert.deepEqual(JSON.parse((await api.get('user:1')).value), { name: 'Ada', city: 'London' });
await api.set('greeting', 'hello');
await api.set('greeting', ', world', true);
assert.equal((await api.get('greeting')).value, 'hello, world');

// range, with and without a limit; endKey is included
for (let i = 1; i <= 5; i++) await api.set(`r:${i}`, `v${i}`);
let range = await api.range('r:1', 'r:3');
assert.deepEqual(range.records.map((r) => r.key), ['r:1', 'r:2', 'r:3']);
assert.equal(range.count, 3);
assert.equal(range.truncated, false);
range = await api.range('r:', 'r:~', { limit: 2 });
assert.equal(range.count, 2);
assert.equal(range.truncated, true);

// atomic increment
assert.equal((await api.atomicIncrement('visits', 5)).newValue, 5);
assert.equal((await api.atomicIncrement('visits', -2)).newValue, 3);

// delete, then 404; 400 on an empty key
await api.delete('greeting');
await rejects(api.get('greeting'), 404, 'get after delete');
await rejects(api.set('', 'x'), 400, 'empty key');

// a token with patterns and an access pattern
const tokens = new WebsocketTokenManager(apiKey, base);
const token = await tokens.generateToken({ subscribePatterns: ['user:*'], accessPattern: '^user:' });
const sub = HPKVClientFactory.createSubscriptionClient(token, base, config);
await sub.connect();
const notes = [];
sub.subscribe((n) => notes.push(n));
assert.equal((await sub.get('user:1')).key, 'user:1');
await rejects(sub.get('order:1'), 403, 'key outside the access pattern');

// notifications, a delete as null
await api.set('user:2', 'x');
await api.set('order:2', 'not subscribed');
await api.delete('user:2');
await until(() => notes.length >= 2, 'two notifications');
assert.equal(notes[0].key, 'user:2');
assert.equal(notes[0].value, 'x');
assert.equal(notes[1].key, 'user:2');
assert.equal(notes[1].value, null);
assert.equal(notes.length, 2);

// a bad token and a bad API key are refused
await rejects(HPKVClientFactory.createSubscriptionClient('bad.token', base, config).connect(), undefined, 'bad token');
await rejects(HPKVClientFactory.createApiClient('wrong-key', base, config).connect(), undefined, 'bad API key');
await rejects(new WebsocketTokenManager('wrong-key', base).generateToken({}), undefined, 'token with a bad API key');

await sub.disconnect();
await api.disconnect();
console.log('ok');
process.exit(0);
