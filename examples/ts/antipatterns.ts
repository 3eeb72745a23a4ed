// The guide's "Common Anti-Patterns to Avoid": each BAD query and the
// GOOD one that replaces it, as the guide writes them, as RPC methods
// (POST /rpc/AntiPatterns/{name}/{method}). Run the BAD ones on one
// object and the GOOD ones on another, then ask the advisor
// (GET /v1/objects/AntiPatterns/{name}/advice): it flags the first and
// not the second. Added lines: the imports, the class, the schema the
// snippets share (anti-pattern 1's messages, with the text column of
// anti-pattern 2 and the users of anti-pattern 3), seed, and the counts
// each method returns.
import { DurableObject } from "cloudflare:workers";

export class AntiPatterns extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(`
      CREATE TABLE IF NOT EXISTS messages (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        timestamp INTEGER NOT NULL
      )
    `);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL)`);
  }

  // Added: users u0..u{users-1}, each with perUser messages.
  seed(users: number, perUser: number): number {
    let n = 0;
    this.ctx.storage.transactionSync(() => {
      for (let u = 0; u < users; u++) {
        this.ctx.storage.sql.exec(`INSERT OR IGNORE INTO users (id, name) VALUES (?, ?)`, `u${u}`, `User ${u}`);
        for (let m = 0; m < perUser; m++) {
          n += this.ctx.storage.sql.exec(`INSERT OR IGNORE INTO messages (id, user_id, text, timestamp) VALUES (?, ?, ?, ?)`,
            `u${u}-m${m}`, `u${u}`, `message ${m} of user ${u}`, u * 1000 + m).rowsWritten;
        }
      }
    });
    return n;
  }

  // ❌ Anti-Pattern 1: No Indexes
  noIndex(userId: string): number {
    const ctx = this.ctx;
    // Query will be slow
    const messages = ctx.storage.sql.exec(`
      SELECT * FROM messages WHERE user_id = ?
    `, userId).toArray();
    return messages.length;
  }
  addIndex(): void {
    const ctx = this.ctx;
    // GOOD: Add index
    ctx.storage.sql.exec(`
      CREATE INDEX idx_messages_user ON messages(user_id)
    `);
  }

  // ❌ Anti-Pattern 2: SELECT * When Not Needed
  selectStar(userId: string): number {
    // BAD: Fetches all columns
    const messages = this.ctx.storage.sql.exec(`
      SELECT * FROM messages WHERE user_id = ?
    `, userId).toArray();
    return messages.length;
  }
  selectColumns(userId: string): number {
    // GOOD: Fetch only needed columns
    const messages = this.ctx.storage.sql.exec(`
      SELECT id, text, timestamp FROM messages WHERE user_id = ?
    `, userId).toArray();
    return messages.length;
  }

  // ❌ Anti-Pattern 3: N+1 Queries
  nPlusOne(): number {
    const ctx = this.ctx;
    let n = 0;
    // BAD: N+1 query pattern
    const users = ctx.storage.sql.exec(`SELECT id FROM users`).toArray();

    for (const user of users) {
      const messages = ctx.storage.sql.exec(`
        SELECT * FROM messages WHERE user_id = ?
      `, (user as any).id).toArray();
      // Process messages
      n += messages.length;
    }
    return n;
  }
  join(): number {
    const ctx = this.ctx;
    // GOOD: Single JOIN query
    const results = ctx.storage.sql.exec(`
      SELECT u.id, u.name, m.id as message_id, m.text
      FROM users u
      LEFT JOIN messages m ON u.id = m.user_id
    `).toArray();
    return results.length;
  }

  // ❌ Anti-Pattern 4: Unbounded Queries
  unbounded(): number {
    const ctx = this.ctx;
    // BAD: No LIMIT (could return millions of rows)
    const messages = ctx.storage.sql.exec(`
      SELECT * FROM messages ORDER BY timestamp DESC
    `).toArray();
    return messages.length;
  }
  limited(): number {
    const ctx = this.ctx;
    // GOOD: Always use LIMIT
    const messages = ctx.storage.sql.exec(`
      SELECT * FROM messages ORDER BY timestamp DESC LIMIT 100
    `).toArray();
    return messages.length;
  }
}
