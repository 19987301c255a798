/** Password rooms (docs/PROTOCOL.md "Password rooms"): PBKDF2 → AES-256-GCM sealing of the
 * sdp/candidate payloads that pass through the server. Needs crypto.subtle (secure context). */
export const ITERATIONS = 600000;
const te = new TextEncoder();
const b64 = (u8) => btoa(String.fromCharCode(...u8));
const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const aad = (type, from, to) => te.encode(`confide-signal-v1|${type}|${from}|${to}`);

/** The 32 raw key bytes for a password and a room. */
export async function deriveBytes(password, room) {
  const base = await crypto.subtle.importKey('raw', te.encode(password), 'PBKDF2', false, ['deriveBits']);
  const salt = te.encode('confide-room-v1|' + room);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: ITERATIONS }, base, 256));
}

/** An AES-GCM CryptoKey from raw bytes. */
export const importKey = (raw) => crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);

/** Whether a payload is a sealed one. */
export const isSealed = (v) => !!v && typeof v === 'object' && v.alg === 'A256GCM' && typeof v.iv === 'string' && typeof v.ct === 'string';

/** Seal a payload value (string sdp, candidate object or null) for `to`. */
export async function seal(key, type, from, to, value, iv = crypto.getRandomValues(new Uint8Array(12))) {
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(type, from, to) }, key, te.encode(JSON.stringify(value)));
  return { alg: 'A256GCM', iv: b64(iv), ct: b64(new Uint8Array(ct)) };
}

/** Open a sealed payload; rejects when the password (or the addressing) differs. */
export async function open(key, type, from, to, sealed) {
  const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: unb64(sealed.iv), additionalData: aad(type, from, to) }, key, unb64(sealed.ct));
  return JSON.parse(new TextDecoder().decode(pt));
}
