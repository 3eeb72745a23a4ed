// The guide's single-table pattern ("Schema Design Patterns"), with the
// routes of the Go class "counter":
//   POST /increment?key=K&by=N -> {"key","value"}
//   GET  /?key=K               -> {"key","value"} (0 if never set)
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);

    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(`
        CREATE TABLE IF NOT EXISTS counters (
          name TEXT PRIMARY KEY,
          value INTEGER NOT NULL DEFAULT 0,
          updated_at INTEGER NOT NULL
        )
      `);

      // Create index for timestamp queries
      ctx.storage.sql.exec(`
        CREATE INDEX IF NOT EXISTS idx_counters_updated
        ON counters(updated_at DESC)
      `);
    });
  }

  // Added: the routes of the Go twin.
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const key = url.searchParams.get("key") || "default";
    if (url.pathname === "/increment" && request.method === "POST") {
      const by = url.searchParams.get("by") ?? "1";
      if (!/^-?\d+$/.test(by)) return fail(400, "BAD_REQUEST", `by must be an integer, got "${by}"`);
      const row = this.ctx.storage.sql.exec(`
        INSERT INTO counters (name, value, updated_at) VALUES (?, ?, ?)
        ON CONFLICT(name) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at
        RETURNING value`, key, Number(by), Date.now()).one();
      return Response.json({ key, value: row.value });
    }
    if (url.pathname === "/" && request.method === "GET") {
      const rows = this.ctx.storage.sql.exec(`SELECT value FROM counters WHERE name = ?`, key).toArray();
      return Response.json({ key, value: rows.length ? rows[0].value : 0 });
    }
    return fail(404, "NOT_FOUND", `no route for ${request.method} ${url.pathname}`);
  }
}

function fail(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
