/** The room's mesh: one Peer per remote peer, names bound to ids by the server's peer
 * list, signaling payloads sealed in password rooms. Emits `peers` (list changed), `open`,
 * `close`, `message` ({peer, data}), `channel` ({peer, channel}), `system` (text),
 * `refused` ({peer, reason}), `merge` ({from, to}: the same browser under a new id),
 * `gone` (id), `signal` ('up'|'down'), `error` (server error frame). */
import { Signaling } from './signaling.js';
import { Peer, sessionOf } from './peer.js';
import { isSealed, seal, open } from './crypto.js';
import { certificate } from './boot.js';
import { Emitter } from './emitter.js';
import { shownText } from './chat.js';

/** Peers that left whose names (for late events about them) and certificate fingerprints
 * (to know them when they come back under a new id) are kept, at most this many. */
const DEPARTED_MAX = 256;

export class Mesh extends Emitter {
  /** @param {{url: string, room: string, name: string, key?: CryptoKey, relay?: boolean}} options */
  constructor(options) {
    super();
    Object.assign(this, options, { id: null, peers: new Map(), departed: new Map(), departedFps: new Map(), chains: new Map(), refused: new Set(), iceServers: [] });
  }

  /** Connect; resolves once the certificate is ready (the WebSocket opens meanwhile). */
  async start() {
    const sig = (this.sig = new Signaling(this.url, this.room, this.name));
    const ready = certificate.then((cert) => {
      this.cert = cert;
      const fp = cert.getFingerprints().find((f) => f.algorithm === 'sha-256');
      this.localFp = 'sha-256 ' + fp.value.toUpperCase();
    });
    sig.addEventListener('frame', (e) => ready.then(() => this.frame(e.detail)));
    sig.addEventListener('down', () => this.emit('signal', 'down'));
    sig.connect();
    await ready;
  }

  /** Peer record `{id, name, peer}` by id. */
  get(id) {
    return this.peers.get(id);
  }

  /** The display name of peer `id`, also for a while after it left. */
  nameOf(id) {
    return this.peers.get(id)?.name ?? this.departed.get(id) ?? 'someone';
  }

  /** Bring back what died while the page was away (hidden, frozen, offline): the signaling
   * socket (resuming our id), and each connection that is closed (by us, or by the OS under
   * us) or whose chat channel closed; a disconnected one restarts ICE. Cheap when all is
   * well: it only reads states. */
  recover() {
    this.sig?.wake();
    // Offers made now would wait for the welcome, sealed (password rooms) with an id
    // that may have changed by then: with the socket down, the welcome recovers them.
    if (this.sig?.up) this.recoverPeers();
  }

  recoverPeers() {
    for (const [id, record] of this.peers) {
      const peer = record.peer;
      if (!peer || record.stale) continue; // refused (password), or waiting to be merged
      if (peer.pc.signalingState === 'closed' || peer.chat?.readyState === 'closed') this.reconnect(id);
      else if (peer.pc.iceConnectionState === 'disconnected') peer.restart();
    }
  }

  frame(f) {
    if (f.type === 'ice-servers') {
      // TURN credentials renewed before they expire (PROTOCOL.md "ice-servers"): new
      // connections and ICE restarts of the current ones use them.
      this.iceServers = f.iceServers;
      for (const record of this.peers.values()) {
        const pc = record.peer?.pc;
        if (!pc || pc.signalingState === 'closed') continue;
        try { pc.setConfiguration({ ...pc.getConfiguration(), iceServers: f.iceServers }); } catch { /* a list the browser refuses: keep the old one */ }
      }
      return;
    }
    if (f.type === 'welcome') {
      this.id = f.id;
      this.iceServers = f.iceServers;
      this.emit('signal', 'up');
      for (const p of f.peers) {
        const record = this.peers.get(p.id);
        if (!record) this.connect(p, true);
        else if (['failed', 'disconnected'].includes(record.peer?.pc.iceConnectionState)) record.peer.restart();
      }
      // A fresh id (the server lost our token, e.g. it restarted): connections that still
      // work stay until the same browser (same certificate) is reached under its new id.
      for (const [id, record] of this.peers) {
        if (f.peers.some((p) => p.id === id) || f.resumed) continue;
        if (record.peer?.chat?.readyState === 'open') record.stale = true;
        else this.drop(id, record);
      }
      this.recoverPeers();
    } else if (f.type === 'peer-joined') {
      this.refused.delete(f.peer.id);
      const known = this.peers.get(f.peer.id);
      const name = shownText(f.peer.name);
      if (known) known.name = name; // announced again: keep its connection
      else this.peers.set(f.peer.id, { id: f.peer.id, name, peer: null });
      this.emit('system', `${name} joined`);
      this.emit('peers');
    } else if (f.type === 'peer-left') {
      const record = this.peers.get(f.id);
      if (record) this.drop(f.id, record);
    } else if (['offer', 'answer', 'candidate'].includes(f.type) && this.peers.has(f.from)) {
      const chain = (this.chains.get(f.from) || Promise.resolve()).then(() => this.incoming(f)).catch((e) => console.warn('signal', e));
      this.chains.set(f.from, chain);
    } else if (f.type === 'error') {
      this.emit('error', f);
    }
  }

