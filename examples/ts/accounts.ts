// The guide's "Basic Transaction" (explicit BEGIN / COMMIT / ROLLBACK),
// with the routes of the Go class "accounts":
//   POST /update {user_id,amount}, POST /deposit?user=&amount=,
//   POST /withdraw?user=&amount=, POST /transfer {from,to,amount},
//   GET /balance?user=, GET /transactions?user=
// Dura runs BEGIN/COMMIT/ROLLBACK as nested savepoints, so the guide's
// code runs as written and transfer nests two updates in a third.
import { DurableObject } from "cloudflare:workers";

export class Accounts extends DurableObject {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(`
        CREATE TABLE IF NOT EXISTS accounts (user_id TEXT PRIMARY KEY, balance INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS transactions (
          id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL,
          amount INTEGER NOT NULL, timestamp INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS idx_transactions_user ON transactions(user_id, id DESC)`);
    });
  }

  // From the guide, as written.
  async updateBalance(userId: string, amount: number): Promise<void> {
    this.ctx.storage.sql.exec("BEGIN");

    try {
      // Get current balance
      const result = this.ctx.storage.sql.exec(
        "SELECT balance FROM accounts WHERE user_id = ?",
        userId
      ).one<{ balance: number }>();

      const newBalance = (result?.balance ?? 0) + amount;

      if (newBalance < 0) {
        throw new Error("Insufficient balance");
      }

      // Update balance
      this.ctx.storage.sql.exec(
        "UPDATE accounts SET balance = ? WHERE user_id = ?",
        newBalance,
        userId
      );

      // Log transaction
      this.ctx.storage.sql.exec(
        "INSERT INTO transactions (user_id, amount, timestamp) VALUES (?, ?, ?)",
        userId,
        amount,
        Date.now()
      );

      this.ctx.storage.sql.exec("COMMIT");
    } catch (error) {
      this.ctx.storage.sql.exec("ROLLBACK");
      throw error;
    }
  }

  // Added: the routes of the Go twin.
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const q = url.searchParams;
    const route = `${request.method} ${url.pathname}`;
    try {
      switch (route) {
        case "POST /update": {
          const { user_id, amount } = await request.json();
          if (!user_id) throw new HttpError(400, "BAD_REQUEST", "user_id is required");
          if (!Number.isInteger(amount) || amount === 0) throw new HttpError(400, "BAD_REQUEST", "amount must be a non-zero integer");
          return Response.json(await this.change(user_id, amount, true));
        }
        case "POST /deposit":
        case "POST /withdraw": {
          const user = q.get("user") ?? "";
          const amount = Number(q.get("amount"));
          if (!user) throw new HttpError(400, "BAD_REQUEST", "user is required");
          if (!/^\d+$/.test(q.get("amount") ?? "") || amount <= 0) throw new HttpError(400, "BAD_REQUEST", "amount must be a positive integer");
          const deposit = url.pathname === "/deposit";
          return Response.json(await this.change(user, deposit ? amount : -amount, deposit));
        }
        case "POST /transfer": {
          const { from, to, amount } = await request.json();
          if (!from || !to || from === to) throw new HttpError(400, "BAD_REQUEST", "from and to must be two accounts");
          if (!Number.isInteger(amount) || amount <= 0) throw new HttpError(400, "BAD_REQUEST", "amount must be a positive integer");
          const sql = this.ctx.storage.sql;
          sql.exec("BEGIN");
          try {
            const out = { from: await this.change(from, -amount, false), to: await this.change(to, amount, false) };
            sql.exec("COMMIT");
            return Response.json(out);
          } catch (e) {
            sql.exec("ROLLBACK");
            throw e;
          }
        }
        case "GET /balance": {
          const user = q.get("user") ?? "";
          const rows = this.ctx.storage.sql.exec("SELECT balance FROM accounts WHERE user_id = ?", user).toArray();
          return Response.json({ user_id: user, balance: rows.length ? rows[0].balance : 0 });
        }
        case "GET /transactions": {
          const transactions = this.ctx.storage.sql.exec(
            "SELECT id, user_id, amount, timestamp FROM transactions WHERE user_id = ? ORDER BY id DESC LIMIT 50", q.get("user") ?? "").toArray();
          return Response.json({ transactions });
        }
      }
      throw new HttpError(404, "NOT_FOUND", `no route for ${route}`);
    } catch (e: any) {
      if (e instanceof HttpError) return Response.json({ error: { code: e.code, message: e.message } }, { status: e.status });
      if (e.message === "Insufficient balance") return Response.json({ error: { code: "CONSTRAINT", message: e.message } }, { status: 409 });
      throw e;
    }
  }

  // change opens the account if asked, runs the guide's update, and reads
  // the new balance.
  async change(user: string, amount: number, open: boolean) {
    const sql = this.ctx.storage.sql;
    if (!open && sql.exec("SELECT 1 FROM accounts WHERE user_id = ?", user).toArray().length === 0)
      throw new HttpError(404, "NOT_FOUND", `no account "${user}"`);
    sql.exec("BEGIN");
    try {
      sql.exec("INSERT INTO accounts (user_id, balance) VALUES (?, 0) ON CONFLICT DO NOTHING", user);
      await this.updateBalance(user, amount);
      sql.exec("COMMIT");
    } catch (e) {
      sql.exec("ROLLBACK");
      throw e;
    }
    return { user_id: user, balance: sql.exec("SELECT balance FROM accounts WHERE user_id = ?", user).one().balance };
  }
}

class HttpError extends Error {
  constructor(public status: number, public code: string, message: string) { super(message); }
}
