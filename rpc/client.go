package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
)

// Client talks to a node's HTTP API. It is safe for concurrent use.
type Client struct {
	base  string
	http  *http.Client
	token string
}

// NewClient returns a client for the node at base (for example
// "http://127.0.0.1:8080"). A nil hc uses a client with keep-alive
// connections sized for benchmarks.
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{
			Timeout: 60 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns:        1024,
				MaxIdleConnsPerHost: 1024,
				IdleConnTimeout:     90 * time.Second,
			},
		}
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: strings.TrimRight(base, "/"), http: hc}
}

// WithToken returns a copy that sends "Authorization: Bearer token".
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// Base is the node's base URL.
func (c *Client) Base() string { return c.base }

// APIError is an error answer of the API. errors.Is matches it against
// the sentinel of its code (apierr), so callers can test the kind.
type APIError struct {
	Status    int
	Code      string
	Message   string
	Statement *int
	Node      string
	// DidNotRun is the answer's "not_executed": the node refused the
	// request before it ran.
	DidNotRun bool
}

// NotExecuted reports whether the node said the request did not run
// (apierr.IsNotExecuted sees it).
func (e *APIError) NotExecuted() bool { return e.DidNotRun }

func (e *APIError) Error() string {
	if e.Statement != nil {
		return fmt.Sprintf("%s (%d) at statement %d: %s", e.Code, e.Status, *e.Statement, e.Message)
	}
	return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
}

// Unwrap is the sentinel error of the code.
func (e *APIError) Unwrap() error { return apierr.FromCode(e.Code) }

// ObjectPath is the escaped /{class}/{name} part of an object's routes.
func ObjectPath(class, name string) string {
	return "/" + EscapeSegment(class) + "/" + EscapeSegment(name)
}

// Do sends a request to path (already escaped) and returns the raw
// response; error answers are returned as *APIError with the body closed.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body ErrorBody
	if err := json.Unmarshal(b, &body); err != nil || body.Error.Code == "" {
		return &APIError{Status: resp.StatusCode, Code: codeForStatus(resp.StatusCode), Message: strings.TrimSpace(string(b)), Node: resp.Header.Get(HeaderNode)}
	}
	return &APIError{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message, Statement: body.Error.Statement,
		Node: resp.Header.Get(HeaderNode), DidNotRun: body.Error.NotExecuted}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusServiceUnavailable:
		return "OWNER_UNAVAILABLE"
	case http.StatusRequestEntityTooLarge:
		return "TOO_LARGE"
	}
	return "INTERNAL"
}

// doJSON sends in (if not nil) as JSON and decodes the answer into out.
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	h := http.Header{}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		h.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(ctx, method, path, body, h)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	return dec.Decode(out)
}

// Call sends a request to an object's handler; path is the handler path
// (for example "/increment?by=2").
func (c *Client) Call(ctx context.Context, method, class, name, path string, body io.Reader) (*http.Response, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return c.Do(ctx, method, "/objects"+ObjectPath(class, name)+path, body, nil)
}

// SQL runs statements in one transaction. Values come back as int64,
// float64, string, []byte or nil.
func (c *Client) SQL(ctx context.Context, class, name string, stmts ...Statement) ([]SQLResult, error) {
	in := SQLRequest{Statements: make([]Statement, len(stmts))}
	for i, s := range stmts {
		ps := make([]any, len(s.Params))
		for j, p := range s.Params {
			ps[j] = EncodeValue(p)
		}
		in.Statements[i] = Statement{SQL: s.SQL, Params: ps}
	}
	var out SQLResponse
	if err := c.doJSON(ctx, http.MethodPost, "/v1/objects"+ObjectPath(class, name)+"/sql", in, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if err := decodeRows(out.Results[i].Rows); err != nil {
			return nil, err
		}
	}
	return out.Results, nil
}

// KVGet reads one KV entry's JSON value.
func (c *Client) KVGet(ctx context.Context, class, name, key string) (RawJSON, error) {
	var e KVEntry
	err := c.doJSON(ctx, http.MethodGet, "/v1/objects"+ObjectPath(class, name)+"/kv/"+EscapeSegment(key), nil, &e)
	return e.Value, err
}

