// client_web/sw.js's notification click (issue 12 item 3): it focuses the room's window.
// Headless Chromium cannot click a system notification, so the handler runs here in a
// service-worker-shaped scope: its own listeners, the window clients it is given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const source = readFileSync(new URL('../../client_web/sw.js', import.meta.url), 'utf8');

/** Runs sw.js with `windows` open; returns what a notification click for `room` did. */
async function click(room, windows) {
  const listeners = {};
  const done = [];
  const self = {
    addEventListener: (type, listener) => { listeners[type] = listener; },
    clients: {
      matchAll: async () => windows,
      openWindow: async (url) => { done.push(['open', url]); },
    },
  };
  vm.runInNewContext(source, { self, VERSION: 'test', SHELL: [], caches: {}, URL, Request: class {}, Response: class {}, fetch: () => {} });
  let closed = false;
  let waited;
  listeners.notificationclick({
    notification: { data: { room }, close: () => { closed = true; } },
    waitUntil: (promise) => { waited = promise; },
  });
  await waited;
  assert.ok(closed, 'the notification is closed');
  for (const w of windows) if (w.focused) done.push(['focus', w.url]);
  return done;
}

const win = (url) => ({ url, focused: false, focus() { this.focused = true; return this; } });

test("a click focuses the window of the notification's room", async () => {
  const windows = [win('http://h/?room=other'), win('http://h/?room=design%2Dreview')];
  assert.deepEqual(await click('design-review', windows), [['focus', 'http://h/?room=design%2Dreview']]);
});

test('with no window of that room, another window of Confide is focused', async () => {
  assert.deepEqual(await click('r1', [win('http://h/?room=r2')]), [['focus', 'http://h/?room=r2']]);
});

test('with no window at all, the room opens in a new one', async () => {
  assert.deepEqual(await click('a b', []), [['open', '/?room=a%20b']]);
});
