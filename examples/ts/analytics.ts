// The guide's denormalised pattern (Analytics) and its composite index,
// with routes after the Go class "analytics":
//   POST /events  one event or an array of 1 to 100 {user_id,user_name,user_email,event_type[,id][,timestamp][,data]} -> 201 {"events"}
//   GET /events?user_id=&event_type=&before=&limit= -> {"events"} newest first
//   GET /stats?user_id= -> {"user_id","counts":{type:n}}
import { DurableObject } from "cloudflare:workers";

export class Analytics extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);

    ctx.blockConcurrencyWhile(async () => {
      // Denormalized: Store user data with each event
      ctx.storage.sql.exec(`
        CREATE TABLE IF NOT EXISTS events (
          id TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          user_name TEXT NOT NULL,      -- Denormalized
          user_email TEXT NOT NULL,     -- Denormalized
          event_type TEXT NOT NULL,
          timestamp INTEGER NOT NULL,
          data TEXT
        )
      `);

      // Single index covers common queries
      ctx.storage.sql.exec(`
        CREATE INDEX IF NOT EXISTS idx_events_user_timestamp
        ON events(user_id, timestamp DESC)
      `);

      // From "Composite Indexes for Multi-Column Queries" (IF NOT EXISTS
      // added: the constructor runs at every activation).
      ctx.storage.sql.exec(`
        CREATE INDEX IF NOT EXISTS idx_user_type_timestamp
        ON events(user_id, event_type, timestamp DESC)
      `);
    });
  }

  // Added: the routes; the queries are the guide's, with a LIMIT.
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const q = url.searchParams;
    const sql = this.ctx.storage.sql;
    const route = `${request.method} ${url.pathname}`;
    if (route === "POST /events") {
      let body;
      try { body = await request.json(); } catch { return fail(400, "BAD_REQUEST", "the body must be JSON"); }
      const events = Array.isArray(body) ? body : [body];
      if (events.length < 1 || events.length > 100) return fail(400, "BAD_REQUEST", "send 1 to 100 events");
      for (const f of ["user_id", "user_name", "user_email", "event_type"]) {
        if (events.some((e: any) => typeof e?.[f] !== "string" || !e[f])) return fail(400, "BAD_REQUEST", `${f} is required`);
      }
      const stored = events.map((e: any) => ({
        id: e.id ?? crypto.randomUUID(), user_id: e.user_id, user_name: e.user_name, user_email: e.user_email,
        event_type: e.event_type, timestamp: e.timestamp ?? Date.now(), data: e.data ?? null,
      }));
      for (const e of stored) {
        sql.exec("INSERT INTO events (id, user_id, user_name, user_email, event_type, timestamp, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
          e.id, e.user_id, e.user_name, e.user_email, e.event_type, e.timestamp, e.data === null ? null : JSON.stringify(e.data));
      }
      return Response.json({ events: stored }, { status: 201 });
    }
    const userId = q.get("user_id");
    if (!userId) return fail(400, "BAD_REQUEST", "user_id is required");
    if (route === "GET /events") {
      const limit = Number(q.get("limit") ?? "50");
      const before = Number(q.get("before") ?? Number.MAX_SAFE_INTEGER);
      const eventType = q.get("event_type");
      // Efficient query using composite index
      const rows = eventType
        ? sql.exec(`SELECT * FROM events WHERE user_id = ? AND event_type = ? AND timestamp < ? ORDER BY timestamp DESC LIMIT ?`,
          userId, eventType, before, limit).toArray()
        : sql.exec(`SELECT * FROM events WHERE user_id = ? AND timestamp < ? ORDER BY timestamp DESC LIMIT ?`,
          userId, before, limit).toArray();
      return Response.json({ events: rows.map((e: any) => ({ ...e, data: e.data === null ? null : JSON.parse(e.data) })) });
    }
    if (route === "GET /stats") {
      const counts: Record<string, number> = {};
      for (const r of sql.exec("SELECT event_type, count(*) AS n FROM events WHERE user_id = ? GROUP BY event_type LIMIT 100", userId)) {
        counts[r.event_type as string] = r.n as number;
      }
      return Response.json({ user_id: userId, counts });
    }
    return fail(404, "NOT_FOUND", `no route for ${route}`);
  }
}

function fail(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
