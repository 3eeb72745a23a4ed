package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/dura-dev/dura/rpc"
)

// The bank: transfers between the accounts of one accounts object. The
// class logs each transfer in its transactions table as two rows, the
// debit and then the credit, so the ledger at the end says which
// transfers happened, in which order.
const (
	bankObject   = "bank"
	bankAccounts = 8
	bankInitial  = 100
)

func accountName(a int64) string { return fmt.Sprint("a", a) }

func (d *driver) bankOp(r *rand.Rand, cl int) Op {
	entry := d.pick(r)
	if r.IntN(4) == 0 {
		return d.bankRead(entry, cl)
	}
	from, to := r.Int64N(bankAccounts), r.Int64N(bankAccounts-1)
	if to >= from {
		to++
	}
	amount := r.Int64N(30) + 1
	body, _ := json.Marshal(map[string]any{"from": accountName(from), "to": accountName(to), "amount": amount})
	op := d.exec(Op{Workload: Bank, Kind: "transfer", Object: bankObject, Client: cl, Arg: amount, Accounts: []int64{from, to}}, entry, func(ctx context.Context, entry int) (served, error) {
		return d.callJSON(ctx, entry, "POST", "accounts", bankObject, "/transfer", body, nil)
	})
	d.h.Add(op)
	return op
}

// bankRead reads every balance and the last ledger row in one
// transaction: Accounts are the balances, Seq the row, Result the total,
// Arg2 the lowest balance, Arg the number of accounts.
func (d *driver) bankRead(entry, cl int) Op {
	var res []rpc.SQLResult
	op := d.exec(Op{Workload: Bank, Kind: "read", Object: bankObject, Client: cl}, entry, func(ctx context.Context, entry int) (served, error) {
		var err error
		var node served
		res, node, err = d.sqlWithNode(ctx, entry, "accounts", bankObject,
			rpc.Statement{SQL: "SELECT balance FROM accounts ORDER BY user_id"},
			rpc.Statement{SQL: "SELECT coalesce(max(id), 0) FROM transactions"})
		return node, err
	})
	if op.Outcome == OK && len(res) == 2 && len(res[1].Rows) == 1 {
		op.Seq = toInt64(res[1].Rows[0][0])
		op.Arg = int64(len(res[0].Rows))
		for i, row := range res[0].Rows {
			b := toInt64(row[0])
			op.Accounts = append(op.Accounts, b)
			op.Result += b
			if i == 0 || b < op.Arg2 {
				op.Arg2 = b
			}
		}
	}
	d.h.Add(op)
	return op
}

// ledgerRow is a row of the bank's transactions table.
type ledgerRow struct {
	ID      int64
	Account int64
	Amount  int64
}

// bankState is the bank as read at the end: balances and the whole
// ledger in id order.
type bankState struct {
	Balances []int64
	Ledger   []ledgerRow
}

// readBank reads the final state through node entry.
func (d *driver) readBank(ctx context.Context, entry int) (*bankState, error) {
	res, _, err := d.sqlWithNode(ctx, entry, "accounts", bankObject,
		rpc.Statement{SQL: "SELECT balance FROM accounts ORDER BY user_id"},
		rpc.Statement{SQL: "SELECT id, substr(user_id, 2), amount FROM transactions ORDER BY id"})
	if err != nil {
		return nil, err
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("bank read: %d results", len(res))
	}
	st := &bankState{}
	for _, row := range res[0].Rows {
		st.Balances = append(st.Balances, toInt64(row[0]))
	}
	for _, row := range res[1].Rows {
		var a int64
		fmt.Sscan(fmt.Sprint(row[1]), &a)
		st.Ledger = append(st.Ledger, ledgerRow{ID: toInt64(row[0]), Account: a, Amount: toInt64(row[2])})
	}
	return st, nil
}

// checkBank: every successful read of all balances (one transaction) saw
// all accounts, the initial total, and no negative balance.
func checkBank(ops []Op, f *Findings) {
	for _, op := range ops {
		if op.Kind != "read" || op.Outcome != OK {
			continue
		}
		if op.Arg != bankAccounts || op.Result != bankAccounts*bankInitial || op.Arg2 < 0 {
			f.BankViolations++
			f.evidence("bank read saw %d accounts, total %d, lowest %d: %s", op.Arg, op.Result, op.Arg2, describe(op))
		}
	}
}

// transferKey names a transfer by its accounts and amount; the ledger
// does not say who asked for it, so transfers are counted by key.
type transferKey struct{ from, to, amount int64 }

