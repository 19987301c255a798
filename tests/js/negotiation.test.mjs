import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ignoreOffer, sessionOf } from '../../client_web/peer.js';

test('perfect negotiation: only the impolite side in a collision ignores an offer', () => {
  for (const polite of [true, false]) for (const makingOffer of [true, false]) for (const stable of [true, false]) for (const settingAnswer of [true, false]) {
    const collision = makingOffer || !(stable || settingAnswer);
    assert.equal(ignoreOffer({ polite, makingOffer, stable, settingAnswer }), !polite && collision, JSON.stringify({ polite, makingOffer, stable, settingAnswer }));
  }
});

test('the o= session id tells a new connection from a renegotiation', () => {
  assert.equal(sessionOf('v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n'), '4611731400430051336');
  assert.equal(sessionOf('v=0\r\no=- 4611731400430051336 3 IN IP4 127.0.0.1\r\n'), '4611731400430051336');
  assert.equal(sessionOf('v=0\r\n'), '');
});