// KVPut writes one KV entry; value must be JSON.
func (c *Client) KVPut(ctx context.Context, class, name, key string, value RawJSON) error {
	resp, err := c.Do(ctx, http.MethodPut, "/v1/objects"+ObjectPath(class, name)+"/kv/"+EscapeSegment(key), bytes.NewReader(value), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// KVDelete removes a KV entry and reports whether it existed.
func (c *Client) KVDelete(ctx context.Context, class, name, key string) (bool, error) {
	var out struct {
		Deleted bool `json:"deleted"`
	}
	err := c.doJSON(ctx, http.MethodDelete, "/v1/objects"+ObjectPath(class, name)+"/kv/"+EscapeSegment(key), nil, &out)
	return out.Deleted, err
}

// KVList lists KV entries.
func (c *Client) KVList(ctx context.Context, class, name string, o KVList) ([]KVEntry, error) {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": o.Prefix, "start": o.Start, "startAfter": o.StartAfter, "end": o.End} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Reverse {
		q.Set("reverse", "true")
	}
	var out KVListResponse
	err := c.doJSON(ctx, http.MethodGet, "/v1/objects"+ObjectPath(class, name)+"/kv?"+q.Encode(), nil, &out)
	return out.Entries, err
}

// GetAlarm returns the alarm in unix ms, nil if none.
func (c *Client) GetAlarm(ctx context.Context, class, name string) (*int64, error) {
	var out AlarmResponse
	err := c.doJSON(ctx, http.MethodGet, "/v1/objects"+ObjectPath(class, name)+"/alarm", nil, &out)
	return out.Alarm, err
}

// SetAlarm schedules the alarm at unix ms.
func (c *Client) SetAlarm(ctx context.Context, class, name string, atMillis int64) error {
	return c.doJSON(ctx, http.MethodPut, "/v1/objects"+ObjectPath(class, name)+"/alarm", AlarmRequest{At: &atMillis}, nil)
}

// DeleteAlarm cancels the alarm.
func (c *Client) DeleteAlarm(ctx context.Context, class, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/objects"+ObjectPath(class, name)+"/alarm", nil, nil)
}

// Info describes an object.
func (c *Client) Info(ctx context.Context, class, name string) (ObjectInfo, error) {
	var out ObjectInfo
	err := c.doJSON(ctx, http.MethodGet, "/v1/objects"+ObjectPath(class, name), nil, &out)
	return out, err
}

// Advice is the advisor's review of the object (GET .../advice).
func (c *Client) Advice(ctx context.Context, class, name string) (AdviceResponse, error) {
	var out AdviceResponse
	err := c.doJSON(ctx, http.MethodGet, "/v1/objects"+ObjectPath(class, name)+"/advice", nil, &out)
	return out, err
}

// Explain plans one statement without running it (POST .../explain).
func (c *Client) Explain(ctx context.Context, class, name string, stmt Statement) (ExplainResponse, error) {
	var out ExplainResponse
	params := make([]any, len(stmt.Params))
	for i, p := range stmt.Params {
		params[i] = EncodeValue(p)
	}
	err := c.doJSON(ctx, http.MethodPost, "/v1/objects"+ObjectPath(class, name)+"/explain", map[string]any{"sql": stmt.SQL, "params": params}, &out)
	return out, err
}

// Bookmark names the object's latest commit, or with at (not zero) its
// last commit at or before that time (GET .../bookmark).
func (c *Client) Bookmark(ctx context.Context, class, name string, at time.Time) (BookmarkResponse, error) {
	var out BookmarkResponse
	path := "/v1/objects" + ObjectPath(class, name) + "/bookmark"
	if !at.IsZero() {
		path += "?at=" + strconv.FormatInt(at.UnixMilli(), 10)
	}
	err := c.doJSON(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Restore brings the object back to a bookmark or a time (POST .../restore).
func (c *Client) Restore(ctx context.Context, class, name string, req RestoreRequest) (RestoreResponse, error) {
	var out RestoreResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/objects"+ObjectPath(class, name)+"/restore", req, &out)
	return out, err
}

// DeleteObject wipes an object's SQL, KV and alarm.
func (c *Client) DeleteObject(ctx context.Context, class, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/objects"+ObjectPath(class, name), nil, nil)
}

// Export streams the object's database file to w.
func (c *Client) Export(ctx context.Context, class, name string, w io.Writer) (int64, error) {
	resp, err := c.Do(ctx, http.MethodGet, "/v1/objects"+ObjectPath(class, name)+"/export", nil, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// Import replaces the object's database with the SQLite file read from r.
func (c *Client) Import(ctx context.Context, class, name string, r io.Reader) error {
	resp, err := c.Do(ctx, http.MethodPut, "/v1/objects"+ObjectPath(class, name)+"/import", r,
		http.Header{"Content-Type": {"application/vnd.sqlite3"}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ListObjects lists objects, optionally of one class, a page at a time.
func (c *Client) ListObjects(ctx context.Context, class, cursor string, limit int) (ObjectList, error) {
	q := url.Values{}
	if class != "" {
		q.Set("class", class)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out ObjectList
	err := c.doJSON(ctx, http.MethodGet, "/v1/objects?"+q.Encode(), nil, &out)
	return out, err
}

// Cluster describes the cluster as this node sees it.
func (c *Client) Cluster(ctx context.Context) (ClusterInfo, error) {
	var out ClusterInfo
	err := c.doJSON(ctx, http.MethodGet, "/v1/cluster", nil, &out)
	return out, err
}

// Health checks /healthz.
func (c *Client) Health(ctx context.Context) error {
	return c.doJSON(ctx, http.MethodGet, "/healthz", nil, nil)
}

// Ready checks /readyz.
func (c *Client) Ready(ctx context.Context) error {
	return c.doJSON(ctx, http.MethodGet, "/readyz", nil, nil)
}

// Metrics returns the Prometheus text of /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.Do(ctx, http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// ListAlarms lists scheduled alarms due before beforeMillis (all if 0).
func (c *Client) ListAlarms(ctx context.Context, beforeMillis int64, cursor string, limit int) (AlarmList, error) {
	q := url.Values{}
	if beforeMillis > 0 {
		q.Set("before", strconv.FormatInt(beforeMillis, 10))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out AlarmList
	err := c.doJSON(ctx, http.MethodGet, "/v1/alarms?"+q.Encode(), nil, &out)
	return out, err
}
