package objectstore

import (
	"strings"
)

// stmtInfo is what the advisor reads from a statement's tokens: enough to
// name the columns an index should have, not a parser. A statement it
// cannot read gives fewer suggestions, never wrong SQL run anywhere.
type stmtInfo struct {
	toks     []token
	verb     string // first keyword, upper-cased (WITH stays WITH)
	star     bool   // the select list has * or t.*
	limit    bool   // LIMIT at the outer level
	grouped  bool   // GROUP BY, HAVING or a compound (UNION...) at the outer level
	where    int    // index of the outer WHERE, -1 if none
	orderAt  int    // index of the outer ORDER, -1 if none
	limitAt  int    // index of the outer LIMIT, -1 if none
	selected []string
	order    []orderTerm       // outer ORDER BY, nil if not plain columns
	aliases  map[string]string // lower-cased alias -> table (FROM t a, JOIN t AS a)
}

// table is the table a query plan's name stands for: plans name an
// aliased table by its alias.
func (in stmtInfo) table(name string) string {
	if t, ok := in.aliases[strings.ToLower(name)]; ok {
		return t
	}
	return name
}

// notAlias holds the words that can follow a table name in FROM or JOIN
// without being its alias.
var notAlias = map[string]bool{
	"ON": true, "USING": true, "WHERE": true, "JOIN": true, "LEFT": true, "RIGHT": true, "FULL": true,
	"INNER": true, "CROSS": true, "NATURAL": true, "OUTER": true, "GROUP": true, "ORDER": true,
	"LIMIT": true, "HAVING": true, "WINDOW": true, "UNION": true, "EXCEPT": true, "INTERSECT": true,
	"INDEXED": true, "NOT": true, "SET": true, "VALUES": true, "RETURNING": true, "AS": true,
}

// tableAliases finds "FROM t a", "FROM t AS a, u b" and "JOIN t a" at any
// depth.
func tableAliases(toks []token) map[string]string {
	var out map[string]string
	for i, t := range toks {
		word := t.upper()
		if word != "FROM" && word != "JOIN" {
			continue
		}
		for j := i + 1; j < len(toks); {
			name := toks[j].ident()
			if name == "" || notAlias[toks[j].upper()] {
				break // a subquery, or nothing this reads
			}
			j++
			if j < len(toks) && toks[j].upper() == "AS" {
				j++
			}
			if j < len(toks) && toks[j].ident() != "" && !notAlias[toks[j].upper()] {
				if out == nil {
					out = map[string]string{}
				}
				out[strings.ToLower(toks[j].ident())] = name
				j++
			}
			if word != "FROM" || j >= len(toks) || toks[j].text != "," {
				break
			}
			j++
		}
	}
	return out
}

type orderTerm struct {
	col  string
	desc bool
}

func analyze(stmt string) stmtInfo {
	toks := lex(stmt)
	in := stmtInfo{toks: toks, where: -1, orderAt: -1, limitAt: -1}
	if len(toks) > 0 {
		in.verb = toks[0].upper()
	}
	depth := 0
	selectAt, fromAt := -1, -1
	for i, t := range toks {
		switch t.text {
		case "(":
			depth++
			continue
		case ")":
			depth--
			continue
		case "*":
			if i > 0 {
				switch p := toks[i-1]; {
				case p.text == "," || p.text == ".", p.upper() == "SELECT", p.upper() == "DISTINCT", p.upper() == "ALL":
					in.star = true
				}
			}
		}
		if depth != 0 {
			continue
		}
		switch t.upper() {
		case "SELECT":
			if selectAt < 0 {
				selectAt = i
			}
		case "FROM":
			if fromAt < 0 {
				fromAt = i
			}
		case "WHERE":
			if in.where < 0 {
				in.where = i
			}
		case "ORDER":
			in.orderAt = i
		case "LIMIT":
			in.limit, in.limitAt = true, i
		case "GROUP", "HAVING", "UNION", "EXCEPT", "INTERSECT", "WINDOW":
			in.grouped = true
		}
	}
	in.aliases = tableAliases(toks)
	if selectAt >= 0 && fromAt > selectAt {
		in.selected = plainColumns(toks[selectAt+1 : fromAt])
	}
	if in.orderAt >= 0 && in.orderAt+1 < len(toks) && toks[in.orderAt+1].upper() == "BY" {
		end := len(toks)
		if in.limitAt > in.orderAt {
			end = in.limitAt
		}
		in.order = orderTerms(toks[in.orderAt+2 : end])
	}
	return in
}

