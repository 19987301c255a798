/** Telling someone who is not looking: while the page is hidden (or unfocused), a new
 * message or file offer counts as unread in the tab title and the app badge
 * (`navigator.setAppBadge`) and shows a system notification when the person allowed them.
 * Permission is asked only from the "Notify me" button (a user action, never on load), and
 * in password rooms the text stays out of notifications unless the person opts in. */
import { el } from './ui.js';
import { ready } from './pwa.js';

/** Characters of a message shown in its notification. */
export const PREVIEW_CHARS = 140;
const SHOW_TEXT = 'confide-notify-text';

/** Whether the person is looking at the page. */
export const looking = () => !document.hidden && document.hasFocus();

/** The notification's body: the text, or only that something came (password rooms). */
export function notificationBody(text, locked, showText) {
  if (locked && !showText) return 'New message (text hidden: password room)';
  return text.length > PREVIEW_CHARS ? text.slice(0, PREVIEW_CHARS - 1) + '…' : text;
}

export class Notifier {
  /** @param {{room: string, locked: boolean, title: () => string}} o
   * `title()` is the room's heading; `locked`: a password room. */
  constructor(o) {
    Object.assign(this, o, { unread: 0 });
    addEventListener('focus', () => this.seen());
    document.addEventListener('visibilitychange', () => !document.hidden && this.seen());
    this.render();
  }

  /** Controls for the page: "Notify me", and in password rooms the opt-in to show text. */
  controls() {
    const on = () => typeof Notification !== 'undefined' && Notification.permission === 'granted';
    const button = el('button', { type: 'button', class: 'notify', onclick: async () => {
      if (typeof Notification === 'undefined') return;
      const answer = await Notification.requestPermission();
      button.hidden = on();
      // Asked again, a browser answers "denied" at once: say where it can be changed.
      if (answer === 'denied') Object.assign(button, { disabled: true, textContent: 'Notifications blocked in the browser' });
    } }, 'Notify me');
    // Plain http on a LAN is no secure context: notifications are refused there anyway.
    button.hidden = on() || typeof Notification === 'undefined' || !isSecureContext;
    if (!this.locked) return [button];
    const box = el('input', { type: 'checkbox', checked: localStorage.getItem(SHOW_TEXT) === '1',
      onchange: () => localStorage.setItem(SHOW_TEXT, box.checked ? '1' : '0') });
    return [button, el('label', { class: 'check' }, box, ' Show message text in notifications')];
  }

  /** A message from `who` arrived. */
  message(who, text) {
    this.arrived(`${who} in ${this.room}`, notificationBody(text, this.locked, localStorage.getItem(SHOW_TEXT) === '1'));
  }

  /** `who` offers a file. */
  fileOffer(who, name) {
    this.arrived(`${who} in ${this.room}`, this.locked && localStorage.getItem(SHOW_TEXT) !== '1' ? 'Offers a file' : `Offers ${name}`);
  }

  arrived(title, body) {
    if (looking()) return;
    this.unread++;
    this.render();
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    const options = { body, tag: `confide:${this.room}`, renotify: true, icon: '/icon-192.png', data: { room: this.room } };
    // Through the service worker where there is one: Android allows no other kind, and
    // its notificationclick focuses the room's window even after this page was frozen.
    ready.then((registration) => {
      if (registration) return registration.showNotification(title, options);
      const n = new Notification(title, options);
      n.onclick = () => { focus(); n.close(); };
    }).catch((e) => console.warn('notification', e));
  }

  /** The person looks again: nothing is unread, and the room's notifications go. */
  seen() {
    if (!this.unread) return;
    this.unread = 0;
    this.render();
    ready.then((r) => r?.getNotifications({ tag: `confide:${this.room}` })).then((list) => list?.forEach((n) => n.close())).catch(() => {});
  }

  render() {
    document.title = `${this.unread ? `(${this.unread}) ` : ''}Confide · ${this.title()}`;
    if (!('setAppBadge' in navigator)) return;
    (this.unread ? navigator.setAppBadge(this.unread) : navigator.clearAppBadge()).catch(() => {});
  }
}
