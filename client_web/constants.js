/** Facts the client's modules share, written once. */

/** A room name (docs/PROTOCOL.md "join"): what the server accepts. */
export const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** A new room's name: 128 random bits in base64url (22 characters), not guessable at
 * any join rate (issue 9 item 10). */
export const newRoomName = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16)))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

/** The signaling WebSocket's URL for this page's origin. */
export const wsUrl = (loc = location) => `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;

/** Reconnect backoff (docs/vectors.json client_rules.reconnect_backoff): attempt n waits
 * min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * BACKOFF_FACTOR ** n), times a jitter in JITTER. */
export const BACKOFF_BASE_MS = 250;
export const BACKOFF_FACTOR = 2;
export const BACKOFF_MAX_MS = 8000;
export const JITTER = [0.8, 1.2];
/** Frames held while the socket is down (client_rules.signaling_queue_max); newer ones
 * are dropped and counted in `dropped`. */
export const SIGNALING_QUEUE_MAX = 200;

/** Milliseconds before reconnect attempt `n` (0-based); `random()` in [0, 1). */
export function backoff(n, random = Math.random) {
  const [low, high] = JITTER;
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * BACKOFF_FACTOR ** n) * (low + random() * (high - low));
}
