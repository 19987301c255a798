/** The composer: the recipient list, Enter to send, the typing signal both ways, and files
 * chosen, dropped on the chat or pasted into the message box. */
import { el, $, batched } from './ui.js';
import { MAX_TEXT } from './chat.js';

/** Milliseconds between two "typing" frames while the person types, and of quiet before
 * "stopped typing". */
export const TYPING_EVERY = 3000;
/** Milliseconds a peer's "typing" shows without news from it. */
export const TYPING_SHOWN = 6000;

/**
 * `show(record)` puts our message in the log (and history) and returns its element.
 * @param {{mesh: import('./mesh.js').Mesh, chat: import('./chat.js').Chat,
 *   files: import('./files.js').Files, name: string, show: (record: object) => Element}} parts
 */
export class Composer {
  constructor(parts) {
    Object.assign(this, parts);
    /** @type {Map<string, number>} peer id → timer that hides its "typing" */
    this.typists = new Map();
    this.lastTyping = 0;
    this.stopTyping = 0;
    const text = (this.text = $('text'));
    text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('compose').requestSubmit(); }
    });
    text.addEventListener('input', () => this.typed());
    $('compose').onsubmit = (e) => { e.preventDefault(); this.submit(); };
    $('file').onchange = (e) => { this.offer(e.target.files); e.target.value = ''; };
    $('drop').addEventListener('dragover', (e) => e.preventDefault());
    $('drop').addEventListener('drop', (e) => { e.preventDefault(); this.offer(e.dataTransfer.files); });
    // A file pasted into the message box (a screenshot, a copied file) is offered like one chosen.
    text.addEventListener('paste', (e) => { if (e.clipboardData?.files.length) { e.preventDefault(); this.offer(e.clipboardData.files); } });
    this.mesh.addEventListener('peers', batched(() => this.recipients()));
  }

  /** The "To" list: everyone, or one peer (kept while that peer is here). */
  recipients() {
    const to = $('to'), chosen = to.value;
    to.replaceChildren(el('option', { value: '' }, 'Everyone'), ...[...this.mesh.peers.values()].map((record) => el('option', { value: record.id }, record.name)));
    to.value = this.mesh.peers.has(chosen) ? chosen : '';
  }

  /** Write to peer `id` privately. */
  address(id) {
    $('to').value = id;
    this.text.focus();
  }

  targets() {
    return $('to').value ? [$('to').value] : [...this.mesh.peers.keys()];
  }

  sendTyping(on) {
    for (const id of this.mesh.peers.keys()) this.mesh.send(id, { t: 'typing', on });
  }

  /** At most one "typing" every TYPING_EVERY ms, and "stopped" after as long a pause. */
  typed() {
    if (Date.now() - this.lastTyping > TYPING_EVERY) { this.lastTyping = Date.now(); this.sendTyping(true); }
    clearTimeout(this.stopTyping);
    this.stopTyping = setTimeout(() => { this.lastTyping = 0; this.sendTyping(false); }, TYPING_EVERY);
  }

  submit() {
    const body = this.text.value;
    if (!body.trim()) return;
    const size = new TextEncoder().encode(body).length;
    const notice = $('notice');
    if (size > MAX_TEXT) return void (notice.textContent = `Message too long: ${size} bytes, the limit is ${MAX_TEXT}. Send it as a file instead.`);
    const to = this.targets();
    if (!to.length) return void (notice.textContent = 'Nobody else is in the room yet: share the link first.');
    notice.textContent = '';
    const dm = !!$('to').value;
    const frame = this.chat.compose(body, to, dm);
    this.show({ id: frame.id, who: this.name, ts: frame.ts, text: body, dm, mine: true, to: dm ? this.mesh.nameOf(to[0]) : '' });
    this.text.value = '';
    clearTimeout(this.stopTyping);
    this.lastTyping = 0;
    this.sendTyping(false);
  }

  offer(list) {
    for (const file of list) this.files.offer(file, this.targets(), !!$('to').value);
  }

  /** Peer `id` started (`on`) or stopped typing; a message from it stops it too. */
  typing(id, on) {
    clearTimeout(this.typists.get(id));
    if (on) this.typists.set(id, setTimeout(() => { this.typists.delete(id); this.showTypists(); }, TYPING_SHOWN));
    else this.typists.delete(id);
    this.showTypists();
  }

  showTypists() {
    const names = [...this.typists.keys()].map((id) => this.mesh.nameOf(id));
    $('typing').textContent = names.length ? `${names.join(', ')} typing…` : '';
  }
}
