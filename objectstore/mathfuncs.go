package objectstore

// #cgo LDFLAGS: -lm
// int duraRegisterMath(void);
import "C"

import "fmt"

// mathErr says why SQLite's math functions (mathfuncs.c) could not be
// added to new connections; nil when they were.
var mathErr error

// registerMath makes every connection opened from now on have the math
// functions. sqlite3_auto_extension initializes SQLite, so this runs
// after configureMemory.
func registerMath() {
	if rc := C.duraRegisterMath(); rc != 0 {
		mathErr = fmt.Errorf("sqlite3_auto_extension: error %d", int(rc))
	}
}
