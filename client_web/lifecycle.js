/** When a page comes back (Page Lifecycle, https://developer.chrome.com/docs/web-platform/page-lifecycle-api):
 * shown again, thawed, restored from the back/forward cache or back online; and, while it
 * is shown, every KEEPALIVE_MS, to find a connection that died without telling (a phone's
 * OS closes sockets of a page in the background). */

/** Milliseconds between two checks of a shown page's connections. Each check only reads
 * states (ICE consent checks, RFC 7675, already probe the path every few seconds). */
export const KEEPALIVE_MS = 5000;

/** Call `wake(reason)` on each of those moments; reason is the event's type or 'keepalive'. */
export function onWake(wake) {
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && wake('visibilitychange'));
  document.addEventListener('resume', () => wake('resume'));
  addEventListener('pageshow', (e) => e.persisted && wake('pageshow'));
  addEventListener('online', () => wake('online'));
  setInterval(() => document.visibilityState === 'visible' && wake('keepalive'), KEEPALIVE_MS);
}
