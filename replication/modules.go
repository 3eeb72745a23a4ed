package replication

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dura-dev/dura/internal/apierr"
)

// Module commands change the deployed modules of JavaScript classes,
// kept beside ClusterState (see clusterFSM) so every node, present and
// future, runs the same version of each.
const (
	CmdPutModule    = "put_module"
	CmdDeleteModule = "delete_module"
)

// Module is one deployed module: its source and the classes it defines.
type Module struct {
	Name string `json:"name"`
	// Version is assigned by the state machine: one more than the
	// module's previous version (put_module's own is ignored).
	Version    int      `json:"version"`
	Source     string   `json:"source"`
	JS         bool     `json:"js,omitempty"`
	Classes    []string `json:"classes"`
	DeployedAt int64    `json:"deployed_at"` // unix ms, set by the node that took the deploy
}

// moduleTable is the replicated set of modules. All methods are safe to
// call concurrently.
type moduleTable struct {
	mu sync.RWMutex
	m  map[string]Module
}

// apply runs a module command; a module whose classes another module
// already defines is refused (CONSTRAINT), and the table is unchanged.
func (t *moduleTable) apply(c Command) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]Module{}
	}
	switch c.Kind {
	case CmdDeleteModule:
		delete(t.m, c.Name)
		return nil
	case CmdPutModule:
		if c.Module == nil || c.Module.Name == "" {
			return fmt.Errorf("%w: put_module without a module", apierr.ErrBadRequest)
		}
		m := *c.Module
		for name, other := range t.m {
			if name == m.Name {
				continue
			}
			for _, cls := range m.Classes {
				if slices.Contains(other.Classes, cls) {
					return fmt.Errorf("%w: class %q is already defined by module %q", apierr.ErrConflict, cls, name)
				}
			}
		}
		m.Version = t.m[m.Name].Version + 1
		m.Classes = slices.Clone(m.Classes)
		t.m[m.Name] = m
		return nil
	}
	return fmt.Errorf("%w: unknown module command %q", apierr.ErrBadRequest, c.Kind)
}

// list is every module, by name.
func (t *moduleTable) list() []Module {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Module, 0, len(t.m))
	for _, m := range t.m {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Module) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// restore replaces the table with a snapshot's modules.
func (t *moduleTable) restore(ms []Module) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m = make(map[string]Module, len(ms))
	for _, m := range ms {
		t.m[m.Name] = m
	}
}

// applyModule runs a module command on the FSM and reports the new list.
func (f *clusterFSM) applyModule(c Command) error {
	if err := f.modules.apply(c); err != nil {
		return err
	}
	if f.onModules != nil {
		f.onModules(f.modules.list())
	}
	return nil
}

// Modules returns the committed modules, by name.
func (n *RaftNode) Modules() []Module { return n.fsm.modules.list() }
