package examples

import (
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/dura-dev/dura/node"
)

// accountsSchema holds balances in integer minor units (cents), never
// floats, plus an append-only log of every change.
const accountsSchema = `
CREATE TABLE IF NOT EXISTS accounts (
	user_id TEXT PRIMARY KEY,
	balance INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id TEXT NOT NULL,
	amount INTEGER NOT NULL,
	timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_transactions_user ON transactions(user_id, id DESC)`

// accountsMaxBatch bounds the transfers of one POST /transfers.
const accountsMaxBatch = 100

// Accounts keeps balances, written the guide's way: explicit BEGIN,
// COMMIT and ROLLBACK statements sent through Exec. Dura turns them into
// nested savepoints inside the event's own transaction, so they nest (a
// transfer is two balance updates inside a third transaction) and a
// ROLLBACK undoes just its own part.
//
//	POST /update     {user_id,amount}          -> {"user_id","balance"}; opens the account
//	POST /deposit?user=U&amount=N   (N > 0)    -> {"user_id","balance"}; opens the account
//	POST /withdraw?user=U&amount=N  (N > 0)    -> {"user_id","balance"}
//	POST /transfer   {from,to,amount}          -> {"from":{...},"to":{...}}; the recipient must exist
//	POST /transfers  {"transfers":[...]}       -> {"results":[{"ok":true}|{"ok":false,"error":"..."}]}
//	GET  /balance?user=U                       -> {"user_id","balance"} (0 for no account)
//	GET  /transactions?user=U&limit=           -> {"transactions":[...]} newest first
//
// A change that would take a balance below zero is 409 CONSTRAINT and
// writes nothing: neither the balance nor the log.
type Accounts struct {
	st *node.State
	r  *router
}

// NewAccounts is the constructor of class "accounts".
func NewAccounts(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		_, err := st.Storage().Exec(accountsSchema)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("accounts schema: %w", err)
	}
	a := &Accounts{st: st, r: newRouter()}
	a.r.handle("POST /update", a.update)
	a.r.handle("POST /deposit", a.depositOrWithdraw(1))
	a.r.handle("POST /withdraw", a.depositOrWithdraw(-1))
	a.r.handle("POST /transfer", a.transferOne)
	a.r.handle("POST /transfers", a.transferMany)
	a.r.handle("GET /balance", a.balance)
	a.r.handle("GET /transactions", a.transactions)
	return a, nil
}

// Fetch implements node.Object.
func (a *Accounts) Fetch(w http.ResponseWriter, r *http.Request) error { return a.r.serve(w, r) }

type accountBalance struct {
	UserID  string `json:"user_id"`
	Balance int64  `json:"balance"`
}

// inTransaction runs fn between an explicit BEGIN and COMMIT, sending
// ROLLBACK instead if fn fails or panics: the guide's try/catch. Once
// COMMIT has been sent ROLLBACK must not follow, or it would close the
// enclosing transaction instead.
func (a *Accounts) inTransaction(fn func() error) (err error) {
	s := a.st.Storage()
	if _, err := s.Exec("BEGIN"); err != nil {
		return err
	}
	committing := false
	defer func() {
		if committing {
			return
		}
		if _, rbErr := s.Exec("ROLLBACK"); rbErr != nil {
			err = errors.Join(err, rbErr)
		}
	}()
	if err := fn(); err != nil {
		return err
	}
	committing = true
	_, err = s.Exec("COMMIT")
	return err
}

// updateBalance adds amount (negative to withdraw) to the user's balance
// and logs it. A missing account counts as balance 0 and is created only
// if open is set.
func (a *Accounts) updateBalance(userID string, amount int64, open bool) (balance int64, err error) {
	s := a.st.Storage()
	err = a.inTransaction(func() error {
		cur, err := s.Exec(`SELECT balance FROM accounts WHERE user_id = ?`, userID)
		if err != nil {
			return err
		}
		var current int64
		switch {
		case cur.Next():
			if err := cur.Scan(&current); err != nil {
				return err
			}
		case !open:
			return fmt.Errorf("%w: no account %q", node.ErrNotFound, userID)
		}
		if amount > 0 && current > math.MaxInt64-amount {
			return fmt.Errorf("%w: balance of %q would overflow", node.ErrBadRequest, userID)
		}
		balance = current + amount
		if balance < 0 {
			return fmt.Errorf("%w: insufficient balance: %q has %d, needs %d", node.ErrConflict, userID, current, -amount)
		}
		if _, err := s.Exec(`
			INSERT INTO accounts (user_id, balance) VALUES (?, ?)
			ON CONFLICT(user_id) DO UPDATE SET balance = excluded.balance`, userID, balance); err != nil {
			return err
		}
		_, err = s.Exec(`INSERT INTO transactions (user_id, amount, timestamp) VALUES (?, ?, ?)`,
			userID, amount, a.st.Now().UnixMilli())
		return err
	})
	return balance, err
}

