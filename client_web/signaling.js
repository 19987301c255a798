/** The signaling WebSocket (docs/PROTOCOL.md "Signaling"): join, reconnect with backoff
 * and the resume token. Emits `frame` (detail: the frame), `up` and `down`. */
import { takeEarly } from './boot.js';

export const BACKOFF = [250, 500, 1000, 2000, 4000, 8000];

export class Signaling extends EventTarget {
  constructor(url, room, name) {
    super();
    Object.assign(this, { url, room, name, resume: null, ws: null, tries: 0, queue: [], closed: false, up: false });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  connect() {
    // The first connection may have been opened (and joined) by boot.js already.
    const early = !this.ws && takeEarly(this.room, this.name);
    const ws = (this.ws = early ? early.ws : new WebSocket(this.url));
    if (!early) ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room: this.room, name: this.name, ...(this.resume && { resume: this.resume }) }));
    ws.onmessage = ({ data }) => {
      let f;
      try { f = JSON.parse(data); } catch { return; }
      if (f.type === 'welcome') {
        performance.mark('confide:welcome');
        this.resume = f.resume;
        this.tries = 0;
        this.up = true;
        for (const q of this.queue.splice(0)) ws.send(q);
        this.emit('up', f);
      }
      this.emit('frame', f);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.up = false;
      this.emit('down', e.code);
      // 4001: another tab took our id over; 1000: we left.
      if (this.closed || e.code === 4001 || e.code === 1000) return;
      setTimeout(() => this.connect(), BACKOFF[Math.min(this.tries++, BACKOFF.length - 1)] * (0.8 + Math.random() * 0.4));
    };
    for (const data of early ? early.frames : []) ws.onmessage({ data });
  }

  /** Send a frame now, or after the next welcome (bounded) when the server is away. */
  send(frame) {
    const text = JSON.stringify(frame);
    if (this.up) this.ws.send(text);
    else if (this.queue.length < 200) this.queue.push(text);
  }

  /** Leave the room for good. */
  leave() {
    this.closed = true;
    if (this.up) this.ws.send('{"type":"leave"}');
    this.ws?.close(1000);
  }
}
