package rpc

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/dura-dev/dura/internal/apierr"
)

// call runs the object's handler with URL.Path = "/" + path. The body is
// read first, so the object's event never waits on a slow client.
func (s *Server) call(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, MaxCallBody)
	if err != nil {
		return err
	}
	req := r.Clone(r.Context())
	req.URL.Path = "/" + r.PathValue("path")
	req.URL.RawPath = ""
	req.Body = io.NopCloser(bytesReader(body))
	req.ContentLength = int64(len(body))
	return s.cfg.Backend.Call(r.Context(), r.PathValue("class"), r.PathValue("name"), w, req)
}

// readStatements reads a /sql-shaped body: {"statements":[...]} or one
// {"sql","params"}.
func readStatements(r *http.Request) ([]Statement, error) {
	body, err := readBody(r, MaxAPIBody)
	if err != nil {
		return nil, err
	}
	return ParseSQLRequest(body)
}

func (s *Server) sql(w http.ResponseWriter, r *http.Request) error {
	stmts, err := readStatements(r)
	if err != nil {
		return err
	}
	res, err := s.cfg.Backend.SQL(r.Context(), r.PathValue("class"), r.PathValue("name"), stmts)
	if err != nil {
		return err
	}
	for i := range res {
		res[i].Rows = encodeRows(res[i].Rows)
	}
	return writeJSON(w, http.StatusOK, SQLResponse{Results: res})
}

// explain takes {"sql", "params"}, the body of /sql for one statement.
func (s *Server) explain(w http.ResponseWriter, r *http.Request) error {
	stmts, err := readStatements(r)
	if err != nil {
		return err
	}
	if len(stmts) != 1 {
		return fmt.Errorf("%w: explain takes one statement", apierr.ErrBadRequest)
	}
	res, err := s.cfg.Backend.Explain(r.Context(), r.PathValue("class"), r.PathValue("name"), stmts[0])
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) bookmark(w http.ResponseWriter, r *http.Request) error {
	var at int64
	if v := r.URL.Query().Get("at"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: at must be a positive integer of unix milliseconds", apierr.ErrBadRequest)
		}
		at = n
	}
	res, err := s.cfg.Backend.Bookmark(r.Context(), r.PathValue("class"), r.PathValue("name"), at)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, MaxAPIBody)
	if err != nil {
		return err
	}
	var raw struct {
		Bookmark *string     `json:"bookmark"`
		At       json.Number `json:"at"`
	}
	if err := decodeJSON(body, &raw); err != nil {
		return err
	}
	var req RestoreRequest
	if raw.Bookmark != nil {
		req.Bookmark = *raw.Bookmark
	}
	if raw.At != "" {
		at, err := raw.At.Int64()
		if err != nil || at <= 0 {
			return fmt.Errorf("%w: \"at\" must be a positive integer of unix milliseconds", apierr.ErrBadRequest)
		}
		req.At = &at
	}
	if (raw.Bookmark == nil) == (req.At == nil) || raw.Bookmark != nil && req.Bookmark == "" {
		return fmt.Errorf("%w: body must be {\"bookmark\": \"...\"} or {\"at\": unix_ms}", apierr.ErrBadRequest)
	}
	res, err := s.cfg.Backend.Restore(r.Context(), r.PathValue("class"), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// ParseSQLRequest decodes a /sql body into statements with SQL-typed
// parameters.
func ParseSQLRequest(body []byte) ([]Statement, error) {
	var req struct {
		Statements []struct {
			SQL    *string `json:"sql"`
			Params []any   `json:"params"`
		} `json:"statements"`
		SQL    *string `json:"sql"`
		Params []any   `json:"params"`
	}
	if !utf8.Valid(body) {
		// The decoder would turn the bad bytes into U+FFFD: a statement or
		// parameter other than the one sent. BLOBs travel as $base64.
		return nil, fmt.Errorf("%w: the body is not valid UTF-8", apierr.ErrBadRequest)
	}
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	if req.SQL != nil {
		if len(req.Statements) > 0 {
			return nil, fmt.Errorf("%w: give either \"sql\" or \"statements\", not both", apierr.ErrBadRequest)
		}
		req.Statements = append(req.Statements, struct {
			SQL    *string `json:"sql"`
			Params []any   `json:"params"`
		}{req.SQL, req.Params})
	}
	if len(req.Statements) == 0 {
		return nil, fmt.Errorf("%w: no statements", apierr.ErrBadRequest)
	}
	out := make([]Statement, len(req.Statements))
	for i, st := range req.Statements {
		if st.SQL == nil || *st.SQL == "" {
			return nil, fmt.Errorf("%w: statement %d has no sql", apierr.ErrBadRequest, i)
		}
		params := make([]any, len(st.Params))
		for j, p := range st.Params {
			v, err := DecodeParam(p)
			if err != nil {
				return nil, fmt.Errorf("statement %d parameter %d: %w", i, j+1, err)
			}
			params[j] = v
		}
		out[i] = Statement{SQL: *st.SQL, Params: params}
	}
	return out, nil
}

func (s *Server) getAlarm(w http.ResponseWriter, r *http.Request) error {
	at, err := s.cfg.Backend.GetAlarm(r.Context(), r.PathValue("class"), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AlarmResponse{Alarm: at})
}

func (s *Server) putAlarm(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, MaxAPIBody)
	if err != nil {
		return err
	}
	var req struct {
		At *json.Number `json:"at"`
	}
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if req.At == nil {
		return fmt.Errorf("%w: body must be {\"at\": unix_ms}", apierr.ErrBadRequest)
	}
	at, err := req.At.Int64()
	if err != nil || at < 0 || at > MaxAlarmMillis {
		return fmt.Errorf("%w: \"at\" must be an integer of unix milliseconds from 0 to %d (year 9999)", apierr.ErrBadRequest, int64(MaxAlarmMillis))
	}
	if err := s.cfg.Backend.SetAlarm(r.Context(), r.PathValue("class"), r.PathValue("name"), at); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, AlarmResponse{Alarm: &at})
}

