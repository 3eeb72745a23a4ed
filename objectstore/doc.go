// Package objectstore owns one durable object's SQLite database: opening it
// with Dura's pragmas, the SQL and KV APIs, the implicit event transaction
// with nested savepoints, the sandbox (authorizer and limits), size
// accounting, and export/import of the file.
//
// A Store is used by one event at a time; it is not safe for concurrent use
// except where a method says so (Export, Path, Close).
//
// Rows read and written. Every Cursor reports RowsRead, the number of rows
// the statement returned to the caller, and RowsWritten, the number of rows
// inserted, updated or deleted by the statement including rows changed by
// triggers and foreign-key actions (SQLite's total_changes delta). Rows that
// SQLite scanned internally without returning them are not counted.
//
// Memory. A node keeps thousands of stores open, so each asks SQLite for
// little up front (memory.go: a small lookaside pool, no bulk page-cache
// allocation), keeps its prepared statements itself (prepared.go) so that
// Release can give them and the page cache back between events, and
// finds the math functions in C, added to every connection by an auto
// extension (mathfuncs.c), rather than as Go callbacks per connection.
package objectstore
