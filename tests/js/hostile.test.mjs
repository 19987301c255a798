// Issue 9 items 10-15, the pure parts: what a hostile peer or link can send the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newRoomName, ROOM_PATTERN } from '../../client_web/constants.js';
import { Chat, SEEN_MAX, MESSAGE_BURST, MESSAGES_PER_S, FLOOD_NOTICE_MS, clampTime, shownText } from '../../client_web/chat.js';
import { blobType, INERT_IMAGES } from '../../client_web/files.js';
import { sdpFingerprint, remoteFingerprint, fingerprintOfDer } from '../../client_web/safety.js';

const FP = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, '0').toUpperCase()).join(':');
const sdp = (...lines) => ['v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', ...lines, ''].join('\r\n');
const msg = (id, ts = 1) => ({ t: 'msg', id, ts, text: id, dm: false });

test('generated room names carry 128 random bits in base64url', () => {
  const names = new Set(Array.from({ length: 50 }, newRoomName));
  assert.equal(names.size, 50);
  for (const name of names) {
    assert.match(name, /^[A-Za-z0-9_-]{22}$/);
    assert.ok(ROOM_PATTERN.test(name));
    assert.equal(Buffer.from(name, 'base64url').length, 16);
  }
});

test('a number from SDP only when it carries exactly one sha-256 fingerprint line', () => {
  assert.equal(sdpFingerprint(sdp(`a=fingerprint:SHA-256 ${FP.toLowerCase()}`)), `sha-256 ${FP}`);
  assert.equal(sdpFingerprint(sdp()), null, 'none');
  assert.equal(sdpFingerprint(sdp(`a=fingerprint:sha-256 ${FP}`, `a=fingerprint:sha-256 ${FP}`)), null, 'two, even equal');
  assert.equal(sdpFingerprint(sdp(`a=fingerprint:sha-256 ${FP}`, 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', `a=fingerprint:sha-256 ${FP.replace(/^00/, '01')}`)), null, 'one per section');
  assert.equal(sdpFingerprint(sdp(`a=fingerprint:sha-1 ${FP.slice(0, 59)}`)), null, 'another algorithm');
  assert.equal(sdpFingerprint(sdp(`a=fingerprint:sha-256 ${FP} extra`)), null);
  assert.equal(sdpFingerprint(sdp('a=fingerprint:sha-256 zz')), null);
});

test('the certificate wins over the SDP; without getRemoteCertificates the SDP rule applies', () => {
  const der = new Uint8Array([1, 2, 3]).buffer;
  const other = sdp(`a=fingerprint:sha-256 ${FP}`);
  assert.equal(remoteFingerprint({ getRemoteCertificates: () => [der] }, other), fingerprintOfDer(der));
  assert.equal(remoteFingerprint({ getRemoteCertificates: () => [] }, other), null);
  assert.equal(remoteFingerprint({}, other), `sha-256 ${FP}`);
  assert.equal(remoteFingerprint(undefined, sdp(`a=fingerprint:sha-256 ${FP}`, `a=fingerprint:sha-256 ${FP}`)), null);
  assert.equal(remoteFingerprint(undefined, undefined), null);
});

test('a received file is bytes, whatever type its sender claims, but for inert images', () => {
  for (const mime of ['text/html', 'image/svg+xml', 'application/xhtml+xml', 'text/html; charset=utf-8', '', 'application/pdf']) assert.equal(blobType(mime), 'application/octet-stream', mime);
  for (const mime of INERT_IMAGES) assert.equal(blobType(mime.toUpperCase()), mime);
  assert.ok(!INERT_IMAGES.includes('image/svg+xml'));
});

test('the ids remembered per peer are capped, oldest forgotten first', () => {
  let now = 0;
  const chat = new Chat(() => true, () => (now += 1000)); // a second per message: never a flood
  for (let i = 0; i < SEEN_MAX + 5; i++) chat.receive('p', msg(`m${i}`));
  assert.equal(chat.seen.get('p').size, SEEN_MAX);
  assert.equal(chat.receive('p', msg(`m${SEEN_MAX + 4}`)).dup, true, 'a recent one is still known');
  assert.equal(chat.seen.get('p').has('m0'), false);
});

test('a peer over its allowance is ignored and not acknowledged; others are not affected', () => {
  const now = 5000;
  const acks = [];
  const chat = new Chat((peer, frame) => acks.push([peer, frame.id]), () => now);
  const events = Array.from({ length: MESSAGE_BURST + 10 }, (_, i) => chat.receive('p', msg(`m${i}`)));
  assert.equal(events.filter((e) => e.t === 'msg').length, MESSAGE_BURST);
  assert.deepEqual(events.slice(MESSAGE_BURST).map((e) => e.first), [true, ...Array(9).fill(false)]);
  assert.equal(acks.length, MESSAGE_BURST);
  assert.equal(chat.receive('q', msg('other')).t, 'msg', 'another peer has its own allowance');
  assert.equal(chat.receive('p', { t: 'file-offer', fid: 'f', name: 'a', size: 1, mime: '', dm: false }).t, 'flood');
  assert.equal(chat.receive('p', { t: 'typing', on: true }).t, 'typing');
});

test('the allowance comes back at its rate; the flood notice at most every FLOOD_NOTICE_MS', () => {
  let now = 0;
  const chat = new Chat(() => true, () => now);
  for (let i = 0; i < MESSAGE_BURST; i++) chat.receive('p', msg(`m${i}`));
  assert.deepEqual(chat.receive('p', msg('over')), { t: 'flood', first: true });
  now += 1000;
  const back = Array.from({ length: MESSAGES_PER_S + 1 }, (_, i) => chat.receive('p', msg(`n${i}`)));
  assert.deepEqual(back.map((e) => e.t), [...Array(MESSAGES_PER_S).fill('msg'), 'flood']);
  assert.equal(back.at(-1).first, false, 'the same flood: no second notice');
  now += FLOOD_NOTICE_MS;
  for (let i = 0; i < MESSAGE_BURST; i++) chat.receive('p', msg(`o${i}`));
  assert.deepEqual(chat.receive('p', msg('over again')), { t: 'flood', first: true });
});

test('timestamps are clamped to what a Date can show', () => {
  const chat = new Chat(() => true, () => 1_700_000_000_000);
  for (const ts of [1e16, -1e16, Number.MAX_VALUE, -1]) {
    const shown = chat.receive('p', msg(`t${ts}`, ts)).ts;
    assert.ok(shown >= 0 && shown <= 1_700_000_000_000, String(ts));
    assert.doesNotThrow(() => new Date(shown).toISOString());
  }
  assert.equal(clampTime(1234, 5000), 1234);
  assert.equal(clampTime(NaN, 5000), 5000);
});

test('bidi and other controls are taken out of names', () => {
  assert.equal(shownText('Bob\u202Eevil\u2066x\u2069\u200E\u200F\u061C'), 'Bobevilx');
  assert.equal(shownText('Zoë 李'), 'Zoë 李');
});

test('a kept certificate is replaced before it expires, not after', async () => {
  const { fresh, RENEW_BEFORE_MS, LIFETIME_MS } = await import('../../client_web/identity.js');
  const now = 1_700_000_000_000;
  assert.ok(fresh({ expires: now + LIFETIME_MS }, now));
  assert.ok(fresh({ expires: now + RENEW_BEFORE_MS + 1 }, now));
  assert.ok(!fresh({ expires: now + RENEW_BEFORE_MS }, now), 'inside the renewal window');
  assert.ok(!fresh({ expires: now - 1 }, now));
  assert.ok(!fresh(undefined, now), 'none kept');
});
