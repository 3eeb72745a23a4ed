package node

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dura-dev/dura/rpc"
)

// TestAdviceCountsFindings checks that advice reaches the object's store
// and that each finding counts in dura_advice_findings_total.
func TestAdviceCountsFindings(t *testing.T) {
	reg := prometheus.NewRegistry()
	rt := newTestRuntime(t, t.TempDir(), func(c *Config) { c.Registerer = reg }, nil)
	ctx := context.Background()
	_, err := rt.SQL(ctx, "db", "x", []rpc.Statement{
		{SQL: "CREATE TABLE p (id INTEGER PRIMARY KEY)"},
		{SQL: "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id))"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		adv, err := rt.Advice(ctx, "db", "x")
		if err != nil {
			t.Fatal(err)
		}
		if len(adv.Findings) != 1 || adv.Findings[0].Rule != "fk-without-index" || adv.Findings[0].Table != "c" {
			t.Fatalf("findings %+v", adv.Findings)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "dura_advice_findings_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["class"] == "db" && labels["rule"] == "fk-without-index" {
				n = m.GetCounter().GetValue()
			}
		}
	}
	if n != 2 {
		t.Errorf("dura_advice_findings_total{class=db,rule=fk-without-index} = %v, want 2", n)
	}
	res, err := rt.Explain(ctx, "db", "x", rpc.Statement{SQL: "SELECT id FROM c WHERE p_id = ?", Params: []any{int64(1)}})
	if err != nil || len(res.Plan) != 1 || res.Plan[0].Detail != "SCAN c" {
		t.Fatalf("explain %+v %v", res, err)
	}
}
