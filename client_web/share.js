/** What another app shared with Confide (Web Share Target: sw.js keeps it in a cache):
 * once the person is in a room, a banner offers to send the files, and shared text goes
 * into the message box. Nothing is sent without that tap. */
import { el, $ } from './ui.js';

const SHARED = 'confide-shared';

/** Take (and forget) what was shared: `{files: File[], text: string}`, or null. */
export async function takeShared() {
  if (!('caches' in globalThis) || !(await caches.has(SHARED))) return null;
  const cache = await caches.open(SHARED);
  const files = [];
  let text = '';
  for (const request of await cache.keys()) {
    const response = await cache.match(request);
    if (request.url.endsWith('/shared/text')) text = await response.text();
    else files.push(new File([await response.blob()], decodeURIComponent(response.headers.get('x-name') || 'file'), { type: response.headers.get('content-type') || '' }));
  }
  await caches.delete(SHARED);
  return { files, text };
}

/** Offer the shared items through `composer` (its `offer(files)`, its text box). */
export async function offerShared(composer) {
  const shared = await takeShared();
  if (!shared) return;
  if (shared.text && !composer.text.value) composer.text.value = shared.text;
  if (!shared.files.length) return;
  const count = shared.files.length === 1 ? shared.files[0].name : `${shared.files.length} files`;
  const node = el('div', { class: 'banner', role: 'status' }, el('span', {}, `Shared with Confide: ${count}.`),
    el('button', { type: 'button', class: 'primary', onclick: () => {
      if (!composer.targets().length) return void ($('notice').textContent = 'Nobody else is in the room yet: share the link first.');
      composer.offer(shared.files);
      node.remove();
    } }, 'Send shared files'),
    el('button', { type: 'button', onclick: () => node.remove() }, 'Discard'));
  $('drop').prepend(node);
}
