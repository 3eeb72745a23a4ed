package placement

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dura-dev/dura/internal/apierr"
)

// safeClass is the class rule written out byte by byte: a letter, then up
// to 63 letters, digits, '_' or '-'.
func safeClass(c string) bool {
	if len(c) < 1 || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		letter := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		if !letter && (i == 0 || !(b >= '0' && b <= '9' || b == '_' || b == '-')) {
			return false
		}
	}
	return true
}

// safeName is the name rule: 1..MaxNameBytes of UTF-8 without NUL.
func safeName(n string) bool {
	return n != "" && len(n) <= MaxNameBytes && utf8.ValidString(n) && strings.IndexByte(n, 0) < 0
}

// FuzzObjectIdentity checks that validation accepts a class and a name
// exactly when they are safe (refusing with BAD_REQUEST otherwise), and
// that a safe pair maps to one object: its ID is sha256 of an unambiguous
// encoding, and its file stays inside the data directory.
func FuzzObjectIdentity(f *testing.F) {
	for i, c := range classCases {
		n := nameCases[i%len(nameCases)]
		f.Add(c.class, n.name)
	}
	for _, n := range nameCases {
		f.Add("db", n.name)
	}
	f.Add("a-", "../../etc/passwd")
	f.Add("A_", "/")
	f.Add("db\n", "x")
	f.Fuzz(func(t *testing.T, class, name string) {
		cerr, nerr := ValidateClass(class), ValidateName(name)
		if (cerr == nil) != safeClass(class) {
			t.Fatalf("ValidateClass(%q) = %v, safe=%v", class, cerr, safeClass(class))
		}
		if (nerr == nil) != safeName(name) {
			t.Fatalf("ValidateName(%q) = %v, safe=%v", name, nerr, safeName(name))
		}
		for _, err := range []error{cerr, nerr} {
			if err != nil && !errors.Is(err, apierr.ErrBadRequest) {
				t.Fatalf("refusal %v is not BAD_REQUEST", err)
			}
			if err != nil && len(err.Error()) > 1000 {
				t.Fatalf("refusal message of %d bytes echoes the input", len(err.Error()))
			}
		}
		if cerr != nil || nerr != nil {
			return
		}
		id := ObjectID(class, name)
		sum := sha256.Sum256([]byte(class + "\x00" + name))
		if id != hex.EncodeToString(sum[:]) {
			t.Fatalf("ObjectID(%q, %q) = %s", class, name, id)
		}
		// The class holds no NUL, so the hashed text splits back into
		// exactly this pair: no other pair shares its ID.
		if c, n, _ := strings.Cut(class+"\x00"+name, "\x00"); c != class || n != name {
			t.Fatalf("(%q, %q) encodes ambiguously", class, name)
		}
		p := PartitionOf(id, DefaultPartitions)
		if p < 0 || p >= DefaultPartitions {
			t.Fatalf("partition %d out of range", p)
		}
		root := filepath.Join("data", "partitions")
		file := filepath.Join(root, strconv.Itoa(p), id+".db")
		if rel, err := filepath.Rel(root, file); err != nil || strings.HasPrefix(rel, "..") || filepath.Base(file) != id+".db" {
			t.Fatalf("object file %s escapes %s", file, root)
		}
	})
}
