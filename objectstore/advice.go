package objectstore

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// The advisor turns the statement statistics (stats.go), the query plan of
// each shape and the schema into findings: the data-modelling mistakes
// that make objects slow, each with the change that removes it. Plans and
// table sizes are read when advice is asked for, so a fix to the schema
// (an index) shows at once; a fix to the statements shows in the
// statistics of the next activation.

// Rule ids.
const (
	RuleMissingIndex   = "missing-index"
	RuleSelectStar     = "select-star"
	RuleNPlusOne       = "n-plus-one"
	RuleUnbounded      = "unbounded-query"
	RuleFKWithoutIndex = "fk-without-index"
	RuleTempSort       = "temp-sort"
	RuleLargeRows      = "large-rows"
)

// Severities.
const (
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

// Thresholds of the rules.
const (
	// bigTable is the row count from which a scan or sort is worth an index.
	bigTable = 1000
	// scansBeforeIndex is how many runs of a scanning statement it takes.
	scansBeforeIndex = 10
	// wideTable is the column count from which SELECT * is flagged.
	wideTable = 8
	// largeValue is the average bytes from which a column's values are large.
	largeValue = 1024
	// perEventRuns is how many runs of one shape in one event make N+1.
	perEventRuns = 10
	// unboundedRows is how many rows a SELECT without LIMIT may return.
	unboundedRows = 1000
	// largeRow is the average row size, in bytes, that is too large.
	largeRow = 100 << 10
	// rowSample is how many rows are read to estimate value sizes.
	rowSample = 200
)

// Finding is one piece of advice.
type Finding struct {
	Rule     string // a Rule* id
	Severity string // SeverityWarning or SeverityInfo
	Table    string
	// Statement is the statement's shape, "" for a finding on the schema.
	Statement string
	// Evidence are the numbers the finding rests on, by name.
	Evidence map[string]int64
	// Suggestion says what to change, with the SQL to run where there is one.
	Suggestion string
}

// PlanStep is one line of SQLite's EXPLAIN QUERY PLAN.
type PlanStep struct {
	ID, Parent int64
	Detail     string
}

// Advice reviews the statements run since the store was opened and the
// schema. It runs only the store's own reads (plans, counts, a sample of
// rows), inside the current event if one is open.
func (s *Store) Advice() ([]Finding, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	a := &advisor{s: s, tables: map[string]*tableInfo{}}
	if err := a.loadTables(); err != nil {
		return nil, err
	}
	for _, sh := range s.StatementStats() {
		if sh.sample == "" {
			continue
		}
		plan, err := s.planInternal(sh.sample)
		if err != nil {
			continue // the table went away since, or the like
		}
		a.statement(sh, plan, false)
	}
	a.schema()
	return a.sorted(), nil
}

// Explain returns the query plan of one statement, without running it,
// and the findings that plan and the schema give. The sandbox judges the
// statement as if it ran: a refused statement fails the same way.
func (s *Store) Explain(stmt string, args ...any) ([]PlanStep, []Finding, error) {
	if err := s.usable(); err != nil {
		return nil, nil, err
	}
	if len(stmt) > MaxStatementBytes {
		return nil, nil, fmt.Errorf("%w: statement is %d bytes, the limit is %d", ErrTooLarge, len(stmt), MaxStatementBytes)
	}
	if strings.IndexByte(stmt, 0) >= 0 {
		return nil, nil, fmt.Errorf("%w: the statement text holds a NUL byte", ErrBadRequest)
	}
	stmts, err := splitStatements(stmt)
	if err != nil {
		return nil, nil, err
	}
	if len(stmts) != 1 {
		return nil, nil, fmt.Errorf("%w: explain takes one statement, got %d", ErrBadRequest, len(stmts))
	}
	if classifyTx(stmts[0]) != txNone {
		return []PlanStep{}, []Finding{}, nil // BEGIN, COMMIT, ROLLBACK: savepoints, nothing to plan
	}
	if err := refuseByText(stmts[0]); err != nil {
		return nil, nil, err
	}
	named, err := bindArgs(args)
	if err != nil {
		return nil, nil, err
	}
	s.denied = ""
	plan, err := s.plan("EXPLAIN QUERY PLAN "+stmts[0], named, len(args) == 0)
	if err != nil {
		return nil, nil, err
	}
	a := &advisor{s: s, tables: map[string]*tableInfo{}}
	if err := a.loadTables(); err != nil {
		return nil, nil, err
	}
	a.statement(ShapeStats{Shape: normalize(stmts[0]), sample: stmts[0]}, plan, true)
	return plan, a.sorted(), nil
}

// planInternal plans one of the object's own statements past the sandbox
// (it ran already, so the sandbox let it through).
func (s *Store) planInternal(stmt string) ([]PlanStep, error) {
	s.internal = true
	defer func() { s.internal = false }()
	return s.plan(s.tag+"EXPLAIN QUERY PLAN "+stmt, nil, true)
}

// plan runs an EXPLAIN QUERY PLAN text; nulls binds NULL to every
// parameter instead of args (a plan does not depend on the values).
func (s *Store) plan(q string, args []driver.NamedValue, nulls bool) ([]PlanStep, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StatementTimeout)
	defer cancel()
	st, err := s.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, s.userErr(ctx, err)
	}
	defer st.Close()
	if nulls {
		n := st.NumInput()
		args = make([]driver.NamedValue, n)
		for i := range args {
			args[i] = driver.NamedValue{Ordinal: i + 1}
		}
	}
	rows, err := st.(*sqlite3.SQLiteStmt).QueryContext(ctx, args)
	if err != nil {
		return nil, s.userErr(ctx, err)
	}
	defer rows.Close()
	out := []PlanStep{}
	dest := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(dest); err == io.EOF {
			break
		} else if err != nil {
			return nil, s.userErr(ctx, err)
		}
		step := PlanStep{}
		step.ID, _ = dest[0].(int64)
		step.Parent, _ = dest[1].(int64)
		switch d := dest[len(dest)-1].(type) {
		case string:
			step.Detail = d
		case []byte:
			step.Detail = string(d)
		}
		out = append(out, step)
	}
	return out, nil
}

