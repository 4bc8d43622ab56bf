"""Page knowledge for the portable login state: the JavaScript injected into WhatsApp Web.

Where the site keeps its login (checked against a public copy of the site bundle's
``WAWebDbEncryptionKey`` module, found with the code search): Dexie database
``wawc_db_enc``, stores ``keys`` (``++id``: records ``{id, key: CryptoKey, _expiration}``)
and ``fts_hmac_keys``. Each key is made by
``crypto.subtle.importKey("raw", getRandomValues(new Uint8Array(128)), {name: "HKDF"},
false, ["deriveKey"])`` and only ever used through ``deriveKey`` afterwards; the
localStorage secrets (``WebEncKeySalt`` & co.) are encrypted with keys derived from it.
whatsapp-web.js never touches this: its LocalAuth / RemoteAuth
(pedroslopez/whatsapp-web.js ``src/authStrategies/RemoteAuth.js``) zip the profile's
``Default/IndexedDB`` and ``Local Storage`` folders, i.e. the on-disk bytes, which is
what ZapHub's profile archives do too. The simulator (tests/simulator/static/wa.js,
``storeLogin``) mirrors the site's import.

Three scripts:

* :data:`CAPTURE_JS` (init script, a template on the binding name) wraps
  ``SubtleCrypto.prototype.importKey``: a non-extractable import's bytes are copied
  before the native call (the site zeroes its buffer right after) and handed to the
  worker's binding once the import succeeded. Nothing is kept in the page.
* :data:`DUMP_JS` reads every database of the origin (opened without a version, so
  reading never creates or upgrades one) and localStorage, and swaps each CryptoKey
  for the index of the recorded key with the same fingerprint.
* :data:`RESTORE_JS` decodes everything (keys re-imported non-extractable) before
  recreating each database at its exact version inside ``onupgradeneeded``, then writes
  localStorage; it resolves once every transaction completed.
"""

from __future__ import annotations

CAPTURE_JS = r"""
(() => {
  "use strict";
  const send = globalThis[%(binding)s];
  // Playwright's binding function works from its closure: take it off window so no
  // page script can call or wrap it.
  delete globalThis[%(binding)s];
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (typeof send !== "function" || !subtle || typeof SubtleCrypto === "undefined") return;
  // Everything the wrapper needs is held in this closure, so a page script that later
  // replaces these globals can neither read the material nor unhook the recording.
  const proto = SubtleCrypto.prototype;
  const nativeImport = proto.importKey;
  const apply = Reflect.apply;
  const fromCharCode = String.fromCharCode;
  const btoa_ = globalThis.btoa;
  const U8 = Uint8Array;
  const isView = ArrayBuffer.isView;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const then = Promise.prototype.then;
  const bytesOf = (data) => {
    if (data instanceof ArrayBuffer) return new U8(data.slice(0));
    if (isView(data)) return new U8(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    return null;
  };
  const b64 = (u8) => {
    let s = "";
    for (let i = 0; i < u8.length; i += 0x8000) s += apply(fromCharCode, null, u8.subarray(i, i + 0x8000));
    return btoa_(s);
  };
  function importKey(format, keyData, algorithm, extractable, usages) {
    let rec = null;
    try {
      if (extractable === false && typeof format === "string") {
        if (format === "jwk") rec = { format, keyData: parse(stringify(keyData)) };
        else {
          const bytes = bytesOf(keyData);
          if (bytes) rec = { format, keyData: b64(bytes) };
        }
        if (rec) {
          rec.algorithm = parse(stringify(algorithm));
          rec.usages = parse(stringify(Array.from(usages)));
        }
      }
    } catch (e) {
      rec = null; // never change the page's behaviour: an odd call is just not recorded
    }
    const result = apply(nativeImport, this, arguments);
    if (rec) {
      const payload = rec;
      rec = null;
      const deliver = () => {
        try {
          apply(then, send(payload), [null, () => {}]);
        } catch (e) {}
      };
      apply(then, result, [deliver, () => {}]);
    }
    return result;
  }
  const desc = { value: importKey, writable: true, configurable: true, enumerable: true };
  Object.defineProperty(proto, "importKey", desc);
})();
"""

