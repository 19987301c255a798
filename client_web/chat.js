/** Chat model (docs/PROTOCOL.md "The chat channel"): parsing, per-peer outbox of unacked
 * messages resent on reopen, and dedup per (peer, id). No DOM, no WebRTC: node-tested. */
export const MAX_FRAME = 65536;
export const MAX_TEXT = 16384;
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const str = (v) => typeof v === 'string';
const FIELDS = {
  msg: { id: 'id', ts: 'num', text: 'text', dm: 'bool' },
  ack: { id: 'id' },
  typing: { on: 'bool' },
  'file-offer': { fid: 'id', name: 'name', size: 'size', mime: 'mime', dm: 'bool' },
  'file-accept': { fid: 'id', offset: 'size' },
  'file-decline': { fid: 'id' },
  'file-end': { fid: 'id', sha256: 'sha' },
  'file-received': { fid: 'id', ok: 'bool' },
  'file-cancel': { fid: 'id' },
};
const KINDS = {
  id: (v) => str(v) && ID.test(v),
  num: (v) => Number.isFinite(v),
  bool: (v) => typeof v === 'boolean',
  text: (v) => str(v) && new TextEncoder().encode(v).length <= MAX_TEXT,
  name: (v) => str(v) && v.length >= 1 && v.length <= 255,
  mime: (v) => str(v) && v.length <= 255,
  size: (v) => Number.isSafeInteger(v) && v >= 0,
  sha: (v) => str(v) && /^[0-9a-f]{64}$/.test(v),
};

/** A random id (hex), from getRandomValues, which plain-http pages also have. */
export const newId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

/** Parse one chat-channel frame; null for anything the protocol says to ignore. */
export function parse(data) {
  if (!str(data) || data.length > MAX_FRAME) return null;
  let m;
  try { m = JSON.parse(data); } catch { return null; }
  if (!m || typeof m !== 'object' || Array.isArray(m)) return null;
  const spec = FIELDS[m.t];
  if (!spec) return null;
  for (const [k, kind] of Object.entries(spec)) if (!KINDS[kind](m[k])) return null;
  return m;
}

/** A received file name is cut to this many bytes of UTF-8 (docs/vectors.json client_rules). */
export const MAX_NAME_BYTES = 200;
/** C0 and C1 controls, the bidi marks and controls (a name must not reorder what is shown
 * around it, "invoice\u202Egpj.exe"), and lone surrogates. */
const UNSHOWN = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu;

/** Text without the controls and bidi controls that could fake what is shown around it. */
export const shownText = (text) => text.replace(UNSHOWN, '');

/** `text` cut to at most `max` bytes of UTF-8, never inside a code point. */
export function cutUtf8(text, max) {
  let bytes = 0, end = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes > max) break;
    end += ch.length;
  }
  return text.slice(0, end);
}

/** The name a received file is shown and saved under (docs/vectors.json
 * client_rules.file_name): the base name, without controls, trimmed, no leading dots. */
export const safeName = (name) => cutUtf8(shownText(name.split(/[\\/]/).pop()).trim().replace(/^\.+/, ''), MAX_NAME_BYTES) || 'file';

/** Ids of shown messages remembered per peer, oldest forgotten first (as client_py). */
export const SEEN_MAX = 10000;
/** New messages and file offers taken from one peer: MESSAGE_BURST at once, then
 * MESSAGES_PER_S a second; more are ignored (not acknowledged, so an honest sender
 * keeps them for its next reconnect). */
export const MESSAGE_BURST = 50;
export const MESSAGES_PER_S = 20;
/** Milliseconds after which an unacknowledged message is written again (`resend`). */
export const RESEND_MS = 10000;
/** Departed peers whose shown ids are kept, in case they come back under a new id. */
export const DEPARTED_MAX = 64;
/** Milliseconds between two notices of one peer's flood (`first` in the flood event). */
export const FLOOD_NOTICE_MS = 10000;

/** A timestamp a peer sent, made one the page can show: not before 1970, not after `now`
 * (`new Date(1e16)` is an Invalid Date, and its toISOString throws). */
export const clampTime = (ts, now) => (Number.isFinite(ts) ? Math.min(Math.max(ts, 0), now) : now);

/** A token bucket of one peer (whole tokens, refilled by elapsed time). */
class Allowance {
  constructor(now) {
    Object.assign(this, { tokens: MESSAGE_BURST, at: now, noticed: -Infinity });
  }

