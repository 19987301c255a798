// docs/vectors.json "client_rules": what the browser and the terminal peer must do alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { backoff, BACKOFF_BASE_MS, BACKOFF_FACTOR, BACKOFF_MAX_MS, JITTER, SIGNALING_QUEUE_MAX } from '../../client_web/constants.js';
import { safeName, MAX_NAME_BYTES } from '../../client_web/chat.js';
import { STATES } from '../../client_web/files.js';

const rules = JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url))).client_rules;
const filesSource = readFileSync(new URL('../../client_web/files.js', import.meta.url), 'utf8');

test('reconnect backoff: the documented constants and formula, jitter at both ends', () => {
  const doc = rules.reconnect_backoff;
  assert.deepEqual([BACKOFF_BASE_MS, BACKOFF_FACTOR, BACKOFF_MAX_MS, JITTER], [doc.base_ms, doc.factor, doc.max_ms, doc.jitter]);
  for (let n = 0; n < 12; n++) {
    const plain = Math.min(doc.max_ms, doc.base_ms * doc.factor ** n);
    assert.equal(backoff(n, () => 0), plain * doc.jitter[0], `attempt ${n}, lowest`);
    assert.equal(backoff(n, () => 1), plain * doc.jitter[1], `attempt ${n}, highest`);
  }
  assert.equal(backoff(1000, () => 0.5), doc.max_ms, 'no overflow after many attempts');
});

test('the signaling queue bound', () => assert.equal(SIGNALING_QUEUE_MAX, rules.signaling_queue_max));

test('file names are cleaned as every documented case says', () => {
  assert.equal(MAX_NAME_BYTES, rules.file_name.max_utf8_bytes);
  assert.ok(rules.file_name.cases.length >= 10);
  for (const { in: raw, out } of rules.file_name.cases) assert.equal(safeName(raw), out, JSON.stringify(raw));
});

test('every removed code point range of the rule is removed', () => {
  for (const range of rules.file_name.removed) {
    const [low, high = low] = range.split('-').map((u) => parseInt(u.slice(2), 16));
    for (const cp of [low, high]) assert.equal(safeName(`a${String.fromCodePoint(cp)}b`), 'ab', range);
  }
});

test('a cut never splits a code point and stays within the bytes', () => {
  for (const unit of ['a', 'é', '漢', '😀']) {
    for (let n = 1; n < 260; n += 7) {
      const out = safeName(unit.repeat(n));
      assert.ok(new TextEncoder().encode(out).length <= MAX_NAME_BYTES);
      assert.equal(out, unit.repeat([...out].length), 'whole code points only');
    }
  }
});

test('transfer state names are the documented ones, and files.js uses no other', () => {
  assert.deepEqual([...STATES].sort(), Object.keys(rules.transfer_states).sort());
  const used = new Set([...filesSource.matchAll(/state(?: ===|: | = |, )'([a-z]+)'/g)].map((m) => m[1]));
  for (const m of filesSource.matchAll(/finish\([^,]+, '([a-z]+)'\)|\? '([a-z]+)' : '([a-z]+)'/g)) for (const s of m.slice(1)) if (s) used.add(s);
  assert.ok(used.size >= 8, [...used].join());
  for (const state of used) assert.ok(STATES.includes(state), state);
});