# Shared by the dump and the restore: tagged JSON codec and key fingerprints.
_COMMON_JS = r"""
  const TAG = "$zh";
  const b64 = (u8) => {
    let s = "";
    for (let i = 0; i < u8.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
    }
    return btoa(s);
  };
  const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
  const enc = (s) => new TextEncoder().encode(s);
  const FIXED = enc("zaphub portable login state fingerprint v1");
  const VIEWS = {
    Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
    Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView,
  };
  const fail = (msg) => { const e = new Error(msg); e.notPortable = true; throw e; };
  const req = (r) => new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const txDone = (tx) => new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });

  /** A string only the same secret (and the same algorithm/usages) produces. */
  async function fingerprint(key) {
    const a = key.algorithm || {};
    const name = a.name;
    const usages = [...key.usages].sort();
    const hash = a.hash ? a.hash.name : "";
    const head = [key.type, name, hash, usages.join(",")].join("|");
    let out = null;
    if (name === "HKDF" || name === "PBKDF2") {
      const params = name === "HKDF"
        ? { name, hash: "SHA-256", salt: FIXED, info: FIXED }
        : { name, hash: "SHA-256", salt: FIXED, iterations: 1 };
      if (usages.includes("deriveBits")) out = await crypto.subtle.deriveBits(params, key, 256);
      else if (usages.includes("deriveKey")) {
        const hmac = { name: "HMAC", hash: "SHA-256", length: 256 };
        const mac = await crypto.subtle.deriveKey(params, key, hmac, true, ["sign"]);
        out = await crypto.subtle.exportKey("raw", mac);
      }
    } else if (name === "HMAC" && usages.includes("sign")) {
      out = await crypto.subtle.sign("HMAC", key, FIXED);
    } else if ((name === "AES-GCM" || name === "AES-CBC") && usages.includes("encrypt")) {
      const iv = FIXED.slice(0, name === "AES-GCM" ? 12 : 16);
      out = await crypto.subtle.encrypt({ name, iv }, key, FIXED);
    } else if (name === "AES-CTR" && usages.includes("encrypt")) {
      out = await crypto.subtle.encrypt({ name, counter: FIXED.slice(0, 16), length: 64 }, key, FIXED);
    } else if (name === "RSASSA-PKCS1-v1_5" && usages.includes("sign")) {
      out = await crypto.subtle.sign(name, key, FIXED);
    }
    if (out === null) return null;
    return head + "|" + hex(await crypto.subtle.digest("SHA-256", out));
  }

  async function importRecord(rec, extractable) {
    const data = rec.format === "jwk" ? rec.keyData : unb64(rec.keyData);
    return crypto.subtle.importKey(rec.format, data, rec.algorithm, extractable, rec.usages);
  }
"""

