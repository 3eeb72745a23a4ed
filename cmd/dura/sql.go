package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/rpc"
)

func init() {
	commands["sql"] = command{summary: "run SQL on an object, one statement or an interactive prompt", run: runSQL}
}

const sqlSynopsis = `sql [flags] CLASS/NAME [SQL|-]

Runs SQL in the object's database and prints the result as a table (or,
with --json, the API's JSON answer). The SQL may hold several statements
separated by ';' (one transaction; the last one's rows are shown and the
--param values bind to it). "-" reads the SQL from stdin. Without SQL, an
interactive prompt reads statements ending in ';' and dot commands
(.tables, .schema [TABLE], .help, .quit). When stdin is not a terminal
(a script piped in), it prints no prompts and stops at the first error,
exiting 1.

--param takes one JSON literal per parameter: 42, 1.5, '"text"', null,
true, '{"$base64":"AAE="}' (a BLOB); a value that is not JSON is a string.`

// maxSQLBytes bounds the SQL read from stdin (the server's statement
// limit is 100 KB; larger input gets its TOO_LARGE answer).
const maxSQLBytes = 1 << 20

func runSQL(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "sql", sqlSynopsis)
	co := addClientFlags(fs)
	var params stringList
	fs.Var(&params, "param", "a parameter, as a JSON literal (repeatable)")
	asJSON := fs.Bool("json", false, "print the raw JSON answer instead of a table")
	pos, err := parseArgs(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageErr("want CLASS/NAME [SQL|-], got %d arguments", len(pos))
	}
	class, name, err := splitObject(pos[0])
	if err != nil {
		return err
	}
	s := &sqlSession{env: env, co: co, c: co.client(), class: class, name: name, json: *asJSON}
	if len(pos) == 1 {
		if len(params) > 0 {
			return usageErr("--param needs SQL on the command line")
		}
		return s.interactive(ctx)
	}
	ps := make([]any, len(params))
	for i, p := range params {
		ps[i] = parseParam(p)
	}
	query := pos[1]
	if query == "-" {
		b, err := readInput(env, "-", maxSQLBytes)
		if err != nil {
			return fmt.Errorf("reading SQL from stdin: %w", err)
		}
		query = string(b)
	}
	if strings.TrimSpace(query) == "" {
		return usageErr("empty SQL")
	}
	return s.exec(ctx, query, ps)
}

// parseParam reads one --param: a JSON literal, or else the text itself.
func parseParam(p string) any {
	dec := json.NewDecoder(strings.NewReader(p))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return p
	}
	if _, err := dec.Token(); err != io.EOF {
		return p // trailing data: not one JSON value
	}
	return v
}

// sqlSession runs statements against one object.
type sqlSession struct {
	env         *cliEnv
	co          *clientOpts
	c           *rpc.Client
	class, name string
	json        bool
}

// query runs one statement entry and returns the raw answer and the
// results with SQL-typed values (int64, float64, string, []byte, nil).
func (s *sqlSession) query(ctx context.Context, query string, params []any) ([]byte, []rpc.SQLResult, error) {
	body, err := json.Marshal(rpc.SQLRequest{Statements: []rpc.Statement{{SQL: query, Params: params}}})
	if err != nil {
		return nil, nil, err
	}
	resp, err := s.c.Do(ctx, http.MethodPost, "/v1/objects"+rpc.ObjectPath(s.class, s.name)+"/sql",
		bytes.NewReader(body), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		// There is one statement entry: its index says nothing.
		var ae *rpc.APIError
		if errors.As(err, &ae) && ae.Statement != nil && *ae.Statement == 0 {
			ae.Message = strings.TrimPrefix(ae.Message, "statement 0: ")
		}
		return nil, nil, s.co.clientErr(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, s.co.clientErr(err)
	}
	var out rpc.SQLResponse
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, nil, fmt.Errorf("decoding the answer: %w", err)
	}
	for _, r := range out.Results {
		for _, row := range r.Rows {
			for j, v := range row {
				d, err := rpc.DecodeParam(v)
				if err != nil {
					return nil, nil, fmt.Errorf("decoding the answer: %w", err)
				}
				row[j] = d
			}
		}
	}
	return raw, out.Results, nil
}

