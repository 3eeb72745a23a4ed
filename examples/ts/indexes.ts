// The guide's "Partial Indexes for Filtered Queries": an index over the
// rows a query filters for, smaller than one over the whole table. Its
// covering and composite index snippets are in chat.ts and analytics.ts.
// Added: the class, the tables the snippets index, IF NOT EXISTS (the
// constructor runs at every activation), and methods that run the
// queries the indexes serve (POST /rpc/Indexes/{name}/{method}):
//   addUser(id, active, lastActive), addMessage(id, timestamp),
//   activeUsers(limit)     -> ids of active users, most recent first
//   recentMessages(since, limit) -> ids of messages after since (past
//                                   2024-01-01), newest first
import { DurableObject } from "cloudflare:workers";

export class Indexes extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, active INTEGER NOT NULL, last_active INTEGER NOT NULL)`);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, timestamp INTEGER NOT NULL)`);

    // Only index active users
    ctx.storage.sql.exec(`
      CREATE INDEX IF NOT EXISTS idx_active_users
      ON users(last_active DESC)
      WHERE active = 1
    `);

    // Only index recent messages
    ctx.storage.sql.exec(`
      CREATE INDEX IF NOT EXISTS idx_recent_messages
      ON messages(timestamp DESC)
      WHERE timestamp > 1704067200000  -- After 2024-01-01
    `);
  }

  addUser(id: string, active: boolean, lastActive: number): void {
    this.ctx.storage.sql.exec(`INSERT OR REPLACE INTO users VALUES (?, ?, ?)`, id, active ? 1 : 0, lastActive);
  }

  addMessage(id: string, timestamp: number): void {
    this.ctx.storage.sql.exec(`INSERT OR REPLACE INTO messages VALUES (?, ?)`, id, timestamp);
  }

  // The query's WHERE repeats the index's, so SQLite can use it.
  activeUsers(limit: number): string[] {
    return this.ctx.storage.sql.exec(`
      SELECT id FROM users WHERE active = 1 ORDER BY last_active DESC LIMIT ?
    `, limit).toArray().map((r: any) => r.id);
  }

  // SQLite uses a partial index only for a query whose WHERE has the
  // index's own term: "timestamp > ?", or even "timestamp > <a later
  // constant>", is not enough, so the query repeats the index's bound.
  recentMessages(since: number, limit: number): string[] {
    return this.ctx.storage.sql.exec(`
      SELECT id FROM messages WHERE timestamp > 1704067200000 AND timestamp > ?
      ORDER BY timestamp DESC LIMIT ?
    `, since, limit).toArray().map((r: any) => r.id);
  }
}