DUMP_JS = (
    "async (records) => {\n"
    + _COMMON_JS
    + r"""
  const byPrint = new Map();
  for (let i = 0; i < records.length; i++) {
    try {
      const print = await fingerprint(await importRecord(records[i], false));
      if (print !== null && !byPrint.has(print)) byPrint.set(print, i);
    } catch (e) { /* a record the browser refuses matches nothing */ }
  }
  const used = new Map(); // record index (or exported key) -> position in the dump's key list
  const keys = [];
  async function keyRef(key, where) {
    if (key.extractable) {
      const jwk = await crypto.subtle.exportKey("jwk", key);
      const a = key.algorithm;
      const algorithm = { name: a.name };
      if (a.hash) algorithm.hash = a.hash.name;
      if (a.namedCurve) algorithm.namedCurve = a.namedCurve;
      keys.push({ format: "jwk", keyData: jwk, algorithm, usages: [...key.usages], extractable: true });
      return keys.length - 1;
    }
    let print = null;
    try { print = await fingerprint(key); } catch (e) { print = null; }
    if (print === null) {
      const what = `${key.algorithm.name} CryptoKey (${[...key.usages]})`;
      fail(`IndexedDB ${where} holds a non-extractable ${what} that no fingerprint can match`);
    }
    if (!byPrint.has(print)) {
      fail(
        `IndexedDB ${where} holds a ${key.algorithm.name} CryptoKey with no recorded material` +
          " (made by generateKey, deriveKey, unwrapKey or in a Worker?)"
      );
    }
    const idx = byPrint.get(print);
    if (!used.has(idx)) { used.set(idx, keys.length); keys.push(records[idx]); }
    return used.get(idx);
  }
  async function encode(v, where, seen) {
    if (v === null || typeof v === "boolean" || typeof v === "string") return v;
    if (v === undefined) return { [TAG]: "undefined" };
    if (typeof v === "number") {
      if (Number.isFinite(v) && !Object.is(v, -0)) return v;
      return { [TAG]: "number", v: String(Object.is(v, -0) ? "-0" : v) };
    }
    if (typeof v === "bigint") return { [TAG]: "bigint", v: v.toString() };
    if (typeof v !== "object") fail(`IndexedDB ${where} holds a ${typeof v} value`);
    if (seen.has(v)) fail(`IndexedDB ${where} holds a value with a cycle or shared reference`);
    seen.add(v);
    try {
      if (v instanceof CryptoKey) return { [TAG]: "key", i: await keyRef(v, where) };
      if (Array.isArray(v)) {
        const out = [];
        for (let i = 0; i < v.length; i++) out.push(await encode(v[i], where, seen));
        return out;
      }
      if (v instanceof Date) return { [TAG]: "date", v: v.getTime() };
      if (v instanceof ArrayBuffer) return { [TAG]: "buffer", v: b64(new Uint8Array(v)) };
      if (ArrayBuffer.isView(v)) {
        const kind = Object.keys(VIEWS).find((k) => VIEWS[k].prototype === Object.getPrototypeOf(v));
        if (!kind) fail(`IndexedDB ${where} holds an unknown typed array`);
        return { [TAG]: "view", t: kind, v: b64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
      }
      if (v instanceof Map) {
        const out = [];
        for (const [k, x] of v) out.push([await encode(k, where, seen), await encode(x, where, seen)]);
        return { [TAG]: "map", v: out };
      }
      if (v instanceof Set) {
        const out = [];
        for (const x of v) out.push(await encode(x, where, seen));
        return { [TAG]: "set", v: out };
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        const kind = Object.prototype.toString.call(v).slice(8, -1);
        fail(`IndexedDB ${where} holds a ${kind} value that cannot be carried`);
      }
      const out = {};
      for (const k of Object.keys(v)) out[k] = await encode(v[k], where, seen);
      // A plain object that happens to carry our tag name is wrapped so decoding is exact.
      return TAG in out ? { [TAG]: "object", v: out } : out;
    } finally {
      seen.delete(v);
    }
  }

  async function readDb(name) {
    const open = indexedDB.open(name); // no version: never creates or upgrades
    let vanished = false;
    open.onupgradeneeded = () => { vanished = true; open.transaction.abort(); };
    let db;
    try { db = await req(open); } catch (e) { if (vanished) return null; throw e; }
    try {
      const names = [...db.objectStoreNames];
      const stores = [];
      if (names.length) {
        const tx = db.transaction(names, "readonly");
        const pending = names.map(async (sname) => {
          const s = tx.objectStore(sname);
          const indexes = [...s.indexNames].map((iname) => {
            const ix = s.index(iname);
            return { name: iname, keyPath: ix.keyPath, unique: ix.unique, multiEntry: ix.multiEntry };
          });
          const [pks, values] = await Promise.all([req(s.getAllKeys()), req(s.getAll())]);
          return { name: sname, keyPath: s.keyPath, autoIncrement: s.autoIncrement, indexes, pks, values };
        });
        const raw = await Promise.all(pending);
        await txDone(tx);
        // Encoding awaits crypto, so it runs only once the read transaction is over.
        for (const st of raw) {
          const where = `${name}/${st.name}`;
          const recs = [];
          for (let i = 0; i < st.pks.length; i++) {
            const k = await encode(st.pks[i], where, new Set());
            recs.push([k, await encode(st.values[i], where, new Set())]);
          }
          const { pks, values, ...shape } = st;
          stores.push({ ...shape, records: recs });
        }
      }
      return { name, version: db.version, stores };
    } finally {
      db.close();
    }
  }

  try {
    const dbs = [];
    const listed = (await indexedDB.databases()).map((d) => d.name).sort();
    for (const name of listed) {
      const one = await readDb(name);
      if (one) dbs.push(one);
    }
    const ls = {};
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      ls[k] = localStorage.getItem(k);
    }
    return { ok: true, origin: location.origin, indexedDB: dbs, localStorage: ls, keys };
  } catch (e) {
    return { ok: false, notPortable: !!e.notPortable, error: String(e && e.message || e) };
  }
}
"""
)

