package catalog_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
)

// TestIsTombstonedAcrossWriters: IsTombstoned skips its query while the
// catalog holds no tombstone, so every way a tombstone arrives must be
// seen: a Purge, a reopen of a catalog that has some, and rows copied in by
// WriteRows (mailarc migrate).
func TestIsTombstonedAcrossWriters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "catalog.db")
	c, err := catalog.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	const purged, other = "aa", "bb"
	if got, err := c.IsTombstoned(ctx, []string{purged, other}); err != nil || len(got) != 0 {
		t.Fatalf("fresh catalog: %v, %v", got, err)
	}
	if _, err := c.Purge(ctx, []string{purged}, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	want := func(c *catalog.Catalog, when string) {
		t.Helper()
		got, err := c.IsTombstoned(ctx, []string{purged, other})
		if err != nil || !got[purged] || got[other] {
			t.Fatalf("%s: IsTombstoned = %v, %v; want only %s", when, got, err, purged)
		}
	}
	want(c, "after Purge")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = catalog.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want(c, "after reopening")

	// Copy the tombstones into a fresh catalog, as mailarc migrate does.
	dst, err := catalog.Open(ctx, filepath.Join(dir, "copy.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	tables, err := c.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name != "tombstones" {
			continue
		}
		rows, err := c.ReadRows(ctx, tb, tb.Columns, nil, 100)
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.WriteRows(ctx, tb, tb.Columns, rows, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	want(dst, "after WriteRows")
}
