package jsrt

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
	"github.com/evanw/esbuild/pkg/api"

	"github.com/dura-dev/dura/internal/apierr"
)

//go:embed prelude.js
var preludeSource string

// prelude is compiled once per process and run in every object's
// runtime; programs are immutable and shared across runtimes.
var prelude = sync.OnceValue(func() *goja.Program {
	return goja.MustCompile("dura:prelude", preludeSource, true)
})

// builtinModule is what `import ... from "cloudflare:workers"` (or
// "dura") yields: the prelude's classes.
const builtinModule = `
export const DurableObject = globalThis.__dura.DurableObject;
export const WorkerEntrypoint = globalThis.__dura.WorkerEntrypoint;
export const RpcTarget = globalThis.__dura.RpcTarget;
export default {};
`

// exportsVar is the global the bundled module's exports land in.
const exportsVar = "__dura_module"

// program is a module compiled once and run by every object of its
// classes, in a few runtimes shared by them (see shared).
type program struct {
	module  string
	sha     string // of the source as deployed
	prog    *goja.Program
	classes []string // export names of the DurableObject classes, sorted
	alarms  map[string]bool

	poolMu sync.Mutex
	pool   []*shared // guarded by poolMu
	next   int       // guarded by poolMu
}

// bundle turns TypeScript or JavaScript (an ES module) into one script
// for goja: types stripped, imports of the built-in modules resolved,
// syntax lowered to ES2020, exports gathered into exportsVar.
func bundle(module string, source []byte, js bool) (string, error) {
	loader := api.LoaderTS
	file := module + ".ts"
	if js {
		loader, file = api.LoaderJS, module+".js"
	}
	builtins := api.Plugin{Name: "dura-builtins", Setup: func(b api.PluginBuild) {
		b.OnResolve(api.OnResolveOptions{Filter: `^(cloudflare:workers|dura)$`}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
			return api.OnResolveResult{Path: a.Path, Namespace: "dura-builtin"}, nil
		})
		// Nothing else can be imported: there is no file system here.
		b.OnResolve(api.OnResolveOptions{Filter: `.*`}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
			if a.Kind == api.ResolveEntryPoint {
				return api.OnResolveResult{}, nil
			}
			return api.OnResolveResult{}, fmt.Errorf("Could not resolve %q: a module may import only \"cloudflare:workers\" and \"dura\"", a.Path)
		})
		b.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: "dura-builtin"}, func(api.OnLoadArgs) (api.OnLoadResult, error) {
			src := builtinModule
			return api.OnLoadResult{Contents: &src, Loader: api.LoaderJS}, nil
		})
	}}
	res := api.Build(api.BuildOptions{
		Stdin:      &api.StdinOptions{Contents: string(source), Sourcefile: file, Loader: loader},
		Bundle:     true,
		Format:     api.FormatIIFE,
		GlobalName: exportsVar,
		Target:     api.ES2020,
		Platform:   api.PlatformNeutral,
		Charset:    api.CharsetUTF8,
		LogLevel:   api.LogLevelSilent,
		Write:      false,
		Plugins:    []api.Plugin{builtins},
	})
	if len(res.Errors) > 0 {
		return "", fmt.Errorf("%w: %s", apierr.ErrBadRequest, messages(res.Errors))
	}
	if len(res.OutputFiles) != 1 {
		return "", fmt.Errorf("%w: bundling %s gave %d outputs", apierr.ErrInternal, module, len(res.OutputFiles))
	}
	return string(res.OutputFiles[0].Contents), nil
}

// messages formats esbuild's errors as file:line:column: text.
func messages(ms []api.Message) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		if l := m.Location; l != nil {
			parts = append(parts, fmt.Sprintf("%s:%d:%d: %s", l.File, l.Line, l.Column+1, m.Text))
		} else {
			parts = append(parts, m.Text)
		}
	}
	return strings.Join(parts, "; ")
}

