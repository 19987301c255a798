/** The peers panel: one card per peer with its connection state, safety number and
 * verification; the loud warning when a verified number changed; diagnostics of the cards
 * that are open; the connectivity test. */
import { el, $, system, batched } from './ui.js';

/** localStorage key prefix of a verified safety number. */
const VERIFIED = 'confide-verified:';
/** Milliseconds between two refreshes of the diagnostics of open cards. */
export const DIAG_MS = 2000;

/** What this device verified of a peer: `{known}` (something was verified), `{verified}`
 * (the number shown now), `{changed}` (a number was verified and this one differs). */
export function verification(record) {
  const stored = localStorage.getItem(VERIFIED + record.name);
  const safety = record.peer?.safety;
  return { known: !!stored, verified: !!stored && stored === safety, changed: !!(stored && safety && stored !== safety) };
}

/** One peer's card. */
function card(record, view) {
  const peer = record.peer;
  const li = el('li', { 'data-id': record.id });
  li.append(el('strong', {}, record.name), ' ', el('span', { class: 'state' }, peer ? peer.pc.connectionState : 'refused'));
  if (view.verified) li.append(' ', el('span', { class: 'ok' }, '✔ verified'));
  if (view.changed) li.append(' ', el('span', { class: 'bad' }, '⚠ safety number changed'));
  li.append(el('div', { class: 'small' }, 'Safety number: ', el('output', { 'aria-label': `Safety number with ${record.name}` }, peer?.safety || '…')));
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
        ...state, ...verification(record), localFp: this.mesh.localFp,
        verify: () => this.verify(record),
        dm: () => this.address(record.id),
        toggle: (open) => { state.open = open; },
        reconnect: () => this.mesh.reconnect(record.id),
      });
    }));
  }

  verify(record) {
    localStorage.setItem(VERIFIED + record.name, record.peer.safety);
    system(`You marked ${record.name}'s safety number as verified`);
    this.render();
  }

  /** Peer `id`'s chat channel opened: the warning if its number changed, else a notice
   * the first time. */
  opened(id) {
    const record = this.mesh.get(id), state = this.cardOf(id);
    const { known, changed } = verification(record);
    if (changed) system(`WARNING: the safety number with ${record.name} changed since you verified it. Someone may be in the middle.`, true);
    else if (!state.opened) system(`Connected to ${record.name}${known ? ' (verified)' : ''}`);
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
    $('probeout').textContent = 'gathering candidates…';
    const types = await (await this.diagnostics()).testConnectivity(this.mesh.iceServers);
    $('probeout').textContent = `Found: ${[...types].join(', ') || 'none'}. ${types.has('srflx') ? 'STUN works.' : 'No STUN answer.'} ${types.has('relay') ? 'TURN works.' : 'No TURN relay.'}`;
  }
}
