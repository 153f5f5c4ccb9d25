package index_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// TestAddWritesOneSegmentPerBatch checks that a batch whose dates run
// backwards (rowids follow dates) reaches FTS5 in ascending rowid order:
// FTS5 flushes a new segment whenever a rowid is lower than the one before,
// so written in feed order this batch would leave many segments (and cost
// the merger, and indexing, far more).
func TestAddWritesOneSegmentPerBatch(t *testing.T) {
	t.Parallel()
	requireFTS5(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := index.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	doc := func(n, seq int, word string) index.Document {
		return index.Document{
			Seq: int64(seq), ID: fmt.Sprintf("%064x", n), Date: base.Add(-time.Duration(n) * time.Hour),
			Size: 100, From: []string{"a@example.com"}, Subject: fmt.Sprintf("message %d", n),
			Body: "quarterly " + word,
		}
	}
	var docs []index.Document
	for n := range 200 {
		docs = append(docs, doc(n, n+1, "report"))
	}
	if err := ix.Add(ctx, docs, 200); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var segs int
	if err := db.QueryRow(`SELECT count(DISTINCT segid) FROM fts_idx`).Scan(&segs); err != nil {
		t.Fatal(err)
	}
	if segs != 1 {
		t.Errorf("one batch of 200 documents with descending dates left %d FTS5 segments, want 1", segs)
	}

	// A second batch re-indexes every other document with a new word (one
	// of them twice: the later copy wins) and adds new ones; all must be
	// findable exactly once.
	docs = docs[:0]
	for n := 0; n < 200; n += 2 {
		docs = append(docs, doc(n, n+1, "revised"))
	}
	docs = append(docs, doc(0, 1, "final"))
	for n := 200; n < 300; n++ {
		docs = append(docs, doc(n, n+1, "report"))
	}
	if err := ix.Add(ctx, docs, 300); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{"quarterly": 300, "report": 200, "revised": 99, "final": 1} {
		pq, err := query.Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		res, err := ix.Search(ctx, pq, index.Options{Limit: 1000, CountTotal: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != want || len(res.Hits) != want {
			t.Errorf("search %q: total %d, %d hits; want %d", q, res.Total, len(res.Hits), want)
		}
	}
	if n, err := ix.Count(ctx); err != nil || n != 300 {
		t.Errorf("Count = %d, %v; want 300", n, err)
	}
}
