package node

import (
	"context"

	"github.com/dura-dev/dura/objectstore"
	"github.com/dura-dev/dura/rpc"
)

// Advice reviews the statements the object ran since its activation, and
// its schema, as one event (activating the object if needed). Each
// finding counts in dura_advice_findings_total.
func (rt *Runtime) Advice(ctx context.Context, class, name string) (rpc.AdviceResponse, error) {
	var fs []objectstore.Finding
	err := rt.withStore(ctx, class, name, func(inst *instance) error {
		var err error
		fs, err = inst.store.Advice()
		return err
	})
	if err != nil {
		return rpc.AdviceResponse{}, err
	}
	for _, f := range fs {
		rt.metrics.adviceFindings.WithLabelValues(class, f.Rule).Inc()
	}
	return rpc.AdviceResponse{Findings: findingsJSON(fs)}, nil
}

// Explain plans one statement of the object without running it.
func (rt *Runtime) Explain(ctx context.Context, class, name string, stmt rpc.Statement) (rpc.ExplainResponse, error) {
	var out rpc.ExplainResponse
	err := rt.withStore(ctx, class, name, func(inst *instance) error {
		plan, fs, err := inst.store.Explain(stmt.SQL, stmt.Params...)
		if err != nil {
			return err
		}
		out.Plan = make([]rpc.PlanStep, len(plan))
		for i, p := range plan {
			out.Plan[i] = rpc.PlanStep{ID: p.ID, Parent: p.Parent, Detail: p.Detail}
		}
		out.Findings = findingsJSON(fs)
		return nil
	})
	return out, err
}

func findingsJSON(fs []objectstore.Finding) []rpc.Finding {
	out := make([]rpc.Finding, len(fs))
	for i, f := range fs {
		out[i] = rpc.Finding{Rule: f.Rule, Severity: f.Severity, Table: f.Table, Statement: f.Statement,
			Evidence: f.Evidence, Suggestion: f.Suggestion}
	}
	return out
}
