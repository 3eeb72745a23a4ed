// The guide's "Versioned Migrations", with the routes of the Go class
// "versioned":
//   POST /users {id,name[,email]} -> 201 (email needs schema v2)
//   GET /users/{id}, GET /users?email=E (v2), GET /version
// CURRENT_VERSION says how far this build migrates (the guide's runs all
// three); a deploy with a higher one upgrades live objects in place.
import { DurableObject } from "cloudflare:workers";

export class VersionedDO extends DurableObject {
  private readonly CURRENT_VERSION = 3;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);

    ctx.blockConcurrencyWhile(async () => {
      await this.runMigrations();
    });
  }

  private async runMigrations(): Promise<void> {
    // Get current version
    const versionResult = this.ctx.storage.sql.exec(`
      CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        applied_at INTEGER NOT NULL
      )
    `);

    const currentVersion = this.ctx.storage.sql.exec(`
      SELECT MAX(version) as version FROM schema_version
    `).one<{ version: number }>();

    const version = currentVersion?.version ?? 0;

    // Run migrations sequentially
    if (version < 1) {
      await this.migration_v1();
    }
    if (version < 2 && this.CURRENT_VERSION >= 2) {
      await this.migration_v2();
    }
    if (version < 3 && this.CURRENT_VERSION >= 3) {
      await this.migration_v3();
    }
  }

  private async migration_v1(): Promise<void> {
    this.ctx.storage.sql.exec(`
      CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL
      )
    `);

    this.ctx.storage.sql.exec(`
      INSERT INTO schema_version (version, applied_at)
      VALUES (1, ?)
    `, Date.now());
  }

  private async migration_v2(): Promise<void> {
    // Add email column
    this.ctx.storage.sql.exec(`
      ALTER TABLE users ADD COLUMN email TEXT
    `);

    this.ctx.storage.sql.exec(`
      INSERT INTO schema_version (version, applied_at)
      VALUES (2, ?)
    `, Date.now());
  }

  private async migration_v3(): Promise<void> {
    // Add index on email
    this.ctx.storage.sql.exec(`
      CREATE INDEX idx_users_email ON users(email)
    `);

    this.ctx.storage.sql.exec(`
      INSERT INTO schema_version (version, applied_at)
      VALUES (3, ?)
    `, Date.now());
  }

  // Added: the routes of the Go twin.
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const sql = this.ctx.storage.sql;
    const version = sql.exec("SELECT MAX(version) AS v FROM schema_version").one().v as number;
    const cols = version >= 2 ? "id, name, email" : "id, name, NULL AS email";
    const route = `${request.method} ${url.pathname}`;
    if (route === "GET /version") return Response.json({ version });
    if (route === "POST /users") {
      const u = await request.json();
      if (!u.id) return fail(400, "BAD_REQUEST", "id is required");
      if (!u.name) return fail(400, "BAD_REQUEST", "name is required");
      if (u.email !== undefined && version < 2) return fail(400, "BAD_REQUEST", `email needs schema version 2, this object is at ${version}`);
      if (u.email !== undefined) sql.exec("INSERT INTO users (id, name, email) VALUES (?, ?, ?)", u.id, u.name, u.email);
      else sql.exec("INSERT INTO users (id, name) VALUES (?, ?)", u.id, u.name);
      return Response.json({ id: u.id, name: u.name, email: u.email ?? null }, { status: 201 });
    }
    if (route === "GET /users") {
      const email = url.searchParams.get("email");
      if (!email) return fail(400, "BAD_REQUEST", "email is required");
      if (version < 2) return fail(400, "BAD_REQUEST", `email needs schema version 2, this object is at ${version}`);
      return Response.json({ users: sql.exec("SELECT id, name, email FROM users WHERE email = ? ORDER BY id LIMIT 50", email).toArray() });
    }
    const m = url.pathname.match(/^\/users\/([^/]+)$/);
    if (m && request.method === "GET") {
      const rows = sql.exec(`SELECT ${cols} FROM users WHERE id = ?`, decodeURIComponent(m[1])).toArray();
      return rows.length ? Response.json(rows[0]) : fail(404, "NOT_FOUND", `no user "${m[1]}"`);
    }
    return fail(404, "NOT_FOUND", `no route for ${route}`);
  }
}

function fail(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
