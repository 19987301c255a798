/** File transfers (docs/PROTOCOL.md "Files"): one data channel `file:<fid>:<offset>` per
 * transfer, messages as large as the peer takes (up to MAX_CHUNK) with bufferedAmount
 * backpressure, SHA-256 checked at the end, resume from the receiver's offset. */
import { Sha256, hex } from './sha256.js';
import { newId, safeName } from './chat.js';

// Sizes: PROTOCOL.md "Files"; measured by bench/bench_client.py.
export const CHUNK = 16384;
export const MAX_CHUNK = 256 * 1024;
export const HIGH = 4 << 20;
export const LOW = 1 << 20;
const SLICE = 1 << 20;

/** The peer's max-message-size (RFC 8841 §6) up to MAX_CHUNK; CHUNK while unknown. */
export const chunkFor = (pc) => Math.min(MAX_CHUNK, pc?.sctp?.maxMessageSize || CHUNK);
/** Milliseconds between two progress updates of one transfer (10 a second). */
export const PROGRESS_MS = 100;
/** Up to this size a receiver with WebCrypto hashes the assembled file natively at the end
 * (far faster than hashing each chunk in JS while it arrives); bigger ones hash as they come. */
export const NATIVE_HASH_MAX = 512 << 20;

/** Receiver state of one file: bytes held, running hash, parts for the final Blob. */
export class Incoming {
  constructor(offer, native = !!globalThis.crypto?.subtle && offer.size <= NATIVE_HASH_MAX) {
    this.offer = offer;
    this.size = offer.size;
    this.received = 0;
    this.parts = [];
    this.hash = native ? null : new Sha256();
    this.sha = null;
  }

  /** Take one chunk; false (and nothing kept) when it would go beyond `size`. */
  push(buf) {
    if (this.received + buf.byteLength > this.size) return false;
    this.parts.push(buf);
    this.hash?.update(buf);
    this.received += buf.byteLength;
    return true;
  }

  /** All bytes and the sender's hash are here. */
  get complete() {
    return this.received === this.size && this.sha !== null;
  }

  /** Resolves to whether the bytes match the sender's hash (call once, when complete).
   * Natively the parts are joined in memory once (faster than a Blob and back) and kept. */
  async verify() {
    if (this.hash) return hex(this.hash.digest()) === this.sha;
    const all = new Uint8Array(this.received);
    let at = 0;
    for (const p of this.parts) { all.set(new Uint8Array(p), at); at += p.byteLength; }
    this.parts = [all];
    return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', all))) === this.sha;
  }
}

/** `3.2 MB/s · 4 s left` from bytes moved since `t0` (ms) at `now`. */
export function progressText(done, size, from, t0, now) {
  const rate = ((done - from) * 1000) / Math.max(1, now - t0);
  const left = rate > 0 ? Math.ceil((size - done) / rate) : Infinity;
  return `${(rate / 1e6).toFixed(1)} MB/s · ${Number.isFinite(left) ? left + ' s left' : '…'}`;
}

/** SHA-256 (hex) of a Blob; natively up to NATIVE_HASH_MAX (JS took the sender's CPU). */
export async function hashBlob(blob) {
  if (globalThis.crypto?.subtle && blob.size <= NATIVE_HASH_MAX) return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())));
  const h = new Sha256();
  for (let p = 0; p < blob.size; p += SLICE) h.update(await blob.slice(p, p + SLICE).arrayBuffer());
  return hex(h.digest());
}

/** hashBlob in a worker when there are workers (the main thread keeps the channel fed). */
export function hashInBackground(blob) {
  if (typeof Worker === 'undefined') return hashBlob(blob);
  return new Promise((resolve) => {
    const w = new Worker(new URL('./hashworker.js', import.meta.url), { type: 'module' });
    w.onmessage = ({ data }) => { resolve(data); w.terminate(); };
    w.onerror = () => { resolve(hashBlob(blob)); w.terminate(); };
    w.postMessage(blob);
  });
}

const until = (ch, ev) => new Promise((r) => { ch.addEventListener(ev, r, { once: true }); ch.addEventListener('close', r, { once: true }); });

const read = (blob, pos) => blob.slice(pos, pos + SLICE).arrayBuffer();

/** Send `blob` from `offset` over `ch` in messages of `chunk` bytes; `tick(pos)` per slice;
 * throws when cut or cancelled. */
export async function pump(ch, blob, offset, tick, stopped, chunk = CHUNK) {
  ch.bufferedAmountLowThreshold = LOW;
  let next = read(blob, offset); // reading starts while the channel opens
  if (ch.readyState === 'connecting') await until(ch, 'open');
  for (let pos = offset; pos < blob.size;) {
    const slice = new Uint8Array(await next);
    // Read ahead, so the channel never waits for the file.
    if (pos + slice.length < blob.size) next = read(blob, pos + slice.length);
    for (let i = 0; i < slice.length; i += chunk) {
      if (ch.bufferedAmount > HIGH) await until(ch, 'bufferedamountlow');
      if (stopped() || ch.readyState !== 'open') throw new Error('cut');
      ch.send(slice.subarray(i, i + chunk)); // a view: no copy of ours
    }
    tick((pos += slice.length));
  }
}

/**
 * Transfers of a room. `room.send(peer, frame)` writes on the chat channel and
 * `room.pc(peer)` gives its RTCPeerConnection. Emits `update` with a transfer record
 * `{key, dir: 'in'|'out', peer, fid, name, size, done, state, info, url}`.
 */
export class Files extends EventTarget {
  constructor(room) {
    super();
    this.room = room;
    this.all = new Map();
  }

  emit(x) {
    x.shown = Date.now();
    this.dispatchEvent(new CustomEvent('update', { detail: x }));
  }

