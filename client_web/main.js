/** The page: the join form, the unread count, and the room's parts wired together (the
 * mesh, chat, files, history, the peers panel and the composer). */
import { Mesh } from './mesh.js';
import { Chat, parse, MESSAGES_PER_S } from './chat.js';
import { Files, progressText } from './files.js';
import { deriveBytes, importKey } from './crypto.js';
import { $, system, message, delivered, transfer } from './ui.js';
import { ROOM_PATTERN, newRoomName, wsUrl } from './constants.js';
import { PeersView } from './peers.js';
import { Composer } from './composer.js';
import { onWake } from './lifecycle.js';
import { Notifier } from './notify.js';

// Loaded after the modules a first message needs (they are not on its path).
const diagnostics = () => import('./diagnostics.js');
const stored = () => import('./history.js');

performance.mark('confide:modules');
const query = new URLSearchParams(location.search);
const relay = query.get('relay') === '1';
const form = $('join');
if (!isSecureContext) {
  $('insecure').hidden = false;
  form.password.disabled = true;
}
form.room.value = query.get('room') || newRoomName();
form.name.value = query.get('name') || localStorage.getItem('confide-name') || '';
// A link never joins by itself (it would hand this device's addresses to whoever is in
// the room, issue 9 item 11): the button names the room and the name it joins as.
const checkForm = () => {
  // The rule is ROOM_PATTERN's (an HTML pattern attribute would be a second copy of it).
  const room = form.room.value.trim(), name = form.name.value.trim();
  form.room.setCustomValidity(ROOM_PATTERN.test(room) ? '' : 'Letters, digits, _ and - only, up to 64');
  $('enter').textContent = room && name ? `Join ${room} as ${name}` : 'Join';
};
form.addEventListener('input', checkForm);
checkForm();
if (query.get('room') && query.get('name')) $('enter').focus();
form.onsubmit = (e) => {
  e.preventDefault();
  join(form.room.value.trim(), form.name.value.trim(), form.password.value);
};

