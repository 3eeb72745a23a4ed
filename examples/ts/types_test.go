package ts_test

import (
	"os"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
)

// TestTypesParse: dura.d.ts is valid TypeScript (esbuild parses it; it
// does not check types).
func TestTypesParse(t *testing.T) {
	src, err := os.ReadFile("dura.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	res := api.Transform(string(src), api.TransformOptions{Loader: api.LoaderTS, Sourcefile: "dura.d.ts"})
	for _, m := range res.Errors {
		t.Errorf("dura.d.ts:%d: %s", m.Location.Line, m.Text)
	}
}
