/** One RTCPeerConnection with "perfect negotiation" (WebRTC samples, perfect-negotiation):
 * the polite side rolls back on collision, the impolite side ignores the other's offer.
 * Emits `open`, `close`, `message` (detail: data), `channel` (detail: RTCDataChannel),
 * `state`, `sdp` (detail: {type, payload}) for the signaling side to deliver. */
import { remoteFingerprint, safetyNumber } from './safety.js';
import { Emitter } from './emitter.js';

/** Milliseconds in `disconnected` before an ICE restart. */
export const RESTART_AFTER = 3000;

/** The `o=` session id of an SDP, which changes only with a new connection. */
export const sessionOf = (sdp) => /^o=\S+ (\d+)/m.exec(sdp)?.[1] ?? '';

/** Whether an offer arriving now must be ignored (the impolite side in a collision). */
export const ignoreOffer = ({ polite, makingOffer, stable, settingAnswer }) => !polite && (makingOffer || !(stable || settingAnswer));

export class Peer extends Emitter {
  /** @param {{id: string, polite: boolean, config: RTCConfiguration, localFp: string, initiator: boolean}} options */
  constructor(options) {
    super();
    Object.assign(this, options, { makingOffer: false, ignoring: false, settingAnswer: false, chat: null, session: null, safety: null, remoteFp: null });
    const pc = (this.pc = new RTCPeerConnection(options.config));
    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        performance.mark('confide:offer');
        this.emit('sdp', { type: pc.localDescription.type, payload: pc.localDescription.sdp });
      } catch (e) {
        console.warn('negotiation', e);
      } finally {
        this.makingOffer = false;
      }
    };
    pc.onicecandidate = ({ candidate }) => this.emit('sdp', { type: 'candidate', payload: candidate?.candidate ? candidate.toJSON() : null });
    pc.ondatachannel = ({ channel }) => this.emit('channel', channel);
    pc.oniceconnectionstatechange = () => {
      const s = pc.iceConnectionState;
      performance.mark(`confide:ice-${s}`);
      clearTimeout(this.timer);
      if (s === 'failed') this.restart();
      if (s === 'disconnected') this.timer = setTimeout(() => pc.iceConnectionState === 'disconnected' && this.restart(), RESTART_AFTER);
      this.emit('state', s);
    };
    pc.onconnectionstatechange = () => this.emit('state', pc.connectionState);
    if (options.initiator) this.openChat();
  }

  restart() {
    if (this.pc.signalingState !== 'closed') this.pc.restartIce();
  }

  openChat() {
    const ch = (this.chat = this.pc.createDataChannel('chat', { negotiated: true, id: 0 }));
    ch.onopen = () => {
      performance.mark('confide:channel-open');
      try {
        this.remoteFp = remoteFingerprint(this.pc.sctp?.transport, this.remoteSdp);
      } catch (e) {
        console.warn('remote certificate', e);
      }
      this.safety = this.remoteFp ? safetyNumber(this.localFp, this.remoteFp) : null;
      this.emit('open');
    };
    ch.onclose = () => this.emit('close');
    ch.onmessage = ({ data }) => this.emit('message', data);
  }

  /** Send a frame on the chat channel; false when it is not open. */
  send(obj) {
    if (this.chat?.readyState !== 'open') return false;
    this.chat.send(JSON.stringify(obj));
    return true;
  }

  /** Handle a (decrypted) offer, answer or candidate from the peer. Call in arrival order. */
  async signal(type, payload) {
    const pc = this.pc;
    if (type === 'candidate') {
      try {
        await pc.addIceCandidate(payload ?? undefined);
      } catch (e) {
        if (!this.ignoring) console.warn('candidate', e);
      }
      return;
    }
    this.ignoring = type === 'offer' && ignoreOffer({ polite: this.polite, makingOffer: this.makingOffer, stable: pc.signalingState === 'stable', settingAnswer: this.settingAnswer });
    if (this.ignoring) return;
    this.settingAnswer = type === 'answer';
    this.session = sessionOf(payload);
    this.remoteSdp = payload; // as received: a browser may drop a second fingerprint line
    await pc.setRemoteDescription({ type, sdp: payload });
    this.settingAnswer = false;
    if (!this.chat) this.openChat();
    if (type === 'offer') {
      await pc.setLocalDescription();
      performance.mark('confide:answer');
      this.emit('sdp', { type: 'answer', payload: pc.localDescription.sdp });
    }
  }

  close() {
    clearTimeout(this.timer);
    this.pc.close();
    this.emit('close');
  }
}
