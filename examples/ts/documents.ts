// The guide's "Optimistic Locking with Versions", with the routes of the
// Go class "documents":
//   GET /docs/{id}                    -> {"id","content","version","updated_at"}
//   PUT /docs/{id} {content,version}  -> version 0 creates (201), else updates
import { DurableObject } from "cloudflare:workers";

export class Documents extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS documents (
        id TEXT PRIMARY KEY, content TEXT NOT NULL, version INTEGER NOT NULL, updated_at INTEGER NOT NULL)`);
    });
  }

  // From the guide, as written.
  async updateDocument(docId: string, content: string): Promise<void> {
    this.ctx.storage.sql.exec("BEGIN");

    try {
      // Get current version
      const doc = this.ctx.storage.sql.exec(
        "SELECT version FROM documents WHERE id = ?",
        docId
      ).one<{ version: number }>();

      if (!doc) {
        throw new Error("Document not found");
      }

      const newVersion = doc.version + 1;

      // Update with version check
      const result = this.ctx.storage.sql.exec(
        "UPDATE documents SET content = ?, version = ? WHERE id = ? AND version = ?",
        content,
        newVersion,
        docId,
        doc.version
      );

      if (result.changes === 0) {
        throw new Error("Document was modified by another process");
      }

      this.ctx.storage.sql.exec("COMMIT");
    } catch (error) {
      this.ctx.storage.sql.exec("ROLLBACK");
      throw error;
    }
  }

  // Added: the routes of the Go twin. The version the client read is
  // checked first; the guide's update then bumps it.
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const m = url.pathname.match(/^\/docs\/([^/]+)$/);
    if (!m) return fail(404, "NOT_FOUND", `no route for ${request.method} ${url.pathname}`);
    const id = decodeURIComponent(m[1]);
    const sql = this.ctx.storage.sql;
    const read = () => sql.exec("SELECT id, content, version, updated_at FROM documents WHERE id = ?", id).toArray()[0];
    if (request.method === "GET") {
      const doc = read();
      return doc ? Response.json(doc) : fail(404, "NOT_FOUND", `no document "${id}"`);
    }
    if (request.method !== "PUT") return fail(404, "NOT_FOUND", `no route for ${request.method} ${url.pathname}`);
    const { content, version } = await request.json();
    if (typeof content !== "string") return fail(400, "BAD_REQUEST", "content is required");
    if (!Number.isInteger(version) || version < 0) return fail(400, "BAD_REQUEST", "version must be an integer >= 0");
    const current = read();
    if (version === 0) {
      if (current) return fail(409, "CONSTRAINT", `document "${id}" exists`);
      sql.exec("INSERT INTO documents VALUES (?, ?, 1, ?)", id, content, Date.now());
      return Response.json(read(), { status: 201 });
    }
    if (!current) return fail(404, "NOT_FOUND", `no document "${id}"`);
    if (current.version !== version) return fail(409, "CONSTRAINT", `stale version ${version}, the document is at ${current.version}`);
    try {
      await this.updateDocument(id, content);
    } catch (e: any) {
      return fail(409, "CONSTRAINT", e.message);
    }
    sql.exec("UPDATE documents SET updated_at = ? WHERE id = ?", Date.now(), id);
    return Response.json(read());
  }
}

function fail(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
