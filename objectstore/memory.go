package objectstore

/*
// Declared here rather than taken from go-sqlite3's header, which is not
// on this package's include path; the linker resolves it to the SQLite
// that go-sqlite3 compiles into the binary.
int sqlite3_config(int, ...);
long long sqlite3_memory_used(void);

#include <stddef.h>

// glibc's malloc_trim, weak so a C library without it links too.
extern int malloc_trim(size_t) __attribute__((weak));

static int duraTrim(void) {
	return malloc_trim ? malloc_trim(0) : 0;
}

// Option numbers of sqlite3_config, as sqlite3.h defines them.
enum { duraConfigPageCache = 7, duraConfigLookaside = 13 };

// duraConfigureMemory sets how much memory every new connection sets
// aside up front; it must run before SQLite initializes (the first open).
static int duraConfigureMemory(int lookasideSlot, int lookasideSlots) {
	int rc = sqlite3_config(duraConfigPageCache, (void *)0, 0, 0);
	if (rc != 0) {
		return rc;
	}
	return sqlite3_config(duraConfigLookaside, lookasideSlot, lookasideSlots);
}
*/
import "C"

import "fmt"

// Each open database costs what SQLite sets aside when it opens: by
// default a lookaside pool of 100 slots of 1200 bytes (120 KiB) and a
// first bulk allocation of 20 pages for its page cache (about 85 KiB),
// whether the object ever uses them or not. A node keeps thousands of
// objects open, most of them small and idle, so it asks for less: a
// lookaside pool of 32 slots of 256 bytes (8 KiB, still serving the
// small allocations of parsing and running statements: the per-event
// benchmark, go test -bench CounterEvent ./node, did not move from 64
// slots to 32), and page cache memory allocated page by page as pages
// are read.
const (
	lookasideSlot  = 256
	lookasideSlots = 32
)

// memoryConfigErr says why SQLite kept its defaults (nil: it took the
// settings above). Only an open before this package's init could cause
// it; the node then runs as before, with more memory per object.
var memoryConfigErr error

// MemoryUsed is the memory SQLite holds now, across every connection of
// the process, in bytes.
func MemoryUsed() int64 { return int64(C.sqlite3_memory_used()) }

// Trim hands the C heap's free pages back to the operating system (glibc's
// malloc_trim; nothing elsewhere). Memory SQLite gives back (Release,
// Close) is otherwise kept by the allocator for later use, scattered
// between live allocations, and still counts in the process's RSS.
func Trim() { C.duraTrim() }

func init() {
	if rc := C.duraConfigureMemory(lookasideSlot, lookasideSlots); rc != 0 {
		memoryConfigErr = fmt.Errorf("sqlite3_config: error %d (SQLite already initialized)", int(rc))
	}
	registerMath()
}
