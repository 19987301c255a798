import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Sha256, sha256, hex } from '../../client_web/sha256.js';

test('FIPS 180-4 examples', () => {
  assert.equal(hex(sha256('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(hex(sha256('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('every length around the block and padding edges equals node:crypto', () => {
  const data = randomBytes(300);
  for (let n = 0; n <= 300; n++) {
    const want = createHash('sha256').update(data.subarray(0, n)).digest('hex');
    assert.equal(hex(sha256(new Uint8Array(data.subarray(0, n)))), want, `length ${n}`);
  }
});

test('incremental updates of any split equal one update', () => {
  const data = new Uint8Array(randomBytes(100_000));
  const want = createHash('sha256').update(data).digest('hex');
  for (const step of [1, 7, 63, 64, 65, 16384]) {
    const h = new Sha256();
    for (let i = 0; i < data.length; i += step) h.update(data.subarray(i, i + step));
    assert.equal(hex(h.digest()), want, `step ${step}`);
  }
});
