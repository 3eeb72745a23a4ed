// Command ownbinary is a complete Dura node with a class of its own,
// "tally", next to the built-in example classes. It takes the flags and
// DURA_* variables of "dura serve":
//
//	go build -o tally ./examples/ownbinary
//	./tally --name n1 --data ./n1 --http 127.0.0.1:8081 --gossip 127.0.0.1:7001 --raft 127.0.0.1:7101 --bootstrap-expect 3
//	curl -X POST 'http://127.0.0.1:8081/objects/tally/lunch/vote?option=pizza'
package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/dura-dev/dura/examples"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/server"
)

func main() {
	server.Main(registerTally, examples.RegisterAll)
}

func registerTally(rt *node.Runtime) error {
	return rt.Register("tally", NewTally)
}

// Tally counts votes per option, one row each:
// POST /vote?option=X answers {"option":X,"votes":N}.
type Tally struct{ st *node.State }

// NewTally creates the table before the first event.
func NewTally(st *node.State) (node.Object, error) {
	err := st.BlockConcurrencyWhile(func() error {
		_, err := st.Storage().Exec(`CREATE TABLE IF NOT EXISTS votes (option TEXT PRIMARY KEY, n INTEGER NOT NULL)`)
		return err
	})
	return &Tally{st: st}, err
}

// Fetch runs as one event in one transaction: an error rolls it back.
func (t *Tally) Fetch(w http.ResponseWriter, r *http.Request) error {
	option := r.URL.Query().Get("option")
	if r.Method != http.MethodPost || r.URL.Path != "/vote" || option == "" {
		return fmt.Errorf("%w: POST /vote?option=X", node.ErrBadRequest)
	}
	cur, err := t.st.Storage().Exec(`INSERT INTO votes VALUES (?, 1)
		ON CONFLICT(option) DO UPDATE SET n = n + 1 RETURNING n`, option)
	if err != nil {
		return err
	}
	var n int64
	if err := cur.ScanOne(&n); err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(map[string]any{"option": option, "votes": n})
}
