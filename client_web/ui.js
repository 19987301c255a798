/** DOM helpers and renderers. Peers' text goes in through textContent only. */
import { clampTime } from './chat.js';

/** `el('p', {class: 'x', onclick}, 'text', child)`: attributes, handlers, text children. */
export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k != null) e.append(typeof k === 'string' ? document.createTextNode(k) : k);
  return e;
}

export const $ = (id) => document.getElementById(id);

const log = () => $('log');
function add(node) {
  const l = log();
  const stick = l.scrollHeight - l.scrollTop - l.clientHeight < 40;
  l.append(node);
  if (stick) l.scrollTop = l.scrollHeight;
  return node;
}

/** A system line (joins, leaves, verification); `bad` makes it a loud warning. */
export const system = (text, bad = false) => add(el('p', { class: bad ? 'sys bad' : 'sys', role: bad ? 'alert' : null }, text));

const two = (n) => String(n).padStart(2, '0');
// HH:MM by hand: the first toLocaleTimeString loads ICU data, 70-120 ms here, and it
// came right when the peer's offer did (bench/bench_client.py).
const time = (ts, d = new Date(clampTime(ts, Date.now()))) => el('time', { datetime: d.toISOString() }, `${two(d.getHours())}:${two(d.getMinutes())}`);

/** Milliseconds within which a sender's next message joins the group of the one before. */
export const GROUP_MS = 5 * 60 * 1000;

/** Mark `next` as continuing `prev`'s group: same sender, same privacy, close in time. */
function group(prev, next) {
  const a = prev?.dataset, b = next?.dataset;
  if (a?.who == null || b?.who == null) return;
  next.classList.toggle('cont', a.who === b.who && a.dm === b.dm && b.ts - a.ts >= 0 && b.ts - a.ts < GROUP_MS);
}

/** A chat message; returns its element (`.ack` holds the delivery state of ours, found by
 * `id` with `delivered`). Consecutive ones from one sender are grouped (`.cont`). */
export function message({ id, who, ts, text, dm, mine, to, old }) {
  performance.getEntriesByName('confide:render').length || performance.mark('confide:render'); // the first only
  const node = el('div', { class: mine ? 'm me' : 'm', 'data-id': mine && !old ? id : null,
    'data-who': (mine ? '\u0000' : '') + who, 'data-ts': ts, 'data-dm': dm ? (to || '1') : '' },
    el('span', { class: 'who' }, who), time(ts),
    dm ? el('span', { class: 'priv' }, mine ? `private to ${to}` : 'private') : null,
    el('p', {}, text),
    mine && !old ? el('small', { class: 'ack state' }, 'sent') : null);
  if (old) {
    log().prepend(node);
    group(node, node.nextElementSibling);
  } else {
    group(log().lastElementChild, node);
    add(node);
  }
  return node;
}

/** Image types shown inline once received (decoded by <img> from a blob: URL, never as HTML). */
const PREVIEW = /^image\/(png|jpeg|gif|webp|avif)$/;

/** Show the delivery of our message `id`: the names of the peers that acknowledged it (of
 * `total`), and of those that left for good without (`lost`, with a Retry button). */
export function delivered(id, { acked, total, lost }, retry) {
  const mark = log().querySelector(`.m.me[data-id="${CSS.escape(id)}"] .ack`);
  if (!mark) return;
  const parts = [];
  if (acked.length) parts.push(`delivered to ${acked.join(', ')}${acked.length < total ? ` (${acked.length}/${total})` : ''}`);
  if (lost.length) parts.push(`not delivered to ${lost.join(', ')}`);
  mark.replaceChildren(parts.join('; ') || 'sent');
  mark.classList.toggle('bad', lost.length > 0);
  if (lost.length) mark.append(' ', el('button', { type: 'button', onclick: retry }, 'Retry'));
}

/** Run `render` once per microtask however often the returned function is called. */
export function batched(render) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    queueMicrotask(() => { pending = false; render(); });
  };
}

export const size = (n) => (n < 1e3 ? `${n} B` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);

/** A file transfer line with its controls; `render(job)` updates it. */
export function transfer(job, who, act) {
  const bar = el('progress', { max: job.size || 1, value: 0, 'aria-label': `${job.name} progress` });
  const info = el('span', { class: 'small' });
  const ctl = el('span');
  const line = el('p', {}, job.dir === 'in' ? `${who} offers ${job.name} (${size(job.size)})` : `${job.name} (${size(job.size)}) to ${who}`, job.dm ? el('span', { class: 'priv' }, 'private') : null);
  const node = add(el('div', { class: job.dir === 'out' ? 'm me file' : 'm file' }, line, bar, info, ' ', ctl));
  const btn = (label, run) => el('button', { type: 'button', onclick: () => run(job.key) }, label);
  let shown = null;
  return function render(now) {
    bar.value = now.done;
    info.textContent = `${now.state} · ${size(now.done)}${now.from ? ` · resumed from ${size(now.from)}` : ''}${now.info && !now.end ? ' · ' + now.info : ''}`;
    // The controls are made again only when they change: progress renders ten times a
    // second, and a button made again each time can never be clicked.
    const offered = now.dir === 'in' && now.state === 'offered';
    const controls = `${offered} ${!!now.end} ${now.url}`;
    if (controls !== shown) {
      shown = controls;
      ctl.replaceChildren();
      if (offered) ctl.append(btn('Accept', act.accept), ' ', btn('Decline', act.decline));
      else if (!now.end) ctl.append(btn('Cancel', act.cancel));
      if (now.url) ctl.append(el('a', { href: now.url, download: now.name }, `Save ${now.name}`));
    }
    // Only a transfer whose hash checked has a url (files.js), so only those are shown.
    if (now.url && now.dir === 'in' && PREVIEW.test(now.inc?.offer.mime) && !node.dataset.preview) {
      node.dataset.preview = 'shown';
      const img = el('img', { class: 'preview', alt: `Preview of ${now.name}`, src: now.url });
      img.decode().then(() => node.append(img), () => {});
    }
    node.dataset.state = now.state;
  };
}
