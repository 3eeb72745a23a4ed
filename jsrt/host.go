package jsrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dura-dev/dura/internal/apierr"
	"github.com/dura-dev/dura/node"
	"github.com/dura-dev/dura/placement"
	"github.com/dura-dev/dura/rpc"
)

// Record is a deployed module as the cluster stores it.
type Record struct {
	Name       string
	Version    int
	Source     string
	JS         bool     // JavaScript; TypeScript otherwise
	Classes    []string // its DurableObject classes, sorted
	DeployedAt int64    // unix ms
}

// Store keeps the deployed modules: the control-plane Raft in a cluster
// (every node then calls Host.Sync with the committed list), memory for
// an embedded runtime (NewMemoryStore). Put assigns the next version.
// All methods are safe to call concurrently.
type Store interface {
	PutModule(ctx context.Context, r Record) error
	DeleteModule(ctx context.Context, name string) error
}

// Config configures a Host.
type Config struct {
	// Runtime runs the objects; the classes are registered in it.
	Runtime *node.Runtime
	// Store keeps modules; nil keeps them in this process only.
	Store Store
	// CPULimit bounds the JavaScript run time of one event (and of a
	// module's top level): past it the script is interrupted, the event
	// fails with TIMEOUT and rolls back, and the object is reset.
	// Default 30 s.
	CPULimit time.Duration
	// Logger receives the host's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultCPULimit is Config.CPULimit's default.
const DefaultCPULimit = 30 * time.Second

// Host runs the JavaScript classes of deployed modules on one node:
// it compiles modules (once per version: objects share the program),
// registers their classes in the runtime and serves /v1/modules. All
// methods are safe to call concurrently.
type Host struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	modules map[string]installed
	slots   map[string]*classSlot // by class name; kept once made
	cache   map[string]*program   // compiled at deploy, by source hash
	changed chan struct{}         // closed and replaced on every Sync
	handles atomic.Int64          // the last object handle given out

	// SyncLater's ordering: syncing holds syncMu; latest is the newest
	// list handed over (an older one still waiting is skipped).
	syncMu sync.Mutex
	latest atomic.Uint64
}

type installed struct {
	rec  Record
	prog *program
}

// classSlot is where a class's objects find its current program: a new
// version is stored here and each live object rebuilds itself at its
// next event.
type classSlot struct {
	name string
	code atomic.Pointer[program]
}

// New builds a host; it does no I/O.
func New(cfg Config) (*Host, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("jsrt config: a runtime is required")
	}
	if cfg.CPULimit <= 0 {
		cfg.CPULimit = DefaultCPULimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, modules: map[string]installed{}, slots: map[string]*classSlot{},
		cache: map[string]*program{}, changed: make(chan struct{})}
	if h.cfg.Store == nil {
		h.cfg.Store = &memoryStore{h: h, recs: map[string]Record{}}
	}
	return h, nil
}

var _ rpc.Modules = (*Host)(nil)

var moduleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Deploy compiles source and, if it is sound and its classes are free,
// stores it as the module's next version; it returns once this node runs
// that version.
func (h *Host) Deploy(ctx context.Context, module string, source []byte, js bool) (rpc.ModuleInfo, error) {
	if !moduleName.MatchString(module) {
		return rpc.ModuleInfo{}, fmt.Errorf("%w: module name %q: letters, digits, '_', '.' and '-', 1 to 64, starting with a letter or digit", apierr.ErrBadRequest, module)
	}
	p, err := compile(module, source, js, h.cfg.CPULimit)
	if err != nil {
		return rpc.ModuleInfo{}, err
	}
	for _, c := range p.classes {
		if err := placement.ValidateClass(c); err != nil {
			return rpc.ModuleInfo{}, fmt.Errorf("%w: exported class %q cannot be a Dura class: %v", apierr.ErrBadRequest, c, err)
		}
	}
	if err := h.checkClasses(module, p.classes); err != nil {
		return rpc.ModuleInfo{}, err
	}
	h.mu.Lock()
	h.cache[p.sha] = p
	prev := h.modules[module].rec.Version
	h.mu.Unlock()
	rec := Record{Name: module, Source: string(source), JS: js, Classes: p.classes, DeployedAt: h.cfg.Now().UnixMilli()}
	if err := h.cfg.Store.PutModule(ctx, rec); err != nil {
		return rpc.ModuleInfo{}, err
	}
	// The store committed it; this node installs it when its copy of
	// the state has it (at once on the leader, shortly on a follower).
	for {
		h.mu.Lock()
		m, ok := h.modules[module]
		wait := h.changed
		h.mu.Unlock()
		// Newer than the version this node ran before the put (the same
		// source deployed again is a new version too).
		if ok && m.prog.sha == p.sha && m.rec.Version > prev {
			return info(m.rec), nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return rpc.ModuleInfo{}, fmt.Errorf("%w: module %s was stored but this node has not installed it yet", apierr.ErrTimeout, module)
		}
	}
}

// checkClasses refuses class names taken by a Go class or another module.
func (h *Host) checkClasses(module string, classes []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	owner := map[string]string{}
	for name, m := range h.modules {
		for _, c := range m.rec.Classes {
			owner[c] = name
		}
	}
	for _, c := range classes {
		if o, ok := owner[c]; ok {
			if o != module {
				return fmt.Errorf("%w: class %q is already defined by module %q", apierr.ErrConflict, c, o)
			}
			continue
		}
		if h.cfg.Runtime.KnownClass(c) {
			return fmt.Errorf("%w: class %q is a built-in class", apierr.ErrConflict, c)
		}
	}
	return nil
}