// tableInfo is what the rules need to know of one table; sizes are read
// only for tables a rule asks about.
type tableInfo struct {
	name     string
	cols     []string
	byLower  map[string]string // lower-cased column name -> name
	rowidCol string            // the INTEGER PRIMARY KEY column, if any
	indexes  [][]string        // each index's columns, leftmost first
	fks      [][]string        // each foreign key's child columns

	sized   bool
	rows    int64
	avgRow  int64
	avgCols map[string]int64
}

type advisor struct {
	s        *Store
	tables   map[string]*tableInfo // by lower-cased name
	order    []string
	findings []Finding
}

func (a *advisor) loadTables() error {
	rows, err := a.s.queryInternal(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return err
	}
	for _, r := range rows {
		name := r[0].(string)
		if isReserved(name) {
			continue
		}
		t := &tableInfo{name: name, byLower: map[string]string{}}
		cols, err := a.s.queryInternal(`SELECT name, type, pk, (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) FROM pragma_table_info(?1) ORDER BY cid`, name)
		if err != nil {
			return err
		}
		for _, c := range cols {
			col := c[0].(string)
			t.cols = append(t.cols, col)
			t.byLower[strings.ToLower(col)] = col
			if c[2].(int64) == 1 && c[3].(int64) == 1 && strings.EqualFold(c[1].(string), "INTEGER") {
				t.rowidCol = col
			}
		}
		idx, err := a.s.queryInternal(`SELECT il.name, ii.name FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii ORDER BY il.seq, ii.seqno`, name)
		if err != nil {
			return err
		}
		last := ""
		for _, r := range idx {
			if r[0].(string) != last {
				t.indexes = append(t.indexes, nil)
				last = r[0].(string)
			}
			col, _ := r[1].(string) // NULL for an expression
			t.indexes[len(t.indexes)-1] = append(t.indexes[len(t.indexes)-1], col)
		}
		fks, err := a.s.queryInternal(`SELECT id, "from" FROM pragma_foreign_key_list(?) ORDER BY id, seq`, name)
		if err != nil {
			return err
		}
		lastID := int64(-1)
		for _, r := range fks {
			if r[0].(int64) != lastID {
				t.fks = append(t.fks, nil)
				lastID = r[0].(int64)
			}
			t.fks[len(t.fks)-1] = append(t.fks[len(t.fks)-1], r[1].(string))
		}
		a.tables[strings.ToLower(name)] = t
		a.order = append(a.order, strings.ToLower(name))
	}
	return nil
}

