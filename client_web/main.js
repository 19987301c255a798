/** Wiring: the join form, the mesh, chat, files, history and the page. */
import { Mesh } from './mesh.js';
import { Chat, parse, newId, MAX_TEXT } from './chat.js';
import { Files, progressText } from './files.js';
import { deriveBytes, importKey } from './crypto.js';
import { el, $, system, message, transfer, peerItem } from './ui.js';

// Loaded after the modules a first message needs (they are not on its path).
const diagnostics = () => import('./diagnostics.js');
const stored = () => import('./history.js');

performance.mark('confide:modules');
const q = new URLSearchParams(location.search);
const form = $('join');
if (!isSecureContext) {
  $('insecure').hidden = false;
  form.password.disabled = true;
}
form.room.value = q.get('room') || 'room-' + newId().slice(0, 6);
form.name.value = q.get('name') || localStorage.getItem('confide-name') || '';
form.onsubmit = (e) => {
  e.preventDefault();
  join(form.room.value.trim(), form.name.value.trim(), form.password.value);
};

let unread = 0;
const title = () => (document.title = `${unread ? `(${unread}) ` : ''}Confide · ${$('title').textContent}`);
const seen = () => { unread = 0; title(); };
addEventListener('focus', seen);
document.addEventListener('visibilitychange', () => !document.hidden && seen());
if (q.get('room') && q.get('name')) join(q.get('room'), q.get('name'), '');

