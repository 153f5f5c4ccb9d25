//go:build sqlite_fts5 || fts5

package index

// fts5Compiled reports whether go-sqlite3 was built with FTS5.
const fts5Compiled = true
