package examples_test

import (
	"slices"
	"testing"

	"github.com/dura-dev/dura/examples"
)

func TestRegisterAll(t *testing.T) {
	n := newNode(t)
	classes := n.rt.Classes()
	for name := range examples.Classes() {
		if !slices.Contains(classes, name) {
			t.Errorf("class %q not registered (have %v)", name, classes)
		}
		t.Run(name+" answers unknown routes with NOT_FOUND", func(t *testing.T) {
			n.callErr("PATCH", name, "x", "/no/such/route", nil, 404, "NOT_FOUND")
		})
	}
}