  /** Emit bytes moved at most every PROGRESS_MS: a render per chunk would slow the transfer. */
  progress(x) {
    if (Date.now() - (x.shown || 0) >= PROGRESS_MS) this.emit(x);
  }

  /** Offer a File to `peers` (one peer with dm for a direct file). */
  offer(file, peers, dm = false) {
    const fid = newId();
    const hash = hashInBackground(file);
    for (const peer of peers) {
      const x = { key: `${peer}:${fid}`, dir: 'out', peer, fid, file, hash, name: file.name, size: file.size, done: 0, state: 'offered', dm };
      this.all.set(x.key, x);
      this.room.send(peer, { t: 'file-offer', fid, name: file.name || 'file', size: file.size, mime: file.type.slice(0, 255), dm });
      this.emit(x);
    }
  }

  /** A file control frame from `peer`. */
  control(peer, m) {
    const x = this.all.get(`${peer}:${m.fid}`);
    if (m.t === 'file-offer') {
      if (x) return;
      const y = { key: `${peer}:${m.fid}`, dir: 'in', peer, fid: m.fid, name: safeName(m.name), size: m.size, done: 0, state: 'offered', dm: m.dm, inc: new Incoming(m) };
      this.all.set(y.key, y);
      return this.emit(y);
    }
    if (!x) return;
    if (m.t === 'file-cancel') return this.finish(x, 'cancelled');
    if (x.dir === 'out') {
      if (m.t === 'file-decline') this.finish(x, 'declined');
      else if (m.t === 'file-accept' && m.offset <= x.size && !x.end) this.start(x, m.offset);
      else if (m.t === 'file-received') this.finish(x, m.ok ? 'sent' : 'failed');
    } else if (m.t === 'file-end' && x.state !== 'cancelled') {
      x.inc.sha = m.sha256;
      this.check(x);
    }
  }

  async start(x, offset) {
    x.run = (x.run || 0) + 1;
    const run = x.run;
    x.ch?.close(); // a run before this one, if its channel still stands
    const pc = this.room.pc(x.peer);
    const ch = pc.createDataChannel(`file:${x.fid}:${offset}`);
    ch.binaryType = 'arraybuffer';
    x.ch = ch;
    Object.assign(x, { state: offset ? 'resumed' : 'sending', from: offset, t0: Date.now(), done: offset });
    this.emit(x);
    try {
      await pump(ch, x.file, offset, (pos) => { x.done = pos; this.progress(x); }, () => x.run !== run || x.end, chunkFor(pc));
      this.room.send(x.peer, { t: 'file-end', fid: x.fid, sha256: await x.hash });
    } catch {
      if (x.run === run && !x.end) { x.state = 'interrupted'; this.emit(x); }
    }
  }

  /** Receiver: accept (again, after a reconnect) with the bytes held. */
  accept(key) {
    const x = this.all.get(key);
    if (!x || x.end) return;
    x.accepted = true;
    x.state = 'waiting';
    this.room.send(x.peer, { t: 'file-accept', fid: x.fid, offset: x.inc.received });
    this.emit(x);
  }

  decline(key) {
    const x = this.all.get(key);
    if (x && !x.end) { this.room.send(x.peer, { t: 'file-decline', fid: x.fid }); this.finish(x, 'declined'); }
  }

  cancel(key) {
    const x = this.all.get(key);
    if (x && !x.end) { this.room.send(x.peer, { t: 'file-cancel', fid: x.fid }); this.finish(x, 'cancelled'); }
  }

  finish(x, state) {
    if (x.end) return; // a late cancel cannot undo a transfer that has ended
    x.end = true;
    x.state = state;
    if (x.ch && x.ch.readyState !== 'closed') x.ch.close();
    if (x.inc && state !== 'received') x.inc.parts = [];
    this.emit(x);
  }

  /** A data channel the peer opened: a file channel for an accepted transfer, or closed. */
  channel(peer, ch) {
    const [, fid, off] = ch.label.split(':');
    const x = this.all.get(`${peer}:${fid}`);
    if (!x || x.dir !== 'in' || !x.accepted || x.end || Number(off) !== x.inc.received) return ch.close();
    ch.binaryType = 'arraybuffer';
    x.ch = ch;
    Object.assign(x, { state: off > 0 ? 'resumed' : 'receiving', from: x.inc.received, t0: Date.now() });
    ch.onmessage = ({ data }) => {
      if (x.ch !== ch || x.end) return;
      if (typeof data === 'string' || !x.inc.push(data)) return this.cancel(x.key);
      x.done = x.inc.received;
      if (x.done < x.size) return this.progress(x);
      this.check(x); // first, so that the digest runs while the last progress renders
      this.emit(x);
    };
    ch.onclose = () => { if (!x.end && x.ch === ch) { x.state = 'interrupted'; this.emit(x); } };
  }

  async check(x) {
    if (!x.inc.complete || x.end || x.checking) return;
    x.checking = true;
    const ok = await x.inc.verify();
    if (x.end) return;
    this.room.send(x.peer, { t: 'file-received', fid: x.fid, ok });
    if (ok) x.url = URL.createObjectURL(new Blob(x.inc.parts, { type: x.inc.offer.mime }));
    this.finish(x, ok ? 'received' : 'failed');
  }

  /** The peer's chat channel (re)opened: ask again for transfers that were cut. */
  reopened(peer) {
    for (const x of this.all.values()) if (x.peer === peer && x.dir === 'in' && x.accepted && !x.end && x.ch?.readyState !== 'open') this.accept(x.key);
  }

  /** The peer left: end its transfers. */
  gone(peer) {
    for (const x of this.all.values()) if (x.peer === peer && !x.end) this.finish(x, 'cancelled');
  }
}
