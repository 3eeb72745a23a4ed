package rpc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/dura-dev/dura/internal/apierr"
)

// BLOBs travel as {"$base64": "..."} both ways.
const blobKey = "$base64"

// DecodeParam turns one JSON-decoded parameter (decoded with UseNumber)
// into a SQL value: integer literals become int64, other numbers float64,
// booleans 0/1, {"$base64": "..."} a BLOB.
func DecodeParam(v any) (any, error) {
	switch x := v.(type) {
	case nil, string:
		return x, nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return n, nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: number %s out of range", apierr.ErrBadRequest, s)
		}
		return f, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
		return x, nil
	case map[string]any:
		if s, ok := x[blobKey].(string); ok && len(x) == 1 {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("%w: invalid %s value: %v", apierr.ErrBadRequest, blobKey, err)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: a parameter must be null, a number, a string, a boolean or {%q: ...}, not %T", apierr.ErrBadRequest, blobKey, v)
}

// EncodeValue turns a SQL value into its JSON form.
func EncodeValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return map[string]string{blobKey: base64.StdEncoding.EncodeToString(x)}
	case float64:
		switch {
		case math.IsInf(x, 1):
			return "Infinity"
		case math.IsInf(x, -1):
			return "-Infinity"
		case math.IsNaN(x):
			return nil
		}
	}
	return v
}

// decodeJSON reads exactly one JSON value from b into v, with numbers kept
// as json.Number.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s", apierr.ErrBadRequest, jsonProblem(err))
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON body", apierr.ErrBadRequest)
	}
	return nil
}

// jsonProblem says what is wrong with a JSON body in the API's words,
// without the decoder's Go type names.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("the body is not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te):
		want := map[string]string{"string": "a string", "int": "an integer", "int64": "an integer", "float64": "a number",
			"bool": "true or false", "slice": "an array", "struct": "an object", "map": "an object"}[te.Type.Kind().String()]
		if want == "" {
			want = "another type"
		}
		if te.Field != "" {
			return fmt.Sprintf("%q must be %s, not a JSON %s", te.Field, want, te.Value)
		}
		return fmt.Sprintf("the body must be %s, not a JSON %s", want, te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short; it must be JSON"
	}
	return "the body is not valid JSON"
}

// encodeRows maps every value of a result for JSON.
func encodeRows(rows [][]any) [][]any {
	out := make([][]any, len(rows))
	for i, r := range rows {
		o := make([]any, len(r))
		for j, v := range r {
			o[j] = EncodeValue(v)
		}
		out[i] = o
	}
	return out
}

// decodeRows maps JSON-decoded rows back to SQL values (client side).
func decodeRows(rows [][]any) error {
	for _, r := range rows {
		for j, v := range r {
			d, err := DecodeParam(v)
			if err != nil {
				return err
			}
			r[j] = d
		}
	}
	return nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
