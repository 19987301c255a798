/**
 * Connection diagnostics from getStats, and "Test connectivity": candidate gathering
 * against the server's STUN responder (on its two addresses when it runs RFC 5780) and
 * against each TURN URL alone, read in plain words.
 */

/** Summary of a connection: state, selected pair's candidate types and protocol, RTT, bytes. */
export async function peerStats(pc) {
  const stats = await pc.getStats();
  const out = { state: pc.connectionState, ice: pc.iceConnectionState };
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (pair) {
    const l = stats.get(pair.localCandidateId), r = stats.get(pair.remoteCandidateId);
    Object.assign(out, {
      local: l?.candidateType, remote: r?.candidateType, protocol: l?.protocol,
      rtt: pair.currentRoundTripTime, sent: pair.bytesSent, received: pair.bytesReceived,
      relayed: l?.candidateType === 'relay' || r?.candidateType === 'relay',
    });
  }
  return out;
}

/** One line of text for a summary. */
export function describe(s) {
  const parts = [s.state];
  if (s.local) {
    parts.push(`${s.local} ↔ ${s.remote} over ${s.protocol}`);
    if (s.relayed) parts.push('relayed (TURN)');
    if (s.rtt !== undefined) parts.push(`RTT ${Math.round(s.rtt * 1000)} ms`);
    parts.push(`${s.sent} B sent, ${s.received} B received`);
  }
  return parts.join(' · ');
}

export const DIRECT_WORKS = 'direct connections will work with most people';
export const NEEDS_RELAY = 'you will need the relay';

/** Candidates gathered for `config` within `ms` (an RTCPeerConnection that sends nothing). */
function gather(config, ms) {
  const pc = new RTCPeerConnection(config);
  const found = [];
  pc.createDataChannel('probe');
  return new Promise((resolve) => {
    const done = () => { clearTimeout(t); pc.close(); resolve(found); };
    const t = setTimeout(done, ms);
    pc.onicecandidate = ({ candidate }) => (candidate?.candidate ? found.push(candidate) : done());
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch(done);
  });
}

/** The set of candidate types gathered against `iceServers` (at most `ms`). */
export async function testConnectivity(iceServers, ms = 5000) {
  return new Set((await gather({ iceServers }, ms)).map((c) => c.type));
}

const urlsOf = (server) => [server.urls].flat().filter((u) => typeof u === 'string');

/**
 * Reads a NAT from what a browser can see.  The server-reflexive address asked from the
 * server's two STUN addresses (RFC 5780 OTHER-ADDRESS, given by /api/nat-check) is the
 * same for an endpoint-independent mapping and differs for a symmetric one (RFC 4787
 * §4.1); the browser keeps one srflx candidate when they are equal.  Filtering cannot be
 * tested from a page.  Each TURN URL is tried alone, relay candidates only.
 * @param {RTCIceServer[]} iceServers what the server handed out
 * @param {{stun: ?string, stunOther: ?string, address: ?string}} info the server's /api/nat-check
 */
export async function natCheck(iceServers, info, ms = 5000) {
  const stun = [info.stun, info.stunOther].filter(Boolean);
  const turns = iceServers.flatMap((s) => urlsOf(s).filter((u) => u.startsWith('turn'))
    .map((url) => ({ url, server: { urls: [url], username: s.username, credential: s.credential } })));
  const [direct, ...relayed] = await Promise.all([
    gather({ iceServers: stun.length ? [{ urls: stun }] : [] }, ms),
    ...turns.map((t) => gather({ iceServers: [t.server], iceTransportPolicy: 'relay' }, ms)),
  ]);
  const srflx = direct.filter((c) => c.type === 'srflx');
  const mapped = new Set(srflx.map((c) => `${c.address}:${c.port}`));
  const turn = Object.fromEntries(turns.map((t, i) => [t.url, relayed[i].some((c) => c.type === 'relay')]));
  // A host candidate with the address the server saw: no NAT (the browser then drops the
  // srflx candidate as a duplicate of the host one).
  const isPublic = Boolean(info.address) && direct.some((c) => c.type === 'host' && c.address === info.address);
  const mapping = isPublic ? 'endpoint-independent' : !srflx.length ? null
    : mapped.size > 1 ? 'endpoint-dependent' : stun.length > 1 ? 'endpoint-independent' : null;
  return {
    types: new Set([...direct, ...relayed.flat()].map((c) => c.type)),
    udp: srflx.length > 0 || isPublic,
    isPublic,
    mapping,
    portPreserving: srflx.length ? srflx.every((c) => c.port === c.relatedPort) : null,
    turn,
    advice: mapping === 'endpoint-independent' ? DIRECT_WORKS : NEEDS_RELAY,
  };
}

/** What {@link natCheck} found about the NAT, in one sentence. */
export function natSentence(r) {
  if (r.isPublic) return 'Your address is public: there is no NAT between you and the server.';
  if (r.mapping === 'endpoint-dependent') return 'Your NAT gives you a new address for each destination (symmetric).';
  if (r.mapping === 'endpoint-independent') {
    return `Your NAT keeps one address for every destination${r.portPreserving ? ' and keeps your port' : ''}.`;
  }
  if (r.udp) return 'The server cannot tell how your NAT maps (it has no second STUN address).';
  return 'No STUN answer: UDP is blocked on the way.';
}

/** Runs {@link natCheck} and writes what it found into `out` (as text). */
export async function showConnectivity(out, iceServers) {
  out.textContent = 'testing…';
  out.style.whiteSpace = 'pre-line';
  const info = await fetch('/api/nat-check').then((r) => r.json()).catch(() => ({}));
  const r = await natCheck(iceServers, info);
  const turnLines = Object.entries(r.turn).map(([url, ok]) => `${url}: ${ok ? 'answers' : 'no answer'}.`);
  out.textContent = [
    `Found: ${[...r.types].join(', ') || 'none'}. ${r.udp ? 'STUN works.' : 'No STUN answer.'} ${Object.values(r.turn).some(Boolean) ? 'TURN works.' : 'No TURN relay.'}`,
    natSentence(r), ...turnLines, `In short: ${r.advice}.`,
  ].join('\n');
}