// size reads t's row count and, from a sample of rows, the average bytes
// of each column and of a row.
func (a *advisor) size(t *tableInfo) {
	if t.sized {
		return
	}
	t.sized = true
	if rows, err := a.s.queryInternal("SELECT count(*) FROM main." + quoteIdent(t.name)); err == nil {
		t.rows = rows[0][0].(int64)
	}
	if t.rows == 0 || len(t.cols) == 0 {
		return
	}
	var sums, cols []string
	for _, c := range t.cols {
		sums = append(sums, "ifnull(sum(length("+quoteIdent(c)+")), 0)")
		cols = append(cols, quoteIdent(c))
	}
	rows, err := a.s.queryInternal("SELECT count(*), " + strings.Join(sums, ", ") + " FROM (SELECT " + strings.Join(cols, ", ") +
		" FROM main." + quoteIdent(t.name) + " LIMIT " + strconv.Itoa(rowSample) + ")")
	if err != nil || len(rows) != 1 {
		return
	}
	n, _ := rows[0][0].(int64)
	if n == 0 {
		return
	}
	t.avgCols = map[string]int64{}
	var total int64
	for i, c := range t.cols {
		v, _ := rows[0][i+1].(int64)
		t.avgCols[c] = v / n
		total += v
	}
	t.avgRow = total / n
}

func (a *advisor) table(name string) *tableInfo {
	name = strings.ToLower(name)
	name = strings.TrimPrefix(name, "main.")
	t := a.tables[name]
	if t != nil {
		a.size(t)
	}
	return t
}

func (a *advisor) add(f Finding) { a.findings = append(a.findings, f) }

func (a *advisor) sorted() []Finding {
	out := a.findings
	if out == nil {
		out = []Finding{}
	}
	sort.SliceStable(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Severity != y.Severity {
			return x.Severity == SeverityWarning
		}
		if x.Rule != y.Rule {
			return x.Rule < y.Rule
		}
		return x.Table < y.Table
	})
	return out
}

// planScan is one table access of a plan.
type planScan struct {
	table     string
	full      bool     // SCAN without an index
	automatic []string // columns of an AUTOMATIC index SQLite builds each run
}

func readPlan(plan []PlanStep) (scans []planScan, tempSort bool) {
	for _, p := range plan {
		d := p.Detail
		switch {
		case strings.HasPrefix(d, "SCAN "), strings.HasPrefix(d, "SEARCH "):
			verb, rest, _ := strings.Cut(d, " ")
			name, rest, _ := strings.Cut(rest, " ")
			sc := planScan{table: name}
			if verb == "SCAN" && !strings.Contains(rest, "USING") {
				sc.full = true
			}
			if strings.Contains(rest, "AUTOMATIC") {
				if i, j := strings.IndexByte(rest, '('), strings.LastIndexByte(rest, ')'); i >= 0 && j > i {
					for _, term := range strings.Split(rest[i+1:j], " AND ") {
						col := strings.TrimRight(term, "=<>?")
						sc.automatic = append(sc.automatic, col)
					}
				}
			}
			scans = append(scans, sc)
		case strings.HasPrefix(d, "USE TEMP B-TREE FOR") && strings.Contains(d, "ORDER BY"):
			tempSort = true
		}
	}
	return scans, tempSort
}

