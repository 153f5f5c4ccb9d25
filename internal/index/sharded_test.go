package index_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// TestShardedDeepPages: pages far past the first thousand hits (which the
// sharded index reaches in keyset steps) and their totals are the same as
// one index's, in both date orders, with and without a keyset cursor and
// a count cap, right up to and past the last match.
func TestShardedDeepPages(t *testing.T) {
	t.Parallel()
	requireFTS5(t)
	ctx := context.Background()
	dir := t.TempDir()
	one, err := index.OpenSQLite(filepath.Join(dir, "one.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	sharded, err := index.OpenSQLiteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sharded.Close()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var docs []index.Document
	for i := range 2600 {
		body := "deep"
		if i%3 == 0 {
			body += " third"
		}
		// Runs of messages share a second, so pages cut through equal dates.
		docs = append(docs, index.Document{Seq: int64(i + 1), ID: fmt.Sprintf("m%04d", i), Date: base.Add(time.Duration(i/4) * time.Minute), Body: body})
	}
	for _, ix := range []index.Index{one, sharded} {
		if err := ix.Add(ctx, docs, 2600); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(r index.Result) []string {
		out := []string{}
		for _, h := range r.Hits {
			out = append(out, h.ID)
		}
		return out
	}
	for _, qs := range []string{"deep", "third"} {
		q, err := query.Parse(qs)
		if err != nil {
			t.Fatal(err)
		}
		for _, sort := range []index.Sort{index.SortDateDesc, index.SortDateAsc} {
			for _, off := range []int{999, 1000, 1001, 1500, 2002, 2599, 2600, 5000} {
				for _, capped := range []int{0, 1200} {
					opt := index.Options{Limit: 7, Offset: off, Sort: sort, CountTotal: true, CountLimit: capped}
					want, err := one.Search(ctx, q, opt)
					if err != nil {
						t.Fatal(err)
					}
					got, err := sharded.Search(ctx, q, opt)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(ids(got), ids(want)) || got.Total != want.Total || got.TotalCapped != want.TotalCapped {
						t.Errorf("%q sort %d offset %d cap %d: sharded %v total %d/%v, one index %v total %d/%v",
							qs, sort, off, capped, ids(got), got.Total, got.TotalCapped, ids(want), want.Total, want.TotalCapped)
					}
				}
			}
			// A deep offset after a keyset cursor.
			first, err := sharded.Search(ctx, q, index.Options{Limit: 10, Sort: sort})
			if err != nil || len(first.Hits) != 10 {
				t.Fatalf("first page: %v, %v", first, err)
			}
			cur := first.Hits[9]
			deep, err := sharded.Search(ctx, q, index.Options{Limit: 5, Offset: 1100, Sort: sort, After: &cur})
			if err != nil {
				t.Fatal(err)
			}
			// The hits after the cursor, 1100 on: compare with a walk of plain pages.
			var walk []string
			after := &cur
			for len(walk) < 1105 {
				r, err := sharded.Search(ctx, q, index.Options{Limit: 500, Sort: sort, After: after})
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Hits) == 0 {
					break
				}
				walk = append(walk, ids(r)...)
				h := r.Hits[len(r.Hits)-1]
				after = &h
			}
			var want []string
			if len(walk) > 1100 {
				want = walk[1100:min(1105, len(walk))]
			}
			if got := ids(deep); !slices.Equal(got, want) {
				t.Errorf("%q sort %d: offset 1100 after the 10th hit = %v, want %v", qs, sort, got, want)
			}
		}
	}
}
