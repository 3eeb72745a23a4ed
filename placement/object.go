package placement

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"

	"github.com/dura-dev/dura/internal/apierr"
)

// DefaultPartitions is the partition count of a new cluster (a prime).
const DefaultPartitions = 271

// MaxNameBytes is the longest object name.
const MaxNameBytes = 1024

var classRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// ValidateClass reports a class name outside ^[A-Za-z][A-Za-z0-9_-]{0,63}$.
func ValidateClass(class string) error {
	if !classRE.MatchString(class) {
		return fmt.Errorf("%w: class %q must match %s", apierr.ErrBadRequest, truncate(class), classRE)
	}
	return nil
}

// ValidateName reports an object name that is empty, over MaxNameBytes,
// not UTF-8, or holding NUL.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty object name", apierr.ErrBadRequest)
	case len(name) > MaxNameBytes:
		return fmt.Errorf("%w: object name of %d bytes, the limit is %d", apierr.ErrBadRequest, len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: object name is not valid UTF-8", apierr.ErrBadRequest)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: object name holds a NUL byte", apierr.ErrBadRequest)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ObjectID is hex(sha256(class + "\x00" + name)).
func ObjectID(class, name string) string {
	h := sha256.New()
	h.Write([]byte(class))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return hex.EncodeToString(h.Sum(nil))
}

// Hasher is the 64-bit hash used for partitions (and, in the cluster, by
// the consistent-hash ring): xxhash64.
type Hasher struct{}

// Sum64 hashes data.
func (Hasher) Sum64(data []byte) uint64 { return xxhash.Sum64(data) }

// PartitionOf maps an object ID to one of count partitions, the same way
// the consistent-hash ring does: hash(id) mod count.
func PartitionOf(id string, count int) int {
	return int(xxhash.Sum64String(id) % uint64(count))
}
