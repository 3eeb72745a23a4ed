package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dura-dev/dura/internal/apierr"
)

// Headers every response carries.
const (
	HeaderNode = "X-Dura-Node" // the node that executed the request
	HeaderHops = "X-Dura-Hops" // how many times it was forwarded
	// HeaderError is set, to the API code, on error answers the node
	// wrote itself, so an answer of a class's handler that happens to
	// have an error status is never taken for one.
	HeaderError = "X-Dura-Error"
)

// Body limits.
const (
	// MaxAPIBody bounds the JSON bodies of /v1 routes (SQL, KV, alarm).
	MaxAPIBody = 8 << 20
	// MaxCallBody bounds the body of an object call.
	MaxCallBody = 16 << 20
	// MaxReplicationBatch bounds a batch of shipped records: one record
	// holds the pages of one commit, at most an object's size (1 GiB).
	MaxReplicationBatch = 1<<30 + 16<<20
	// MaxAlarmMillis is the latest alarm time the API takes (unix ms,
	// 9999-12-31T23:59:59.999Z): later times cannot be recorded.
	MaxAlarmMillis = 253402300799999
)

// ServerConfig configures the HTTP API of a node.
type ServerConfig struct {
	// Backend serves the requests. Required.
	Backend Backend
	// Logger receives request logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the API metrics and serves /metrics; nil makes a
	// private registry (with Go and process collectors).
	Registry *prometheus.Registry
	// Router, if set, sends object requests to their owners (cluster);
	// nil serves everything here.
	Router Router
	// Internal, if set, serves the node-to-node routes under
	// /v1/internal/.
	Internal ClusterInternal
	// Forwarder is the HTTP client used to forward; nil means a default
	// client with keep-alive connections.
	Forwarder *http.Client
	// AdminToken, if set, is the bearer token every /v1/ route requires;
	// several comma-separated tokens are all accepted (for rotation).
	AdminToken string
	// APIToken, if set, is a bearer token /objects/ routes require (the
	// admin token is accepted there too); it grants nothing under /v1/.
	// Comma-separated like AdminToken.
	APIToken string
	// Modules, if set, serves /v1/modules (JavaScript classes).
	Modules Modules
	// SeparateMetrics leaves /metrics to MetricsHandler, served on its
	// own listener, instead of Handler.
	SeparateMetrics bool
	// RequestTimeout bounds one request's wait for and run of its event.
	// 0 means 30 s.
	RequestTimeout time.Duration
	// RequestWait is how long a request whose owner is briefly
	// unavailable (forming, catching up, electing, handing off) waits for
	// it before answering OWNER_UNAVAILABLE; never past the request's own
	// deadline. 0 means DefaultRequestWait; negative, no waiting.
	RequestWait time.Duration
	// MaxWaiting bounds the requests waiting so at once; beyond it a
	// request is answered 503 at once. 0 means DefaultMaxWaiting.
	MaxWaiting int
}

// Defaults of ServerConfig's waiting.
const (
	DefaultRequestWait = 10 * time.Second
	DefaultMaxWaiting  = 4096
)

// Server is the HTTP API of one node. It is safe for concurrent use.
type Server struct {
	cfg         ServerConfig
	adminTokens tokens
	apiTokens   tokens
	log         *slog.Logger
	mux         *cleanMux
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec

	waiting      atomic.Int64 // requests waiting for their owner (routed)
	waitingGauge prometheus.Gauge
}

// NewServer builds the API; it does no I/O.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = NewRegistry()
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.RequestWait == 0 {
		cfg.RequestWait = DefaultRequestWait
	}
	if cfg.MaxWaiting == 0 {
		cfg.MaxWaiting = DefaultMaxWaiting
	}
	if cfg.Forwarder == nil {
		cfg.Forwarder = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true}}
	}
	s := &Server{
		cfg:         cfg,
		adminTokens: parseTokens(cfg.AdminToken),
		apiTokens:   parseTokens(cfg.APIToken),
		log:         cfg.Logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dura_http_requests_total", Help: "HTTP requests by class, route and status.",
		}, []string{"class", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dura_http_request_duration_seconds", Help: "HTTP request latency by class, route and status.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"class", "route", "status"}),
	}
	s.waitingGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dura_requests_waiting", Help: "Requests waiting for their object's owner to become available.",
	})
	s.mux = newCleanMux(s)
	cfg.Registry.MustRegister(s.requests, s.latency, s.waitingGauge)
	s.routes()
	return s
}

