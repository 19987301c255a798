/** DOM helpers and renderers. Peers' text goes in through textContent only. */

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
const time = (ts, d = new Date(ts)) => el('time', { datetime: d.toISOString() }, `${two(d.getHours())}:${two(d.getMinutes())}`);

/** A chat message; returns its element (`.ack` holds the delivery state). */
export function message({ who, ts, text, dm, mine, to, old }) {
  performance.getEntriesByName('confide:render').length || performance.mark('confide:render'); // the first only
  return (old ? (n) => log().prepend(n) : add)(el('div', { class: mine ? 'm me' : 'm' },
    el('span', { class: 'who' }, who), time(ts),
    dm ? el('span', { class: 'priv' }, mine ? `private to ${to}` : 'private') : null,
    el('p', {}, text),
    mine && !old ? el('small', { class: 'ack state' }, 'sent') : null));
}

export const size = (n) => (n < 1e3 ? `${n} B` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`);

/** A file transfer line with its controls; `render(x)` updates it. */
export function transfer(x, who, act) {
  const bar = el('progress', { max: x.size || 1, value: 0, 'aria-label': `${x.name} progress` });
  const info = el('span', { class: 'small' });
  const ctl = el('span');
  const line = el('p', {}, x.dir === 'in' ? `${who} offers ${x.name} (${size(x.size)})` : `${x.name} (${size(x.size)}) to ${who}`, x.dm ? el('span', { class: 'priv' }, 'private') : null);
  const node = add(el('div', { class: x.dir === 'out' ? 'm me file' : 'm file' }, line, bar, info, ' ', ctl));
  const btn = (label, f) => el('button', { type: 'button', onclick: () => f(x.key) }, label);
  return function render(y) {
    bar.value = y.done;
    info.textContent = `${y.state} · ${size(y.done)}${y.from ? ` · resumed from ${size(y.from)}` : ''}${y.info && !y.end ? ' · ' + y.info : ''}`;
    ctl.replaceChildren();
    if (y.dir === 'in' && y.state === 'offered') ctl.append(btn('Accept', act.accept), ' ', btn('Decline', act.decline));
    else if (!y.end) ctl.append(btn('Cancel', act.cancel));
    if (y.url) ctl.append(el('a', { href: y.url, download: y.name }, `Save ${y.name}`));
    node.dataset.state = y.state;
  };
}

/** One peer of the list with its safety number and diagnostics. */
export function peerItem(r, o) {
  const li = el('li', { 'data-id': r.id });
  const p = r.peer;
  const state = p ? p.pc.connectionState : 'refused';
  li.append(el('strong', {}, r.name), ' ', el('span', { class: 'state' }, state));
  if (o.verified === p?.safety && p?.safety) li.append(' ', el('span', { class: 'ok' }, '✔ verified'));
  if (o.changed) li.append(' ', el('span', { class: 'bad' }, '⚠ safety number changed'));
  li.append(el('div', { class: 'small' }, 'Safety number: ', el('output', { 'aria-label': `Safety number with ${r.name}` }, p?.safety || '…')));
  if (p?.safety) li.append(el('button', { type: 'button', disabled: !isSecureContext, onclick: o.verify }, 'Mark as verified'));
  li.append(' ', el('button', { type: 'button', onclick: o.dm }, 'Message privately'));
  const d = el('details', { open: o.open || null, ontoggle: () => o.toggle(d.open) },
    el('summary', {}, 'Details'),
    el('p', { class: 'small diag' }, o.diag || ''),
    el('p', { class: 'small' }, 'Your certificate: ', el('code', { 'aria-label': 'Your certificate' }, o.localFp)),
    el('p', { class: 'small' }, 'Their certificate: ', el('code', { 'aria-label': `Certificate of ${r.name}` }, p?.remoteFp || '…')),
    el('button', { type: 'button', onclick: o.reconnect }, 'Reconnect'));
  li.append(d);
  return li;
}
