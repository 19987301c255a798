/** Starts what the first message waits for while the other modules load: the page's
 * certificate (kept across reloads, see identity.js) and, on a room link, the signaling
 * socket, not yet joined: joining waits for the person's click (issue 9 item 11).
 * index.html runs it first (async); mesh.js and signaling.js import the same instance. */
import { ROOM_PATTERN, wsUrl } from './constants.js';
import { storedCertificate } from './identity.js';

performance.mark('confide:boot'); // confide:* marks: bench/bench_client.py

/** One certificate for all of this page's connections (so one fingerprint). */
export const certificate = storedCertificate();

let early = ROOM_PATTERN.test(new URLSearchParams(location.search).get('room') ?? '') ? new WebSocket(wsUrl()) : null;
early?.addEventListener('open', () => performance.mark('confide:socket-open'), { once: true });

/** Once: the early socket (open or opening, nothing sent on it yet), else null. */
export function takeEarly() {
  const ws = early;
  early = null;
  if (ws && ws.readyState < 2) return ws;
  ws?.close(1000);
  return null;
}
