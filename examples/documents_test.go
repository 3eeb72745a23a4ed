package examples_test

import (
	"testing"

	"github.com/dura-dev/dura/examples/twins"
)

func TestDocumentsOptimisticLocking(t *testing.T) {
	n := newNode(t)
	twins.Documents(t, n, "documents")
	n.noAdviceWarnings("documents", "docs")
}