// checkLedger holds the bank's final state to its history: the ledger is
// a list of transfers (debit row, then credit row); it holds every
// acknowledged transfer and nothing never attempted or refused; each
// final balance is its initial one plus its ledger rows; each read saw
// the balances of the ledger's first Seq rows, which include every
// transfer acknowledged before the read was called.
func checkLedger(ops []Op, st *bankState, f *Findings) {
	if st == nil {
		f.LostWrites++
		f.evidence("bank: no final read succeeded")
		return
	}
	rows := st.Ledger
	ledger, bad := ledgerEntries(rows)
	if bad != nil {
		f.BankViolations++
		f.evidence("bank ledger row %d is not the debit of a transfer followed by its credit", bad.ID)
		return
	}
	// Each key's ledger positions, to count those up to a read's Seq.
	inLedger := map[transferKey][]int64{}
	for _, e := range ledger {
		inLedger[e.key] = append(inLedger[e.key], e.last)
	}
	acked, unknown := map[transferKey][]Op{}, map[transferKey]int{}
	var reads []Op
	for _, op := range ops {
		switch {
		case op.Kind == "read" && op.Outcome == OK:
			reads = append(reads, op)
		case op.Kind != "transfer" || len(op.Accounts) != 2:
		case op.Outcome == OK:
			k := transferKey{op.Accounts[0], op.Accounts[1], op.Arg}
			acked[k] = append(acked[k], op)
		case op.Outcome == Unknown:
			unknown[transferKey{op.Accounts[0], op.Accounts[1], op.Arg}]++
		}
	}
	keys := map[transferKey]bool{}
	for k := range acked {
		keys[k] = true
	}
	for k := range inLedger {
		keys[k] = true
	}
	for k := range keys {
		ok, n := len(acked[k]), len(inLedger[k])
		if n < ok {
			f.LostWrites += ok - n
			f.evidence("bank: %d acknowledged transfers of %d from a%d to a%d, %d in the ledger; one: %s", ok, k.amount, k.from, k.to, n, describe(acked[k][0]))
		}
		if n > ok+unknown[k] {
			f.PhantomWrites += n - ok - unknown[k]
			f.evidence("bank: %d transfers of %d from a%d to a%d in the ledger, but %d acknowledged and %d uncertain", n, k.amount, k.from, k.to, ok, unknown[k])
		}
	}
	// Balances after each prefix of the ledger.
	bal := make([]int64, bankAccounts)
	for i := range bal {
		bal[i] = bankInitial
	}
	sort.Slice(reads, func(i, j int) bool { return reads[i].Seq < reads[j].Seq })
	r := 0
	checkReads := func(upTo int64) {
		for ; r < len(reads) && (upTo < 0 || reads[r].Seq <= upTo); r++ {
			if upTo < 0 && reads[r].Seq > lastID(rows) || !equal(reads[r].Accounts, bal) {
				f.BankViolations++
				f.evidence("bank read saw balances %v at ledger row %d, which the final ledger puts at %v: %s", reads[r].Accounts, reads[r].Seq, bal, describe(reads[r]))
			}
		}
	}
	for _, row := range rows {
		checkReads(row.ID - 1)
		if row.Account >= 0 && row.Account < bankAccounts {
			bal[row.Account] += row.Amount
		}
	}
	checkReads(-1)
	if !equal(st.Balances, bal) {
		f.BankViolations++
		f.evidence("bank balances are %v, but the initial ones plus the ledger make %v", st.Balances, bal)
	}
	// Stale reads: a transfer acknowledged before a read was called must
	// be within the ledger rows that read saw.
	for _, rd := range reads {
		for k, ops := range acked {
			before := 0
			for _, op := range ops {
				if op.Complete < rd.Invoke {
					before++
				}
			}
			seen := sort.Search(len(inLedger[k]), func(i int) bool { return inLedger[k][i] > rd.Seq })
			if before > seen {
				f.BankViolations++
				f.evidence("bank read at ledger row %d misses %d acknowledged transfers of %d from a%d to a%d (stale): %s", rd.Seq, before-seen, k.amount, k.from, k.to, describe(rd))
			}
		}
	}
}

func lastID(rows []ledgerRow) int64 {
	if len(rows) == 0 {
		return 0
	}
	return rows[len(rows)-1].ID
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ledgerEntry is one transfer of the ledger, with the id of its last row.
type ledgerEntry struct {
	key  transferKey
	last int64
}

// ledgerEntries pairs the ledger's rows into transfers (a debit followed
// by its credit), or returns the first row that is not such a pair.
func ledgerEntries(rows []ledgerRow) ([]ledgerEntry, *ledgerRow) {
	var out []ledgerEntry
	for i := 0; i < len(rows); i += 2 {
		if i+1 == len(rows) || rows[i].Amount >= 0 || rows[i+1].Amount != -rows[i].Amount || rows[i].Account == rows[i+1].Account {
			return nil, &rows[i]
		}
		out = append(out, ledgerEntry{transferKey{rows[i].Account, rows[i+1].Account, rows[i+1].Amount}, rows[i+1].ID})
	}
	return out, nil
}
