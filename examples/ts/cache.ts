// The guide's "TTL Patterns with Alarms": CacheDO with the grace-period
// set and get, with routes after the Go class "cache":
//   PUT /{key}?ttl=S&grace=1 (any JSON) -> {"key","expires_at","grace_period_ends"}
//   GET /{key}[?grace=1] -> the value (X-Cache: HIT, or STALE in the grace period)
//   DELETE /{key} -> {"deleted":bool}
// Changed from the guide: the index is created IF NOT EXISTS (the
// constructor runs at every activation), the table has the grace column
// its second set() writes, and get() catches one()'s error for a miss.
import { DurableObject } from "cloudflare:workers";

export class CacheDO extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);

    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(`
        CREATE TABLE IF NOT EXISTS cache (
          key TEXT PRIMARY KEY,
          value TEXT NOT NULL,
          expires_at INTEGER NOT NULL,
          grace_period_ends INTEGER NOT NULL
        )
      `);

      ctx.storage.sql.exec(`
        CREATE INDEX IF NOT EXISTS idx_cache_expires
        ON cache(expires_at)
      `);

      // Schedule next cleanup
      this.scheduleCleanup();
    });
  }

  // From the guide ("TTL with Grace Period").
  async set(key: string, value: any, ttlSeconds: number): Promise<void> {
    const expiresAt = Date.now() + (ttlSeconds * 1000);
    const gracePeriodEnds = expiresAt + (300 * 1000); // +5 minutes

    this.ctx.storage.sql.exec(`
      INSERT OR REPLACE INTO cache (key, value, expires_at, grace_period_ends)
      VALUES (?, ?, ?, ?)
    `, key, JSON.stringify(value), expiresAt, gracePeriodEnds);
  }

  async get(key: string, allowGracePeriod: boolean = false): Promise<any | null> {
    const now = Date.now();

    const query = allowGracePeriod
      ? `SELECT value, expires_at < ? as expired FROM cache WHERE key = ? AND grace_period_ends > ?`
      : `SELECT value FROM cache WHERE key = ? AND expires_at > ?`;

    let result;
    try {
      result = this.ctx.storage.sql.exec(
        query,
        ...(allowGracePeriod ? [now, key, now] : [key, now])
      ).one();
    } catch {
      return null;
    }

    if (!result) return null;

    if (allowGracePeriod && (result as any).expired) {
      // Trigger background refresh
      this.ctx.waitUntil(this.refreshKey(key));
      this.stale = true;
    }

    return JSON.parse((result as any).value);
  }

  // From the guide ("Automatic Expiration").
  private async scheduleCleanup(): Promise<void> {
    // Run cleanup every hour
    await this.ctx.storage.setAlarm(Date.now() + 3600_000);
  }

  async alarm(): Promise<void> {
    // Delete expired entries
    const result = this.ctx.storage.sql.exec(`
      DELETE FROM cache WHERE expires_at < ?
    `, Date.now());

    console.log(`Cleaned up ${result.changes} expired entries`);

    // Schedule next cleanup
    await this.scheduleCleanup();
  }

  // Added: the refresh the guide leaves out (a real one would fetch the
  // value again), and the routes.
  stale = false;
  async refreshKey(key: string): Promise<void> {
    console.log(`refresh of ${key} asked`);
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const key = decodeURIComponent(url.pathname.slice(1));
    if (!key) return fail(404, "NOT_FOUND", `no route for ${request.method} /`);
    if (request.method === "PUT") {
      const ttl = url.searchParams.get("ttl") ?? "3600";
      if (!/^\d+$/.test(ttl) || Number(ttl) < 1) return fail(400, "BAD_REQUEST", "ttl must be a positive integer");
      let value;
      try { value = await request.json(); } catch { return fail(400, "BAD_REQUEST", "the body must be JSON"); }
      await this.set(key, value, Number(ttl));
      return Response.json(this.ctx.storage.sql.exec(
        "SELECT key, expires_at, grace_period_ends FROM cache WHERE key = ?", key).one());
    }
    if (request.method === "GET") {
      const grace = url.searchParams.get("grace") ?? "0";
      if (grace !== "0" && grace !== "1") return fail(400, "BAD_REQUEST", "grace must be 0 or 1");
      this.stale = false;
      const value = await this.get(key, grace === "1");
      if (value === null) return fail(404, "NOT_FOUND", `no fresh entry "${key}"`);
      return Response.json(value, { headers: { "x-cache": this.stale ? "STALE" : "HIT" } });
    }
    if (request.method === "DELETE") {
      const changes = this.ctx.storage.sql.exec("DELETE FROM cache WHERE key = ?", key).changes;
      return Response.json({ deleted: changes > 0 });
    }
    return fail(404, "NOT_FOUND", `no route for ${request.method} ${url.pathname}`);
  }
}

function fail(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
