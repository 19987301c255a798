/* The service worker (server/static.py puts `VERSION` and `SHELL` above this line).
 *
 * Offline first: the client shell comes from the cache of this version, so a repeat visit
 * draws at once and a page opened without a network still shows the app. The browser
 * fetches this file again on navigations; when a deploy changed any shell file the bytes
 * differ, a new worker installs and then *waits*: it takes over only when the person
 * chooses "Reload for the new version" (pwa.js), never under a running chat.
 * Notification clicks land here too: they focus the room's window. */

const CACHE = `confide-${VERSION}`;
/** Web Share Target (manifest `share_target`): the share menu POSTs files and text to
 * /share; they wait in this cache until the page takes them (share.js). */
const SHARED = 'confide-shared';

self.addEventListener('install', (event) => {
  // cache: 'no-cache' revalidates with the server, so the HTTP cache cannot hand an old
  // file to a new version.
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL.map((p) => new Request(p, { cache: 'no-cache' })))));
  // Static routing (ServiceWorker Static Routing API, Chromium 123+): the browser answers
  // the shell's files from this version's cache without running this script per file,
  // which made a repeat visit slower than the HTTP cache alone (bench/bench_app.py).
  // Elsewhere the fetch handler below does the same work.
  if (event.addRoutes && typeof URLPattern === 'function') {
    const shell = SHELL.map((pathname) => ({ urlPattern: new URLPattern({ pathname }) }));
    event.waitUntil(event.addRoutes({ condition: { or: shell }, source: { cacheName: CACHE } }).catch((e) => console.warn('routes', e)));
  }
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key.startsWith('confide-') && key !== CACHE && key !== SHARED) await caches.delete(key);
    // The first worker adopts the page that registered it (same code, nothing swapped);
    // a later one only activates after skip-waiting, when its pages are reloading.
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data?.type === 'skip-waiting') self.skipWaiting();
});

/** The cached path a GET answers from, or null for the network (/ws, /api, /healthz). */
function shellPath(request) {
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return null;
  const path = request.mode === 'navigate' && url.pathname === '/' ? '/index.html' : url.pathname;
  return SHELL.includes(path) ? path : null;
}

async function receiveShare(request) {
  const form = await request.formData();
  const cache = await caches.open(SHARED);
  const files = form.getAll('files').filter((f) => typeof f !== 'string');
  for (const [i, file] of files.entries()) {
    await cache.put(`/shared/${i}`, new Response(file, { headers: { 'content-type': file.type || 'application/octet-stream', 'x-name': encodeURIComponent(file.name) } }));
  }
  const text = ['title', 'text', 'url'].map((k) => form.get(k)).filter((v) => typeof v === 'string' && v).join('\n');
  if (text) await cache.put('/shared/text', new Response(text));
  return Response.redirect('/?shared=1', 303);
}

// Opened once per worker start, not per request: a page load asks for some twenty files
// (bench/bench_app.py).
let shell = null;

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method === 'POST' && url.origin === self.location.origin && url.pathname === '/share') {
    return event.respondWith(receiveShare(event.request));
  }
  const path = shellPath(event.request);
  if (!path) return;
  shell ??= caches.open(CACHE);
  event.respondWith(shell.then((c) => c.match(path)).then((hit) => hit || fetch(event.request)));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const room = event.notification.data?.room;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const inRoom = windows.find((w) => new URL(w.url).searchParams.get('room') === room);
    if (inRoom || windows[0]) return (inRoom || windows[0]).focus();
    return self.clients.openWindow(room ? `/?room=${encodeURIComponent(room)}` : '/');
  })());
});
