package examples_test

import (
	"encoding/json"
	"net/http"

	"github.com/dura-dev/dura/rpc"
)

// noAdviceWarnings fails the test if the advisor, after the test drove the
// object's routes, has a warning for it: the examples are the guide's way.
func (n *testNode) noAdviceWarnings(class, name string) {
	n.t.Helper()
	r := n.do("GET", "/v1/objects/"+class+"/"+name+"/advice", nil)
	if r.status != http.StatusOK {
		n.t.Fatalf("advice %s/%s: status %d: %s", class, name, r.status, r.body)
	}
	var adv rpc.AdviceResponse
	if err := json.Unmarshal(r.body, &adv); err != nil {
		n.t.Fatalf("advice %s/%s: %v", class, name, err)
	}
	for _, f := range adv.Findings {
		if f.Severity == "warning" {
			n.t.Errorf("advice for %s/%s: %s on %s: %s %v -> %s", class, name, f.Rule, f.Table, f.Statement, f.Evidence, f.Suggestion)
		} else {
			n.t.Logf("advice for %s/%s (info): %s on %s: %s %v", class, name, f.Rule, f.Table, f.Statement, f.Evidence)
		}
	}
}