  take(now) {
    this.tokens = Math.min(MESSAGE_BURST, this.tokens + ((now - this.at) * MESSAGES_PER_S) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * The room's messages. `send(peer, obj)` writes to a peer's open chat channel and returns
 * whether it could; the model keeps what is unacked and resends it on `opened(peer)`, and
 * which peers each of our messages went to and which acknowledged it (`delivery(id)`).
 * `now()` is the clock (tests give their own).
 */
export class Chat {
  constructor(send, now = Date.now) {
    this.send = send;
    this.now = now;
    /** @type {Map<string, Map<string, {frame: object, at: number}>>} peer → id → unacked
     * msg frame and when it was last written */
    this.outbox = new Map();
    /** @type {Map<string, Set<string>>} peer → ids shown (at most SEEN_MAX, oldest first) */
    this.seen = new Map();
    /** @type {Map<string, {frame: object, to: Set<string>, acked: Set<string>, lost: Set<string>}>}
     * our msg id → its frame, the peers it is for, those that acknowledged it, and those
     * that left for good without doing so */
    this.deliveries = new Map();
    /** @type {Map<string, Set<string>>} departed peer → ids it had shown (DEPARTED_MAX) */
    this.departed = new Map();
    /** @type {Map<string, Allowance>} peer → what it may still send now */
    this.allowances = new Map();
  }

  /** `{frame, to, acked, lost}` (sets of peer ids) of a message we wrote, or undefined. */
  delivery(id) {
    return this.deliveries.get(id);
  }

  /** Write a message to `peers` (a direct message when given one peer and dm). */
  compose(text, peers, dm = false) {
    if (new TextEncoder().encode(text).length > MAX_TEXT) throw new RangeError(`message over ${MAX_TEXT} bytes`);
    const frame = { t: 'msg', id: newId(), ts: Date.now(), text, dm };
    this.deliveries.set(frame.id, { frame, to: new Set(peers), acked: new Set(), lost: new Set() });
    for (const p of peers) this.queue(p, frame);
    return frame;
  }

  /** Keep `frame` for `peer` until acknowledged, and write it. */
  queue(peer, frame) {
    if (!this.outbox.has(peer)) this.outbox.set(peer, new Map());
    const entry = { frame, at: 0 };
    this.outbox.get(peer).set(frame.id, entry);
    this.write(peer, entry);
  }

  write(peer, entry) {
    entry.at = this.now();
    this.send(peer, entry.frame);
  }

  /** Write again what `peer` has not acknowledged RESEND_MS after it was last written (an
   * ack lost with a connection that died unnoticed, or a message the peer's flood limit
   * refused); the peer shows each id once. */
  resend(peer) {
    const now = this.now();
    for (const entry of this.outbox.get(peer)?.values() ?? []) if (now - entry.at >= RESEND_MS) this.write(peer, entry);
  }

  /** The peer's channel (re)opened: resend its unacked messages in order. */
  opened(peer) {
    for (const entry of this.outbox.get(peer)?.values() ?? []) this.write(peer, entry);
  }

  /** The peer left for good: forget its queue. Returns the ids of our messages it never
   * acknowledged (now in their delivery's `lost`, for the page to offer a retry). */
  forget(peer) {
    const lost = [...(this.outbox.get(peer)?.keys() ?? [])];
    this.outbox.delete(peer);
    // What it showed is kept a while: the same device may come back under a new id
    // (rename), and must not see again what it saw.
    const shown = this.seen.get(peer);
    this.seen.delete(peer);
    if (shown) this.departed.set(peer, shown);
    if (this.departed.size > DEPARTED_MAX) this.departed.delete(this.departed.keys().next().value);
    this.allowances.delete(peer);
    for (const id of lost) {
      const delivery = this.deliveries.get(id);
      delivery?.to.delete(peer);
      delivery?.lost.add(peer);
    }
    return lost;
  }

  /** Send our message `id` again to those of `peers` that have not acknowledged it; when
   * there are some, its lost list starts afresh. Returns the peers it went to. */
  retry(id, peers) {
    const delivery = this.deliveries.get(id);
    if (!delivery) return [];
    const frame = delivery.frame;
    const to = peers.filter((p) => !delivery.acked.has(p));
    if (!to.length) return to; // nobody to try: it stays lost
    delivery.lost.clear();
    for (const p of to) {
      delivery.to.add(p);
      this.queue(p, frame);
    }
    return to;
  }

  /** The peer came back under a new id: carry its queue and what was shown over, and send
   * it what was lost when it left. Returns the ids of those messages. */
  rename(from, to) {
    const out = this.outbox.get(from), seen = this.seen.get(from) ?? this.departed.get(from);
    this.outbox.delete(from);
    this.seen.delete(from);
    this.departed.delete(from);
    // What was queued for the old id goes first, in its order.
    if (out) this.outbox.set(to, new Map([...out, ...(this.outbox.get(to) ?? [])]));
    if (seen) this.seen.set(to, new Set([...seen, ...(this.seen.get(to) ?? [])]));
    const again = [];
    for (const [id, delivery] of this.deliveries) {
      if (delivery.to.delete(from)) delivery.to.add(to);
      if (delivery.acked.delete(from)) delivery.acked.add(to);
      // Lost when it left: it is back, so it goes after all.
      if (delivery.lost.delete(from)) {
        delivery.to.add(to);
        this.queue(to, delivery.frame);
        again.push(id);
      }
    }
    return again;
  }

  /** Number of messages waiting for the peer's ack. */
  pending(peer) {
    return this.outbox.get(peer)?.size ?? 0;
  }

  /**
   * Handle a parsed frame from `peer`. Returns the event to show: `{t:'msg', …, dup}` (dup
   * true when already shown; `ts` clamped), `{t:'ack', id}` on first ack (its
   * `delivery(id)` updated), `{t:'flood', first}` for a message or offer over the peer's
   * allowance (`first` at most once per FLOOD_NOTICE_MS), the frame itself for other kinds, or null.
   */
  receive(peer, m) {
    if (m.t === 'msg' || m.t === 'file-offer') {
      const now = this.now();
      if (!this.allowances.has(peer)) this.allowances.set(peer, new Allowance(now));
      const allowance = this.allowances.get(peer);
      if (!allowance.take(now)) {
        const first = now - allowance.noticed >= FLOOD_NOTICE_MS;
        if (first) allowance.noticed = now;
        return { t: 'flood', first };
      }
    }
    if (m.t === 'msg') {
      this.send(peer, { t: 'ack', id: m.id });
      if (!this.seen.has(peer)) this.seen.set(peer, new Set());
      const shown = this.seen.get(peer);
      const dup = shown.has(m.id);
      shown.add(m.id);
      if (shown.size > SEEN_MAX) shown.delete(shown.values().next().value);
      return { ...m, ts: clampTime(m.ts, this.now()), dup };
    }
    if (m.t === 'ack') {
      if (!this.outbox.get(peer)?.delete(m.id)) return null;
      this.deliveries.get(m.id)?.acked.add(peer);
      return m;
    }
    return m;
  }
}
