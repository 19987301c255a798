/** File transfers (docs/PROTOCOL.md "Files"): one data channel `file:<fid>:<offset>` per
 * transfer, messages as large as the peer takes (up to MAX_CHUNK) with bufferedAmount
 * backpressure, SHA-256 checked at the end, resume from the receiver's offset. */
import { Sha256, hex } from './sha256.js';
import { newId, safeName } from './chat.js';
import { Emitter } from './emitter.js';

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

/** The states a transfer shows (docs/vectors.json client_rules.transfer_states, the same
 * names as the terminal peer's); the last five are final. */
export const STATES = Object.freeze(['offered', 'waiting', 'sending', 'receiving', 'resumed', 'interrupted', 'sent', 'received', 'failed', 'declined', 'cancelled']);

/** Image types a browser only ever draws (unlike SVG or HTML, no script runs): the only
 * types a received file keeps, for previews; anything else is saved as bytes. */
export const INERT_IMAGES = Object.freeze(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif']);

/** The Blob type of a received file whose sender said `mime` (issue 9 item 14: the peer
 * must not choose how the browser opens it). */
export const blobType = (mime) => (INERT_IMAGES.includes(String(mime).trim().toLowerCase()) ? String(mime).trim().toLowerCase() : 'application/octet-stream');

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
export class Files extends Emitter {
  constructor(room) {
    super();
    this.room = room;
    this.all = new Map();
  }

  /** Tell the page that `job` changed. */
  changed(job) {
    job.shown = Date.now();
    this.emit('update', job);
  }

  /** Emit bytes moved at most every PROGRESS_MS: a render per chunk would slow the transfer. */
  progress(job) {
    if (Date.now() - (job.shown || 0) >= PROGRESS_MS) this.changed(job);
  }

  /** Offer a File to `peers` (one peer with dm for a direct file). */
  offer(file, peers, dm = false) {
    const fid = newId();
    const hash = hashInBackground(file);
    for (const peer of peers) {
      const offer = { t: 'file-offer', fid, name: file.name || 'file', size: file.size, mime: file.type.slice(0, 255), dm };
      const job = { key: `${peer}:${fid}`, dir: 'out', peer, fid, file, hash, name: file.name, size: file.size, done: 0, state: 'offered', dm, offer };
      this.all.set(job.key, job);
      this.room.send(peer, offer); // if the channel is down, reopened() offers it again
      this.changed(job);
    }
  }

  /** A file control frame from `peer`. */
  control(peer, m) {
    const job = this.all.get(`${peer}:${m.fid}`);
    if (m.t === 'file-offer') {
      if (job) return;
      const offered = { key: `${peer}:${m.fid}`, dir: 'in', peer, fid: m.fid, name: safeName(m.name), size: m.size, done: 0, state: 'offered', dm: m.dm, inc: new Incoming(m) };
      this.all.set(offered.key, offered);
      return this.changed(offered);
    }
    if (!job) return;
    if (m.t === 'file-cancel') return this.finish(job, 'cancelled');
    if (job.dir === 'out') {
      if (m.t === 'file-decline') this.finish(job, 'declined');
      else if (m.t === 'file-accept' && m.offset <= job.size && !job.end) this.start(job, m.offset);
      else if (m.t === 'file-received') this.finish(job, m.ok ? 'sent' : 'failed');
    } else if (m.t === 'file-end' && job.state !== 'cancelled') {
      job.inc.sha = m.sha256;
      this.check(job);
    }
  }

  async start(job, offset) {
    job.run = (job.run || 0) + 1;
    const run = job.run;
    job.ch?.close(); // a run before this one, if its channel still stands
    const pc = this.room.pc(job.peer);
    const ch = pc.createDataChannel(`file:${job.fid}:${offset}`);
    ch.binaryType = 'arraybuffer';
    job.ch = ch;
    Object.assign(job, { state: offset ? 'resumed' : 'sending', from: offset, t0: Date.now(), done: offset });
    this.changed(job);
    try {
      await pump(ch, job.file, offset, (pos) => { job.done = pos; this.progress(job); }, () => job.run !== run || job.end, chunkFor(pc));
      this.room.send(job.peer, { t: 'file-end', fid: job.fid, sha256: await job.hash });
    } catch {
      if (job.run === run && !job.end) { job.state = 'interrupted'; this.changed(job); }
    }
  }

  /** Receiver: accept (again, after a reconnect) with the bytes held. */
  accept(key) {
    const job = this.all.get(key);
    if (!job || job.end) return;
    job.accepted = true;
    job.state = 'waiting';
    this.room.send(job.peer, { t: 'file-accept', fid: job.fid, offset: job.inc.received });
    this.changed(job);
  }

  decline(key) {
    const job = this.all.get(key);
    if (job && !job.end) { this.room.send(job.peer, { t: 'file-decline', fid: job.fid }); this.finish(job, 'declined'); }
  }

  cancel(key) {
    const job = this.all.get(key);
    if (job && !job.end) { this.room.send(job.peer, { t: 'file-cancel', fid: job.fid }); this.finish(job, 'cancelled'); }
  }

  finish(job, state) {
    if (job.end) return; // a late cancel cannot undo a transfer that has ended
    job.end = true;
    job.state = state;
    if (job.ch && job.ch.readyState !== 'closed') job.ch.close();
    if (job.inc && state !== 'received') job.inc.parts = [];
    this.changed(job);
  }

  /** A data channel the peer opened: a file channel for an accepted transfer, or closed. */
  channel(peer, ch) {
    const [, fid, off] = ch.label.split(':');
    const job = this.all.get(`${peer}:${fid}`);
    if (!job || job.dir !== 'in' || !job.accepted || job.end || Number(off) !== job.inc.received) return ch.close();
    ch.binaryType = 'arraybuffer';
    job.ch = ch;
    Object.assign(job, { state: off > 0 ? 'resumed' : 'receiving', from: job.inc.received, t0: Date.now() });
    ch.onmessage = ({ data }) => {
      if (job.ch !== ch || job.end) return;
      if (typeof data === 'string' || !job.inc.push(data)) return this.cancel(job.key);
      job.done = job.inc.received;
      if (job.done < job.size) return this.progress(job);
      this.check(job); // first, so that the digest runs while the last progress renders
      this.changed(job);
    };
    ch.onclose = () => { if (!job.end && job.ch === ch) { job.state = 'interrupted'; this.changed(job); } };
  }

  async check(job) {
    if (!job.inc.complete || job.end || job.checking) return;
    job.checking = true;
    const ok = await job.inc.verify();
    if (job.end) return;
    this.room.send(job.peer, { t: 'file-received', fid: job.fid, ok });
    if (ok) job.url = URL.createObjectURL(new Blob(job.inc.parts, { type: blobType(job.inc.offer.mime) }));
    this.finish(job, ok ? 'received' : 'failed');
  }

  /** The peer's chat channel (re)opened: ask again for transfers that were cut, and offer
   * again what it has not answered. */
  reopened(peer) {
    for (const job of this.all.values()) {
      if (job.peer !== peer || job.end) continue;
      if (job.dir === 'in' && job.accepted && job.ch?.readyState !== 'open') this.accept(job.key);
      // Offers not answered yet go again, like unacknowledged messages (the receiver
      // ignores an offer it holds already).
      else if (job.dir === 'out' && job.state === 'offered') this.room.send(peer, job.offer);
    }
  }

  /** The peer left: end its transfers. */
  gone(peer) {
    for (const job of this.all.values()) if (job.peer === peer && !job.end) this.finish(job, 'cancelled');
  }
}