// statement applies the rules about one statement. explain means it has
// not run: the rules that need runs judge what the plan alone shows.
func (a *advisor) statement(sh ShapeStats, plan []PlanStep, explain bool) {
	in := analyze(sh.sample)
	scans, tempSort := readPlan(plan)
	for i := range scans {
		scans[i].table = in.table(scans[i].table)
	}
	var main *tableInfo
	for _, sc := range scans {
		if t := a.table(sc.table); t != nil {
			main = t
			break
		}
	}
	indexed := map[string]bool{} // tables an index suggestion covers already
	for _, sc := range scans {
		t := a.table(sc.table)
		if t == nil || !(sc.full || len(sc.automatic) > 0) || t.rows <= bigTable || !explain && sh.Executions <= scansBeforeIndex {
			continue
		}
		cols := sc.automatic
		var order []orderTerm
		if len(cols) == 0 {
			eq, rng := in.filterColumns(t.byLower)
			cols = eq
			if ord := a.orderOn(in, t); len(ord) > 0 {
				order = ord
			} else if len(rng) > 0 {
				cols = append(cols, rng[0])
			}
		}
		if len(cols) == 0 && len(order) == 0 {
			continue // nothing to index on: the whole table is wanted
		}
		ev := map[string]int64{"table_rows": t.rows}
		if !explain {
			ev["executions"] = sh.Executions
			ev["rows_returned"] = sh.Rows
		}
		a.add(Finding{Rule: RuleMissingIndex, Severity: SeverityWarning, Table: t.name, Statement: sh.Shape, Evidence: ev,
			Suggestion: indexSQL(t, cols, order, in.selected) + " -- so the statement searches the index instead of reading every row"})
		indexed[strings.ToLower(t.name)] = len(order) > 0
	}
	if tempSort && main != nil && main.rows > bigTable && !indexed[strings.ToLower(main.name)] {
		if ord := a.orderOn(in, main); len(ord) > 0 {
			eq, _ := in.filterColumns(main.byLower)
			ev := map[string]int64{"table_rows": main.rows}
			if !explain {
				ev["executions"] = sh.Executions
			}
			a.add(Finding{Rule: RuleTempSort, Severity: SeverityWarning, Table: main.name, Statement: sh.Shape, Evidence: ev,
				Suggestion: indexSQL(main, eq, ord, nil) + " -- rows then come out of the index in order, with no sort per run"})
		}
	}
	if in.verb == "SELECT" && in.star && main != nil {
		var large []string
		for _, c := range main.cols {
			if main.avgCols[c] > largeValue {
				large = append(large, c)
			}
		}
		if len(main.cols) > wideTable || len(large) > 0 {
			ev := map[string]int64{"columns": int64(len(main.cols)), "avg_row_bytes": main.avgRow}
			if !explain {
				ev["executions"] = sh.Executions
			}
			a.add(Finding{Rule: RuleSelectStar, Severity: SeverityWarning, Table: main.name, Statement: sh.Shape, Evidence: ev,
				Suggestion: starSuggestion(in, main, large)})
		}
	}
	if !explain && sh.MaxPerEvent > perEventRuns {
		a.nPlusOne(sh, in, main)
	}
	if in.verb == "SELECT" && !in.limit && main != nil {
		switch {
		case !explain && sh.MaxRows > unboundedRows:
			a.add(Finding{Rule: RuleUnbounded, Severity: SeverityWarning, Table: main.name, Statement: sh.Shape,
				Evidence:   map[string]int64{"max_rows_returned": sh.MaxRows, "executions": sh.Executions, "table_rows": main.rows},
				Suggestion: paginate(in, main)})
		case explain && len(scans) > 0 && scans[0].full && main.rows > unboundedRows && !in.grouped && in.where < 0:
			a.add(Finding{Rule: RuleUnbounded, Severity: SeverityInfo, Table: main.name, Statement: sh.Shape,
				Evidence:   map[string]int64{"table_rows": main.rows},
				Suggestion: paginate(in, main)})
		}
	}
}

// orderOn is the statement's ORDER BY if all its columns are t's.
func (a *advisor) orderOn(in stmtInfo, t *tableInfo) []orderTerm {
	var out []orderTerm
	for _, o := range in.order {
		col, ok := t.byLower[strings.ToLower(o.col)]
		if !ok {
			return nil
		}
		out = append(out, orderTerm{col: col, desc: o.desc})
	}
	return out
}

