package index_test

import (
	"context"
	"fmt"
	"hash/fnv"
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

// TestShardedUnevenCounts: a capped count is split between the shards;
// when the matches sit mostly in one shard, the total below the cap must
// still be exact and a total above it capped.
func TestShardedUnevenCounts(t *testing.T) {
	t.Parallel()
	requireFTS5(t)
	ctx := context.Background()
	sharded, err := index.OpenSQLiteDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sharded.Close()
	shardOf := func(id string) int { // as Sharded does: FNV-1a of the id
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		return int(h.Sum32() % index.SQLiteShards)
	}
	// 7 matching documents in shard 0, 1 in shard 1.
	var docs []index.Document
	in := map[int]int{0: 7, 1: 1}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; in[0]+in[1] > 0; i++ {
		id := fmt.Sprintf("uneven%03d", i)
		if sh := shardOf(id); in[sh] > 0 {
			in[sh]--
			docs = append(docs, index.Document{Seq: int64(len(docs) + 1), ID: id, Date: base.Add(time.Duration(i) * time.Minute), Body: "skewed"})
		}
	}
	if err := sharded.Add(ctx, docs, int64(len(docs))); err != nil {
		t.Fatal(err)
	}
	q, err := query.Parse("skewed")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		limit, want int
		capped      bool
	}{
		{0, 8, false},  // exact count
		{10, 8, false}, // shard 0 passes its half (5): recounted
		{8, 8, false},
		{7, 7, true},
		{6, 6, true},
		{2, 2, true}, // caps of 1: shard 0 passes it, shard 1 holds exactly 1
	} {
		r, err := sharded.Search(ctx, q, index.Options{Limit: 3, CountTotal: true, CountLimit: c.limit})
		if err != nil {
			t.Fatal(err)
		}
		if r.Total != c.want || r.TotalCapped != c.capped || len(r.Hits) != 3 {
			t.Errorf("count limit %d: total %d capped %v (%d hits), want %d capped %v", c.limit, r.Total, r.TotalCapped, len(r.Hits), c.want, c.capped)
		}
	}
}
