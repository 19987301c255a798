/** The installable app around the chat: registers the service worker (sw.js), offers
 * "Reload for the new version" when a deploy's worker waits, and says when the page runs
 * offline (opened from the cache, server unreachable). Loaded on its own by index.html,
 * after the page: nothing on the first message's path waits for it. */
import { el } from './ui.js';

/** Milliseconds between two server probes while the page is offline. */
export const OFFLINE_RETRY_MS = 5000;
/** Milliseconds after the page's load before the worker is registered: its install fetches
 * every shell file, which must not compete with a first visit's connection to the room
 * (bench/bench_client.py measures that path). */
export const REGISTER_DELAY_MS = 2000;
/** Milliseconds at least between two update checks on coming back to the page. */
export const UPDATE_CHECK_MS = 10 * 60 * 1000;

const banners = new Map();

/** Show (text, actions) or remove (text null) the banner `kind` at the top of the page. */
function banner(kind, text, ...actions) {
  banners.get(kind)?.remove();
  banners.delete(kind);
  if (text === null) return;
  const node = el('div', { class: `banner ${kind}`, role: 'status' }, el('span', {}, text), ...actions);
  document.body.prepend(node);
  banners.set(kind, node);
}

/** Whether the server answers (the network counts as up only then). */
async function reachable() {
  try {
    return (await fetch('/healthz', { cache: 'no-store' })).ok;
  } catch {
    return false;
  }
}

let probing = null, checking = false;
/** Probe the server; while it does not answer, say so and probe again every OFFLINE_RETRY_MS
 * (one probe at a time, however many events ask). */
async function checkOnline() {
  if (checking) return;
  checking = true;
  clearTimeout(probing);
  const up = navigator.onLine && (await reachable());
  checking = false;
  if (up) return banner('offline', null);
  banner('offline', 'You are offline. Confide opened from this device and connects again when the network is back.');
  probing = setTimeout(checkOnline, OFFLINE_RETRY_MS);
}

/** A worker of a new version waits: offer the reload, and only then let it take over. */
function offerUpdate(registration) {
  const reload = el('button', { type: 'button', onclick: () => {
    navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), { once: true });
    registration.waiting?.postMessage({ type: 'skip-waiting' });
  } }, 'Reload for the new version');
  banner('update', 'A new version of Confide is ready.', reload);
}

async function register() {
  const registration = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  // Only a worker that replaces a controlling one is an update (the first one just installs).
  const waits = () => registration.waiting && navigator.serviceWorker.controller && offerUpdate(registration);
  waits();
  registration.addEventListener('updatefound', () => {
    const worker = registration.installing;
    worker?.addEventListener('statechange', () => worker.state === 'installed' && waits());
  });
  let checked = Date.now();
  document.addEventListener('visibilitychange', () => {
    if (document.hidden || Date.now() - checked < UPDATE_CHECK_MS) return;
    checked = Date.now();
    registration.update().catch(() => {});
  });
  return registration;
}

/** The registration once ready (null without service workers, e.g. plain http on a LAN). */
export const ready = 'serviceWorker' in navigator && isSecureContext
  ? new Promise((resolve) => {
    // A page the worker already controls costs nothing to register again: no delay then.
    const delay = navigator.serviceWorker.controller ? 0 : REGISTER_DELAY_MS;
    const start = () => setTimeout(() => register().then(resolve, (e) => { console.warn('service worker', e); resolve(null); }), delay);
    if (document.readyState === 'complete') start();
    else addEventListener('load', start, { once: true });
  })
  : Promise.resolve(null);

addEventListener('offline', checkOnline);
addEventListener('online', checkOnline);
// A page the worker served may have opened without a network: find out, without slowing it.
if (!navigator.onLine || navigator.serviceWorker?.controller) addEventListener('load', () => setTimeout(checkOnline, 0), { once: true });