// NewRegistry is a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves the Prometheus metrics.
func (s *Server) MetricsHandler() http.Handler {
	metrics := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderNode, s.cfg.Backend.NodeName())
		w.Header().Set(HeaderHops, strconv.Itoa(hops(r)))
		metrics.ServeHTTP(w, r)
	})
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// routes registers every route of the API.
func (s *Server) routes() {
	s.objectRoutes()
	s.methodRoutes()
	s.moduleRoutes()
	s.listRoutes()
	if in := s.cfg.Internal; in != nil {
		s.clusterRoutes(in)
	}
	s.nodeRoutes()
}

// objectRoutes are one object's routes, run on its owner.
func (s *Server) objectRoutes() {
	b := s.cfg.Backend
	obj := "/v1/objects/{class}/{name}"
	s.handle("/objects/{class}/{name}", "call", s.routed(s.call))
	s.handle("/objects/{class}/{name}/{path...}", "call", s.routed(s.call))
	s.handle("POST "+obj+"/sql", "sql", s.routed(s.sql))
	s.handle("GET "+obj+"/alarm", "alarm", s.routed(s.getAlarm))
	s.handle("PUT "+obj+"/alarm", "alarm", s.routed(s.putAlarm))
	s.handle("DELETE "+obj+"/alarm", "alarm", s.routed(func(w http.ResponseWriter, r *http.Request) error {
		if err := b.DeleteAlarm(r.Context(), r.PathValue("class"), r.PathValue("name")); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, AlarmResponse{})
	}))
	s.handle("GET "+obj+"/kv", "kv", s.routed(s.kvList))
	s.handle("GET "+obj+"/kv/{key...}", "kv", s.routed(s.kvGet))
	s.handle("PUT "+obj+"/kv/{key...}", "kv", s.routed(s.kvPut))
	s.handle("DELETE "+obj+"/kv/{key...}", "kv", s.routed(s.kvDelete))
	s.handle("GET "+obj, "object", s.routed(func(w http.ResponseWriter, r *http.Request) error {
		info, err := b.Info(r.Context(), r.PathValue("class"), r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, info)
	}))
	s.handle("DELETE "+obj, "object", s.routed(func(w http.ResponseWriter, r *http.Request) error {
		if err := b.DeleteObject(r.Context(), r.PathValue("class"), r.PathValue("name")); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
	}))
	s.handle("GET "+obj+"/advice", "advice", s.routed(func(w http.ResponseWriter, r *http.Request) error {
		adv, err := b.Advice(r.Context(), r.PathValue("class"), r.PathValue("name"))
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, adv)
	}))
	s.handle("POST "+obj+"/explain", "explain", s.routed(s.explain))
	s.handle("GET "+obj+"/bookmark", "bookmark", s.routed(s.bookmark))
	s.handle("POST "+obj+"/restore", "restore", s.routed(s.restore))
	s.handle("GET "+obj+"/export", "export", s.routed(s.export))
	s.handle("PUT "+obj+"/import", "import", s.routed(func(w http.ResponseWriter, r *http.Request) error {
		if err := b.Import(r.Context(), r.PathValue("class"), r.PathValue("name"), r.Body); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]bool{"imported": true})
	}))
}

// listRoutes list objects and alarms across the cluster.
func (s *Server) listRoutes() {
	b := s.cfg.Backend
	s.handle("GET /v1/objects", "list", s.listObjects)
	if al, ok := b.(AlarmLister); ok {
		s.handle("GET /v1/alarms", "alarms", func(w http.ResponseWriter, r *http.Request) error {
			q := r.URL.Query()
			limit, err := pageLimit(q)
			if err != nil {
				return err
			}
			var before int64
			if v := q.Get("before"); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("%w: before must be unix milliseconds", apierr.ErrBadRequest)
				}
				before = n
			}
			list, err := al.ListAlarms(r.Context(), before, q.Get("cursor"), limit)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, list)
		})
	}
}