func (s *Server) kvList(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	o := KVList{Prefix: q.Get("prefix"), Start: q.Get("start"), StartAfter: q.Get("startAfter"), End: q.Get("end")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: limit must be a non-negative integer", apierr.ErrBadRequest)
		}
		o.Limit = n
	}
	if v := q.Get("reverse"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: reverse must be true or false", apierr.ErrBadRequest)
		}
		o.Reverse = b
	}
	es, err := s.cfg.Backend.KVList(r.Context(), r.PathValue("class"), r.PathValue("name"), o)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, KVListResponse{Entries: es})
}

func (s *Server) kvGet(w http.ResponseWriter, r *http.Request) error {
	v, err := s.cfg.Backend.KVGet(r.Context(), r.PathValue("class"), r.PathValue("name"), r.PathValue("key"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, KVEntry{Key: r.PathValue("key"), Value: v})
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, MaxAPIBody)
	if err != nil {
		return err
	}
	if !utf8.Valid(body) {
		return fmt.Errorf("%w: the value is not valid UTF-8 JSON", apierr.ErrBadRequest)
	}
	if err := s.cfg.Backend.KVPut(r.Context(), r.PathValue("class"), r.PathValue("name"), r.PathValue("key"), body); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, KVEntry{Key: r.PathValue("key"), Value: body})
}

func (s *Server) kvDelete(w http.ResponseWriter, r *http.Request) error {
	existed, err := s.cfg.Backend.KVDelete(r.Context(), r.PathValue("class"), r.PathValue("name"), r.PathValue("key"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]bool{"deleted": existed})
}

func (s *Server) export(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Disposition", "attachment; filename=\""+r.PathValue("class")+".db\"")
	// The status goes out with the first byte, so an export that fails
	// before streaming still gets a JSON error.
	return s.cfg.Backend.Export(r.Context(), r.PathValue("class"), r.PathValue("name"), w)
}

func (s *Server) listObjects(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	list, err := s.cfg.Backend.ListObjects(r.Context(), q.Get("class"), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

// pageLimit reads a listing's limit: 1..1000, 100 when absent.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > 1000 {
		return 0, fmt.Errorf("%w: limit must be 1..1000", apierr.ErrBadRequest)
	}
	return n, nil
}