async function join(room, name, password) {
  if (!ROOM_PATTERN.test(room) || !name) return;
  form.hidden = true;
  $('app').hidden = false;
  localStorage.setItem('confide-name', name);
  const link = `${location.origin}/?room=${encodeURIComponent(room)}`;
  window.history.replaceState(null, '', link + (relay ? '&relay=1' : ''));
  $('title').textContent = room + (password ? ' 🔒' : '');
  // Unread count (title, badge) and system notifications while the page is not looked at.
  const notifier = new Notifier({ room, locked: !!password, title: () => $('title').textContent });
  $('notifyctl').replaceChildren(...notifier.controls());
  $('link').value = link;
  $('status').textContent = password ? 'deriving the room key…' : 'connecting…';
  const key = password ? await importKey(await deriveBytes(password, room)) : undefined;
  const mesh = new Mesh({ url: wsUrl(), room, name, key, relay });
  const chat = new Chat((id, frame) => mesh.send(id, frame));
  const files = new Files({ send: (id, frame) => mesh.send(id, frame), pc: (id) => mesh.get(id).peer.pc });
  // A handle for the console (and bench/bench_client.py); nothing in the client reads it.
  window.confide = { mesh, chat, files };

  // Stored history goes above whatever arrives meanwhile (oldest first once prepended).
  stored().then((history) => history.load(room)).then((records) => records.reverse().forEach((record) => message({ ...record, old: true })));
  const show = (record) => {
    stored().then((history) => history.save(room, record));
    return message(record);
  };
  const composer = new Composer({ mesh, chat, files, name, show });
  // Opened from the share menu (sw.js took the files): offer to send them here.
  if (query.has('shared')) import('./share.js').then((share) => share.offerShared(composer));
  const peers = new PeersView(mesh, { address: (id) => composer.address(id), diagnostics });

  mesh.addEventListener('system', (e) => system(e.detail));
  mesh.addEventListener('signal', (e) => {
    $('status').textContent = e.detail === 'up' ? 'online' : 'server unreachable: chats continue, reconnecting…';
    $('status').dataset.state = e.detail;
  });
  // unknown-peer: a late candidate for someone who just left; not worth a notice.
  mesh.addEventListener('error', (e) => { if (e.detail.code !== 'unknown-peer') $('notice').textContent = `Server: ${e.detail.message}`; });
  mesh.addEventListener('refused', (e) => system(`Not connected to ${mesh.nameOf(e.detail.peer)}: ${e.detail.reason}`, true));
  mesh.addEventListener('merge', ({ detail: { from, to } }) => { for (const id of chat.rename(from, to)) showDelivery(id); });
  mesh.addEventListener('gone', (e) => {
    for (const id of chat.forget(e.detail)) showDelivery(id);
    files.gone(e.detail);
  });
  mesh.addEventListener('open', (e) => {
    chat.opened(e.detail); // queued messages first: nothing below is on their path
    peers.opened(e.detail);
    files.reopened(e.detail);
  });
  mesh.addEventListener('channel', (e) => e.detail.channel.label.startsWith('file:') ? files.channel(e.detail.peer, e.detail.channel) : e.detail.channel.close());
  mesh.addEventListener('message', (e) => {
    const { peer, data } = e.detail;
    const frame = parse(data);
    if (!frame) return console.warn('ignored frame from', peer);
    const event = chat.receive(peer, frame);
    if (!event) return;
    if (event.t === 'msg' && !event.dup) {
      show({ who: mesh.nameOf(peer), ts: event.ts, text: event.text, dm: event.dm });
      composer.typing(peer, false);
      notifier.message(mesh.nameOf(peer), event.text);
    } else if (event.t === 'ack') showDelivery(event.id); else if (event.t === 'flood') {
      if (event.first) system(`Ignoring messages from ${mesh.nameOf(peer)}: more than ${MESSAGES_PER_S} a second`, true);
    } else if (event.t === 'typing') composer.typing(peer, event.on);
    else if (event.t.startsWith('file-')) files.control(peer, event);
  });

  const names = (ids) => [...ids].map((id) => mesh.nameOf(id));
  const showDelivery = (id) => {
    const delivery = chat.delivery(id);
    if (delivery) delivered(id, { acked: names(delivery.acked), total: delivery.to.size, lost: names(delivery.lost) }, () => retry(id));
  };
  // Again to who is here now: everyone for a room message, for a private one the peers
  // that go by the name it was for.
  const retry = (id) => {
    const { frame, lost } = chat.delivery(id);
    const wanted = new Set(names(lost));
    const here = [...mesh.peers.values()].filter((record) => record.peer && (!frame.dm || wanted.has(record.name)));
    if (!chat.retry(id, here.map((record) => record.id)).length) $('notice').textContent = `Nobody to send it to: ${[...wanted].join(', ')} ${wanted.size > 1 ? 'are' : 'is'} not here.`;
    showDelivery(id);
  };

  const views = new Map(); // transfer key → its renderer
  files.addEventListener('update', (e) => {
    const job = e.detail;
    if (!views.has(job.key)) {
      views.set(job.key, transfer(job, mesh.nameOf(job.peer), { accept: (k) => files.accept(k), decline: (k) => files.decline(k), cancel: (k) => files.cancel(k) }));
      if (job.dir === 'in') notifier.fileOffer(mesh.nameOf(job.peer), job.name);
    }
    if (job.t0 && !job.end) job.info = progressText(job.done, job.size, job.from, job.t0, Date.now());
    views.get(job.key)(job);
  });

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
  // A page put in the back/forward cache may come back (pageshow): it keeps its place.
  addEventListener('pagehide', (e) => !e.persisted && mesh.leave());
  onWake(() => {
    mesh.recover();
    for (const id of mesh.peers.keys()) chat.resend(id);
  });
  await mesh.start();
}