  drop(id, record) {
    record.peer?.close();
    this.peers.delete(id);
    this.departed.set(id, record.name);
    if (this.departed.size > DEPARTED_MAX) this.departed.delete(this.departed.keys().next().value);
    if (record.peer?.remoteFp) this.departedFps.set(record.peer.remoteFp, id);
    if (this.departedFps.size > DEPARTED_MAX) this.departedFps.delete(this.departedFps.keys().next().value);
    this.emit('system', `${record.name} left`);
    this.emit('gone', id);
    this.emit('peers');
  }

  /** Start (initiator) or prepare the connection to peer `p`. */
  connect(p, initiator) {
    const config = { iceServers: this.iceServers, certificates: [this.cert], ...(this.relay && { iceTransportPolicy: 'relay' }) };
    const peer = new Peer({ id: p.id, polite: this.id < p.id, config, localFp: this.localFp, initiator });
    const record = { id: p.id, name: shownText(p.name), peer };
    this.peers.set(p.id, record);
    peer.addEventListener('sdp', (e) => this.outgoing(p.id, e.detail.type, e.detail.payload));
    peer.addEventListener('open', () => {
      if (record.peer !== peer) return;
      for (const [id, other] of this.peers) {
        if (other.stale && peer.remoteFp && other.peer?.remoteFp === peer.remoteFp) {
          other.peer.close();
          this.peers.delete(id);
          this.emit('merge', { from: id, to: p.id });
          // One only: two tabs of one browser share its kept certificate (identity.js),
          // and the other tab's record waits for that tab.
          break;
        }
      }
      // A peer that left (its id forgotten by the server) and is back: the same device.
      const before = peer.remoteFp && this.departedFps.get(peer.remoteFp);
      if (before) {
        this.departedFps.delete(peer.remoteFp);
        this.emit('merge', { from: before, to: p.id });
      }
      this.emit('open', p.id);
    });
    peer.addEventListener('close', () => record.peer === peer && this.emit('close', p.id));
    peer.addEventListener('message', (e) => this.emit('message', { peer: p.id, data: e.detail }));
    peer.addEventListener('channel', (e) => this.emit('channel', { peer: p.id, channel: e.detail }));
    peer.addEventListener('state', () => {
      if (record.stale && ['failed', 'closed'].includes(peer.pc.connectionState)) this.drop(p.id, record);
      this.emit('peers');
    });
    this.emit('peers');
    return record;
  }

  /** Close and make again the connection to `id` (the other side sees a new session). */
  reconnect(id) {
    const record = this.peers.get(id);
    if (!record) return;
    record.peer?.close();
    this.connect(record, true);
  }

  async outgoing(to, type, payload) {
    if (this.key) payload = await seal(this.key, type, this.id, to, payload);
    this.sig.send({ type, to, [type === 'candidate' ? 'candidate' : 'sdp']: payload });
  }

  async incoming(f) {
    const type = f.type, from = f.from;
    if (this.refused.has(from)) return;
    let payload = type === 'candidate' ? f.candidate : f.sdp;
    let why = null;
    if (this.key && !isSealed(payload)) why = 'this peer did not use the room password';
    else if (!this.key && isSealed(payload)) why = 'this room needs a password';
    else if (this.key) payload = await open(this.key, type, from, this.id, payload).catch(() => ((why = 'wrong password'), null));
    if (!why && (type === 'candidate' ? payload !== null && typeof payload !== 'object' : typeof payload !== 'string')) why = 'bad payload';
    let record = this.peers.get(from);
    if (why) {
      this.refused.add(from);
      record.peer?.close();
      record.peer = null;
      // Tell the offerer too (PROTOCOL.md "Password rooms"): one end-of-candidates in our form.
      if (type === 'offer') this.outgoing(from, 'candidate', null);
      this.emit('refused', { peer: from, reason: why });
      this.emit('peers');
      return;
    }
    if (type === 'offer' && (!record.peer || (record.peer.session && record.peer.session !== sessionOf(payload)))) {
      record.peer?.close();
      record = this.connect(record, false);
    }
    await record.peer?.signal(type, payload);
  }

  /** Send a chat frame to a peer; false when its channel is not open. */
  send(id, frame) {
    return !!this.peers.get(id)?.peer?.send(frame);
  }

  leave() {
    this.sig?.leave();
    for (const record of this.peers.values()) record.peer?.close();
  }
}
