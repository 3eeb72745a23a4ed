package logging

import "log/slog"

// ReplaceAttr is for slog.HandlerOptions: it renders durations as their
// String ("30s", "1.5ms") instead of JSON's nanoseconds, and the trace
// level as "TRACE".
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch {
	case a.Value.Kind() == slog.KindDuration:
		return slog.String(a.Key, a.Value.Duration().String())
	case a.Key == slog.LevelKey && a.Value.Kind() == slog.KindAny:
		if l, ok := a.Value.Any().(slog.Level); ok && l == LevelTrace {
			return slog.String(a.Key, "TRACE")
		}
	}
	return a
}
