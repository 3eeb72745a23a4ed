package examples_test

import (
	"testing"
)

type accountBalance struct {
	UserID  string `json:"user_id"`
	Balance int64  `json:"balance"`
}

// ledger is what must not change when a request is refused.
type ledger struct{ alice, bob, txs int64 }

func readLedger(n *testNode, name string) ledger {
	n.t.Helper()
	var a, b accountBalance
	n.call("GET", "accounts", name, "/balance?user=alice", nil, 200, &a)
	n.call("GET", "accounts", name, "/balance?user=bob", nil, 200, &b)
	return ledger{a.Balance, b.Balance, n.sqlInt("accounts", name, `SELECT COUNT(*) FROM transactions`)}
}

func TestAccounts(t *testing.T) {
	n := newNode(t)
	steps := []struct {
		name, path string
		body       any
		status     int
		code       string
		want       ledger
	}{
		{"deposit opens an account", "/deposit?user=alice&amount=100", nil, 200, "", ledger{100, 0, 1}},
		{"withdraw", "/withdraw?user=alice&amount=30", nil, 200, "", ledger{70, 0, 2}},
		{"overdraft", "/withdraw?user=alice&amount=71", nil, 409, "CONSTRAINT", ledger{70, 0, 2}},
		{"update overdraft", "/update", map[string]any{"user_id": "alice", "amount": -1000}, 409, "CONSTRAINT", ledger{70, 0, 2}},
		{"withdraw from no account", "/withdraw?user=bob&amount=1", nil, 404, "NOT_FOUND", ledger{70, 0, 2}},
		{"update opens an account", "/update", map[string]any{"user_id": "bob", "amount": 5}, 200, "", ledger{70, 5, 3}},
		{"amount not an integer", "/deposit?user=alice&amount=1.5", nil, 400, "BAD_REQUEST", ledger{70, 5, 3}},
		{"negative deposit", "/deposit?user=alice&amount=-5", nil, 400, "BAD_REQUEST", ledger{70, 5, 3}},
		{"zero update", "/update", map[string]any{"user_id": "alice", "amount": 0}, 400, "BAD_REQUEST", ledger{70, 5, 3}},
		{"transfer", "/transfer", map[string]any{"from": "alice", "to": "bob", "amount": 20}, 200, "", ledger{50, 25, 5}},
		{"transfer overdraft", "/transfer", map[string]any{"from": "alice", "to": "bob", "amount": 51}, 409, "CONSTRAINT", ledger{50, 25, 5}},
		{"transfer to unknown account", "/transfer", map[string]any{"from": "alice", "to": "carol", "amount": 10}, 404, "NOT_FOUND", ledger{50, 25, 5}},
		{"transfer to self", "/transfer", map[string]any{"from": "alice", "to": "alice", "amount": 10}, 400, "BAD_REQUEST", ledger{50, 25, 5}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.code != "" {
				n.callErr("POST", "accounts", "bank", s.path, s.body, s.status, s.code)
			} else {
				n.call("POST", "accounts", "bank", s.path, s.body, s.status, nil)
			}
			if got := readLedger(n, "bank"); got != s.want {
				t.Fatalf("ledger %+v, want %+v", got, s.want)
			}
		})
	}

	t.Run("transaction log", func(t *testing.T) {
		var got struct {
			Transactions []struct {
				Amount int64 `json:"amount"`
			}
		}
		n.call("GET", "accounts", "bank", "/transactions?user=alice", nil, 200, &got)
		want := []int64{-20, -30, 100}
		if len(got.Transactions) != len(want) {
			t.Fatalf("transactions %+v", got.Transactions)
		}
		for i, tx := range got.Transactions {
			if tx.Amount != want[i] {
				t.Fatalf("transactions %+v, want amounts %v", got.Transactions, want)
			}
		}
	})
	n.noAdviceWarnings("accounts", "bank")
}

// TestAccountsBatchRollsBackOnlyTheFailedTransfer checks ROLLBACK itself,
// not the event's rollback: the batch event commits, and a transfer whose
// debit was already written when its credit failed leaves no trace.
func TestAccountsBatchRollsBackOnlyTheFailedTransfer(t *testing.T) {
	n := newNode(t)
	n.call("POST", "accounts", "batch", "/deposit?user=alice&amount=100", nil, 200, nil)
	n.call("POST", "accounts", "batch", "/deposit?user=bob&amount=1", nil, 200, nil)
	var got struct {
		Results []struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
	}
	n.call("POST", "accounts", "batch", "/transfers", map[string]any{"transfers": []any{
		map[string]any{"from": "alice", "to": "bob", "amount": 10},
		map[string]any{"from": "alice", "to": "zed", "amount": 20}, // debit written, credit fails
		map[string]any{"from": "alice", "to": "bob", "amount": 500},
		map[string]any{"from": "bob", "to": "alice", "amount": 5},
	}}, 200, &got)
	wantOK := []bool{true, false, false, true}
	if len(got.Results) != len(wantOK) {
		t.Fatalf("results %+v", got.Results)
	}
	for i, r := range got.Results {
		if r.OK != wantOK[i] || (r.OK == (r.Error != "")) {
			t.Fatalf("result %d: %+v, want ok=%v", i, r, wantOK[i])
		}
	}
	if l := readLedger(n, "batch"); l != (ledger{95, 6, 6}) {
		t.Fatalf("ledger %+v, want {95 6 6}", l)
	}
	if c := n.sqlInt("accounts", "batch", `SELECT COUNT(*) FROM transactions WHERE amount = -20 OR user_id = 'zed'`); c != 0 {
		t.Fatalf("%d log rows of the rolled-back transfer", c)
	}
}
