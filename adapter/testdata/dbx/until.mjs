// until waits for cond() to hold, checking every 10 ms, and fails the
// script after ms milliseconds. The DBX client scripts share it.
import assert from 'node:assert/strict';

export async function until(cond, what, ms = 5000) {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}
