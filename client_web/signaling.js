/** The signaling WebSocket (docs/PROTOCOL.md "Signaling"): join, reconnect with backoff
 * and the resume token. Emits `frame` (detail: the frame), `up` and `down`. */
import { takeEarly } from './boot.js';
import { Emitter } from './emitter.js';
import { backoff, SIGNALING_QUEUE_MAX } from './constants.js';

export class Signaling extends Emitter {
  constructor(url, room, name) {
    super();
    Object.assign(this, { url, room, name, resume: null, ws: null, tries: 0, queue: [], dropped: 0, closed: false, up: false });
  }

  connect() {
    // The first connection may have been opened by boot.js already (not joined).
    const ws = (this.ws = (!this.ws && takeEarly()) || new WebSocket(this.url));
    const join = () => ws.send(JSON.stringify({ type: 'join', room: this.room, name: this.name, ...(this.resume && { resume: this.resume }) }));
    if (ws.readyState === WebSocket.OPEN) join();
    else ws.onopen = join;
    ws.onmessage = ({ data }) => {
      let frame;
      try { frame = JSON.parse(data); } catch { return; }
      if (frame.type === 'welcome') {
        performance.mark('confide:welcome');
        this.resume = frame.resume;
        this.tries = 0;
        this.up = true;
        for (const text of this.queue.splice(0)) ws.send(text);
        this.emit('up', frame);
      }
      this.emit('frame', frame);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.up = false;
      this.emit('down', e.code);
      // 4001: another tab took our id over (for good: wake() leaves it too); 1000: we left.
      if (e.code === 4001) this.replaced = true;
      if (this.closed || this.replaced || e.code === 1000) return;
      this.timer = setTimeout(() => this.connect(), backoff(this.tries++));
    };
  }

  /** Reconnect now if the socket is closed (the page is back: no reason to wait out the
   * backoff); nothing when it is open or opening, or after leave(). */
  wake() {
    if (this.closed || this.replaced || !this.ws || this.ws.readyState < WebSocket.CLOSING) return;
    clearTimeout(this.timer);
    this.tries = 0;
    this.connect();
  }

  /** Send a frame now, or after the next welcome (bounded) when the server is away. */
  send(frame) {
    const text = JSON.stringify(frame);
    if (this.up) this.ws.send(text);
    else if (this.queue.length < SIGNALING_QUEUE_MAX) this.queue.push(text);
    else this.dropped++;
  }

  /** Leave the room for good. */
  leave() {
    this.closed = true;
    if (this.up) this.ws.send('{"type":"leave"}');
    this.ws?.close(1000);
  }
}