// clusterRoutes are the node-to-node routes and member removal.
func (s *Server) clusterRoutes(in ClusterInternal) {
	s.handle("POST /v1/internal/apply", "internal", func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r, MaxAPIBody)
		if err != nil {
			return err
		}
		if err := in.ApplyCommand(r.Context(), body); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]bool{"applied": true})
	})
	s.handle("GET /v1/internal/partitions/{p}/archive", "internal", func(w http.ResponseWriter, r *http.Request) error {
		p, err := strconv.Atoi(r.PathValue("p"))
		if err != nil {
			return fmt.Errorf("%w: partition %q", apierr.ErrBadRequest, r.PathValue("p"))
		}
		since, err := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: since %q", apierr.ErrBadRequest, r.URL.Query().Get("since"))
		}
		w.Header().Set("Content-Type", "application/x-tar")
		return in.PartitionArchive(r.Context(), p, r.URL.Query().Get("to"), since, r.URL.Query().Get("drain") == "1", w)
	})
	s.handle("GET /v1/internal/partitions/{p}/snapshot", "internal", func(w http.ResponseWriter, r *http.Request) error {
		p, err := strconv.Atoi(r.PathValue("p"))
		if err != nil {
			return fmt.Errorf("%w: partition %q", apierr.ErrBadRequest, r.PathValue("p"))
		}
		return in.PartitionSnapshot(r.Context(), p, r.URL.Query().Get("to"), w)
	})
	s.handle("POST /v1/internal/partitions/{p}/in-sync", "internal", func(w http.ResponseWriter, r *http.Request) error {
		p, err := strconv.Atoi(r.PathValue("p"))
		if err != nil {
			return fmt.Errorf("%w: partition %q", apierr.ErrBadRequest, r.PathValue("p"))
		}
		member := r.URL.Query().Get("member")
		if err := in.AdmitReplica(r.Context(), p, member); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]any{"partition": p, "in_sync": member})
	})
	s.handle("POST /v1/internal/replicate", "internal", func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r, MaxReplicationBatch)
		if err != nil {
			return err
		}
		acks, err := in.ReceiveRecords(r.Context(), r.URL.Query().Get("from"), body)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, acks)
	})
	s.handle("POST /v1/cluster/members/{member}/remove", "cluster", func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Query().Get("force") != "true" {
			return fmt.Errorf("%w: removing a member loses the data it holds; repeat with ?force=true", apierr.ErrBadRequest)
		}
		if err := in.RemoveMember(r.Context(), r.PathValue("member")); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("member")})
	})
	s.handle("GET /v1/internal/commit", "internal", func(w http.ResponseWriter, r *http.Request) error {
		n, err := in.CommitIndex(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]uint64{"index": n})
	})
	s.handle("GET /v1/internal/objects", "internal", func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		list, err := in.LocalObjects(r.Context(), q.Get("class"), q.Get("after"), limit)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, list)
	})
}

// nodeRoutes describe this node: cluster view, health, metrics, and the
// answer to unknown paths and methods.
func (s *Server) nodeRoutes() {
	b := s.cfg.Backend
	s.handle("GET /v1/cluster", "cluster", func(w http.ResponseWriter, r *http.Request) error {
		info, err := b.Cluster(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, info)
	})
	s.handle("GET /healthz", "health", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": b.NodeName()})
	})
	s.handle("GET /readyz", "health", func(w http.ResponseWriter, r *http.Request) error {
		if err := b.Ready(r.Context()); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": b.NodeName()})
	})
	if !s.cfg.SeparateMetrics {
		s.mux.Handle("GET /metrics", s.MetricsHandler())
	}
	s.handle("/", "unknown", func(w http.ResponseWriter, r *http.Request) error {
		if allow := s.allowed(r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return fmt.Errorf("%w: %s does not take %s; it takes %s", errMethodNotAllowed, r.URL.Path, r.Method, strings.Join(allow, ", "))
		}
		return fmt.Errorf("%w: no route for %s %s", apierr.ErrNotFound, r.Method, r.URL.Path)
	})
}

