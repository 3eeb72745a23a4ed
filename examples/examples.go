package examples

import (
	"fmt"

	"github.com/dura-dev/dura/node"
)

// Classes maps each example class name to its constructor, as RegisterAll
// registers them.
func Classes() map[string]node.Constructor {
	return map[string]node.Constructor{
		"counter":    NewCounter,
		"cache":      NewCache(nil),
		"chat":       NewChat,
		"analytics":  NewAnalytics,
		"accounts":   NewAccounts,
		"documents":  NewDocuments,
		"compressed": NewCompressed,
		"reminders":  NewReminders,
		"sharded":    NewSharded,
		"versioned":  NewVersioned(VersionedLatest),
	}
}

// RegisterAll registers every example class on rt.
func RegisterAll(rt *node.Runtime) error {
	for name, ctor := range Classes() {
		if err := rt.Register(name, ctor); err != nil {
			return fmt.Errorf("register example %s: %w", name, err)
		}
	}
	return nil
}
