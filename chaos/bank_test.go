package chaos

import "testing"

func TestCheckBank(t *testing.T) {
	read := func(n, total, low int64) Op {
		return Op{Kind: "read", Outcome: OK, Arg: n, Result: total, Arg2: low}
	}
	var f Findings
	checkBank([]Op{read(bankAccounts, bankAccounts*bankInitial, 0), {Kind: "read", Outcome: Fail}}, &f)
	if f.BankViolations != 0 {
		t.Fatalf("clean bank: %+v", f)
	}
	checkBank([]Op{read(bankAccounts, bankAccounts*bankInitial-5, 3), read(bankAccounts, bankAccounts*bankInitial, -1), read(bankAccounts-1, bankAccounts*bankInitial, 0)}, &f)
	if f.BankViolations != 3 {
		t.Fatalf("broken bank: %+v", f)
	}
}

// TestCheckLedger feeds the ledger check histories whose totals all stay
// at 800, which the total check alone passes.
func TestCheckLedger(t *testing.T) {
	transfer := func(from, to, amount int64, out Outcome, at int) Op {
		return Op{Kind: "transfer", Object: bankObject, Accounts: []int64{from, to}, Arg: amount, Outcome: out, Invoke: ms(at), Complete: ms(at + 5)}
	}
	// ledger applies transfers in order: rows, balances and the balances
	// after each transfer (for reads).
	ledger := func(ts ...transferKey) (*bankState, [][]int64) {
		st := &bankState{Balances: make([]int64, bankAccounts)}
		for i := range st.Balances {
			st.Balances[i] = bankInitial
		}
		after := [][]int64{append([]int64(nil), st.Balances...)}
		for i, k := range ts {
			st.Ledger = append(st.Ledger, ledgerRow{int64(2*i + 1), k.from, -k.amount}, ledgerRow{int64(2*i + 2), k.to, k.amount})
			st.Balances[k.from] -= k.amount
			st.Balances[k.to] += k.amount
			after = append(after, append([]int64(nil), st.Balances...))
		}
		return st, after
	}
	read := func(seq int64, balances []int64, at int) Op {
		return Op{Kind: "read", Object: bankObject, Outcome: OK, Seq: seq, Accounts: balances, Invoke: ms(at), Complete: ms(at + 5)}
	}
	t1, t2 := transferKey{0, 1, 10}, transferKey{2, 3, 5}
	twoDone, after := ledger(t1, t2)
	oneDone, _ := ledger(t1)
	skewed, _ := ledger(t1, t2)
	skewed.Balances[4], skewed.Balances[5] = bankInitial+1, bankInitial-1
	diverged := append([]int64(nil), after[1]...)
	diverged[2], diverged[6] = bankInitial-5, bankInitial+5 // t2 went elsewhere on another copy
	cases := []struct {
		name                  string
		ops                   []Op
		st                    *bankState
		lost, phantom, broken int
	}{
		{"clean", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, OK, 10), read(2, after[1], 12), read(4, after[2], 20)}, twoDone, 0, 0, 0},
		{"uncertain transfer applied", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, Unknown, 10)}, twoDone, 0, 0, 0},
		{"uncertain transfer not applied", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, Unknown, 10)}, oneDone, 0, 0, 0},
		{"acknowledged transfer lost", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, OK, 10)}, oneDone, 1, 0, 0},
		{"transfer never attempted", []Op{transfer(0, 1, 10, OK, 0)}, twoDone, 0, 1, 0},
		{"refused transfer applied", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, Fail, 10)}, twoDone, 0, 1, 0},
		{"balances disagree with the ledger", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, OK, 10)}, skewed, 0, 0, 1},
		{"stale read", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, OK, 10), read(2, after[1], 20)}, twoDone, 0, 0, 1},
		{"read of a diverging copy", []Op{transfer(0, 1, 10, OK, 0), transfer(2, 3, 5, OK, 10), read(4, diverged, 20)}, twoDone, 0, 0, 1},
		{"read beyond the ledger", []Op{transfer(0, 1, 10, OK, 0), read(4, after[2], 20)}, oneDone, 0, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f Findings
			checkLedger(tc.ops, tc.st, &f)
			if f.LostWrites != tc.lost || f.PhantomWrites != tc.phantom || f.BankViolations != tc.broken {
				t.Fatalf("findings %+v", f)
			}
		})
	}
}