// errMethodNotAllowed is a known path asked with a method it does not
// take: 405 with an Allow header.
var errMethodNotAllowed = errors.New("method not allowed")

// allowed lists the methods a route other than the catch-all serves r's
// path with.
func (s *Server) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

// handle wraps a route with the headers, timeout, error answer, metrics
// and logs every route shares.
func (s *Server) handle(pattern, route string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set(HeaderNode, s.cfg.Backend.NodeName())
		w.Header().Set(HeaderHops, strconv.Itoa(hops(r)))
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		sw := &statusWriter{ResponseWriter: w}
		caller, err := s.authorize(r)
		if err == nil {
			err = h(sw, r.WithContext(context.WithValue(ctx, callerKey{}, caller)))
		}
		if err != nil {
			if sw.status != 0 {
				// Too late for an error answer (a stream broke midway).
				s.log.Warn("request failed after the response started", "route", route, "err", err)
			} else {
				s.writeError(sw, err)
			}
		}
		status := strconv.Itoa(sw.statusOr200())
		class := r.PathValue("class")
		if class != "" && !s.cfg.Backend.KnownClass(class) {
			class = "other"
		}
		s.requests.WithLabelValues(class, route, status).Inc()
		s.latency.WithLabelValues(class, route, status).Observe(time.Since(start).Seconds())
		// A 503 is the cluster saying "not here, not now" (forming,
		// catching up, a node down): expected and reported elsewhere.
		level := slog.LevelDebug
		if st := sw.statusOr200(); st >= 500 && st != http.StatusServiceUnavailable {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "request", "method", r.Method, "path", r.URL.Path, "status", sw.statusOr200(), "caller", caller,
			"ms", float64(time.Since(start).Microseconds())/1000, "err", err)
	})
}

func hops(r *http.Request) int {
	n, _ := strconv.Atoi(r.Header.Get(HeaderHops))
	return n
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) statusOr200() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Flush lets streamed bodies (export) go out as they are written.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// statementIndexer is implemented by errors that name the failed statement.
type statementIndexer interface{ StatementIndex() int }

func (s *Server) writeError(w http.ResponseWriter, err error) { WriteError(w, err) }

// WriteError answers err as the API does: its code's status, the JSON
// error body and, for 503, Retry-After. An error decoded from another
// node (*APIError) passes on with that node's code, status and message.
func WriteError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = fmt.Errorf("%w: request body over %d bytes", apierr.ErrTooLarge, mbe.Limit)
	}
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, apierr.ErrTimeout) {
		err = fmt.Errorf("%w: %v", apierr.ErrTimeout, err)
	}
	code, status := apierr.Code(err)
	if errors.Is(err, errMethodNotAllowed) {
		code, status = "METHOD_NOT_ALLOWED", http.StatusMethodNotAllowed
	}
	body := ErrorBody{Error: ErrorDetail{Code: code, Message: apierr.Message(err), NotExecuted: apierr.IsNotExecuted(err)}}
	var si statementIndexer
	if errors.As(err, &si) {
		i := si.StatementIndex()
		body.Error.Statement = &i
	}
	var remote *APIError
	if errors.As(err, &remote) {
		// Another node's answer passes through with its own code, status
		// and words.
		code, status = remote.Code, remote.Status
		body.Error = ErrorDetail{Code: code, Message: remote.Message, Statement: remote.Statement, NotExecuted: remote.NotExecuted()}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set(HeaderError, code)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: encode response: %v", apierr.ErrInternal, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
	return nil
}

// readBody reads a whole body up to limit bytes, or fails with TOO_LARGE.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: request body of %d bytes, the limit is %d", apierr.ErrTooLarge, r.ContentLength, limit)
	}
	// Room for the announced length up front, so the body is read into
	// one buffer instead of one grown step by step (peers ship every
	// replicated batch this way); a body of another length still reads.
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		return nil, fmt.Errorf("%w: reading body: %v", apierr.ErrBadRequest, err)
	}
	b := buf.Bytes()
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: request body over %d bytes", apierr.ErrTooLarge, limit)
	}
	return b, nil
}
