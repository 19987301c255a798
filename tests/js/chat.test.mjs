import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Chat, parse, safeName, newId, MAX_TEXT } from '../../client_web/chat.js';

const protocol = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
const examples = [...protocol.matchAll(/```json channel\n(.*?)\n```/gs)].map((m) => m[1]);

/** A pair of channels in memory: `open` decides whether sends get through. */
function link() {
  const wire = [];
  const state = { open: true };
  const chat = new Chat((peer, frame) => {
    if (!state.open) return false;
    wire.push([peer, JSON.stringify(frame)]);
    return true;
  });
  return { chat, wire, state };
}

test('every channel example of PROTOCOL.md parses', () => {
  assert.ok(examples.length >= 9);
  for (const e of examples) assert.ok(parse(e), e);
});

test('parse ignores what the protocol says to ignore', () => {
  for (const bad of ['nope', '[]', 'null', '{"t":"zap"}', '{"t":"msg","id":"a","ts":1,"text":5,"dm":false}',
    '{"t":"msg","id":"a b","ts":1,"text":"x","dm":false}', '{"t":"ack"}', '{"t":"file-accept","fid":"f","offset":-1}',
    JSON.stringify({ t: 'msg', id: 'a', ts: 1, text: 'é'.repeat(MAX_TEXT / 2 + 1), dm: false }), 'x'.repeat(70000)]) {
    assert.equal(parse(bad), null, bad.slice(0, 80));
  }
  assert.equal(parse(new ArrayBuffer(4)), null);
});

test('a message is shown once per (peer, id) and acknowledged every time', () => {
  const { chat, wire } = link();
  const m = parse(examples[0]);
  assert.equal(chat.receive('p', m).dup, false);
  assert.equal(chat.receive('p', m).dup, true);
  assert.equal(chat.receive('q', m).dup, false, 'another peer, another message');
  assert.deepEqual(wire.map(([, f]) => JSON.parse(f).t), ['ack', 'ack', 'ack']);
});

test('messages written while the channel is down go out in order when it opens', () => {
  const { chat, wire, state } = link();
  state.open = false;
  const a = chat.compose('one', ['p']);
  const b = chat.compose('two', ['p']);
  assert.equal(wire.length, 0);
  assert.equal(chat.pending('p'), 2);
  state.open = true;
  chat.opened('p');
  assert.deepEqual(wire.map(([, f]) => JSON.parse(f).id), [a.id, b.id]);
  chat.receive('p', { t: 'ack', id: a.id });
  assert.equal(chat.pending('p'), 1);
  chat.opened('p'); // reopened again: only the unacked one
  assert.equal(JSON.parse(wire.at(-1)[1]).id, b.id);
  assert.equal(wire.length, 3);
});

test('ack only once; unknown ack is nothing', () => {
  const { chat } = link();
  const f = chat.compose('hi', ['p', 'q']);
  assert.ok(chat.receive('p', { t: 'ack', id: f.id }));
  assert.equal(chat.receive('p', { t: 'ack', id: f.id }), null);
  assert.equal(chat.pending('q'), 1);
  chat.forget('q');
  assert.equal(chat.pending('q'), 0);
});

test('direct message and size limit', () => {
  const { chat, wire } = link();
  chat.compose('psst', ['p'], true);
  assert.equal(JSON.parse(wire[0][1]).dm, true);
  assert.equal(wire.length, 1);
  assert.throws(() => chat.compose('x'.repeat(MAX_TEXT + 1), ['p']), RangeError);
});

test('ids are valid protocol ids and file names are reduced to a base name', () => {
  assert.match(newId(), /^[0-9a-f]{32}$/);
  assert.notEqual(newId(), newId());
  assert.equal(safeName('../../etc/passwd'), 'passwd');
  assert.equal(safeName('a\\b\u0000c.txt'), 'bc.txt');
  assert.equal(safeName('dir/'), 'file');
});

test('a peer back under a new id keeps its queue and its shown ids', () => {
  const { chat, wire, state } = link();
  state.open = false;
  const a = chat.compose('queued', ['old']);
  chat.receive('old', { t: 'msg', id: 'm1', ts: 1, text: 'x', dm: false });
  chat.rename('old', 'new');
  assert.equal(chat.pending('old'), 0);
  assert.equal(chat.pending('new'), 1);
  state.open = true;
  chat.opened('new');
  assert.equal(JSON.parse(wire.at(-1)[1]).id, a.id);
  assert.equal(chat.receive('new', { t: 'msg', id: 'm1', ts: 1, text: 'x', dm: false }).dup, true);
});

