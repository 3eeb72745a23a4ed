package objectstore

import (
	"fmt"
	"strings"
)

// splitStatements cuts a query into its ';'-separated statements, ignoring
// semicolons inside string literals, quoted identifiers, comments and the
// body of CREATE TRIGGER (which ends only at "END;"), the same rules as
// sqlite3_complete. Empty statements are dropped.
func splitStatements(q string) ([]string, error) {
	stmts, _, err := scanStatements(q)
	return stmts, err
}

// Complete reports whether text ends with a ';' that closes a statement
// under the rules of splitStatements (and of sqlite3_complete): what an
// interactive prompt needs to know before it sends the text.
func Complete(text string) bool {
	stmts, rest, err := scanStatements(text)
	return err == nil && len(stmts) > 0 && !rest
}

// scanStatements splits q and reports whether anything but blanks and
// comments follows the last closing ';' (an open statement, an
// unterminated block comment).
func scanStatements(q string) (out []string, open bool, err error) {
	start := 0
	var words []string // leading keywords of the current statement, upper-cased
	lastWord := ""     // last bare word seen in the current statement
	inTrigger := false
	content := false // the current statement has more than blanks and comments
	flush := func(end int) {
		if s := strings.Trim(q[start:end], sqlBlanks); s != "" && content {
			out = append(out, s)
		}
		start = end + 1
		words, lastWord, inTrigger, content = words[:0], "", false, false
	}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for {
				if j >= len(q) {
					return nil, true, fmt.Errorf("%w: unterminated quoted text", ErrSQL)
				}
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			i = j + 1
			lastWord, content = "", true
		case c == '[':
			j := strings.IndexByte(q[i:], ']')
			if j < 0 {
				return nil, true, fmt.Errorf("%w: unterminated [identifier]", ErrSQL)
			}
			i += j + 1
			lastWord, content = "", true
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				i = len(q)
			} else {
				i += j + 1
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				i = len(q)
				open = true
			} else {
				i += j + 4
			}
		case c == ';':
			if inTrigger && lastWord != "END" {
				i++
				lastWord = ""
				continue
			}
			flush(i)
			i++
		case isWordByte(c):
			j := i
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			w := strings.ToUpper(q[i:j])
			lastWord, content = w, true
			if len(words) < 4 {
				words = append(words, w)
				if isCreateTrigger(words) {
					inTrigger = true
				}
			}
			i = j
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' {
				lastWord, content = "", true
			}
			i++
		}
	}
	open = open || content
	flush(len(q))
	return out, open, nil
}

// sqlBlanks are the bytes SQLite's tokenizer skips as white space. Others
// that Go calls space (\v, U+00A0, ...) are tokens to SQLite, so trimming
// them would change the statement.
const sqlBlanks = " \t\n\f\r"

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isCreateTrigger(w []string) bool {
	if len(w) < 2 || w[0] != "CREATE" {
		return false
	}
	if w[1] == "TRIGGER" {
		return true
	}
	return len(w) >= 3 && (w[1] == "TEMP" || w[1] == "TEMPORARY") && w[2] == "TRIGGER"
}

// txKind says how a statement takes part in transaction control.
type txKind int

const (
	txNone     txKind = iota // an ordinary statement
	txBegin                  // BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION]
	txCommit                 // COMMIT or END [TRANSACTION]
	txRollback               // ROLLBACK [TRANSACTION] (not ROLLBACK TO)
)

// classifyTx recognises the explicit transaction statements that the store
// turns into savepoints. SAVEPOINT, RELEASE and ROLLBACK TO pass through to
// SQLite unchanged: they already nest inside the event transaction.
func classifyTx(stmt string) txKind {
	// Fast path: most statements start with another keyword; only look
	// further (and allocate) for the four that matter.
	first := stmt
	if i := strings.IndexAny(stmt, " \t\r\n;"); i >= 0 {
		first = stmt[:i]
	}
	switch strings.ToUpper(first) {
	case "BEGIN", "COMMIT", "END", "ROLLBACK":
	default:
		return txNone
	}
	f := strings.Fields(strings.ToUpper(strings.TrimRight(stmt, "; \t\r\n")))
	if len(f) == 0 {
		return txNone
	}
	rest := f[1:]
	only := func(allowed ...string) bool {
		for _, w := range rest {
			ok := false
			for _, a := range allowed {
				if w == a {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	}
	switch f[0] {
	case "BEGIN":
		if len(rest) <= 2 && only("DEFERRED", "IMMEDIATE", "EXCLUSIVE", "TRANSACTION") {
			return txBegin
		}
	case "COMMIT", "END":
		if len(rest) <= 1 && only("TRANSACTION") {
			return txCommit
		}
	case "ROLLBACK":
		if len(rest) <= 1 && only("TRANSACTION") {
			return txRollback
		}
	}
	return txNone
}
