package examples

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/dura-dev/dura/node"
)

// ShardCount is how many counter objects one sharded counter spreads over.
const ShardCount = 8

// Sharded spreads one hot counter over ShardCount counter objects, the way
// a single object's write rate is raised past what one object serves: each
// increment goes to a random shard through a stub, and a read sums them.
// The shards are ordinary "counter" objects named "{name}~{k}", so in a
// cluster they live on different nodes and the stub calls cross nodes.
// It keeps no storage of its own.
//
//	POST /increment?by=N -> {"name":name,"shard":k,"value":shard's new value}
//	GET  /               -> {"name":name,"total":sum,"shards":[8 values]}
type Sharded struct {
	st *node.State
}

// NewSharded is the constructor of class "sharded".
func NewSharded(st *node.State) (node.Object, error) { return &Sharded{st: st}, nil }

// ShardName is the counter object holding shard k of the sharded counter name.
func ShardName(name string, k int) string { return name + "~" + strconv.Itoa(k) }

func (s *Sharded) Fetch(w http.ResponseWriter, r *http.Request) error {
	switch {
	case r.URL.Path == "/increment" && r.Method == http.MethodPost:
		by := int64(1)
		if v := r.URL.Query().Get("by"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: by must be an integer, got %q", node.ErrBadRequest, v)
			}
			by = n
		}
		k := rand.IntN(ShardCount)
		v, err := s.call(r, k, http.MethodPost, "/increment?by="+strconv.FormatInt(by, 10))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]any{"name": s.st.Name(), "shard": k, "value": v})
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		shards := make([]int64, ShardCount)
		var total int64
		for k := range shards {
			v, err := s.call(r, k, http.MethodGet, "/")
			if err != nil {
				return err
			}
			shards[k] = v
			total += v
		}
		return writeJSON(w, http.StatusOK, map[string]any{"name": s.st.Name(), "total": total, "shards": shards})
	}
	return noRoute(r)
}

// call sends one request to shard k and returns the counter's value.
func (s *Sharded) call(r *http.Request, k int, method, path string) (int64, error) {
	req, err := http.NewRequestWithContext(r.Context(), method, "http://shard"+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.st.Namespace("counter").Get(ShardName(s.st.Name(), k)).Fetch(req)
	if err != nil {
		return 0, fmt.Errorf("shard %d: %w", k, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%w: shard %d answered %d: %s", node.ErrInternal, k, resp.StatusCode, b)
	}
	var out counterValue
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("%w: shard %d: %v", node.ErrInternal, k, err)
	}
	return out.Value, nil
}