test('delivery: who each message went to and who acknowledged it, across a rename', () => {
  const { chat } = link();
  const f = chat.compose('hi', ['p', 'q']);
  assert.deepEqual([...chat.delivery(f.id).to], ['p', 'q']);
  chat.receive('p', { t: 'ack', id: f.id });
  assert.deepEqual([...chat.delivery(f.id).acked], ['p']);
  chat.rename('p', 'p2');
  chat.rename('q', 'q2');
  assert.deepEqual([...chat.delivery(f.id).acked], ['p2']);
  assert.ok(chat.receive('q2', { t: 'ack', id: f.id }), 'the queue moved to the new id');
  assert.deepEqual([...chat.delivery(f.id).acked], ['p2', 'q2']);
  assert.equal(chat.delivery('nope'), undefined);
});

test('a peer gone for good leaves its unacknowledged messages lost, until a retry', () => {
  const { chat, wire, state } = link();
  const a = chat.compose('to both', ['p', 'q']);
  const b = chat.compose('to p', ['p'], true);
  chat.receive('q', { t: 'ack', id: a.id });
  state.open = false;
  assert.deepEqual(chat.forget('p'), [a.id, b.id]);
  assert.deepEqual([...chat.delivery(a.id).lost], ['p']);
  assert.deepEqual([...chat.delivery(a.id).acked], ['q']);
  assert.deepEqual(chat.retry(b.id, []), [], 'nobody to try');
  assert.deepEqual([...chat.delivery(b.id).lost], ['p'], 'still lost');
  state.open = true;
  const before = wire.length;
  assert.deepEqual(chat.retry(a.id, ['q', 'r']), ['r'], 'not again to who acknowledged it');
  assert.equal(chat.delivery(a.id).lost.size, 0);
  assert.equal(wire.length, before + 1);
  assert.deepEqual(JSON.parse(wire.at(-1)[1]), { ...a }, 'the same frame, same id: seen ones are not shown twice');
  assert.equal(chat.pending('r'), 1);
  assert.ok(chat.receive('r', { t: 'ack', id: a.id }));
  assert.deepEqual([...chat.delivery(a.id).acked], ['q', 'r']);
});

test('what stays unacknowledged is written again after RESEND_MS, and shown once', async () => {
  const { RESEND_MS } = await import('../../client_web/chat.js');
  let now = 1000;
  const wire = [];
  const chat = new Chat((peer, frame) => wire.push([peer, frame.id]), () => now);
  const a = chat.compose('one', ['p']);
  const b = chat.compose('two', ['p']);
  now += RESEND_MS - 1;
  chat.resend('p');
  assert.equal(wire.length, 2, 'not yet');
  chat.receive('p', { t: 'ack', id: a.id });
  now += 1;
  chat.resend('p');
  assert.deepEqual(wire.slice(2), [['p', b.id]], 'only the unacknowledged one');
  chat.resend('p');
  assert.equal(wire.length, 3, 'and not again at once');
  const other = new Chat(() => true, () => now);
  assert.equal(other.receive('q', { t: 'msg', id: b.id, ts: 1, text: 'two', dm: false }).dup, false);
  assert.equal(other.receive('q', { t: 'msg', id: b.id, ts: 1, text: 'two', dm: false }).dup, true);
});

test('a peer that left and is back under a new id gets what was lost, and sees nothing twice', () => {
  const { chat, wire, state } = link();
  chat.receive('old', { t: 'msg', id: 'm1', ts: 1, text: 'x', dm: false });
  state.open = false;
  const lost = chat.compose('while it was away', ['old']);
  assert.deepEqual(chat.forget('old'), [lost.id]);
  state.open = true;
  assert.deepEqual(chat.rename('old', 'new'), [lost.id]);
  assert.equal(JSON.parse(wire.at(-1)[1]).id, lost.id, 'sent to the new id');
  assert.deepEqual([...chat.delivery(lost.id).lost], []);
  assert.deepEqual([...chat.delivery(lost.id).to], ['new']);
  assert.equal(chat.pending('new'), 1);
  assert.equal(chat.receive('new', { t: 'msg', id: 'm1', ts: 1, text: 'x', dm: false }).dup, true);
});
