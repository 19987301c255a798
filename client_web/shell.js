/** The app's frame around the chat (no chat logic): the header's "who is here" line and
 * people count, the peers panel that folds on a phone, the app's height following the
 * visual viewport (so the composer stays above an on-screen keyboard, also where the
 * `interactive-widget` viewport key is not honoured), and the drop target's highlight.
 * It reads the DOM main.js renders (the Peers list) instead of hooking into it. */
import { $ } from './ui.js';

const app = $('app');

/** "Grace and Alan", "Grace, Alan and 2 more": the names in the Peers list. */
export function peopleLine(names) {
  if (!names.length) return 'nobody else yet';
  if (names.length <= 3) return names.length === 1 ? `with ${names[0]}` : `with ${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
  return `with ${names.slice(0, 2).join(', ')} and ${names.length - 2} more`;
}

function people() {
  const names = [...$('peers').querySelectorAll(':scope > li > strong')].map((s) => s.textContent);
  $('people').textContent = peopleLine(names);
  $('peoplecount').textContent = String(names.length);
}
new MutationObserver(people).observe($('peers'), { childList: true });

const toggle = $('peerstoggle');
toggle.addEventListener('click', () => {
  const open = !app.classList.contains('peers-open');
  app.classList.toggle('peers-open', open);
  toggle.setAttribute('aria-expanded', String(open));
});

// The visual viewport shrinks when an on-screen keyboard opens (iOS Safari resizes only
// that one); the app is sized to it, so the log shrinks and the composer stays in view.
const viewport = globalThis.visualViewport;
const fit = () => {
  // × scale: a pinch-zoom shrinks the visual viewport too, and must not shrink the app.
  if (viewport) document.documentElement.style.setProperty('--app-height', `${Math.round(viewport.height * viewport.scale)}px`);
  document.documentElement.style.setProperty('--header-height', `${app.querySelector('header').offsetHeight}px`);
};
viewport?.addEventListener('resize', fit);
new ResizeObserver(fit).observe(app.querySelector('header'));

// Highlight while files are dragged over the chat (main.js takes the drop itself).
const drop = $('drop');
let depth = 0;
const dragging = (on) => drop.classList.toggle('dragging', on);
drop.addEventListener('dragenter', (e) => { if (e.dataTransfer?.types.includes('Files')) { depth++; dragging(true); } });
drop.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; dragging(false); } });
drop.addEventListener('drop', () => { depth = 0; dragging(false); });

// The log keeps its newest message in view when it shrinks (a keyboard opening, the
// panel above it growing) if it showed the newest one before.
const log = $('log');
let atEnd = true;
log.addEventListener('scroll', () => { atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40; }, { passive: true });
new ResizeObserver(() => { if (atEnd) log.scrollTop = log.scrollHeight; }).observe(log);
