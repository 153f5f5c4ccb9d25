package index

// FTS5Compiled reports whether this binary was built with SQLite's FTS5
// (the sqlite_fts5 build tag). Without it the index cannot open.
func FTS5Compiled() bool { return fts5Compiled }