async function join(room, name, password) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(room) || !name) return;
  form.hidden = true;
  $('app').hidden = false;
  localStorage.setItem('confide-name', name);
  const link = `${location.origin}/?room=${encodeURIComponent(room)}`;
  window.history.replaceState(null, '', link + (q.get('relay') === '1' ? '&relay=1' : ''));
  $('title').textContent = room + (password ? ' 🔒' : '');
  title();
  $('link').value = link;
  $('status').textContent = password ? 'deriving the room key…' : 'connecting…';
  const key = password ? await importKey(await deriveBytes(password, room)) : undefined;
  const ws = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const mesh = new Mesh({ url: ws, room, name, key, relay: q.get('relay') === '1' });
  const chat = new Chat((id, f) => mesh.send(id, f));
  const files = new Files({ send: (id, f) => mesh.send(id, f), pc: (id) => mesh.get(id).peer.pc });
  const sent = new Map(); // msg id → {node, to: Set, acked: Set}
  const typing = new Map();
  const views = new Map();
  const ui = new Map(); // peer id → {open, diag}
  const nameOf = (id) => mesh.get(id)?.name ?? 'someone';
  // A handle for the console (and bench/bench_client.py); nothing in the client reads it.
  window.confide = { mesh, chat, files };

  // Stored history goes above whatever arrives meanwhile (oldest first once prepended).
  stored().then((h) => h.load(room)).then((recs) => recs.reverse().forEach((rec) => message({ ...rec, old: true })));
  const save = (rec) => stored().then((h) => h.save(room, rec));
  const show = (rec) => { message(rec); save(rec); };

  const renderPeers = () => {
    const list = $('peers');
    list.replaceChildren(...[...mesh.peers.values()].map((r) => {
      const u = ui.get(r.id) || ui.set(r.id, {}).get(r.id);
      const stored = localStorage.getItem('confide-verified:' + r.name);
      return peerItem(r, {
        ...u, localFp: mesh.localFp, verified: stored,
        changed: !!(stored && r.peer?.safety && stored !== r.peer.safety),
        verify: () => { localStorage.setItem('confide-verified:' + r.name, r.peer.safety); system(`You marked ${r.name}'s safety number as verified`); renderPeers(); },
        dm: () => { $('to').value = r.id; $('text').focus(); },
        toggle: (open) => { u.open = open; },
        reconnect: () => mesh.reconnect(r.id),
      });
    }));
    const to = $('to');
    const v = to.value;
    to.replaceChildren(el('option', { value: '' }, 'Everyone'), ...[...mesh.peers.values()].map((r) => el('option', { value: r.id }, r.name)));
    to.value = mesh.peers.has(v) ? v : '';
  };
  let pending = false;
  mesh.addEventListener('peers', () => {
    if (!pending) { pending = true; queueMicrotask(() => { pending = false; renderPeers(); }); }
  });
  setInterval(async () => {
    for (const [id, u] of ui) {
      const r = mesh.get(id);
      if (u.open && r?.peer) {
        const { peerStats, describe } = await diagnostics();
        u.diag = describe(await peerStats(r.peer.pc));
      }
    }
    if ([...ui.values()].some((u) => u.open)) renderPeers();
  }, 2000);

  mesh.addEventListener('system', (e) => system(e.detail));
  mesh.addEventListener('signal', (e) => { $('status').textContent = e.detail === 'up' ? 'online' : 'server unreachable: chats continue, reconnecting…'; });
  // unknown-peer: a late candidate for someone who just left; not worth a notice.
  mesh.addEventListener('error', (e) => { if (e.detail.code !== 'unknown-peer') $('notice').textContent = `Server: ${e.detail.message}`; });
  mesh.addEventListener('refused', (e) => system(`Not connected to ${nameOf(e.detail.peer)}: ${e.detail.reason}`, true));
  mesh.addEventListener('merge', ({ detail: { from, to } }) => {
    chat.rename(from, to);
    for (const s of sent.values()) if (s.to.delete(from)) s.to.add(to);
  });
  mesh.addEventListener('gone', (e) => { chat.forget(e.detail); files.gone(e.detail); });
  mesh.addEventListener('open', (e) => {
    const id = e.detail, r = mesh.get(id);
    chat.opened(id); // queued messages first: nothing below is on their path
    const stored = localStorage.getItem('confide-verified:' + r.name);
    if (stored && r.peer.safety && stored !== r.peer.safety) system(`WARNING: the safety number with ${r.name} changed since you verified it. Someone may be in the middle.`, true);
    else if (!ui.get(id)?.opened) system(`Connected to ${r.name}${stored ? ' (verified)' : ''}`);
    (ui.get(id) || ui.set(id, {}).get(id)).opened = true;
    files.reopened(id);
    renderPeers();
  });
  mesh.addEventListener('channel', (e) => e.detail.channel.label.startsWith('file:') ? files.channel(e.detail.peer, e.detail.channel) : e.detail.channel.close());
  mesh.addEventListener('message', (e) => {
    const { peer, data } = e.detail;
    const m = parse(data);
    if (!m) return console.warn('ignored frame from', peer);
    const ev = chat.receive(peer, m);
    if (!ev) return;
    if (ev.t === 'msg' && !ev.dup) {
      show({ who: nameOf(peer), ts: ev.ts, text: ev.text, dm: ev.dm });
      typing.delete(peer);
      renderTyping();
      if (document.hidden || !document.hasFocus()) { unread++; title(); }
    } else if (ev.t === 'ack') {
      const s = sent.get(ev.id);
      if (s) { s.acked.add(peer); s.node.querySelector('.ack').textContent = `delivered to ${[...s.acked].map(nameOf).join(', ')}${s.acked.size < s.to.size ? ` (${s.acked.size}/${s.to.size})` : ''}`; }
    } else if (ev.t === 'typing') {
      clearTimeout(typing.get(peer));
      if (ev.on) typing.set(peer, setTimeout(() => { typing.delete(peer); renderTyping(); }, 6000));
      else typing.delete(peer);
      renderTyping();
    } else if (ev.t.startsWith('file-')) files.control(peer, ev);
  });
  const renderTyping = () => { $('typing').textContent = typing.size ? `${[...typing.keys()].map(nameOf).join(', ')} typing…` : ''; };

  files.addEventListener('update', (e) => {
    const x = e.detail;
    if (!views.has(x.key)) views.set(x.key, transfer(x, nameOf(x.peer), { accept: (k) => files.accept(k), decline: (k) => files.decline(k), cancel: (k) => files.cancel(k) }));
    if (x.t0 && !x.end) x.info = progressText(x.done, x.size, x.from, x.t0, Date.now());
    views.get(x.key)(x);
  });

  // Compose: Enter sends, Shift+Enter adds a line; typing sent at most every 3 s.
  const text = $('text');
  let lastTyping = 0, stopTyping;
  const sendTyping = (on) => { for (const id of mesh.peers.keys()) mesh.send(id, { t: 'typing', on }); };
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('compose').requestSubmit(); }
  });
  text.addEventListener('input', () => {
    if (Date.now() - lastTyping > 3000) { lastTyping = Date.now(); sendTyping(true); }
    clearTimeout(stopTyping);
    stopTyping = setTimeout(() => { lastTyping = 0; sendTyping(false); }, 3000);
  });
  const targets = () => ($('to').value ? [$('to').value] : [...mesh.peers.keys()]);
  $('compose').onsubmit = (e) => {
    e.preventDefault();
    const body = text.value;
    if (!body.trim()) return;
    const size = new TextEncoder().encode(body).length;
    if (size > MAX_TEXT) return void ($('notice').textContent = `Message too long: ${size} bytes, the limit is ${MAX_TEXT}. Send it as a file instead.`);
    const to = targets();
    if (!to.length) return void ($('notice').textContent = 'Nobody else is in the room yet: share the link first.');
    $('notice').textContent = '';
    const dm = !!$('to').value;
    const f = chat.compose(body, to, dm);
    const node = message({ who: name, ts: f.ts, text: body, dm, mine: true, to: dm ? nameOf(to[0]) : '' });
    save({ who: name, ts: f.ts, text: body, dm, mine: true, to: dm ? nameOf(to[0]) : '' });
    sent.set(f.id, { node, to: new Set(to), acked: new Set() });
    text.value = '';
    clearTimeout(stopTyping);
    lastTyping = 0;
    sendTyping(false);
  };
  const offer = (list) => { for (const file of list) files.offer(file, targets(), !!$('to').value); };
  $('file').onchange = (e) => { offer(e.target.files); e.target.value = ''; };
  $('drop').addEventListener('dragover', (e) => e.preventDefault());
  $('drop').addEventListener('drop', (e) => { e.preventDefault(); offer(e.dataTransfer.files); });

  $('copy').onclick = async () => {
    try { await navigator.clipboard.writeText(link); $('status').textContent = 'link copied'; } catch { $('link').select(); }
  };
  $('qr').onclick = () => {
    const img = $('qrimg');
    img.src ||= '/api/qr?text=' + encodeURIComponent(link);
    img.hidden = !img.hidden;
    $('qr').setAttribute('aria-expanded', String(!img.hidden));
  };
  $('clear').onclick = async () => { await (await stored()).clear(room); $('log').replaceChildren(); system('History cleared on this device'); };
  $('leave').onclick = () => { mesh.leave(); location.href = '/'; };
  $('probe').onclick = async () => {
    $('probeout').textContent = 'gathering candidates…';
    const types = await (await diagnostics()).testConnectivity(mesh.iceServers);
    $('probeout').textContent = `Found: ${[...types].join(', ') || 'none'}. ${types.has('srflx') ? 'STUN works.' : 'No STUN answer.'} ${types.has('relay') ? 'TURN works.' : 'No TURN relay.'}`;
  };
  addEventListener('pagehide', () => mesh.leave());
  await mesh.start();
}