// compile bundles and compiles a module, then runs it once in a scratch
// runtime (under limit) to find its DurableObject classes. Errors are
// BAD_REQUEST with the compiler's words.
func compile(module string, source []byte, js bool, limit time.Duration) (*program, error) {
	out, err := bundle(module, source, js)
	if err != nil {
		return nil, err
	}
	prog, err := goja.Compile(module, out, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	sum := sha256.Sum256(source)
	p := &program{module: module, sha: hex.EncodeToString(sum[:]), prog: prog}
	sh := &shared{}
	vm, err := newVM(sh, p, limit)
	if err != nil {
		return nil, err
	}
	sh.vm = vm
	var classes []string
	fn, _ := goja.AssertFunction(vm.dura.Get("classesOf"))
	v, err := fn(goja.Undefined(), vm.exports)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apierr.ErrBadRequest, err)
	}
	if err := vm.rt.ExportTo(v, &classes); err != nil {
		return nil, fmt.Errorf("%w: list classes: %v", apierr.ErrInternal, err)
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("%w: module %s exports no class extending DurableObject", apierr.ErrBadRequest, module)
	}
	p.classes, p.alarms = classes, map[string]bool{}
	hasAlarm, _ := goja.AssertFunction(vm.dura.Get("hasAlarm"))
	for _, c := range classes {
		v, err := hasAlarm(goja.Undefined(), vm.exports, vm.rt.ToValue(c))
		p.alarms[c] = err == nil && v.ToBoolean()
	}
	// The scratch runtime is the first of the pool.
	p.pool = append(p.pool, sh)
	return p, nil
}

// poolSize is how many runtimes the objects of one class version share:
// as many as may run JavaScript at once.
func poolSize() int { return max(2, runtime.GOMAXPROCS(0)) }

// bind picks the runtime a new object of p runs in, round robin; a
// runtime that was interrupted is replaced.
func (p *program) bind(limit time.Duration) (*shared, error) {
	p.poolMu.Lock()
	defer p.poolMu.Unlock()
	i := p.next % poolSize()
	p.next++
	if i < len(p.pool) && !p.pool[i].dead.Load() {
		return p.pool[i], nil
	}
	sh := &shared{}
	v, err := newVM(sh, p, limit)
	if err != nil {
		return nil, err
	}
	sh.vm = v
	if i < len(p.pool) {
		p.pool[i] = sh
	} else {
		p.pool = append(p.pool, sh)
	}
	return sh, nil
}

// errCPULimit is the interrupt value of a runaway script.
var errCPULimit = errors.New("CPU time limit exceeded")

// vm is one goja runtime with the prelude and a module loaded.
type vm struct {
	rt      *goja.Runtime
	dura    *goja.Object // the prelude's __dura
	exports goja.Value   // the module's exports
	limit   time.Duration
}

// newVM makes the runtime of sh and runs the prelude and p's program in
// it, the module's top level under the CPU limit.
func newVM(sh *shared, p *program, limit time.Duration) (*vm, error) {
	rt := goja.New()
	rt.SetMaxCallStackSize(4096)
	if err := rt.Set("__native", natives(rt, sh)); err != nil {
		return nil, err
	}
	if _, err := rt.RunProgram(prelude()); err != nil {
		return nil, fmt.Errorf("%w: prelude: %v", apierr.ErrInternal, err)
	}
	v := &vm{rt: rt, dura: rt.Get("__dura").(*goja.Object), limit: limit}
	if _, err := v.guard(func() (goja.Value, error) { return rt.RunProgram(p.prog) }); err != nil {
		return nil, fmt.Errorf("%w: module %s: %v", apierr.ErrBadRequest, p.module, describe(err))
	}
	v.exports = rt.Get(exportsVar)
	return v, nil
}

// guard runs fn with the CPU-time limit: past it, the script is
// interrupted and fn fails with errCPULimit.
func (v *vm) guard(fn func() (goja.Value, error)) (goja.Value, error) {
	var mu sync.Mutex
	running := true
	t := time.AfterFunc(v.limit, func() {
		mu.Lock()
		defer mu.Unlock()
		if running {
			v.rt.Interrupt(errCPULimit)
		}
	})
	res, err := fn()
	mu.Lock()
	running = false
	mu.Unlock()
	t.Stop()
	v.rt.ClearInterrupt()
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		return nil, fmt.Errorf("%w: JavaScript %v (%s)", apierr.ErrTimeout, errCPULimit, v.limit)
	}
	return res, err
}

// describe is a JavaScript exception as "<name>: <message>".
func describe(err error) string {
	var ex *goja.Exception
	if errors.As(err, &ex) {
		return valueText(ex.Value())
	}
	return err.Error()
}

// valueText is a thrown value as "<name>: <message>" (an Error) or its
// string form.
func valueText(v goja.Value) string {
	if o, ok := v.(*goja.Object); ok {
		name, msg := o.Get("name"), o.Get("message")
		if msg != nil && !goja.IsUndefined(msg) {
			n := "Error"
			if name != nil && !goja.IsUndefined(name) {
				n = name.String()
			}
			return n + ": " + msg.String()
		}
	}
	if v == nil {
		return "undefined"
	}
	return v.String()
}
