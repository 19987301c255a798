/** The peers panel: one card per peer with its connection state, safety number and
 * verification; the loud warning when a verified number changed; diagnostics of the cards
 * that are open; the connectivity test. */
import { el, $, system, batched } from './ui.js';

/** localStorage key prefix of a verified peer: `confide-verified:<its certificate
 * fingerprint>` → `{name, room}` as they were when it was verified. Keyed by the
 * certificate, not the name: another "Bob" is not this one (issue 9 item 12). */
const VERIFIED = 'confide-verified:';
/** Milliseconds between two refreshes of the diagnostics of open cards. */
export const DIAG_MS = 2000;

function verifiedAs(fp) {
  try { return fp ? JSON.parse(localStorage.getItem(VERIFIED + fp)) : null; } catch { return null; }
}

/** Whether this device verified a certificate that went by `name` in `room`. */
function verifiedUnder(name, room) {
  for (let i = 0; i < localStorage.length; i++) {
    const key = localStorage.key(i);
    const seen = key.startsWith(VERIFIED) ? verifiedAs(key.slice(VERIFIED.length)) : null;
    if (seen?.name === name && seen?.room === room) return true;
  }
  return false;
}

/** What this device verified of a peer of `room`: `{verified}` (its certificate),
 * `{changed}` (not its certificate, but one that went by its name in this room). */
export function verification(record, room) {
  const fp = record.peer?.safety ? record.peer.remoteFp : null;
  const verified = !!verifiedAs(fp);
  return { verified, changed: !!fp && !verified && verifiedUnder(record.name, room) };
}

/** One peer's card. */
function card(record, view) {
  const peer = record.peer;
  const li = el('li', { 'data-id': record.id });
  li.append(el('strong', {}, record.name), ' ', el('span', { class: 'state' }, peer ? peer.pc.connectionState : 'refused'));
  if (view.verified) li.append(' ', el('span', { class: 'ok' }, '✔ verified'));
  if (view.changed) li.append(' ', el('span', { class: 'bad' }, '⚠ safety number changed'));
  // Open and still no number: say so, rather than "…" for ever (issue 9 item 13).
  const number = peer?.safety || (peer?.chat?.readyState === 'open' ? 'This browser cannot show a safety number for this connection.' : '…');
  li.append(el('div', { class: 'small' }, 'Safety number: ', el('output', { 'aria-label': `Safety number with ${record.name}` }, number)));
  if (peer?.safety) li.append(el('button', { type: 'button', disabled: !isSecureContext, onclick: view.verify }, 'Mark as verified'));
  li.append(' ', el('button', { type: 'button', onclick: view.dm }, 'Message privately'));
  const details = el('details', { open: view.open || null, ontoggle: () => view.toggle(details.open) },
    el('summary', {}, 'Details'),
    el('p', { class: 'small diag' }, view.diag || ''),
    el('p', { class: 'small' }, 'Your certificate: ', el('code', { 'aria-label': 'Your certificate' }, view.localFp)),
    el('p', { class: 'small' }, 'Their certificate: ', el('code', { 'aria-label': `Certificate of ${record.name}` }, peer?.remoteFp || '…')),
    el('button', { type: 'button', onclick: view.reconnect }, 'Reconnect'));
  li.append(details);
  return li;
}

/** The list `#peers` of `mesh`'s peers; `address(id)` points the composer at one peer;
 * `diagnostics()` loads diagnostics.js. */
export class PeersView {
  constructor(mesh, { address, diagnostics }) {
    Object.assign(this, { mesh, address, diagnostics });
    /** @type {Map<string, {open?: boolean, diag?: string, opened?: boolean}>} peer id → card state */
    this.cards = new Map();
    this.render = batched(() => this.draw());
    mesh.addEventListener('peers', this.render);
    setInterval(() => this.refresh(), DIAG_MS);
    $('probe').onclick = () => this.probe();
  }

  cardOf(id) {
    if (!this.cards.has(id)) this.cards.set(id, {});
    return this.cards.get(id);
  }

  draw() {
    $('peers').replaceChildren(...[...this.mesh.peers.values()].map((record) => {
      const state = this.cardOf(record.id);
      return card(record, {
        ...state, ...verification(record, this.mesh.room), localFp: this.mesh.localFp,
        verify: () => this.verify(record),
        dm: () => this.address(record.id),
        toggle: (open) => { state.open = open; },
        reconnect: () => this.mesh.reconnect(record.id),
      });
    }));
  }

  verify(record) {
    localStorage.setItem(VERIFIED + record.peer.remoteFp, JSON.stringify({ name: record.name, room: this.mesh.room }));
    system(`You marked ${record.name}'s safety number as verified`);
    this.render();
  }

  /** Peer `id`'s chat channel opened: the warning if its number changed, else a notice
   * the first time. */
  opened(id) {
    const record = this.mesh.get(id), state = this.cardOf(id);
    const { verified, changed } = verification(record, this.mesh.room);
    if (changed) system(`WARNING: the safety number with ${record.name} changed since you verified it. Someone may be in the middle.`, true);
    else if (!state.opened) system(`Connected to ${record.name}${verified ? ' (verified)' : ''}`);
    state.opened = true;
    this.render();
  }

  async refresh() {
    for (const [id, state] of this.cards) {
      const record = this.mesh.get(id);
      if (state.open && record?.peer) {
        const { peerStats, describe } = await this.diagnostics();
        state.diag = describe(await peerStats(record.peer.pc));
      }
    }
    if ([...this.cards.values()].some((state) => state.open)) this.render();
  }

  async probe() {
    await (await this.diagnostics()).showConnectivity($('probeout'), this.mesh.iceServers);
  }
}