// exec runs a statement entry and prints its answer.
func (s *sqlSession) exec(ctx context.Context, query string, params []any) error {
	raw, res, err := s.query(ctx, query, params)
	if err != nil {
		return err
	}
	if s.json {
		_, err := s.env.stdout.Write(raw)
		return err
	}
	var buf bytes.Buffer
	for _, r := range res {
		writeResult(&buf, r)
	}
	_, err = s.env.stdout.Write(buf.Bytes())
	return err
}

// writeResult prints a result as an aligned table and a summary line.
func writeResult(w io.Writer, r rpc.SQLResult) {
	if len(r.Columns) > 0 {
		cells := make([][]string, len(r.Rows))
		right := make([][]bool, len(r.Rows))
		for i, row := range r.Rows {
			cells[i] = make([]string, len(row))
			right[i] = make([]bool, len(row))
			for j, v := range row {
				cells[i][j] = formatValue(v)
				switch v.(type) {
				case int64, float64:
					right[i][j] = true
				}
			}
		}
		writeTable(w, r.Columns, cells, right)
	}
	noun := "rows"
	if len(r.Rows) == 1 {
		noun = "row"
	}
	fmt.Fprintf(w, "(%d %s, read %d, written %d", len(r.Rows), noun, r.RowsRead, r.RowsWritten)
	if len(r.Columns) == 0 && r.Changes > 0 {
		fmt.Fprintf(w, ", changes %d, last insert id %d", r.Changes, r.LastInsertID)
	}
	fmt.Fprintln(w, ")")
}

// writeTable prints a psql-style table:
//
//	 id | name
//	----+-------
//	  1 | alice
func writeTable(w io.Writer, cols []string, rows [][]string, right [][]bool) {
	width := make([]int, len(cols))
	for j, c := range cols {
		width[j] = utf8.RuneCountInString(c)
	}
	for _, row := range rows {
		for j, c := range row {
			if j < len(width) {
				width[j] = max(width[j], utf8.RuneCountInString(c))
			}
		}
	}
	line := func(cells []string, rightAlign []bool) {
		var b strings.Builder
		for j := range cols {
			if j > 0 {
				b.WriteString(" |")
			}
			c := ""
			if j < len(cells) {
				c = cells[j]
			}
			pad := strings.Repeat(" ", width[j]-utf8.RuneCountInString(c))
			b.WriteByte(' ')
			if j < len(rightAlign) && rightAlign[j] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(cols, nil)
	seps := make([]string, len(cols))
	for j := range cols {
		seps[j] = strings.Repeat("-", width[j]+2)
	}
	fmt.Fprintln(w, strings.Join(seps, "+"))
	for i, row := range rows {
		line(row, right[i])
	}
}

// Display limits of table cells; --json shows everything.
const (
	maxCellRunes = 200
	maxBlobShown = 32
)

// formatValue shows a SQL value in a table cell: NULL, numbers as SQLite
// prints them, text with control characters escaped (and cut at
// maxCellRunes), BLOBs as x'hex' (cut at maxBlobShown bytes).
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEnN") {
			s += ".0"
		}
		return s
	case []byte:
		if len(x) > maxBlobShown {
			return fmt.Sprintf("x'%s'... (%d bytes)", hex.EncodeToString(x[:maxBlobShown]), len(x))
		}
		return "x'" + hex.EncodeToString(x) + "'"
	case string:
		s := strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(x)
		if utf8.RuneCountInString(s) > maxCellRunes {
			s = string([]rune(s)[:maxCellRunes]) + "…"
		}
		return s
	}
	return fmt.Sprint(v)
}

const sqlHelp = `Enter SQL statements ending with ';' (they may span lines), or:
  .tables          list the tables
  .schema [TABLE]  show the CREATE statements (of one table)
  .help            this text
  .quit, .exit     leave (so does end of input)
`

