import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ITERATIONS, deriveBytes, importKey, seal, open, isSealed } from '../../client_web/crypto.js';

const doc = JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url))).password_rooms;
const hex = (u8) => Buffer.from(u8).toString('hex');
const iv = (b64) => Uint8Array.from(Buffer.from(b64, 'base64'));

test('iterations match the document', () => assert.equal(ITERATIONS, doc.iterations));

for (const v of doc.vectors) {
  test(`vector ${v.type} in room ${v.room}: key, sealing and opening`, async () => {
    const raw = await deriveBytes(v.password, v.room);
    assert.equal(hex(raw), v.key_hex);
    const key = await importKey(raw);
    assert.equal(JSON.stringify(v.value), v.plaintext);
    const sealed = await seal(key, v.type, v.from, v.to, v.value, iv(v.sealed.iv));
    assert.deepEqual(sealed, v.sealed);
    assert.ok(isSealed(sealed));
    assert.deepEqual(await open(key, v.type, v.from, v.to, v.sealed), v.value);
    // Another type, another recipient or another password must not open it.
    await assert.rejects(open(key, v.type === 'offer' ? 'answer' : 'offer', v.from, v.to, v.sealed));
    await assert.rejects(open(key, v.type, v.from, 'ffffffffffffffff', v.sealed));
    const wrong = await importKey(await deriveBytes(v.password + '!', v.room));
    await assert.rejects(open(wrong, v.type, v.from, v.to, v.sealed));
  });
}

test('fresh IVs: the same payload seals differently', async () => {
  const key = await importKey(new Uint8Array(32));
  const a = await seal(key, 'candidate', 'a', 'b', null);
  const b = await seal(key, 'candidate', 'a', 'b', null);
  assert.notEqual(a.iv, b.iv);
  assert.equal(await open(key, 'candidate', 'a', 'b', a), null);
});

test('plain payloads are not sealed ones', () => {
  assert.equal(isSealed('v=0'), false);
  assert.equal(isSealed({ candidate: 'x', sdpMid: '0' }), false);
  assert.equal(isSealed(null), false);
});
