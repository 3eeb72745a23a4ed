// Test classes for package jsrt: every part of ctx, env and the globals.
import { DurableObject } from "cloudflare:workers";

export class Features extends DurableObject {
  calls = 0;

  constructor(ctx: DurableObjectState, env: any) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      this.ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT UNIQUE, data BLOB, score REAL)`);
    });
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/echo") {
      return new Response(await request.text(), {
        status: 201,
        headers: { "x-method": request.method, "x-query": url.searchParams.get("q") ?? "", "content-type": "text/plain" },
      });
    }
    if (url.pathname === "/request") {
      // What an event's request holds: its headers (made when read), and
      // no body when none was sent.
      const names = [...request.headers.keys()].filter((k) => k.startsWith("x-"));
      const again = request.clone();
      return Response.json({
        type: request.headers.get("content-type"), names, cloned: again.headers.get("x-one"),
        body: request.body === null ? null : await request.text(), used: request.bodyUsed,
      });
    }
    if (url.pathname === "/json") {
      // Response.json's own headers, status and body, as the constructor's.
      try { Response.json({}, { status: 99 }); } catch (e: any) { if (!(e instanceof RangeError)) throw e; }
      if (url.searchParams.has("nothing")) return Response.json(undefined);
      const r = Response.json({ a: [1, "é"] }, { status: 202, statusText: "Accepted", headers: { "Content-Type": "application/vnd.x+json", "x-a": "b" } });
      const copy = r.clone();
      return new Response(JSON.stringify({ text: await copy.text(), ok: r.ok, st: r.statusText, used: r.bodyUsed, n: r.body!.byteLength }), { status: r.status, headers: r.headers });
    }
    if (url.pathname === "/bytes") {
      return new Response(new Uint8Array([104, 105]));
    }
    return new Response("no route for " + url.pathname, { status: 404 });
  }

  // Memory state: lost when the object is reset or redeployed.
  inc() { return ++this.calls; }

  sql() {
    const sql = this.ctx.storage.sql;
    const ins = sql.exec("INSERT INTO items (name, data, score) VALUES (?, ?, ?), (?, ?, ?)",
      "a", new Uint8Array([1, 2, 3]), 1.5, "b", null, 2);
    const cur = sql.exec("SELECT id, name, data, score FROM items ORDER BY id");
    const first = cur.next().value;
    const rest = [...cur];
    const raw = sql.exec("SELECT name, score FROM items ORDER BY id").raw().toArray();
    let oneErr = "";
    try { sql.exec("SELECT * FROM items WHERE name = 'none'").one(); } catch (e: any) { oneErr = e.message; }
    const blob = first.data as ArrayBuffer;
    return {
      written: ins.rowsWritten,
      columns: cur.columnNames,
      rowsRead: cur.rowsRead,
      firstName: first.name,
      idType: typeof first.id,
      blob: Array.from(new Uint8Array(blob)),
      blobIsBuffer: blob instanceof ArrayBuffer,
      rest: rest.map((r) => r.name),
      raw,
      one: sql.exec("SELECT count(*) AS n FROM items").one().n,
      oneErr,
      size: sql.databaseSize > 0,
    };
  }

  async kv() {
    const s = this.ctx.storage;
    await s.put("k1", { a: 1 });
    await s.put({ k2: "two", k3: [3], other: true });
    const single = await s.get("k1");
    const many = await s.get(["k2", "k3", "missing"]);
    const all = await s.list();
    const prefixed = await s.list({ prefix: "k", reverse: true, limit: 2 });
    const ranged = await s.list({ start: "k2", end: "k3" });
    const after = await s.list({ startAfter: "k2" });
    const del1 = await s.delete("k1");
    const delMissing = await s.delete("k1");
    const delMany = await s.delete(["k2", "k3", "nope"]);
    const left = [...(await s.list()).keys()];
    await s.deleteAll();
    const afterAll = (await s.list()).size;
    return {
      single, many: Object.fromEntries(many), all: [...all.keys()], prefixed: [...prefixed.keys()],
      ranged: [...ranged.keys()], after: [...after.keys()], del1, delMissing, delMany, left, afterAll,
      missing: (await s.get("nothing")) === undefined,
    };
  }

  add(name: string) {
    this.ctx.storage.sql.exec("INSERT INTO items (name) VALUES (?)", name);
    return this.count();
  }
  count() { return this.ctx.storage.sql.exec("SELECT count(*) AS n FROM items").one().n; }
  nothing() { }
  throwType() { throw new TypeError("bad thing"); }
  addThenThrow(name: string) { this.add(name); throw new Error("after the write"); }
  catchConstraint(name: string) {
    this.add(name);
    try { this.add(name); } catch (e: any) { return { code: e.code, message: e.message }; }
    return null;
  }
  txSync(name: string) {
    const s = this.ctx.storage;
    try {
      s.transactionSync(() => { this.add(name + "-inner"); throw new Error("undo"); });
    } catch (e) { }
    s.transactionSync(() => this.add(name + "-kept"));
    return this.count();
  }
  async txAsync(name: string) {
    const s = this.ctx.storage;
    await s.transaction(async () => { this.add(name + "-1"); }).catch(() => { });
    await s.transaction(async (txn: any) => { this.add(name + "-2"); txn.rollback(); });
    await s.transaction(async () => { this.add(name + "-3"); throw new Error("no"); }).catch(() => { });
    return this.count();
  }
  explicitBegin(name: string) {
    const sql = this.ctx.storage.sql;
    sql.exec("BEGIN");
    this.add(name);
    sql.exec("ROLLBACK");
    return this.count();
  }
  later(name: string) {
    this.ctx.waitUntil((async () => { this.add(name); })());
    this.ctx.waitUntil(Promise.reject(new Error("logged, not fatal")));
    return "ok";
  }
  never() { return new Promise(() => { }); }
  spin(name: string) { this.add(name); for (; ;) { } }
  _hidden() { return "hidden"; }
  alarm() { this.ctx.storage.sql.exec("INSERT INTO items (name) VALUES ('alarm')"); }
  webSocketMessage() { return "ws"; }

  async setAlarmIn(ms: number) {
    await this.ctx.storage.setAlarm(Date.now() + ms);
    return await this.ctx.storage.getAlarm();
  }
  async alarmState() {
    return { alarm: await this.ctx.storage.getAlarm(), fired: this.ctx.storage.sql.exec("SELECT count(*) AS n FROM items WHERE name = 'alarm'").one().n };
  }
  async clearAlarm() { await this.ctx.storage.deleteAlarm(); return await this.ctx.storage.getAlarm(); }

  id() { return { hex: this.ctx.id.toString(), name: this.ctx.id.name }; }

  async callOther(name: string) {
    const stub = this.env.Features.getByName(name);
    const res = await stub.fetch("http://other/echo?q=hi", { method: "POST", body: "ping" });
    const sum = await stub.add(this.ctx.id.name + "->" + name);
    const counter = await this.env.counter.get(this.env.counter.idFromName("c1")).fetch("http://x/increment?by=5", { method: "POST" });
    let err = "";
    try { await stub.throwType(); } catch (e: any) { err = e.code + " " + e.message; }
    return { status: res.status, text: await res.text(), q: res.headers.get("x-query"), sum, counter: await counter.json(), err };
  }
  // chain calls the objects named in rest one after the other, each
  // waiting for the next: objects bound to the same runtime take turns.
  async chain(rest: string[]): Promise<string[]> {
    this.inc();
    if (rest.length === 0) return [this.ctx.id.name + ":" + this.calls];
    const after = await this.env.Features.getByName(rest[0]).chain(rest.slice(1));
    return [this.ctx.id.name + ":" + this.calls, ...after];
  }
  async callSelf() { return await this.env.Features.getByName(this.ctx.id.name).count(); }

  globals() {
    const u = new URL("/p/a%20b?x=1&y=two#h", "https://example.com:8443");
    u.searchParams.append("z", "3 4");
    const h = new Headers({ "X-A": "1" });
    h.append("x-a", "2");
    const enc = new TextEncoder().encode("héllo");
    const clone = structuredClone({ d: new Date(0), m: new Map([["k", 1]]), a: [1, { b: 2 }] });
    const rnd = crypto.getRandomValues(new Uint8Array(8));
    return {
      href: u.href, host: u.host, pathname: u.pathname, search: u.search, x: u.searchParams.get("x"),
      params: new URLSearchParams({ a: "1", b: "x y" }).toString(),
      // Form decoding: "+", escapes (UTF-8, malformed kept), no "=", empty parts.
      forms: [...new URLSearchParams("?a=1+2&b=%C3%A9%2B&&c&d=%zz%4&e=%FF&=v")],
      header: h.get("X-A"), hasHeader: h.has("x-b"),
      encLen: enc.length, dec: new TextDecoder().decode(enc),
      b64: btoa("hi!"), unb64: atob("aGkh"),
      uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()),
      rndLen: rnd.length,
      cloneDate: clone.d instanceof Date && clone.d.getTime() === 0, cloneMap: clone.m.get("k"), cloneArr: clone.a[1].b,
      json: JSON.parse(JSON.stringify({ n: 1 })).n,
      log: typeof console.log,
    };
  }
}
