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

/** Store one message record (`room` is added). */
export const save = (room, rec) => store('readwrite').then((s) => done(s.add({ ...rec, room }))).catch(() => {});

/** The room's stored records, oldest first. */
export const load = (room) => store('readonly').then((s) => done(s.index('room').getAll(room))).catch(() => []);

/** Delete the room's records. */
export async function clear(room) {
  const s = await store('readwrite');
  const keys = await done(s.index('room').getAllKeys(room));
  for (const k of keys) s.delete(k);
}
