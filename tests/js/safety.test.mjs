import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { safetyNumber, normalise, fingerprintOfDer } from '../../client_web/safety.js';

const vectors = JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url))).safety_numbers;

test('docs/vectors.json safety numbers, either way round', () => {
  assert.ok(vectors.length >= 3);
  for (const v of vectors) {
    assert.equal(safetyNumber(v.local, v.remote), v.safety_number);
    assert.equal(safetyNumber(v.remote, v.local), v.safety_number);
  }
});

test('normalisation upper-cases the hex and keeps the algorithm lower-case', () => {
  assert.equal(normalise('SHA-256 ab:cd'), 'sha-256 AB:CD');
});

test('a different certificate gives a different number', () => {
  const [v] = vectors;
  const other = v.remote.replace(/14$/, '15');
  assert.notEqual(safetyNumber(v.local, other), v.safety_number);
});

test('fingerprint of a DER is SHA-256 in colon hex', () => {
  const der = randomBytes(500);
  const want = createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g).join(':');
  assert.equal(fingerprintOfDer(der.buffer.slice(der.byteOffset, der.byteOffset + der.length)), 'sha-256 ' + want);
});

test('format: six groups of five digits', () => {
  assert.match(safetyNumber('sha-256 00', 'sha-256 01'), /^\d{5}( \d{5}){5}$/);
});