// interactive reads statements from stdin until EOF or .quit.
func (s *sqlSession) interactive(ctx context.Context) error {
	lines, done := readLines(s.env.stdin)
	defer close(done)
	// A person at a terminal gets prompts and carries on after an error;
	// a script piped in gets neither, and its first error ends the run.
	tty := s.env.stdinTTY
	prompt := "dura " + s.class + "/" + s.name + "> "
	cont := strings.Repeat(" ", max(0, utf8.RuneCountInString(prompt)-5)) + "...> "
	if tty {
		fmt.Fprintf(s.env.stdout, "Connected to %s. Enter .help for help, .quit to leave.\n", s.c.Base())
	}
	var stmt strings.Builder
	// failed reports err; it returns the error that ends the session, or
	// nil to go on.
	failed := func(err error) error {
		if !tty {
			return err
		}
		fmt.Fprintf(s.env.stderr, "Error: %v\n", err)
		return nil
	}
	for {
		if tty {
			if stmt.Len() == 0 {
				fmt.Fprint(s.env.stdout, prompt)
			} else {
				fmt.Fprint(s.env.stdout, cont)
			}
		}
		var in lineOrErr
		select {
		case <-ctx.Done():
			// Interrupted at the prompt: leave quietly.
			if tty {
				fmt.Fprintln(s.env.stdout)
			}
			return nil
		case in = <-lines:
		}
		if in.eof {
			if tty {
				fmt.Fprintln(s.env.stdout)
			}
			if in.err != nil {
				return fmt.Errorf("reading input: %w", in.err)
			}
			if strings.TrimSpace(stmt.String()) != "" {
				// Input ended mid-statement: run what there is.
				if err := s.exec(ctx, stmt.String(), nil); err != nil {
					return failed(err)
				}
			}
			return nil
		}
		line := in.line
		trimmed := strings.TrimSpace(line)
		if stmt.Len() == 0 {
			if trimmed == "" {
				continue
			}
			if strings.HasPrefix(trimmed, ".") {
				quit, err := s.dot(ctx, trimmed)
				if err != nil {
					if err := failed(err); err != nil {
						return err
					}
				}
				if quit {
					return nil
				}
				continue
			}
		}
		stmt.WriteString(line)
		stmt.WriteByte('\n')
		if !objectstore.Complete(stmt.String()) {
			continue
		}
		q := stmt.String()
		stmt.Reset()
		if err := s.exec(ctx, q, nil); err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			if err := failed(err); err != nil {
				return err
			}
		}
	}
}

type lineOrErr struct {
	line string
	eof  bool
	err  error
}

// readLines scans r on a goroutine, so the prompt can give up on an
// interrupt while a read blocks. Lines may be 1 MB long (statements are
// up to 100 KB). Closing done stops the goroutine at its next send.
func readLines(r io.Reader) (<-chan lineOrErr, chan<- struct{}) {
	out := make(chan lineOrErr)
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			select {
			case out <- lineOrErr{line: sc.Text()}:
			case <-done:
				return
			}
		}
		select {
		case out <- lineOrErr{eof: true, err: sc.Err()}:
		case <-done:
		}
	}()
	return out, done
}

// dot runs a dot command; quit reports .quit/.exit.
func (s *sqlSession) dot(ctx context.Context, line string) (quit bool, err error) {
	f := strings.Fields(line)
	switch f[0] {
	case ".quit", ".exit", ".q":
		return true, nil
	case ".help":
		fmt.Fprint(s.env.stdout, sqlHelp)
		return false, nil
	case ".tables":
		if len(f) > 1 {
			return false, fmt.Errorf(".tables takes no argument")
		}
		_, res, err := s.query(ctx, `SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_dura\_%' ESCAPE '\' ORDER BY name`, nil)
		if err != nil {
			return false, err
		}
		for _, r := range res {
			for _, row := range r.Rows {
				fmt.Fprintln(s.env.stdout, formatValue(row[0]))
			}
		}
		return false, nil
	case ".schema":
		if len(f) > 2 {
			return false, fmt.Errorf(".schema takes at most one table name")
		}
		q := `SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_dura\_%' ESCAPE '\'`
		var params []any
		if len(f) == 2 {
			q += ` AND tbl_name = ? COLLATE NOCASE`
			params = []any{f[1]}
		}
		q += ` ORDER BY tbl_name, type DESC, name`
		_, res, err := s.query(ctx, q, params)
		if err != nil {
			return false, err
		}
		for _, r := range res {
			for _, row := range r.Rows {
				if sql, ok := row[0].(string); ok {
					fmt.Fprintln(s.env.stdout, sql+";")
				}
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("unknown command %s; enter .help for the list", f[0])
}
