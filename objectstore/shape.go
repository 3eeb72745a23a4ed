package objectstore

import (
	"strings"
)

// A statement's shape is its text with every literal and parameter made
// '?', comments dropped and blanks collapsed: the statements an object
// runs with different values share one shape, and the advisor keeps its
// statistics per shape.

type tokKind uint8

const (
	tokWord   tokKind = iota // keyword or bare identifier
	tokQuoted                // "identifier", `identifier` or [identifier]
	tokValue                 // string, number or blob literal, or a parameter
	tokPunct                 // operator or punctuation
)

type token struct {
	kind tokKind
	text string // as written; for tokQuoted without the quotes
}

// upper is the token's text upper-cased if it is a bare word.
func (t token) upper() string {
	if t.kind != tokWord {
		return ""
	}
	return strings.ToUpper(t.text)
}

// ident is the token as a name (bare or quoted), "" otherwise.
func (t token) ident() string {
	if t.kind == tokWord || t.kind == tokQuoted {
		return t.text
	}
	return ""
}

// lex cuts a statement into tokens. It never fails: text it does not
// understand becomes punctuation, which only makes the shape less general.
func lex(q string) []token {
	out := make([]token, 0, 16)
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			i += j
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				i = len(q)
			} else {
				i += j + 4
			}
		case c == '\'':
			i = skipQuoted(q, i, '\'')
			out = append(out, token{tokValue, "?"})
		case (c == 'x' || c == 'X') && i+1 < len(q) && q[i+1] == '\'':
			i = skipQuoted(q, i+1, '\'')
			out = append(out, token{tokValue, "?"})
		case c == '"' || c == '`':
			j := skipQuoted(q, i, c)
			end := j - 1
			if end <= i {
				end = len(q)
			}
			out = append(out, token{tokQuoted, strings.ReplaceAll(q[i+1:end], string([]byte{c, c}), string(c))})
			i = j
		case c == '[':
			j := strings.IndexByte(q[i:], ']')
			if j < 0 {
				j = len(q) - i - 1
			}
			out = append(out, token{tokQuoted, q[i+1 : i+j]})
			i += j + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			j := i + 1
			for j < len(q) && (isWordByte(q[j]) || q[j] == '.' ||
				(q[j] == '+' || q[j] == '-') && (q[j-1] == 'e' || q[j-1] == 'E')) {
				j++
			}
			out = append(out, token{tokValue, "?"})
			i = j
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			out = append(out, token{tokValue, "?"})
			i = j
		case (c == ':' || c == '@' || c == '$') && i+1 < len(q) && isWordByte(q[i+1]):
			j := i + 1
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			out = append(out, token{tokValue, "?"})
			i = j
		case isWordByte(c):
			j := i + 1
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			out = append(out, token{tokWord, q[i:j]})
			i = j
		default:
			n := 1
			if i+1 < len(q) {
				switch q[i : i+2] {
				case "<=", ">=", "<>", "!=", "==", "||", "<<", ">>", "->":
					n = 2
				}
			}
			out = append(out, token{tokPunct, q[i : i+n]})
			i += n
		}
	}
	return out
}

// skipQuoted returns the index after the quoted text opening at q[i].
func skipQuoted(q string, i int, quote byte) int {
	for j := i + 1; j < len(q); j++ {
		if q[j] == quote {
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

// maxShapeBytes bounds a shape's text; a longer statement's shape is cut.
const maxShapeBytes = 2048

// normalize returns the shape of one statement. A list of values after
// IN is one "(?)": lists of any length share a shape.
func normalize(q string) string {
	return render(collapseIn(lex(q)))
}

func collapseIn(toks []token) []token {
	out := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		out = append(out, toks[i])
		if toks[i].upper() != "IN" || i+2 >= len(toks) || toks[i+1].text != "(" || toks[i+2].kind != tokValue {
			continue
		}
		j := i + 2
		for j+2 < len(toks) && toks[j+1].text == "," && toks[j+2].kind == tokValue {
			j += 2
		}
		if j+1 < len(toks) && toks[j+1].text == ")" {
			out = append(out, toks[i+1], toks[i+2], toks[j+1])
			i = j + 1
		}
	}
	return out
}

// render writes tokens back as SQL with single blanks, none inside
// parentheses or before commas, quoting names that need it.
func render(toks []token) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 {
			prev := toks[i-1].text
			if prev != "(" && prev != "." && t.text != ")" && t.text != "," && t.text != "." && !(t.text == "(" && toks[i-1].kind == tokWord && !isKeyword(toks[i-1].upper())) {
				b.WriteByte(' ')
			}
		}
		if t.kind == tokQuoted {
			b.WriteString(quoteIdent(t.text))
		} else {
			b.WriteString(t.text)
		}
		if b.Len() > maxShapeBytes {
			return b.String()[:maxShapeBytes] + " …"
		}
	}
	return b.String()
}

// isKeyword reports the keywords after which "(" keeps its blank, so
// "IN (?)" and "VALUES (?)" read as SQL does while "count(*)" stays whole.
func isKeyword(w string) bool {
	switch w {
	case "IN", "VALUES", "AS", "ON", "AND", "OR", "NOT", "EXISTS", "WHERE", "FROM", "JOIN", "SELECT", "SET", "USING", "INTO", "TABLE", "KEY", "REFERENCES", "WHEN", "THEN", "ELSE", "BY":
		return true
	}
	return false
}
