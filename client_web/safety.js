/** Safety numbers (docs/PROTOCOL.md "Safety numbers"): from the two DTLS certificates. */
import { sha256, hex } from './sha256.js';

/** `sha-256 AA:BB:…` from a fingerprint string in any case. */
export function normalise(fp) {
  const [alg, value] = fp.trim().split(/\s+/);
  return `${alg.toLowerCase()} ${value.toUpperCase()}`;
}

/** Fingerprint of a certificate's DER (ArrayBuffer), normalised. */
export const fingerprintOfDer = (der) => 'sha-256 ' + hex(sha256(der)).toUpperCase().match(/../g).join(':');

/** The six groups of five digits, equal on both sides whatever the order of arguments. */
export function safetyNumber(local, remote) {
  const [a, b] = [normalise(local), normalise(remote)].sort();
  const d = sha256(`confide-safety-v1\n${a}\n${b}`);
  const groups = [];
  for (let i = 0; i < 6; i++) {
    let n = 0;
    for (let j = 5 * i; j < 5 * i + 5; j++) n = n * 256 + d[j];
    groups.push(String(n % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}

/** The lone `a=fingerprint:sha-256` of an SDP, normalised, or null unless the SDP carries
 * exactly one fingerprint line: with several (a middle-man may add one, and browsers
 * differ in which they check) nobody can say which certificate the DTLS session used. */
export function sdpFingerprint(sdp) {
  const lines = [...sdp.matchAll(/^a=fingerprint:(.*?)\r?$/gm)];
  if (lines.length !== 1) return null;
  const [alg, value, extra] = lines[0][1].trim().split(/\s+/);
  return alg?.toLowerCase() === 'sha-256' && /^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/.test(value ?? '') && !extra ? normalise(`${alg} ${value}`) : null;
}

/** The peer's certificate fingerprint: from the certificate the DTLS transport shows where
 * the browser has `getRemoteCertificates` (Firefox before 153 and older Safari do not),
 * else the remote SDP's lone fingerprint line, else null (no safety number then). */
export function remoteFingerprint(transport, remoteSdp) {
  if (typeof transport?.getRemoteCertificates === 'function') {
    const [der] = transport.getRemoteCertificates();
    return der ? fingerprintOfDer(der) : null;
  }
  return remoteSdp ? sdpFingerprint(remoteSdp) : null;
}
