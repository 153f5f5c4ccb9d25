package catalog_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mailarc/mailarc/internal/catalog"
)

// TestCopyPrimitives copies envelope rows (composite key) between two SQLite
// catalogs in small keyset batches and moves the feed head.
func TestCopyPrimitives(t *testing.T) {
	ctx := context.Background()
	src, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := src.Commit(ctx, []catalog.NewMessage{
		{ID: "aa", Size: 1, RcptTo: []string{"x@e", "y@e", "z@e"}, MailFrom: "f@e", Origin: "api"},
		{ID: "bb", Size: 2, RcptTo: []string{"x@e"}, Origin: "smtp"},
	}); err != nil {
		t.Fatal(err)
	}
	tabs, err := src.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var env catalog.Table
	for _, tb := range tabs {
		if tb.Name == "schema_migrations" {
			t.Fatal("Tables lists schema_migrations")
		}
		if tb.Name == "envelope" {
			env = tb
		}
	}
	if !reflect.DeepEqual(env.Key, []string{"seq", "kind", "addr"}) {
		t.Fatalf("envelope key %v", env.Key)
	}
	var after []any
	batches := 0
	for {
		rows, err := src.ReadRows(ctx, env, env.Columns, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		batches++
		if err := dst.WriteRows(ctx, env, env.Columns, rows, false, nil); err != nil {
			t.Fatal(err)
		}
		// Writing the same batch again changes nothing.
		if err := dst.WriteRows(ctx, env, env.Columns, rows, false, nil); err != nil {
			t.Fatal(err)
		}
		last := rows[len(rows)-1]
		after = []any{last[0], last[1], last[2]}
	}
	n, err := dst.CountRows(ctx, "envelope")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := src.CountRows(ctx, "envelope"); n != want || n != 5 || batches != 3 {
		t.Fatalf("copied %d of %d envelope rows in %d batches", n, want, batches)
	}
	if err := dst.SetFeedHead(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := dst.SetFeedHead(ctx, 3); err != nil { // never moves back
		t.Fatal(err)
	}
	if h, err := dst.Head(ctx); err != nil || h != 7 {
		t.Fatalf("head %d, %v; want 7", h, err)
	}
	res, err := dst.Commit(ctx, []catalog.NewMessage{{ID: "cc", Size: 1}})
	if err != nil || res[0].Seq != 8 {
		t.Fatalf("first seq after SetFeedHead: %+v, %v; want 8", res, err)
	}
}