func info(r Record) rpc.ModuleInfo {
	return rpc.ModuleInfo{Module: r.Name, Version: r.Version, Classes: slices.Clone(r.Classes), Bytes: len(r.Source), DeployedAt: r.DeployedAt}
}

// List describes the installed modules, by name.
func (h *Host) List(ctx context.Context) ([]rpc.ModuleInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]rpc.ModuleInfo, 0, len(h.modules))
	for _, m := range h.modules {
		out = append(out, info(m.rec))
	}
	slices.SortFunc(out, func(a, b rpc.ModuleInfo) int {
		if a.Module < b.Module {
			return -1
		}
		return 1
	})
	return out, nil
}

// Source is a module's source as deployed.
func (h *Host) Source(ctx context.Context, module string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.modules[module]
	if !ok {
		return nil, fmt.Errorf("%w: no module %q", apierr.ErrNotFound, module)
	}
	return []byte(m.rec.Source), nil
}

// Delete removes a module; its classes go from every node.
func (h *Host) Delete(ctx context.Context, module string) error {
	h.mu.Lock()
	_, ok := h.modules[module]
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: no module %q", apierr.ErrNotFound, module)
	}
	if err := h.cfg.Store.DeleteModule(ctx, module); err != nil {
		return err
	}
	for {
		h.mu.Lock()
		_, ok := h.modules[module]
		wait := h.changed
		h.mu.Unlock()
		if !ok {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("%w: module %s was deleted but this node still runs it", apierr.ErrTimeout, module)
		}
	}
}

// SyncLater is Sync off the caller's goroutine, for the Raft state's
// apply loop: compiling a new version runs the module's top level (up
// to the CPU limit), which must not hold up the cluster's log. Lists are
// applied in the order handed over; one superseded before its turn is
// skipped. Deploy and Delete wait for the result as they do for Sync.
func (h *Host) SyncLater(recs []Record) {
	gen := h.latest.Add(1)
	go func() {
		h.syncMu.Lock()
		defer h.syncMu.Unlock()
		if h.latest.Load() != gen {
			return // a newer list follows
		}
		h.Sync(recs)
	}()
}

// Sync makes this node run exactly the modules in recs (the committed
// list): new versions are compiled (or taken from the deploy's cache) and
// their classes registered; live objects of a changed class rebuild at
// their next event; removed modules' classes are unregistered. It is
// quick when nothing changed. Never called concurrently with itself.
func (h *Host) Sync(recs []Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	want := map[string]Record{}
	for _, r := range recs {
		want[r.Name] = r
	}
	for name, m := range h.modules {
		if _, ok := want[name]; !ok {
			h.uninstallLocked(m, nil)
			delete(h.modules, name)
			h.log.Info("module removed", "module", name)
		}
	}
	for _, r := range recs {
		sum := sha256.Sum256([]byte(r.Source))
		sha := hex.EncodeToString(sum[:])
		old, had := h.modules[r.Name]
		if had && old.rec.Version == r.Version && old.prog.sha == sha {
			continue
		}
		p := h.cache[sha]
		if p == nil {
			var err error
			p, err = compile(r.Name, []byte(r.Source), r.JS, h.cfg.CPULimit)
			if err != nil {
				h.log.Error("cannot run a deployed module", "module", r.Name, "version", r.Version, "err", err)
				continue
			}
		}
		if had {
			h.uninstallLocked(old, p.classes)
		}
		for _, c := range p.classes {
			slot := h.slots[c]
			if slot == nil {
				slot = &classSlot{name: c}
				h.slots[c] = slot
			}
			slot.code.Store(p)
			if err := h.cfg.Runtime.Register(c, h.constructor(slot)); err != nil {
				h.log.Error("cannot register a class", "module", r.Name, "class", c, "err", err)
			}
		}
		h.modules[r.Name] = installed{rec: r, prog: p}
		h.log.Info("module installed", "module", r.Name, "version", r.Version, "classes", p.classes)
	}
	clear(h.cache)
	close(h.changed)
	h.changed = make(chan struct{})
}

// uninstallLocked unregisters m's classes except those in keep.
func (h *Host) uninstallLocked(m installed, keep []string) {
	for _, c := range m.rec.Classes {
		if slices.Contains(keep, c) {
			continue
		}
		if slot := h.slots[c]; slot != nil {
			slot.code.Store(nil)
		}
		h.cfg.Runtime.Unregister(c)
	}
}

// memoryStore keeps modules in this process (a runtime without a
// cluster); it applies each change to the host at once.
type memoryStore struct {
	h  *Host
	mu sync.Mutex
	// recs is guarded by mu.
	recs map[string]Record
}

func (s *memoryStore) PutModule(ctx context.Context, r Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Version = s.recs[r.Name].Version + 1
	s.recs[r.Name] = r
	s.h.Sync(s.list())
	return nil
}

func (s *memoryStore) DeleteModule(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, name)
	s.h.Sync(s.list())
	return nil
}

func (s *memoryStore) list() []Record {
	out := make([]Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, r)
	}
	return out
}
