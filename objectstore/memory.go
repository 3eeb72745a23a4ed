package objectstore

/*
// Declared here rather than taken from go-sqlite3's header, which is not
// on this package's include path; the linker resolves it to the SQLite
// that go-sqlite3 compiles into the binary.
int sqlite3_config(int, ...);

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
// lookaside pool of 64 slots of 256 bytes (16 KiB, still serving the
// small allocations of parsing and running statements), and page cache
// memory allocated page by page as pages are read.
const (
	lookasideSlot  = 256
	lookasideSlots = 64
)

// memoryConfigErr says why SQLite kept its defaults (nil: it took the
// settings above). Only an open before this package's init could cause
// it; the node then runs as before, with more memory per object.
var memoryConfigErr error

func init() {
	if rc := C.duraConfigureMemory(lookasideSlot, lookasideSlots); rc != 0 {
		memoryConfigErr = fmt.Errorf("sqlite3_config: error %d (SQLite already initialized)", int(rc))
	}
}
