import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Incoming, CHUNK, MAX_CHUNK, HIGH, LOW, chunkFor, progressText, hashBlob, NATIVE_HASH_MAX } from '../../client_web/files.js';

const data = randomBytes(5 * CHUNK + 123);
const sha = createHash('sha256').update(data).digest('hex');
const chunks = (from) => {
  const out = [];
  for (let i = from; i < data.length; i += CHUNK) out.push(data.buffer.slice(data.byteOffset + i, data.byteOffset + Math.min(i + CHUNK, data.length)));
  return out;
};

test('protocol constants', () => {
  assert.equal(CHUNK, 16384);
  assert.equal(MAX_CHUNK, 256 * 1024);
  assert.equal(HIGH, 4 << 20);
  assert.equal(LOW, 1 << 20);
});

test('messages as large as the peer takes, capped, 16 KiB when unknown', () => {
  assert.equal(chunkFor({ sctp: { maxMessageSize: 262144 } }), MAX_CHUNK); // Chromium
  assert.equal(chunkFor({ sctp: { maxMessageSize: 65536 } }), 65536); // aiortc
  assert.equal(chunkFor({ sctp: { maxMessageSize: Infinity } }), MAX_CHUNK); // "no limit" (0 in SDP)
  assert.equal(chunkFor({ sctp: null }), CHUNK);
  assert.equal(chunkFor(undefined), CHUNK);
});

for (const native of [true, false]) {
  test(`receiver completes only with all bytes and the hash, and checks it (native ${native})`, async () => {
    const inc = new Incoming({ size: data.length }, native);
    for (const c of chunks(0)) assert.ok(inc.push(c));
    assert.equal(inc.received, data.length);
    assert.equal(inc.complete, false, 'file-end not here yet');
    inc.sha = sha;
    assert.ok(inc.complete);
    assert.ok(await inc.verify());
  });
}

test('WebCrypto hashes up to the limit, JS hashes beyond it', () => {
  assert.equal(new Incoming({ size: NATIVE_HASH_MAX }).hash, null);
  assert.ok(new Incoming({ size: NATIVE_HASH_MAX + 1 }).hash);
});

test('without WebCrypto (a plain-http page) the JS hash receives and verifies', async () => {
  const real = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  // What a page outside a secure context has: getRandomValues, no subtle.
  Object.defineProperty(globalThis, 'crypto', { value: { getRandomValues: (a) => real.get().getRandomValues(a) }, configurable: true });
  try {
    assert.equal(globalThis.crypto.subtle, undefined);
    const inc = new Incoming({ size: data.length });
    assert.ok(inc.hash, 'small file, but no WebCrypto: hashed in JS');
    for (const c of chunks(0)) inc.push(c);
    inc.sha = sha;
    assert.ok(await inc.verify());
  } finally {
    Object.defineProperty(globalThis, 'crypto', real);
  }
  assert.ok(globalThis.crypto.subtle);
});

test('a cut transfer resumes from the bytes held and still verifies', async () => {
  const inc = new Incoming({ size: data.length }, false);
  const all = chunks(0);
  for (const c of all.slice(0, 3)) inc.push(c);
  assert.equal(inc.received, 3 * CHUNK, 'offset to send in file-accept');
  for (const c of chunks(inc.received)) inc.push(c);
  inc.sha = sha;
  assert.ok(await inc.verify());
});

test('bytes beyond size are refused; a wrong hash fails', async () => {
  const inc = new Incoming({ size: 10 });
  assert.ok(inc.push(new ArrayBuffer(8)));
  assert.equal(inc.push(new ArrayBuffer(3)), false);
  assert.equal(inc.received, 8);
  assert.ok(inc.push(new ArrayBuffer(2)));
  inc.sha = sha;
  assert.equal(await inc.verify(), false);
});

test('hashBlob equals node:crypto, natively and in JS slices (no WebCrypto)', async () => {
  const big = randomBytes(3 * (1 << 20) + 5);
  const want = createHash('sha256').update(big).digest('hex');
  assert.equal(await hashBlob(new Blob([big])), want);
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true });
  try {
    assert.equal(globalThis.crypto, undefined);
    assert.equal(await hashBlob(new Blob([big])), want);
  } finally {
    Object.defineProperty(globalThis, 'crypto', saved);
  }
});

test('progress text gives rate and time left', () => {
  assert.equal(progressText(3e6, 5e6, 1e6, 0, 1000), '2.0 MB/s · 1 s left');
  assert.equal(progressText(0, 5e6, 0, 0, 0), '0.0 MB/s · …');
});

test('an offer to a peer whose channel is down goes when it reopens, until answered', async () => {
  const { Files } = await import('../../client_web/files.js');
  const wire = [];
  let open = false;
  const files = new Files({ send: (peer, frame) => open && wire.push([peer, frame]) > 0, pc: () => null });
  files.offer(new Blob([data]), ['p']);
  assert.equal(wire.length, 0);
  open = true;
  files.reopened('p');
  assert.deepEqual(wire.map(([peer, frame]) => [peer, frame.t]), [['p', 'file-offer']]);
  files.control('p', { t: 'file-decline', fid: wire[0][1].fid });
  files.reopened('p');
  assert.equal(wire.length, 1, 'answered: not offered again');
});
