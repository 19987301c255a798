/** The one event base of the client: an EventTarget whose events carry `detail`. */
export class Emitter extends EventTarget {
  /** Dispatch a CustomEvent `type` with `detail`. */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
