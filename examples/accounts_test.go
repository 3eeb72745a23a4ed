package examples_test

import (
	"testing"

	"github.com/dura-dev/dura/examples/twins"
)

// ledger is what must not change when a request is refused.
type ledger = twins.Ledger

func readLedger(n *testNode, name string) ledger {
	n.t.Helper()
	return twins.ReadLedger(n.t, n, "accounts", name)
}

func TestAccounts(t *testing.T) {
	n := newNode(t)
	twins.Accounts(t, n, "accounts")
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
	if l := readLedger(n, "batch"); l != (ledger{Alice: 95, Bob: 6, Txs: 6}) {
		t.Fatalf("ledger %+v, want {95 6 6}", l)
	}
	if c := n.sqlInt("accounts", "batch", `SELECT COUNT(*) FROM transactions WHERE amount = -20 OR user_id = 'zed'`); c != 0 {
		t.Fatalf("%d log rows of the rolled-back transfer", c)
	}
}
