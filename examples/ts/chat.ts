// The guide's multi-table normalised pattern (ChatRoom), its covering
// index, pagination, cursor pagination and archiving, with routes after
// the Go class "chat":
//   POST /users {id,username} -> 201; GET /users/{id}; DELETE /users/{id}
//   POST /messages {user_id,text[,timestamp]} -> 201
//   GET /messages?limit=&cursor=&direction=forward|backward (getMessages)
//   GET /recent?limit=&cursor=        (getMessagesPaginated)
//   GET /users/{id}/messages?limit=   (composite index)
//   POST /archive?older_than_days=D   (archiveOldMessages)
// The guide's cursors are timestamps: messages that share one may be
// skipped at a page edge (the Go class pages by timestamp and id).
import { DurableObject } from "cloudflare:workers";

export class ChatRoom extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);

    ctx.blockConcurrencyWhile(async () => {
      // Users table
      ctx.storage.sql.exec(`
        CREATE TABLE IF NOT EXISTS users (
          id TEXT PRIMARY KEY,
          username TEXT NOT NULL UNIQUE,
          joined_at INTEGER NOT NULL,
          last_active INTEGER NOT NULL
        )
      `);

      // Messages table with foreign key
      ctx.storage.sql.exec(`
        CREATE TABLE IF NOT EXISTS messages (
          id TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          text TEXT NOT NULL,
          timestamp INTEGER NOT NULL,
          FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
        )
      `);

      // Indexes
      ctx.storage.sql.exec(`
        CREATE INDEX IF NOT EXISTS idx_messages_timestamp
        ON messages(timestamp DESC)
      `);

      ctx.storage.sql.exec(`
        CREATE INDEX IF NOT EXISTS idx_messages_user
        ON messages(user_id, timestamp DESC)
      `);

      // Added: the archive table archiveOldMessages copies into.
      ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS messages_archive (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, text TEXT NOT NULL, timestamp INTEGER NOT NULL)`);
    });
  }

  // From the guide ("Pagination to Manage Large Datasets").
  async getMessagesPaginated(
    limit: number = 100,
    cursor?: number
  ): Promise<{ messages: any[]; nextCursor?: number }> {
    const messages = this.ctx.storage.sql.exec(`
      SELECT id, user_id, text, timestamp
      FROM messages
      WHERE timestamp < ?
      ORDER BY timestamp DESC
      LIMIT ?
    `, cursor ?? Date.now(), limit + 1).toArray();

    const hasMore = messages.length > limit;
    const results = hasMore ? messages.slice(0, limit) : messages;

    return {
      messages: results,
      nextCursor: hasMore ? (results[results.length - 1] as any).timestamp : undefined,
    };
  }

  // From the guide ("Archiving Old Data").
  async archiveOldMessages(cutoffDays: number): Promise<number> {
    const cutoffTime = Date.now() - (cutoffDays * 24 * 60 * 60 * 1000);

    // Copy to archive table
    this.ctx.storage.sql.exec(`
      INSERT INTO messages_archive
      SELECT * FROM messages
      WHERE timestamp < ?
    `, cutoffTime);

    // Delete from main table
    const result = this.ctx.storage.sql.exec(`
      DELETE FROM messages
      WHERE timestamp < ?
    `, cutoffTime);

    return result.changes;
  }

  // From the guide ("Cursor-Based Pagination").
  async getMessages(options: PaginationOptions = {}): Promise<{
    messages: any[];
    nextCursor?: string;
    prevCursor?: string;
  }> {
    const limit = options.limit ?? 50;
    const direction = options.direction ?? 'forward';

    let query: string;
    let params: any[];

    if (!options.cursor) {
      // First page
      query = `
        SELECT id, user_id, text, timestamp
        FROM messages
        ORDER BY timestamp DESC
        LIMIT ?
      `;
      params = [limit + 1];
    } else {
      const cursorTimestamp = parseInt(options.cursor, 10);

      if (direction === 'forward') {
        query = `
          SELECT id, user_id, text, timestamp
          FROM messages
          WHERE timestamp < ?
          ORDER BY timestamp DESC
          LIMIT ?
        `;
        params = [cursorTimestamp, limit + 1];
      } else {
        query = `
          SELECT id, user_id, text, timestamp
          FROM messages
          WHERE timestamp > ?
          ORDER BY timestamp ASC
          LIMIT ?
        `;
        params = [cursorTimestamp, limit + 1];
      }
    }

    const results = this.ctx.storage.sql.exec(query, ...params).toArray();

    const hasMore = results.length > limit;
    const messages = hasMore ? results.slice(0, limit) : results;

    if (direction === 'backward') {
      messages.reverse();
    }

    return {
      messages,
      nextCursor: hasMore && messages.length > 0
        ? (messages[messages.length - 1] as any).timestamp.toString()
        : undefined,
      prevCursor: messages.length > 0
        ? (messages[0] as any).timestamp.toString()
        : undefined,
    };
  }

  // Added: the routes.
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const q = url.searchParams;
    const sql = this.ctx.storage.sql;
    const route = `${request.method} ${url.pathname}`;
    const limit = Number(q.get("limit") ?? "50");
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) return fail(400, "BAD_REQUEST", "limit must be 1..100");
    let m: RegExpMatchArray | null;
    if (route === "POST /users") {
      const u = await body(request);
      if (!u || typeof u.id !== "string" || !u.id) return fail(400, "BAD_REQUEST", "id is required");
      if (typeof u.username !== "string" || !u.username) return fail(400, "BAD_REQUEST", "username is required");
      const now = Date.now();
      sql.exec("INSERT INTO users (id, username, joined_at, last_active) VALUES (?, ?, ?, ?)", u.id, u.username, now, now);
      return Response.json(sql.exec("SELECT * FROM users WHERE id = ?", u.id).one(), { status: 201 });
    }
    if ((m = url.pathname.match(/^\/users\/([^/]+)$/))) {
      const id = decodeURIComponent(m[1]);
      const user = sql.exec("SELECT id, username, joined_at, last_active FROM users WHERE id = ?", id).toArray()[0];
      if (!user) return fail(404, "NOT_FOUND", `no user "${id}"`);
      if (request.method === "GET") return Response.json(user);
      if (request.method === "DELETE") {
        const n = sql.exec("SELECT count(*) AS n FROM messages WHERE user_id = ?", id).one().n;
        sql.exec("DELETE FROM users WHERE id = ?", id);
        return Response.json({ deleted: true, messages_deleted: n });
      }
    }
    if (request.method === "GET" && (m = url.pathname.match(/^\/users\/([^/]+)\/messages$/))) {
      const messages = sql.exec(`SELECT id, user_id, text, timestamp FROM messages
        WHERE user_id = ? AND timestamp < ? ORDER BY timestamp DESC LIMIT ?`,
        decodeURIComponent(m[1]), Number(q.get("before") ?? Number.MAX_SAFE_INTEGER), limit).toArray();
      return Response.json({ messages });
    }
    if (route === "POST /messages") {
      const b = await body(request);
      if (!b || typeof b.user_id !== "string" || !b.user_id) return fail(400, "BAD_REQUEST", "user_id is required");
      if (typeof b.text !== "string" || !b.text) return fail(400, "BAD_REQUEST", "text is required");
      const msg = { id: crypto.randomUUID(), user_id: b.user_id, text: b.text, timestamp: b.timestamp || Date.now() };
      sql.exec("INSERT INTO messages (id, user_id, text, timestamp) VALUES (?, ?, ?, ?)", msg.id, msg.user_id, msg.text, msg.timestamp);
      sql.exec("UPDATE users SET last_active = ? WHERE id = ?", Date.now(), msg.user_id);
      return Response.json(msg, { status: 201 });
    }
    if (route === "GET /messages") {
      const direction = q.get("direction") ?? "forward";
      const cursor = q.get("cursor") ?? undefined;
      if (direction !== "forward" && direction !== "backward") return fail(400, "BAD_REQUEST", "direction must be forward or backward");
      if (direction === "backward" && !cursor) return fail(400, "BAD_REQUEST", "backward needs a cursor");
      if (cursor !== undefined && !/^\d+$/.test(cursor)) return fail(400, "BAD_REQUEST", "bad cursor");
      const page = await this.getMessages({ limit, cursor, direction: direction as any });
      // The guide's N+1 fix: one JOIN gives each message its username.
      const names = new Map(sql.exec(`SELECT u.id, u.username FROM users u JOIN messages m ON u.id = m.user_id GROUP BY u.id LIMIT 1000`).raw().toArray() as [string, string][]);
      return Response.json({
        messages: page.messages.map((msg: any) => ({ ...msg, username: names.get(msg.user_id) })),
        next_cursor: page.nextCursor ?? null, prev_cursor: page.prevCursor ?? null,
      });
    }
    if (route === "GET /recent") {
      const page = await this.getMessagesPaginated(limit, q.has("cursor") ? Number(q.get("cursor")) : undefined);
      return Response.json({ messages: page.messages, next_cursor: page.nextCursor ?? null });
    }
    if (route === "POST /archive") {
      const days = q.get("older_than_days");
      if (!days || !/^\d+$/.test(days)) return fail(400, "BAD_REQUEST", "older_than_days is required");
      return Response.json({ archived: await this.archiveOldMessages(Number(days)) });
    }
    return fail(404, "NOT_FOUND", `no route for ${route}`);
  }
}

interface PaginationOptions {
  limit?: number;
  cursor?: string;
  direction?: 'forward' | 'backward';
}

async function body(request: Request): Promise<any> {
  try { return await request.json(); } catch { return null; }
}

function fail(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
