/** Facts the client's modules share, written once. */

/** A room name (docs/PROTOCOL.md "join"): what the server accepts. */
export const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The signaling WebSocket's URL for this page's origin. */
export const wsUrl = (loc = location) => `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
