package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/dura-dev/dura/internal/apierr"
)

// MaxModuleBytes bounds the source of one deployed module: it travels in
// the control-plane Raft log, which every node replays.
const MaxModuleBytes = 2 << 20

// ModuleInfo describes a deployed module of JavaScript classes.
type ModuleInfo struct {
	Module  string   `json:"module"`
	Version int      `json:"version"`
	Classes []string `json:"classes"`
	// Bytes and DeployedAt (unix ms) appear in listings only.
	Bytes      int   `json:"bytes,omitempty"`
	DeployedAt int64 `json:"deployed_at,omitempty"`
}

// ModuleList is the answer of GET /v1/modules.
type ModuleList struct {
	Modules []ModuleInfo `json:"modules"`
}

// Modules deploys and lists modules of JavaScript classes (package jsrt
// implements it). All methods are safe to call concurrently.
type Modules interface {
	// Deploy compiles source (TypeScript unless js) and makes each
	// exported DurableObject class a class on every node.
	Deploy(ctx context.Context, module string, source []byte, js bool) (ModuleInfo, error)
	List(ctx context.Context) ([]ModuleInfo, error)
	// Source is the module's source as deployed; NOT_FOUND if none.
	Source(ctx context.Context, module string) ([]byte, error)
	Delete(ctx context.Context, module string) error
}

// MethodBackend runs a public method of an object (RPC); node.Runtime
// implements it. chain continues a call chain from another node.
type MethodBackend interface {
	CallMethod(ctx context.Context, class, name, method string, args []byte, chain string) ([]byte, error)
}

// methodRoutes serve POST /rpc/{class}/{name}/{method}, on the owner.
func (s *Server) methodRoutes() {
	mb, ok := s.cfg.Backend.(MethodBackend)
	if !ok {
		return
	}
	s.handle("POST /rpc/{class}/{name}/{method}", "rpc", s.routed(func(w http.ResponseWriter, r *http.Request) error {
		args, err := readBody(r, MaxCallBody)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(args)) == 0 {
			args = []byte("[]")
		}
		var list []json.RawMessage
		if err := json.Unmarshal(args, &list); err != nil {
			return fmt.Errorf("%w: the body must be a JSON array of arguments: %v", apierr.ErrBadRequest, err)
		}
		out, err := mb.CallMethod(r.Context(), r.PathValue("class"), r.PathValue("name"), r.PathValue("method"), args, r.Header.Get(HeaderChain))
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, err = w.Write(append(out, '\n'))
		return err
	}))
}

// moduleRoutes serve /v1/modules.
func (s *Server) moduleRoutes() {
	m := s.cfg.Modules
	if m == nil {
		return
	}
	s.handle("GET /v1/modules", "modules", func(w http.ResponseWriter, r *http.Request) error {
		list, err := m.List(r.Context())
		if err != nil {
			return err
		}
		if list == nil {
			list = []ModuleInfo{}
		}
		return writeJSON(w, http.StatusOK, ModuleList{Modules: list})
	})
	s.handle("PUT /v1/modules/{module}", "modules", func(w http.ResponseWriter, r *http.Request) error {
		src, err := readBody(r, MaxModuleBytes)
		if err != nil {
			return err
		}
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		js := ct == "application/javascript" || ct == "text/javascript"
		info, err := m.Deploy(r.Context(), r.PathValue("module"), src, js)
		if err != nil {
			return err
		}
		info.Bytes, info.DeployedAt = 0, 0
		return writeJSON(w, http.StatusOK, info)
	})
	s.handle("GET /v1/modules/{module}", "modules", func(w http.ResponseWriter, r *http.Request) error {
		src, err := m.Source(r.Context(), r.PathValue("module"))
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, err = w.Write(src)
		return err
	})
	s.handle("DELETE /v1/modules/{module}", "modules", func(w http.ResponseWriter, r *http.Request) error {
		if err := m.Delete(r.Context(), r.PathValue("module")); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("module")})
	})
}

// CallMethodRemote calls a method of class/name on its owner, like
// CallObject; local=true when this node serves the object.
func (s *Server) CallMethodRemote(ctx context.Context, class, name, method string, args []byte, chain []string) ([]byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/"+url.PathEscape(method), bytes.NewReader(args))
	if err != nil {
		return nil, false, fmt.Errorf("%w: method %q: %v", apierr.ErrBadRequest, method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, local, err := s.callOwner(ctx, "/rpc", class, name, req, chain)
	if err != nil || local {
		return nil, local, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return bytes.TrimSpace(out), false, err
}

// Deploy uploads a module (TypeScript unless js).
func (c *Client) Deploy(ctx context.Context, module string, source []byte, js bool) (ModuleInfo, error) {
	h := http.Header{}
	h.Set("Content-Type", "application/typescript")
	if js {
		h.Set("Content-Type", "application/javascript")
	}
	resp, err := c.Do(ctx, http.MethodPut, "/v1/modules/"+EscapeSegment(module), bytes.NewReader(source), h)
	if err != nil {
		return ModuleInfo{}, err
	}
	defer resp.Body.Close()
	var info ModuleInfo
	return info, json.NewDecoder(resp.Body).Decode(&info)
}

// Modules lists the deployed modules.
func (c *Client) Modules(ctx context.Context) ([]ModuleInfo, error) {
	var out ModuleList
	err := c.doJSON(ctx, http.MethodGet, "/v1/modules", nil, &out)
	return out.Modules, err
}

// DeleteModule removes a module and its classes.
func (c *Client) DeleteModule(ctx context.Context, module string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/modules/"+EscapeSegment(module), nil, nil)
}

// CallMethod calls a public method of an object (RPC) with args and
// returns the JSON of its result.
func (c *Client) CallMethod(ctx context.Context, class, name, method string, args ...any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	resp, err := c.Do(ctx, http.MethodPost, "/rpc"+ObjectPath(class, name)+"/"+EscapeSegment(method), bytes.NewReader(b), h)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return json.RawMessage(strings.TrimSpace(string(out))), err
}
