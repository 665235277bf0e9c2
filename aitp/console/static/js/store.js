// IndexedDB persistence for work in progress (uploads, the watched task, review drafts), kept apart per project
// and key: every record's id starts with the namespace "<project>|<key id>|".

const DB = 'aitp-console';
const STORE = 'work';
let opening = null;

function open() {
  opening ||= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opening;
}

function done(req) {
  return new Promise((resolve, reject) => { req.onsuccess = () => resolve(req.result); req.onerror = () => reject(req.error); });
}

async function tx(mode) { return (await open()).transaction(STORE, mode).objectStore(STORE); }

export class WorkStore {
  constructor(project, keyId) { this.ns = `${project}|${keyId}|`; }

  async put(kind, name, value) { await done((await tx('readwrite')).put({ id: `${this.ns}${kind}|${name}`, kind, name, value, saved: Date.now() })); }

  async get(kind, name) { const rec = await done((await tx('readonly')).get(`${this.ns}${kind}|${name}`)); return rec ? rec.value : null; }

  async remove(kind, name) { await done((await tx('readwrite')).delete(`${this.ns}${kind}|${name}`)); }

  async all(kind) {
    const prefix = `${this.ns}${kind}|`;
    const recs = await done((await tx('readonly')).getAll(IDBKeyRange.bound(prefix, `${prefix}\uffff`)));
    return recs.map((r) => ({ name: r.name, value: r.value, saved: r.saved }));
  }
}
