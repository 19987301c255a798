/** Messages kept on this device, per room, in IndexedDB; never sent to anyone. */
let db = null;

function store(mode) {
  db ||= new Promise((resolve, reject) => {
    const req = indexedDB.open('confide', 1);
    req.onupgradeneeded = () => req.result.createObjectStore('messages', { autoIncrement: true }).createIndex('room', 'room');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return db.then((d) => d.transaction('messages', mode).objectStore('messages'));
}
const done = (req) => new Promise((resolve, reject) => { req.onsuccess = () => resolve(req.result); req.onerror = () => reject(req.error); });

/** Messages kept per room; the oldest go first (a flood cannot fill the disk). */
export const MAX_PER_ROOM = 1000;

/** Store one message record (`room` is added), dropping the room's oldest beyond
 * MAX_PER_ROOM. Resolves (never rejects) when stored. */
export async function save(room, record) {
  try {
    const messages = await store('readwrite');
    await done(messages.add({ ...record, room }));
    let extra = (await done(messages.index('room').count(room))) - MAX_PER_ROOM;
    if (extra <= 0) return;
    // The index walks one room's records by key, which autoIncrement makes oldest first.
    const cursor = messages.index('room').openCursor(room);
    await new Promise((resolve, reject) => {
      cursor.onerror = () => reject(cursor.error);
      cursor.onsuccess = () => {
        const at = cursor.result;
        if (!at || extra-- <= 0) return resolve();
        at.delete();
        at.continue();
      };
    });
  } catch {
    // History is a convenience: a full or blocked store must not stop the chat.
  }
}

/** The room's stored records, oldest first. */
export const load = (room) => store('readonly').then((s) => done(s.index('room').getAll(room))).catch(() => []);

/** Delete the room's records. */
export async function clear(room) {
  const s = await store('readwrite');
  const keys = await done(s.index('room').getAllKeys(room));
  for (const k of keys) s.delete(k);
}