// indexSQL is the guide's composite index: equality columns, then the
// order (or range) columns, then, when the statement names few enough,
// the selected columns so the index covers it.
func indexSQL(t *tableInfo, cols []string, order []orderTerm, selected []string) string {
	var parts, names []string
	have := map[string]bool{}
	addCol := func(c string, desc bool) {
		if have[strings.ToLower(c)] {
			return
		}
		have[strings.ToLower(c)] = true
		names = append(names, c)
		p := sqlName(c)
		if desc {
			p += " DESC"
		}
		parts = append(parts, p)
	}
	for _, c := range cols {
		addCol(c, false)
	}
	for _, o := range order {
		addCol(o.col, o.desc)
	}
	var extra []string
	for _, c := range selected {
		if col, ok := t.byLower[strings.ToLower(c)]; ok && !have[strings.ToLower(col)] && !strings.EqualFold(col, t.rowidCol) {
			extra = append(extra, col)
		}
	}
	if len(extra) > 0 && len(parts)+len(extra) <= 4 {
		for _, c := range extra {
			addCol(c, false)
		}
	}
	name := "idx_" + t.name + "_" + strings.Join(names, "_")
	return "CREATE INDEX " + sqlName(name) + " ON " + sqlName(t.name) + " (" + strings.Join(parts, ", ") + ")"
}

func starSuggestion(in stmtInfo, t *tableInfo, large []string) string {
	var cols []string
	isLarge := map[string]bool{}
	for _, c := range large {
		isLarge[c] = true
	}
	for _, c := range t.cols {
		if !isLarge[c] {
			cols = append(cols, sqlName(c))
		}
	}
	if len(cols) == 0 {
		cols = []string{sqlName(t.cols[0])}
	}
	var toks []token
	replaced := false
	for i, tk := range in.toks {
		if !replaced && tk.text == "*" && i > 0 && (in.toks[i-1].upper() == "SELECT" || in.toks[i-1].upper() == "DISTINCT") {
			toks = append(toks, token{tokPunct, strings.Join(cols, ", ")})
			replaced = true
			continue
		}
		toks = append(toks, tk)
	}
	msg := "name the columns the caller reads: " + render(toks)
	if len(large) > 0 {
		msg += " -- leaving out the large column(s) " + strings.Join(large, ", ") + " unless they are needed"
	} else {
		msg += " -- keeping only those used"
	}
	return msg
}

func (a *advisor) nPlusOne(sh ShapeStats, in stmtInfo, t *tableInfo) {
	table := in.target()
	if t != nil {
		table = t.name
	}
	ev := map[string]int64{"max_per_event": sh.MaxPerEvent, "executions": sh.Executions}
	f := Finding{Rule: RuleNPlusOne, Severity: SeverityWarning, Table: table, Statement: sh.Shape, Evidence: ev}
	switch in.verb {
	case "INSERT", "REPLACE":
		f.Severity = SeverityInfo
		f.Suggestion = "insert the rows with one statement: INSERT ... VALUES (...), (...), ... (or INSERT ... SELECT); separate inserts in one event are already one transaction"
	case "SELECT":
		f.Suggestion = "fetch the rows in one query: " + inList(in) + " (or JOIN with the query that produced the keys)"
	default:
		f.Severity = SeverityInfo
		f.Suggestion = "change the rows with one statement: " + inList(in)
	}
	a.add(f)
}

// inList rewrites the first "col = ?" of a WHERE as "col IN (?, ?, ?)".
func inList(in stmtInfo) string {
	if in.where >= 0 {
		toks := in.toks
		for i := in.where + 1; i+2 < len(toks); i++ {
			if toks[i].ident() != "" && (toks[i+1].text == "=" || toks[i+1].text == "==") && toks[i+2].kind == tokValue {
				out := append([]token{}, toks[:i+1]...)
				out = append(out, token{tokWord, "IN"}, token{tokPunct, "("}, token{tokValue, "?"}, token{tokPunct, ","},
					token{tokValue, "?"}, token{tokPunct, ","}, token{tokValue, "?"}, token{tokPunct, ")"})
				out = append(out, toks[i+3:]...)
				return render(out)
			}
		}
	}
	return "... WHERE key IN (?, ?, ?)"
}

