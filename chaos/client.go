package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/dura-dev/dura/rpc"
)

// answerError is an error answer as the workloads read it: the API error
// plus the server's word that the operation never ran, which rpc.Client
// does not keep.
type answerError struct {
	*rpc.APIError
	NotExecuted bool
}

func (e *answerError) Unwrap() error { return e.APIError }

// served is who answered a request: the node that executed it
// (X-Dura-Node) and that node's ring epoch (X-Dura-Epoch; 0 if absent).
type served struct {
	Node  string
	Epoch uint64
}

// do sends a request to node i with the admin token, as the workloads'
// client, and decodes a 2xx answer into out (if set). It returns who
// served it.
func (c *Cluster) do(ctx context.Context, i int, method, path string, body []byte, out any) (served, error) {
	nd := c.Nodes[i]
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, nd.client.Base()+path, rd)
	if err != nil {
		return served{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.opt.Token)
	resp, err := nd.hc.Do(req)
	if err != nil {
		return served{}, err
	}
	defer resp.Body.Close()
	node := served{Node: resp.Header.Get(rpc.HeaderNode)}
	node.Epoch, _ = strconv.ParseUint(resp.Header.Get(rpc.HeaderEpoch), 10, 64)
	if resp.StatusCode >= 400 {
		return node, decodeAnswerError(resp)
	}
	if out != nil {
		return node, json.NewDecoder(resp.Body).Decode(out)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return node, err
}

func decodeAnswerError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var body struct {
		Error struct {
			rpc.ErrorDetail
			NotExecuted bool `json:"not_executed"`
		} `json:"error"`
	}
	ae := &rpc.APIError{Status: resp.StatusCode, Node: resp.Header.Get(rpc.HeaderNode)}
	if json.Unmarshal(b, &body) != nil || body.Error.Code == "" {
		ae.Message = strings.TrimSpace(string(b))
		return &answerError{APIError: ae}
	}
	ae.Code, ae.Message, ae.Statement = body.Error.Code, body.Error.Message, body.Error.Statement
	return &answerError{APIError: ae, NotExecuted: body.Error.NotExecuted}
}

// rolledBack are the codes of an event that failed and was rolled back
// before its answer: its writes did not happen.
var rolledBack = map[string]bool{
	"BAD_REQUEST": true, "SQL_ERROR": true, "CONSTRAINT": true, "NOT_FOUND": true,
	"UNKNOWN_CLASS": true, "NOT_AUTHORIZED": true, "TOO_LARGE": true, "STORAGE_FULL": true,
	"UNAUTHENTICATED": true, "FORBIDDEN": true,
}

// dataMissing says whether an answer is the refusal of a partition whose
// owner's data directory is not the one the cluster recorded (a wiped
// disk). Every path raising it (node.Cluster Route and fence) does so
// before anything runs and marks it not_executed; this reads the
// message too, so that such an answer is never taken for data even
// where the mark gets lost (an answer relayed by an older node).
func dataMissing(ae *rpc.APIError) bool {
	return ae.Code == "OWNER_UNAVAILABLE" && strings.Contains(ae.Message, "missing on node")
}

// classify says what an error means for the operation. It failed (did
// not happen) when the server says it did not run (not_executed), when
// its event was rolled back (a code in rolledBack), when the owner's data
// is missing (dataMissing), or when the request
// never left (no connection to the entry node). Anything that may have
// run is Unknown: a timeout after sending, a broken connection, a 5xx or
// 503 without not_executed.
func classify(err error) (Outcome, string) {
	if err == nil {
		return OK, ""
	}
	var ae *rpc.APIError
	if errors.As(err, &ae) {
		var an *answerError
		if errors.As(err, &an) && an.NotExecuted || rolledBack[ae.Code] || dataMissing(ae) {
			return Fail, err.Error()
		}
		return Unknown, err.Error()
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return Fail, err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return Fail, err.Error()
	}
	return Unknown, err.Error()
}
