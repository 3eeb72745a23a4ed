package logging

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"time"
)

// Memberlist is the logger for memberlist, which takes only a
// *log.Logger: each line's "[LEVEL] memberlist: " prefix is read once
// into the record's level, and the line is logged with component
// "gossip". Memberlist's messages carry no separate fields.
func Memberlist(l *slog.Logger) *log.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return log.New(&lineWriter{l: l, component: "gossip", strip: "memberlist: ", infer: true, level: slog.LevelInfo}, "", 0)
}

// lineWriter logs each line written to it as one record. With infer it
// takes the level from a leading "[DEBUG]", "[INFO]", "[WARN]", "[ERR]"
// or "[ERROR]" ("[TRACE]" too); other lines are logged at level.
type lineWriter struct {
	l         *slog.Logger
	component string
	strip     string // a prefix to drop after the level
	infer     bool
	level     slog.Level
}

func (w *lineWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		w.line(string(bytes.TrimSpace(line)))
	}
	return len(p), nil
}

func (w *lineWriter) line(s string) {
	if s == "" {
		return
	}
	level := w.level
	if w.infer {
		level, s = parseLevel(s, level)
	}
	s = strings.TrimPrefix(s, w.strip)
	ctx := context.Background()
	if !w.l.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, s, 0)
	if w.component != "" {
		r.AddAttrs(slog.String("component", w.component))
	}
	_ = w.l.Handler().Handle(ctx, r)
}

// parseLevel reads a "[LEVEL]" prefix off s; without one the level is def.
func parseLevel(s string, def slog.Level) (slog.Level, string) {
	if !strings.HasPrefix(s, "[") {
		return def, s
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return def, s
	}
	level := def
	switch strings.ToUpper(s[1:end]) {
	case "TRACE":
		level = LevelTrace
	case "DEBUG":
		level = slog.LevelDebug
	case "INFO":
		level = slog.LevelInfo
	case "WARN", "WARNING":
		level = slog.LevelWarn
	case "ERR", "ERROR":
		level = slog.LevelError
	default:
		return def, s
	}
	return level, strings.TrimSpace(s[end+1:])
}