// paginate is the guide's cursor pagination of the statement: a key
// condition from the last page's final row, the order on that key, and a
// LIMIT.
func paginate(in stmtInfo, t *tableInfo) string {
	key := orderTerm{col: t.rowidCol}
	if key.col == "" {
		key.col = "rowid"
	}
	order := in.order
	if len(order) > 0 {
		key = order[0]
	}
	tail := " -- bind the " + key.col + " of the previous page's last row (leave the condition out for the first page) and stop when a page comes back short"
	if in.grouped || in.where >= 0 && in.orderAt >= 0 && in.orderAt < in.where {
		return "page through the rows with a cursor and a LIMIT: ... WHERE " + sqlName(key.col) + " > ? ORDER BY " + sqlName(key.col) + " LIMIT 100" + tail
	}
	toks := in.toks
	end := len(toks)
	if in.orderAt >= 0 {
		end = in.orderAt
	}
	cmp := ">"
	if key.desc {
		cmp = "<"
	}
	cond := []token{{tokWord, sqlName(key.col)}, {tokPunct, cmp}, {tokValue, "?"}}
	var out []token
	if in.where >= 0 {
		out = append(out, toks[:in.where+1]...)
		out = append(out, token{tokPunct, "("})
		out = append(out, toks[in.where+1:end]...)
		out = append(out, token{tokPunct, ")"}, token{tokWord, "AND"})
		out = append(out, cond...)
	} else {
		out = append(out, toks[:end]...)
		out = append(out, token{tokWord, "WHERE"})
		out = append(out, cond...)
	}
	if in.orderAt >= 0 {
		out = append(out, toks[in.orderAt:]...)
	} else {
		out = append(out, token{tokWord, "ORDER"}, token{tokWord, "BY"}, token{tokWord, sqlName(key.col)})
	}
	out = append(out, token{tokWord, "LIMIT"}, token{tokValue, "100"})
	return "page through the rows with a cursor: " + render(out) + tail
}

// schema applies the rules about tables rather than statements.
func (a *advisor) schema() {
	for _, name := range a.order {
		t := a.tables[name]
		for _, fk := range t.fks {
			if t.indexedBy(fk) {
				continue
			}
			a.size(t)
			a.add(Finding{Rule: RuleFKWithoutIndex, Severity: SeverityWarning, Table: t.name,
				Evidence:   map[string]int64{"table_rows": t.rows, "columns": int64(len(fk))},
				Suggestion: indexSQL(t, fk, nil, nil) + " -- deleting or updating a parent row, and joining on the key, then search the index instead of scanning " + t.name})
		}
		a.size(t)
		if t.avgRow > largeRow {
			big, bigAvg := "", int64(0)
			for _, c := range t.cols {
				if t.avgCols[c] > bigAvg {
					big, bigAvg = c, t.avgCols[c]
				}
			}
			key := t.rowidCol
			if key == "" {
				key = "rowid"
			}
			a.add(Finding{Rule: RuleLargeRows, Severity: SeverityWarning, Table: t.name,
				Evidence: map[string]int64{"avg_row_bytes": t.avgRow, "table_rows": t.rows, "largest_column_avg_bytes": bigAvg},
				Suggestion: "compress " + big + " before storing it (the guide's compression pattern, as examples/compressed.go does), or move it to a table of its own read only when needed: CREATE TABLE " +
					sqlName(t.name+"_"+big) + " (" + sqlName(key) + " INTEGER PRIMARY KEY, " + sqlName(big) + " BLOB)"})
		}
	}
}

// indexedBy reports whether some index (or the rowid) starts with cols,
// in any order.
func (t *tableInfo) indexedBy(cols []string) bool {
	if len(cols) == 1 && strings.EqualFold(cols[0], t.rowidCol) {
		return true
	}
	want := map[string]bool{}
	for _, c := range cols {
		want[strings.ToLower(c)] = true
	}
	for _, idx := range t.indexes {
		if len(idx) < len(cols) {
			continue
		}
		ok := true
		for _, c := range idx[:len(cols)] {
			if !want[strings.ToLower(c)] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