RESTORE_JS = (
    "async (state) => {\n"
    + _COMMON_JS
    + r"""
  function decode(v, keys) {
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) return v.map((x) => decode(x, keys));
    const tag = v[TAG];
    if (tag === undefined) {
      const out = {};
      for (const k of Object.keys(v)) out[k] = decode(v[k], keys);
      return out;
    }
    switch (tag) {
      case "undefined": return undefined;
      case "number": return v.v === "-0" ? -0 : Number(v.v);
      case "bigint": return BigInt(v.v);
      case "key": {
        if (!(v.i in keys)) throw new Error(`state refers to missing key ${v.i}`);
        return keys[v.i];
      }
      case "date": return new Date(v.v);
      case "buffer": return unb64(v.v).buffer;
      case "view": {
        const C = VIEWS[v.t];
        if (!C) throw new Error(`state holds an unknown typed array ${v.t}`);
        const buf = unb64(v.v).buffer;
        return C === DataView ? new DataView(buf) : new C(buf);
      }
      case "map": return new Map(v.v.map(([k, x]) => [decode(k, keys), decode(x, keys)]));
      case "set": return new Set(v.v.map((x) => decode(x, keys)));
      case "object": {
        const out = {};
        for (const k of Object.keys(v.v)) out[k] = decode(v.v[k], keys);
        return out;
      }
      default: throw new Error(`state holds an unknown tag ${tag}`);
    }
  }

  function rebuild(db, keys) {
    return new Promise((resolve, reject) => {
      const open = indexedDB.open(db.name, db.version);
      open.onupgradeneeded = () => {
        const idb = open.result;
        for (const st of db.stores) {
          const opts = { autoIncrement: !!st.autoIncrement };
          if (st.keyPath !== null) opts.keyPath = st.keyPath;
          const s = idb.createObjectStore(st.name, opts);
          for (const ix of st.indexes) {
            s.createIndex(ix.name, ix.keyPath, { unique: ix.unique, multiEntry: ix.multiEntry });
          }
          for (const [k, v] of st.records) {
            if (st.keyPath !== null) s.put(v);
            else s.put(v, k);
          }
        }
      };
      open.onsuccess = () => { open.result.close(); resolve(); }; // after the upgrade transaction completed
      open.onerror = () => reject(open.error);
      open.onblocked = () => reject(new Error(`database ${db.name} is blocked`));
    });
  }

  const deleteDb = (name) => new Promise((resolve, reject) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(new Error(`database ${name} is blocked`));
  });

  try {
    // Every await on crypto happens here, before any IndexedDB transaction opens.
    const keys = [];
    for (const rec of state.keys) keys.push(await importRecord(rec, rec.extractable === true));
    const dbs = state.indexedDB.map((db) => ({
      name: db.name,
      version: db.version,
      stores: db.stores.map((st) => ({
        ...st,
        records: st.records.map(([k, v]) => [decode(k, keys), decode(v, keys)]),
      })),
    }));
    for (const d of await indexedDB.databases()) await deleteDb(d.name);
    for (const db of dbs) await rebuild(db, keys);
    localStorage.clear();
    for (const [k, v] of Object.entries(state.localStorage)) localStorage.setItem(k, v);
    return { ok: true, databases: dbs.length, keys: keys.length };
  } catch (e) {
    return { ok: false, error: String(e && e.message || e) };
  }
}
"""
)