func (a *Accounts) update(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		UserID string `json:"user_id"`
		Amount int64  `json:"amount"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.UserID == "" {
		return missing("user_id")
	}
	if req.Amount == 0 || req.Amount == math.MinInt64 {
		return fmt.Errorf("%w: amount must be a non-zero integer", node.ErrBadRequest)
	}
	bal, err := a.updateBalance(req.UserID, req.Amount, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, accountBalance{UserID: req.UserID, Balance: bal})
}

// depositOrWithdraw serves the query-string forms; sign is +1 or -1.
func (a *Accounts) depositOrWithdraw(sign int64) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		user := q.Get("user")
		if user == "" {
			return missing("user")
		}
		amount, err := queryInt(q, "amount", 0, 1, math.MaxInt64)
		if err != nil {
			return err
		}
		if amount == 0 {
			return missing("amount")
		}
		bal, err := a.updateBalance(user, sign*amount, sign > 0)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, accountBalance{UserID: user, Balance: bal})
	}
}

type transferRequest struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
}

type transferResult struct {
	From accountBalance `json:"from"`
	To   accountBalance `json:"to"`
}

// transfer debits one account and credits another inside one explicit
// transaction. The credit fails for an unknown recipient after the debit
// was written; the ROLLBACK then takes the debit back too.
func (a *Accounts) transfer(t transferRequest) (res transferResult, err error) {
	switch {
	case t.From == "" || t.To == "":
		return res, fmt.Errorf("%w: from and to are required", node.ErrBadRequest)
	case t.From == t.To:
		return res, fmt.Errorf("%w: cannot transfer from %q to itself", node.ErrBadRequest, t.From)
	case t.Amount <= 0:
		return res, fmt.Errorf("%w: amount must be a positive integer", node.ErrBadRequest)
	}
	err = a.inTransaction(func() error {
		var err error
		res.From = accountBalance{UserID: t.From}
		res.To = accountBalance{UserID: t.To}
		if res.From.Balance, err = a.updateBalance(t.From, -t.Amount, false); err != nil {
			return err
		}
		res.To.Balance, err = a.updateBalance(t.To, t.Amount, false)
		return err
	})
	return res, err
}

func (a *Accounts) transferOne(w http.ResponseWriter, r *http.Request) error {
	var t transferRequest
	if err := readJSON(r, &t); err != nil {
		return err
	}
	res, err := a.transfer(t)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

type transferOutcome struct {
	OK     bool            `json:"ok"`
	Result *transferResult `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// transferMany applies each transfer on its own: a refused one is rolled
// back alone and the others still commit with the event. Only a failure
// that is not the client's (storage, say) fails the whole request.
func (a *Accounts) transferMany(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Transfers []transferRequest `json:"transfers"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if len(req.Transfers) == 0 || len(req.Transfers) > accountsMaxBatch {
		return fmt.Errorf("%w: send 1 to %d transfers, got %d", node.ErrBadRequest, accountsMaxBatch, len(req.Transfers))
	}
	out := make([]transferOutcome, len(req.Transfers))
	for i, t := range req.Transfers {
		res, err := a.transfer(t)
		switch {
		case err == nil:
			out[i] = transferOutcome{OK: true, Result: &res}
		case errors.Is(err, node.ErrConflict), errors.Is(err, node.ErrNotFound), errors.Is(err, node.ErrBadRequest):
			out[i] = transferOutcome{Error: node.ErrorMessage(err)}
		default:
			return fmt.Errorf("transfer %d: %w", i, err)
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

func (a *Accounts) balance(w http.ResponseWriter, r *http.Request) error {
	user := r.URL.Query().Get("user")
	if user == "" {
		return missing("user")
	}
	cur, err := a.st.Storage().Exec(`SELECT balance FROM accounts WHERE user_id = ?`, user)
	if err != nil {
		return err
	}
	b := accountBalance{UserID: user}
	if cur.Next() {
		if err := cur.Scan(&b.Balance); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, b)
}

type accountTx struct {
	ID        int64  `json:"id"`
	UserID    string `json:"user_id"`
	Amount    int64  `json:"amount"`
	Timestamp int64  `json:"timestamp"`
}

func (a *Accounts) transactions(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	user := q.Get("user")
	if user == "" {
		return missing("user")
	}
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	cur, err := a.st.Storage().Exec(`
		SELECT id, user_id, amount, timestamp FROM transactions
		WHERE user_id = ? ORDER BY id DESC LIMIT ?`, user, limit)
	if err != nil {
		return err
	}
	txs := make([]accountTx, 0, cur.Len())
	for cur.Next() {
		var t accountTx
		if err := cur.Scan(&t.ID, &t.UserID, &t.Amount, &t.Timestamp); err != nil {
			return err
		}
		txs = append(txs, t)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"transactions": txs})
}
