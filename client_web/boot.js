/** Starts what the first message waits for while the other modules load: the page's
 * certificate and, on a link that names room and name, the signaling socket and its join.
 * index.html runs it first (async); mesh.js and signaling.js import the same instance. */

performance.mark('confide:boot'); // confide:* marks: bench/bench_client.py

/** One certificate for all of this page's connections (so one fingerprint). */
export const certificate = RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' });

const q = new URLSearchParams(location.search);
const join = { type: 'join', room: q.get('room') ?? '', name: q.get('name') };
let early = null;
if (/^[A-Za-z0-9_-]{1,64}$/.test(join.room) && join.name) {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  early = { ws, frames: [] };
  ws.onopen = () => { performance.mark('confide:socket-open'); ws.send(JSON.stringify(join)); };
  ws.onmessage = ({ data }) => early.frames.push(data);
}

/** Once: the early `{ws, frames}` (join sent or sent on open) if it joined `room` as
 * `name` and is not closing, else null (and a socket nobody will use is closed). */
export function takeEarly(room, name) {
  const e = early;
  early = null;
  if (e && join.room === room && join.name === name && e.ws.readyState < 2) return e;
  e?.ws.close(1000);
  return null;
}
