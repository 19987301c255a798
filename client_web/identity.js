/** This browser's DTLS certificate, kept in IndexedDB (an RTCCertificate is stored by
 * structured clone, W3C webrtc-pc §4.10.2) so that a person keeps one fingerprint, and so
 * one safety number with each peer, across reloads (issue 9 item 12). */

/** Lifetime asked for a new certificate; browsers may give less (`expires` says). */
export const LIFETIME_MS = 365 * 24 * 3600 * 1000;
/** A certificate with less than this left is replaced before it expires. */
export const RENEW_BEFORE_MS = 7 * 24 * 3600 * 1000;
const DB = 'confide-identity', STORE = 'certificates', KEY = 'dtls';

const generate = () => RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256', expires: LIFETIME_MS });

const request = (req) => new Promise((resolve, reject) => { req.onsuccess = () => resolve(req.result); req.onerror = () => reject(req.error); });

function open() {
  const req = indexedDB.open(DB, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE);
  return request(req);
}

/** Whether `cert` is still good for a while at `now`. */
export const fresh = (cert, now = Date.now()) => !!cert && cert.expires - now > RENEW_BEFORE_MS;

/** The stored certificate, or a new one (stored) when there is none or it expires soon.
 * Without IndexedDB (some private modes) a new one for this page only. */
export async function storedCertificate() {
  let db;
  try {
    db = await open();
    const kept = await request(db.transaction(STORE).objectStore(STORE).get(KEY));
    if (fresh(kept)) return kept;
  } catch (e) {
    console.warn('stored certificate', e);
  }
  const cert = await generate();
  if (db) await request(db.transaction(STORE, 'readwrite').objectStore(STORE).put(cert, KEY)).catch((e) => console.warn('storing the certificate', e));
  return cert;
}
