package placement

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/dura-dev/dura/internal/apierr"
)

// classCases are ValidateClass's table; FuzzObjectIdentity starts from them.
var classCases = []struct {
	class string
	ok    bool
}{
	{"counter", true},
	{"Chat_Room-2", true},
	{"a", true},
	{strings.Repeat("a", 64), true},
	{strings.Repeat("a", 65), false},
	{"", false},
	{"9lives", false},
	{"_hidden", false},
	{"has space", false},
	{"dot.ted", false},
	{"..", false},
	{"a/b", false},
	{"caf\u00e9", false},
}

func TestValidateClass(t *testing.T) {
	for _, tc := range classCases {
		err := ValidateClass(tc.class)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateClass(%q) = %v, want ok=%v", tc.class, err, tc.ok)
		}
		if err != nil && !errors.Is(err, apierr.ErrBadRequest) {
			t.Errorf("ValidateClass(%q) error %v is not BAD_REQUEST", tc.class, err)
		}
	}
}

// nameCases are ValidateName's table; FuzzObjectIdentity starts from them.
var nameCases = []struct {
	name string
	ok   bool
}{
	{"x", true},
	{"a/b/../c", true}, // names are opaque: they never become paths
	{"..", true},
	{strings.Repeat("n", MaxNameBytes), true},
	{strings.Repeat("n", MaxNameBytes+1), false},
	{"", false},
	{"nul\x00byte", false},
	{"\xff\xfe", false},
}

func TestValidateName(t *testing.T) {
	for _, tc := range nameCases {
		if err := ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestObjectIDAndPartition(t *testing.T) {
	sum := sha256.Sum256([]byte("counter\x00home"))
	if got, want := ObjectID("counter", "home"), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("ObjectID = %s, want %s", got, want)
	}
	// The separator keeps ("ab","c") and ("a","bc") apart.
	if ObjectID("ab", "c") == ObjectID("a", "bc") {
		t.Fatal("class/name boundary is ambiguous")
	}
	counts := make([]int, DefaultPartitions)
	for i := 0; i < 27100; i++ {
		p := PartitionOf(ObjectID("db", strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune(i))), DefaultPartitions)
		if p < 0 || p >= DefaultPartitions {
			t.Fatalf("partition %d out of range", p)
		}
		counts[p]++
	}
	for p, n := range counts {
		if n < 50 { // mean 100: a hash that clusters would starve some
			t.Fatalf("partition %d got %d of 27100 objects", p, n)
		}
	}
	if PartitionOf("same", 271) != PartitionOf("same", 271) {
		t.Fatal("partition is not deterministic")
	}
}
