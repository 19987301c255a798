/** Connection diagnostics from getStats, and a candidate-gathering connectivity test. */

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

/** Gather candidates against `iceServers` (at most `ms`); resolves to the set of types found. */
export function testConnectivity(iceServers, ms = 5000) {
  const pc = new RTCPeerConnection({ iceServers });
  const types = new Set();
  pc.createDataChannel('probe');
  return new Promise((resolve) => {
    const done = () => { clearTimeout(t); pc.close(); resolve(types); };
    const t = setTimeout(done, ms);
    pc.onicecandidate = ({ candidate }) => (candidate?.candidate ? types.add(candidate.type) : done());
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch(done);
  });
}
