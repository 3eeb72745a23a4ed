// The globals a JavaScript class sees, over the natives of its object
// (jsrt/native.go). Run once per object runtime, before the module.
(function (native) {
  "use strict";
  const g = globalThis;

  // ---- bytes and text ----
  function bytesOf(body) {
    if (body === null || body === undefined) return null;
    if (body instanceof ArrayBuffer) return new Uint8Array(body);
    if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    return new Uint8Array(native.encode(String(body)));
  }
  function bufferOf(u8) {
    if (!u8) return null;
    if (u8.byteOffset === 0 && u8.byteLength === u8.buffer.byteLength) return u8.buffer;
    return u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength);
  }
  // Regular expressions used on every event, made once.
  const absoluteURL = /^https?:\/\/[^/?#]*[/?#]/;
  const space = /%20/g, reservedChars = /[!'()~]/g, utf8Label = /^utf-?8$/i;
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(s = "") { return new Uint8Array(native.encode(String(s))); }
  }
  class TextDecoder {
    constructor(label = "utf-8") {
      if (!utf8Label.test(label)) throw new RangeError("TextDecoder supports utf-8 only");
    }
    get encoding() { return "utf-8"; }
    decode(b) { return b === undefined ? "" : native.decode(bufferOf(bytesOf(b))); }
  }

  // ---- URLs ----
  function encodeForm(s) {
    return encodeURIComponent(s).replace(space, "+").replace(reservedChars, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  }
  class URLSearchParams {
    constructor(init = "") {
      this._list = [];
      this._url = null;
      if (init instanceof URLSearchParams) this._list = init._list.map((e) => e.slice());
      else if (typeof init === "string") this._parse(init);
      else if (Array.isArray(init) || (init && typeof init[Symbol.iterator] === "function")) for (const [k, v] of init) this.append(k, v);
      else if (init && typeof init === "object") for (const k of Object.keys(init)) this.append(k, init[k]);
    }
    // _parse reads application/x-www-form-urlencoded pairs (natively:
    // malformed escapes are kept as they are, as browsers do).
    _parse(s) { this._list = native.parseQuery(s); }
    _changed() { if (this._url) this._url._search = this._list.length ? "?" + this.toString() : ""; }
    get size() { return this._list.length; }
    append(k, v) { this._list.push([String(k), String(v)]); this._changed(); }
    set(k, v) {
      k = String(k);
      const i = this._list.findIndex((e) => e[0] === k);
      if (i < 0) this._list.push([k, String(v)]);
      else { this._list[i][1] = String(v); this._list = this._list.filter((e, j) => j <= i || e[0] !== k); }
      this._changed();
    }
    get(k) { const e = this._list.find((e) => e[0] === String(k)); return e ? e[1] : null; }
    getAll(k) { return this._list.filter((e) => e[0] === String(k)).map((e) => e[1]); }
    has(k) { return this._list.some((e) => e[0] === String(k)); }
    delete(k) { this._list = this._list.filter((e) => e[0] !== String(k)); this._changed(); }
    sort() { this._list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this._changed(); }
    forEach(cb, t) { for (const [k, v] of this._list) cb.call(t, v, k, this); }
    *entries() { for (const e of this._list) yield [e[0], e[1]]; }
    *keys() { for (const e of this._list) yield e[0]; }
    *values() { for (const e of this._list) yield e[1]; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._list.map(([k, v]) => encodeForm(k) + "=" + encodeForm(v)).join("&"); }
  }
  class URL {
    constructor(url, base) {
      const p = native.parseURL(String(url), base === undefined ? "" : String(base));
      this._protocol = p[0]; this._username = p[1]; this._password = p[2];
      this._hostname = p[3]; this._port = p[4]; this._pathname = p[5];
      this._search = p[6]; this._hash = p[7];
      this._params = null; // made when first asked for
    }
    static canParse(url, base) { try { new URL(url, base); return true; } catch (e) { return false; } }
    get protocol() { return this._protocol; }
    get username() { return this._username; }
    get password() { return this._password; }
    get hostname() { return this._hostname; }
    set hostname(v) { this._hostname = String(v); }
    get port() { return this._port; }
    set port(v) { this._port = String(v); }
    get host() { return this._hostname + (this._port ? ":" + this._port : ""); }
    get origin() { return this._protocol + "//" + this.host; }
    get pathname() { return this._pathname; }
    set pathname(v) { v = String(v); this._pathname = v.startsWith("/") ? v : "/" + v; }
    get search() { return this._search; }
    set search(v) { v = String(v); this._search = v === "" || v === "?" ? "" : v.startsWith("?") ? v : "?" + v; if (this._params) this._params._parse(this._search); }
    get searchParams() {
      if (!this._params) { this._params = new URLSearchParams(this._search); this._params._url = this; }
      return this._params;
    }
    get hash() { return this._hash; }
    set hash(v) { v = String(v); this._hash = v === "" || v === "#" ? "" : v.startsWith("#") ? v : "#" + v; }
    get href() {
      const auth = this._username ? this._username + (this._password ? ":" + this._password : "") + "@" : "";
      return this._protocol + "//" + auth + this.host + this._pathname + this._search + this._hash;
    }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }

  // ---- HTTP ----
  class Headers {
    constructor(init) {
      if (init instanceof Headers) { this._m = new Map(init._m); return; }
      this._m = new Map();
      if (Array.isArray(init)) for (let i = 0; i < init.length; i++) this.append(init[i][0], init[i][1]);
      else if (init && typeof init === "object") for (const k of Object.keys(init)) this.append(k, init[k]);
    }
    append(k, v) { k = String(k).toLowerCase(); v = String(v); const o = this._m.get(k); this._m.set(k, o === undefined ? v : o + ", " + v); }
    set(k, v) { this._m.set(String(k).toLowerCase(), String(v)); }
    get(k) { const v = this._m.get(String(k).toLowerCase()); return v === undefined ? null : v; }
    has(k) { return this._m.has(String(k).toLowerCase()); }
    delete(k) { this._m.delete(String(k).toLowerCase()); }
    forEach(cb, t) { for (const [k, v] of this._sorted()) cb.call(t, v, k, this); }
    _sorted() {
      const out = [];
      this._m.forEach((v, k) => out.push([k, v]));
      return out.length > 1 ? out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) : out;
    }
    *entries() { yield* this._sorted(); }
    *keys() { for (const e of this.entries()) yield e[0]; }
    *values() { for (const e of this.entries()) yield e[1]; }
    [Symbol.iterator]() { return this.entries(); }
  }
  // A body is kept as given when it is a string (_str, _body undefined)
  // and made bytes only when asked: a response's JSON goes to Go as the
  // string it is. headers are made when first read from the pairs of a
  // request that came in (_raw, flat: name, value, name, value, ...).
  class Body {
    _init(body, headers) {
      const h = headers instanceof Headers ? headers : new Headers(headers);
      if (body instanceof URLSearchParams) {
        if (!h.has("content-type")) h.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
        body = body.toString();
      } else if (typeof body === "string" && !h.has("content-type")) {
        h.set("content-type", "text/plain;charset=UTF-8");
      }
      if (body === null || body === undefined || body instanceof ArrayBuffer || ArrayBuffer.isView(body)) this._fill(h, null, null, bytesOf(body));
      else this._fill(h, null, String(body), undefined);
    }
    // _fill sets every field of a body: its Headers (or null and the raw
    // pairs to make them from), its string (or null) and its bytes
    // (undefined while only the string is there).
    _fill(headers, raw, str, bytes) {
      this._headers = headers;
      this._raw = raw;
      this._str = str;
      this._body = bytes;
      this.bodyUsed = false;
    }
    get headers() {
      if (this._headers === null) {
        const h = new Headers(), raw = this._raw;
        for (let i = 0; i < raw.length; i += 2) h.append(raw[i], raw[i + 1]);
        this._headers = h;
        this._raw = null;
      }
      return this._headers;
    }
    _bytes() {
      if (this._body === undefined) this._body = bytesOf(this._str);
      return this._body;
    }
    get body() { return this._bytes(); }
    _take() {
      if (this.bodyUsed) throw new TypeError("Body has already been used");
      this.bodyUsed = true;
      return this._bytes();
    }
    // _out is the body for Go: its string, or its bytes' buffer.
    _out() { return this._body === undefined ? this._str : bufferOf(this._body); }
    async arrayBuffer() { return bufferOf(this._take()) || new ArrayBuffer(0); }
    async bytes() { return new Uint8Array(await this.arrayBuffer()); }
    async text() {
      if (this._body === undefined && !this.bodyUsed) { this.bodyUsed = true; return this._str; }
      const b = this._take();
      return b ? native.decode(bufferOf(b)) : "";
    }
    async json() { return JSON.parse(await this.text()); }
    async formData() { return new URLSearchParams(await this.text()); }
  }
  class Request extends Body {
    constructor(input, init = {}) {
      super();
      const from = input instanceof Request ? input : null;
      const url = String(input);
      // An absolute http(s) URL (every request a class receives) is kept
      // as it is; anything else is resolved and normalised.
      this.url = from ? from.url : absoluteURL.test(url) ? url : new URL(url, "http://localhost/").href;
      this.method = String(init.method || (from ? from.method : "GET")).toUpperCase();
      this._init(init.body !== undefined ? init.body : from ? from._bytes() : null, new Headers(init.headers || (from ? from.headers : undefined)));
      this.signal = init.signal || null;
      this.cf = undefined;
    }
    clone() { return new Request(this); }
  }
  // incoming is the Request of an event: the constructor's checks and
  // copies are not needed for what Go hands over, and its headers are
  // made only if read.
  function incoming(method, url, raw, body) {
    const r = Object.create(Request.prototype);
    r.url = url;
    r.method = method;
    r._fill(null, raw, null, body === null ? null : new Uint8Array(body));
    r.signal = null;
    r.cf = undefined;
    return r;
  }
  class Response extends Body {
    constructor(body = null, init = {}) {
      super();
      this.status = init.status === undefined ? 200 : init.status | 0;
      if (this.status < 200 || this.status > 599) throw new RangeError("Response status " + this.status + " is outside 200..599");
      this.statusText = init.statusText || "";
      this._init(body, new Headers(init.headers));
      this.webSocket = null;
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    get redirected() { return false; }
    get type() { return "default"; }
    clone() { return new Response(this._bytes(), { status: this.status, statusText: this.statusText, headers: this.headers }); }
    static json(data, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers._m.has("content-type")) headers._m.set("content-type", "application/json");
      // What the constructor would do for a string body and these
      // headers, without its checks of what it is given.
      const r = Object.create(Response.prototype);
      r.status = init.status === undefined ? 200 : init.status | 0;
      if (r.status < 200 || r.status > 599) throw new RangeError("Response status " + r.status + " is outside 200..599");
      r.statusText = init.statusText || "";
      const text = JSON.stringify(data); // undefined: no body
      if (text === undefined) r._fill(headers, null, null, null);
      else r._fill(headers, null, text, undefined);
      r.webSocket = null;
      return r;
    }
    static redirect(url, status = 302) { return new Response(null, { status, headers: { location: String(url) } }); }
    static error() { return new Response(null, { status: 500 }); }
  }

  // ---- misc globals ----
  function clone(v, seen) {
    if (v === null || typeof v !== "object") {
      if (typeof v === "function" || typeof v === "symbol") throw new TypeError("structuredClone: " + typeof v + " cannot be cloned");
      return v;
    }
    if (seen.has(v)) return seen.get(v);
    let out;
    if (v instanceof Date) out = new Date(v.getTime());
    else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
    else if (v instanceof ArrayBuffer) out = v.slice(0);
    else if (ArrayBuffer.isView(v)) out = new v.constructor(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
    else if (v instanceof Map) { out = new Map(); seen.set(v, out); for (const [k, x] of v) out.set(clone(k, seen), clone(x, seen)); return out; }
    else if (v instanceof Set) { out = new Set(); seen.set(v, out); for (const x of v) out.add(clone(x, seen)); return out; }
    else if (Array.isArray(v)) { out = []; seen.set(v, out); for (let i = 0; i < v.length; i++) out[i] = clone(v[i], seen); return out; }
    else { out = {}; seen.set(v, out); for (const k of Object.keys(v)) out[k] = clone(v[k], seen); return out; }
    seen.set(v, out);
    return out;
  }
  function show(a) {
    if (typeof a === "string") return a;
    if (a instanceof Error) return (a.stack || a.name + ": " + a.message);
    try { const s = JSON.stringify(a); return s === undefined ? String(a) : s; } catch (e) { return String(a); }
  }
  const consoleOf = (level) => (...args) => native.log(level, args.map(show).join(" "));
  const globals = {
    TextEncoder, TextDecoder, URL, URLSearchParams, Headers, Request, Response,
    atob: (s) => native.atob(String(s)),
    btoa: (s) => native.btoa(String(s)),
    structuredClone: (v) => clone(v, new Map()),
    crypto: {
      randomUUID: () => native.randomUUID(),
      getRandomValues: (a) => { native.randomFill(a.buffer, a.byteOffset, a.byteLength); return a; },
    },
    console: { log: consoleOf("info"), info: consoleOf("info"), debug: consoleOf("debug"), warn: consoleOf("warn"), error: consoleOf("error") },
  };
  for (const k of Object.keys(globals)) Object.defineProperty(g, k, { value: globals[k], writable: true, configurable: true });

  // ---- storage ----
  function binding(x) {
    if (ArrayBuffer.isView(x)) return bufferOf(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    if (typeof x === "boolean") return x ? 1 : 0;
    if (typeof x === "bigint") return Number(x);
    if (x === undefined) throw new TypeError("SQL bindings cannot be undefined");
    return x;
  }
  class SqlStorageCursor {
    // r is native.exec's [columns, rows, rowsRead, rowsWritten, changes].
    constructor(r) {
      this._cols = r[0]; this._rows = r[1]; this._i = 0;
      this.rowsRead = r[2]; this.rowsWritten = r[3];
      // Not Cloudflare's: rows the last statement changed (the guide's
      // code reads it).
      this.changes = r[4];
    }
    get columnNames() { return this._cols.slice(); }
    _obj(row) { const o = {}; for (let j = 0; j < this._cols.length; j++) o[this._cols[j]] = row[j]; return o; }
    next() {
      if (this._i < this._rows.length) return { done: false, value: this._obj(this._rows[this._i++]) };
      return { done: true, value: undefined };
    }
    toArray() { const out = []; while (this._i < this._rows.length) out.push(this._obj(this._rows[this._i++])); return out; }
    one() {
      const left = this._rows.length - this._i;
      this._i = this._rows.length;
      if (left === 0) throw new Error("Expected exactly one result from SQL query, but got no results.");
      if (left > 1) throw new Error("Expected exactly one result from SQL query, but got multiple results.");
      return this._obj(this._rows[this._rows.length - 1]);
    }
    raw() {
      const self = this;
      return {
        next() { return self._i < self._rows.length ? { done: false, value: self._rows[self._i++].slice() } : { done: true, value: undefined }; },
        toArray() { const out = []; for (let r = this.next(); !r.done; r = this.next()) out.push(r.value); return out; },
        [Symbol.iterator]() { return this; },
      };
    }
    [Symbol.iterator]() { return this; }
  }
  class SqlStorage {
    // h is the object's handle: natives refuse storage calls of an
    // object other than the one whose turn it is.
    constructor(h) { this._h = h; }
    exec(query, ...bindings) { return new SqlStorageCursor(native.exec(this._h, String(query), bindings.map(binding))); }
    get databaseSize() { return native.databaseSize(this._h); }
  }
  const encodeValue = (v) => {
    if (v === undefined) throw new TypeError("cannot store undefined");
    return JSON.stringify(v);
  };
  const decodeValue = (t) => (typeof t === "string" ? JSON.parse(t) : t);
  function keysOf(k) { return (Array.isArray(k) ? k : [k]).map(String); }
  class DurableObjectStorage {
    constructor(h) { this._h = h; this.sql = new SqlStorage(h); }
    getSync(k) {
      const vals = native.kvGet(this._h, keysOf(k));
      if (!Array.isArray(k)) return vals[0] === null ? undefined : decodeValue(vals[0]);
      const m = new Map();
      k.forEach((key, i) => { if (vals[i] !== null) m.set(String(key), decodeValue(vals[i])); });
      return m;
    }
    async get(k) { return this.getSync(k); }
    async put(k, v) {
      if (k !== null && typeof k === "object") native.kvPut(this._h, Object.keys(k).map((key) => [key, encodeValue(k[key])]));
      else native.kvPut(this._h, [[String(k), encodeValue(v)]]);
    }
    async delete(k) { const n = native.kvDelete(this._h, keysOf(k)); return Array.isArray(k) ? n : n > 0; }
    async list(o = {}) {
      const m = new Map();
      for (const [key, v] of native.kvList(this._h, o || {})) m.set(key, decodeValue(v));
      return m;
    }
    async deleteAll() { native.deleteAll(this._h); }
    transactionSync(fn) {
      native.exec(this._h, "BEGIN", []);
      let r;
      try { r = fn(); } catch (e) { try { native.exec(this._h, "ROLLBACK", []); } catch (_) { } throw e; }
      native.exec(this._h, "COMMIT", []);
      return r;
    }
    async transaction(fn) {
      native.exec(this._h, "BEGIN", []);
      let open = true;
      const txn = Object.create(this);
      txn.rollback = () => { if (open) { open = false; native.exec(this._h, "ROLLBACK", []); } };
      try {
        const r = await fn(txn);
        if (open) { open = false; native.exec(this._h, "COMMIT", []); }
        return r;
      } catch (e) {
        if (open) { open = false; try { native.exec(this._h, "ROLLBACK", []); } catch (_) { } }
        throw e;
      }
    }
    async setAlarm(t) { native.setAlarm(this._h, t instanceof Date ? t.getTime() : Number(t)); }
    async getAlarm() { return native.getAlarm(this._h); }
    async getCurrentBookmark() { return native.currentBookmark(this._h); }
    async getBookmarkForTime(t) { return native.bookmarkForTime(this._h, t instanceof Date ? t.getTime() : Number(t)); }
    // Takes effect when the event commits (Cloudflare's: when the object
    // restarts); the event's own writes are discarded.
    async onNextSessionRestoreBookmark(b) { return native.restoreBookmark(this._h, String(b)); }
    async deleteAlarm() { native.deleteAlarm(this._h); }
    async sync() { }
  }

  // ---- identity, stubs, env ----
  class DurableObjectId {
    constructor(cls, name) { this._cls = cls; this.name = name; this._hex = native.idFromName(cls, name); }
    toString() { return this._hex; }
    equals(o) { return o instanceof DurableObjectId && o._hex === this._hex; }
  }
  const reserved = (m) => typeof m !== "string" || m.startsWith("_") || m === "constructor" || m === "fetch" || m === "alarm" || m.startsWith("webSocket");
  function stubOf(cls, id, h) {
    const name = id.name;
    const base = {
      id,
      name,
      fetch(input, init) {
        try {
          const req = input instanceof Request && init === undefined ? input : new Request(input, init);
          return native.stubFetch(h, cls, name, req.method, req.url, req.headers._sorted(), bufferOf(req._bytes()))
            .then((r) => new Response(r.body, { status: r.status, headers: r.headers }));
        } catch (e) { return Promise.reject(e); }
      },
    };
    return new Proxy(base, {
      get(t, p) {
        if (p in t) return t[p];
        if (p === "then" || typeof p === "symbol") return undefined;
        return (...args) => {
          try {
            if (reserved(p)) throw new TypeError("method " + String(p) + " cannot be called through a stub");
            return native.stubCall(h, cls, name, p, JSON.stringify(args)).then((out) => JSON.parse(out));
          } catch (e) { return Promise.reject(e); }
        };
      },
    });
  }
  class DurableObjectNamespace {
    constructor(cls, h) { this._cls = cls; this._h = h; }
    idFromName(name) { return new DurableObjectId(this._cls, String(name)); }
    newUniqueId() { return new DurableObjectId(this._cls, native.randomUUID().replace(/-/g, "")); }
    idFromString(s) { throw new TypeError("idFromString is not supported: address objects by name (idFromName, getByName)"); }
    get(id) { if (!(id instanceof DurableObjectId)) throw new TypeError("get() takes an id from idFromName"); return stubOf(this._cls, id, this._h); }
    getByName(name) { return this.get(this.idFromName(name)); }
    jurisdiction() { return this; }
  }
  // env has a binding per registered class, made when first read: an
  // object holds one proxy rather than a namespace per class of the
  // cluster (a node keeps thousands of objects in memory). The handler is
  // shared; the target holds the object's handle and the bindings made.
  const envHandle = Symbol("handle");
  const hasOwn = (o, p) => Object.prototype.hasOwnProperty.call(o, p);
  const isClassName = (p) => typeof p === "string" && native.classes().includes(p);
  const envHandler = {
    get(t, p) {
      if (p !== envHandle && !hasOwn(t, p) && isClassName(p)) {
        Object.defineProperty(t, p, { value: new DurableObjectNamespace(p, t[envHandle]), enumerable: true, configurable: true, writable: true });
      }
      return p === envHandle ? undefined : t[p];
    },
    has(t, p) { return p !== envHandle && (p in t || isClassName(p)); },
    ownKeys(t) {
      const keys = new Set(native.classes());
      for (const k of Reflect.ownKeys(t)) if (k !== envHandle) keys.add(k);
      return [...keys];
    },
    getOwnPropertyDescriptor(t, p) {
      if (p === envHandle) return undefined;
      envHandler.get(t, p);
      return Reflect.getOwnPropertyDescriptor(t, p);
    },
  };
  function makeEnv(h) {
    const t = {};
    Object.defineProperty(t, envHandle, { value: h, configurable: true });
    return new Proxy(t, envHandler);
  }

  // ---- the class and its events ----
  class DurableObjectState {
    // _blocking and _waiting stay null until used: most objects never
    // use them, and a node keeps thousands of objects in memory.
    constructor(cls, name, h) {
      this.id = new DurableObjectId(cls, name);
      this.storage = new DurableObjectStorage(h);
      this._blocking = null;
      this._waiting = null;
    }
    blockConcurrencyWhile(fn) { const p = (async () => fn())(); (this._blocking ||= []).push(p); return p; }
    waitUntil(p) { (this._waiting ||= []).push(Promise.resolve(p)); }
    abort(reason) { throw reason instanceof Error ? reason : new Error(String(reason || "aborted")); }
    acceptWebSocket() { throw new TypeError("WebSockets are not supported"); }
    getWebSockets() { return []; }
  }
  class DurableObject {
    constructor(ctx, env) { this.ctx = ctx; this.env = env; }
  }
  class WorkerEntrypoint {
    constructor(ctx, env) { this.ctx = ctx; this.env = env; }
  }
  class RpcTarget { }
  const isClass = (v) => typeof v === "function" && v.prototype instanceof DurableObject;
  // finish ends an event with v (thrown when failed) once its waitUntil
  // work has settled: the event lasts until both have.
  function finish(ctx, v, failed) {
    const waits = ctx._waiting;
    if (waits === null || waits.length === 0) { if (failed) throw v; return v; }
    ctx._waiting = null;
    return Promise.allSettled(waits).then((rs) => { logRejected(rs); if (failed) throw v; return v; });
  }
  // handle runs an event's handler and convert on what it returns, with
  // no promise of its own when the handler answers at once (the Go side
  // takes a plain value or a promise).
  function handle(ctx, run, convert) {
    const ok = (v) => {
      let out;
      try { out = convert(v); } catch (e) { return finish(ctx, e, true); }
      return finish(ctx, out, false);
    };
    let r;
    try { r = run(); } catch (e) { return finish(ctx, e, true); }
    if (r !== null && (typeof r === "object" || typeof r === "function") && typeof r.then === "function") {
      return Promise.resolve(r).then(ok, (e) => finish(ctx, e, true));
    }
    return ok(r);
  }
  const nothing = () => undefined;
  function logRejected(rs) {
    for (const r of rs) if (r.status === "rejected") native.log("warn", "waitUntil promise rejected: " + show(r.reason));
  }

  g.__dura = {
    DurableObject, WorkerEntrypoint, RpcTarget,
    classesOf(exports) { return Object.keys(exports || {}).filter((k) => isClass(exports[k])).sort(); },
    construct(exports, exportName, cls, name) {
      const h = native.handle();
      const ctx = new DurableObjectState(cls, name, h);
      const inst = { obj: new exports[exportName](ctx, makeEnv(h)), ctx };
      const blocking = ctx._blocking;
      ctx._blocking = null;
      return blocking === null ? Promise.resolve(inst) : Promise.all(blocking).then(() => inst);
    },
    fetch(inst, method, url, headers, body) {
      const req = incoming(method, url, headers, method === "GET" || method === "HEAD" ? null : body);
      return handle(inst.ctx, () => {
        if (typeof inst.obj.fetch !== "function") throw new TypeError("class has no fetch handler");
        return inst.obj.fetch(req, inst.obj.env, inst.ctx);
      }, (res) => {
        if (!(res instanceof Response)) throw new TypeError("fetch() must return a Response");
        return { status: res.status, headers: res.headers._m, body: res._out() };
      });
    },
    alarm(inst, retryCount) {
      return handle(inst.ctx, () => {
        if (typeof inst.obj.alarm === "function") return inst.obj.alarm({ retryCount, isRetry: retryCount > 0 });
      }, nothing);
    },
    hasAlarm(exports, name) { return typeof exports[name].prototype.alarm === "function"; },
    noop() { },
    call(inst, method, args) {
      return handle(inst.ctx, () => {
        if (reserved(method) || typeof inst.obj[method] !== "function" || method in Object.prototype) native.noMethod(method);
        return inst.obj[method](...JSON.parse(args));
      }, (v) => {
        const out = JSON.stringify(v);
        return out === undefined ? "null" : out;
      });
    },
  };
})(__native);
delete globalThis.__native;
