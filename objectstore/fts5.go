package objectstore

import "strings"

// FTS5, the full-text search of Cloudflare's SQLite, is compiled into the
// driver's SQLite only when the build takes the sqlite_fts5 tag (go-sqlite3
// has no other switch for it): the image (deploy/build-image.sh) and CI
// build with it; a plain "go run" or "go test" does not. FTS3 and FTS4 are
// in every build.

// fts5Hint is added to SQLite's "no such module: fts5" in a build without
// it, so the error says what to do.
const fts5Hint = " (this dura binary was built without FTS5: build it with -tags sqlite_fts5, as deploy/build-image.sh does; FTS3 and FTS4 are in every build)"

// withFTS5Hint adds fts5Hint to msg if SQLite is missing the module.
func withFTS5Hint(msg string) string {
	if strings.Contains(msg, "no such module: fts5") {
		return msg + fts5Hint
	}
	return msg
}
