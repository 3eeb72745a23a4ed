package logging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level hclog's Trace maps to: below Debug, so
// --log-level debug does not show it.
const LevelTrace = slog.LevelDebug - 4

// Options configures an hclog adapter.
type Options struct {
	// Name is the logger's name, logged as the "component" attribute;
	// hclog's Named appends to it with a dot ("raft.snapshot").
	Name string
	// Repeats are messages that, from one peer, say the same thing over
	// and over while the peer is unreachable: each is logged at WARN at
	// most once per Every per peer, with the count of repeats since the
	// last such line; the others go out at DEBUG.
	Repeats []Repeat
	// Every is the window for Repeats; 30s when zero.
	Every time.Duration
	// Now is the clock for Repeats; time.Now when nil.
	Now func() time.Time
	// Levels overrides the level of messages whose level misleads an
	// operator (a routine election logged at WARN, say).
	Levels map[string]hclog.Level
}

// Repeat names a message to rate-limit and the attribute that holds the
// peer it is about; with PeerKey empty the message is limited as one.
type Repeat struct {
	Msg     string
	PeerKey string
}

// NewHclog returns an hclog.Logger that logs to l: each call becomes one
// slog record at the mapped level with the key-value pairs as attributes
// (no formatting, no second timestamp). Levels are those l's handler
// enables, so the adapter follows --log-level; SetLevel can only raise
// that floor. A nil l discards everything. Safe for concurrent use, as
// are the loggers With and Named derive, which share the level floor and
// the repeat counts.
func NewHclog(l *slog.Logger, o Options) hclog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &hclogger{l: l, name: o.Name, shared: &shared{repeats: newRepeats(o), levels: o.Levels}}
}

type hclogger struct {
	l       *slog.Logger // with the implied args
	name    string
	implied []any
	shared  *shared
}

type shared struct {
	floor   atomic.Int32 // an hclog.Level; NoLevel: the handler decides
	repeats *repeats
	levels  map[string]hclog.Level // read-only
}

var _ hclog.Logger = (*hclogger)(nil)

// toSlog maps an hclog level to slog's.
func toSlog(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, DefaultLevel
		return slog.LevelInfo
	}
}

func (h *hclogger) enabled(l hclog.Level) bool {
	if l == hclog.Off {
		return false
	}
	if f := hclog.Level(h.shared.floor.Load()); f != hclog.NoLevel && l < f {
		return false
	}
	return h.l.Enabled(context.Background(), toSlog(l))
}

func (h *hclogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel || level == hclog.DefaultLevel {
		level = hclog.Info
	}
	if l, ok := h.shared.levels[msg]; ok {
		level = l
	}
	if !h.enabled(level) {
		return
	}
	lvl := toSlog(level)
	var extra []slog.Attr
	if h.shared.repeats != nil && level >= hclog.Warn {
		if l, n, limited := h.shared.repeats.level(msg, args); limited {
			if lvl = l; n > 0 {
				extra = append(extra, slog.Int("repeats", n))
			}
			if !h.l.Enabled(context.Background(), lvl) {
				return
			}
		}
	}
	r := slog.NewRecord(time.Now(), lvl, msg, 0)
	if h.name != "" {
		r.AddAttrs(slog.String("component", h.name))
	}
	r.AddAttrs(attrs(h.name, args)...)
	r.AddAttrs(extra...)
	_ = h.l.Handler().Handle(context.Background(), r)
}

func (h *hclogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogger) ImpliedArgs() []any { return h.implied }

func (h *hclogger) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), args...)
	c.l = h.l.With(attrsAny(h.name, args)...)
	return &c
}

func (h *hclogger) Name() string { return h.name }

func (h *hclogger) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *hclogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel sets a floor under the handler's level; NoLevel removes it.
func (h *hclogger) SetLevel(level hclog.Level) { h.shared.floor.Store(int32(level)) }

// GetLevel is the lowest level that is logged, Off if none.
func (h *hclogger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (h *hclogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

// StandardWriter is for libraries that only take a *log.Logger: with
// InferLevels it reads a "[LEVEL]" prefix off each line, else each line
// is logged at ForceLevel (Info by default).
func (h *hclogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := &lineWriter{l: h.l, component: h.name, level: slog.LevelInfo}
	if opts != nil {
		w.infer = opts.InferLevels || opts.InferLevelsWithTimestamp
		if opts.ForceLevel != hclog.NoLevel {
			w.level, w.infer = toSlog(opts.ForceLevel), false
		}
	}
	return w
}

// attrs turns hclog's key-value pairs into slog attributes. Like hclog, a
// value without a key is logged under EXTRA_VALUE_AT_END. A reserved key
// gets the logger's name as a prefix ("raft.node").
func attrs(name string, args []any) []slog.Attr {
	if name == "" {
		name = "hclog"
	}
	out := make([]slog.Attr, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, slog.Attr{Key: hclog.MissingKey, Value: value(args[i])})
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		if reserved(key) {
			key = name + "." + key
		}
		out = append(out, slog.Attr{Key: key, Value: value(args[i+1])})
	}
	return out
}

// reserved reports whether key is one the handler or the node's logger
// writes itself (server.Run adds "node"): Raft's own "node" (its state as
// text) would repeat the key in a JSON object.
func reserved(key string) bool {
	switch key {
	case slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey, "node", "component", "repeats":
		return true
	}
	return false
}

func attrsAny(name string, args []any) []any {
	as := attrs(name, args)
	out := make([]any, len(as))
	for i, a := range as {
		out[i] = a
	}
	return out
}

// value renders hclog's formatting helpers as hclog would and Stringers
// (Raft's states, for one) through String; the rest is left to the
// handler, which renders errors through Error and durations through the
// ReplaceAttr of the handler set-up.
func value(v any) (out slog.Value) {
	switch x := v.(type) {
	case hclog.Format:
		if len(x) == 0 {
			return slog.StringValue("")
		}
		f, ok := x[0].(string)
		if !ok {
			return slog.StringValue(fmt.Sprint(x...))
		}
		return slog.StringValue(fmt.Sprintf(f, x[1:]...))
	case hclog.Hex:
		return slog.StringValue("0x" + strconv.FormatInt(int64(x), 16))
	case hclog.Octal:
		return slog.StringValue("0" + strconv.FormatInt(int64(x), 8))
	case hclog.Binary:
		return slog.StringValue("0b" + strconv.FormatInt(int64(x), 2))
	case hclog.Quote:
		return slog.StringValue(strconv.Quote(string(x)))
	case time.Duration, time.Time, error, json.Marshaler, slog.LogValuer:
		return slog.AnyValue(v)
	case fmt.Stringer:
		defer func() {
			if recover() != nil { // a nil pointer behind the interface
				out = slog.AnyValue(v)
			}
		}()
		return slog.StringValue(x.String())
	}
	return slog.AnyValue(v)
}