// plainColumns returns the names of a list of bare (or qualified) columns,
// nil if any item is something else.
func plainColumns(toks []token) []string {
	var out []string
	for _, item := range splitCommas(toks) {
		name := itemName(item)
		if name == "" {
			return nil
		}
		out = append(out, name)
	}
	return out
}

// itemName is the column of "col" or "t.col", "" for anything else.
func itemName(item []token) string {
	switch {
	case len(item) == 1 && item[0].ident() != "":
		return item[0].ident()
	case len(item) == 3 && item[0].ident() != "" && item[1].text == "." && item[2].ident() != "":
		return item[2].ident()
	}
	return ""
}

func orderTerms(toks []token) []orderTerm {
	var out []orderTerm
	for _, item := range splitCommas(toks) {
		var term orderTerm
		if n := len(item); n > 0 {
			switch item[n-1].upper() {
			case "DESC":
				term.desc = true
				item = item[:n-1]
			case "ASC":
				item = item[:n-1]
			}
		}
		if term.col = itemName(item); term.col == "" {
			return nil
		}
		out = append(out, term)
	}
	return out
}

func splitCommas(toks []token) [][]token {
	var out [][]token
	depth, start := 0, 0
	for i, t := range toks {
		switch t.text {
		case "(":
			depth++
		case ")":
			depth--
		case ",":
			if depth == 0 {
				out = append(out, toks[start:i])
				start = i + 1
			}
		}
	}
	return append(out, toks[start:])
}

// filterColumns lists the columns of cols compared in WHERE clauses
// (every one, subqueries included): those compared for equality first,
// then the others, each once, in the order written.
func (in stmtInfo) filterColumns(cols map[string]string) (eq, rng []string) {
	seen := map[string]bool{}
	inWhere := false
	for i, t := range in.toks {
		switch t.upper() {
		case "WHERE", "ON":
			inWhere = true
			continue
		case "GROUP", "ORDER", "LIMIT", "HAVING", "WINDOW", "RETURNING", "SELECT", "FROM", "JOIN", "SET", "VALUES":
			inWhere = false
		}
		if !inWhere {
			continue
		}
		col, ok := cols[strings.ToLower(t.ident())]
		if !ok || seen[col] {
			continue
		}
		if i+1 < len(in.toks) && in.toks[i+1].text == "." {
			continue // a table or alias name, not a column
		}
		var next, prev string
		if i+1 < len(in.toks) {
			next = strings.ToUpper(in.toks[i+1].text)
		}
		if i > 0 {
			prev = in.toks[i-1].text
			if prev == "." && i > 1 {
				prev = in.toks[i-2].text // t.col: what is before t
				if i > 2 {
					prev = in.toks[i-3].text
				}
			}
		}
		switch {
		case next == "=" || next == "==" || next == "IS" || next == "IN" || prev == "=" || prev == "==":
			eq = append(eq, col)
		case next == "<" || next == ">" || next == "<=" || next == ">=" || next == "BETWEEN" || next == "LIKE" || next == "GLOB" ||
			prev == "<" || prev == ">" || prev == "<=" || prev == ">=":
			rng = append(rng, col)
		default:
			continue
		}
		seen[col] = true
	}
	return eq, rng
}

// sqlName writes a name bare when it can be, quoted otherwise.
func sqlName(name string) string {
	if name == "" || name[0] >= '0' && name[0] <= '9' || isKeyword(strings.ToUpper(name)) {
		return quoteIdent(name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return quoteIdent(name)
		}
	}
	return name
}

// target is the table an INSERT, REPLACE, UPDATE or DELETE writes, "" if
// it cannot tell.
func (in stmtInfo) target() string {
	after := map[string]string{"INSERT": "INTO", "REPLACE": "INTO", "DELETE": "FROM", "UPDATE": ""}
	kw, ok := after[in.verb]
	if !ok {
		return ""
	}
	for i := 1; i < len(in.toks); i++ {
		t := in.toks[i]
		if kw != "" && t.upper() != kw {
			continue
		}
		if kw != "" {
			i++
		}
		for ; i < len(in.toks); i++ {
			if u := in.toks[i].upper(); u == "OR" || u == "ROLLBACK" || u == "ABORT" || u == "REPLACE" || u == "FAIL" || u == "IGNORE" {
				continue
			}
			name := in.toks[i].ident()
			if i+2 < len(in.toks) && in.toks[i+1].text == "." {
				name = in.toks[i+2].ident()
			}
			return name
		}
	}
	return ""
}
