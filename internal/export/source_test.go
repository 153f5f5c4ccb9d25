package export

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

type feed struct{ arch *archive.Archive }

func (f feed) ChangesAfter(ctx context.Context, after int64, limit int) ([]index.Change, error) {
	ms, err := f.arch.Catalog().ChangedAfter(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]index.Change, len(ms))
	for i, m := range ms {
		out[i] = index.Change{MSeq: m.MSeq, Seq: m.Seq, ID: m.ID, Date: m.Date, Arrival: m.Arrival, Size: m.Size,
			Origins: m.Origins, MailFrom: m.MailFrom, RcptTo: m.RcptTo}
	}
	return out, nil
}

func (f feed) Raw(ctx context.Context, id string) ([]byte, error) { return f.arch.Raw(ctx, id) }

// TestIndexSourceCursor pages through many messages sharing a second with
// a tiny page: every message exactly once, in date order, scoped.
func TestIndexSourceCursor(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5")
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	st, err := store.OpenLocal(filepath.Join(dir, "store"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	arch := archive.New(cat, st, archive.Options{})
	defer arch.Close(ctx)
	idx, err := index.OpenSQLite(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	want := map[string]bool{}
	mine := map[string]bool{}
	for i := range 40 {
		from := "other@corp.example"
		if i%4 == 0 {
			from = "me@corp.example"
		}
		raw := fmt.Sprintf("From: %s\r\nSubject: n%d\r\nDate: Mon, 2 Mar 2020 10:00:%02d +0000\r\n\r\ncommon\r\n", from, i, i/9)
		r, err := arch.Ingest(ctx, []byte(raw), archive.Origin{Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		want[r.ID] = true
		if i%4 == 0 {
			mine[r.ID] = true
		}
	}
	if err := index.NewIndexer(idx, feed{arch}, index.IndexerOptions{}).CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	q, _ := query.Parse("common")
	for name, tc := range map[string]struct {
		addrs []string
		want  map[string]bool
	}{"all": {nil, want}, "scoped": {[]string{"me@corp.example"}, mine}} {
		for _, page := range []int{1, 3, 9, 500} {
			src := &IndexSource{Index: idx, Catalog: cat, RawFunc: arch.Raw, Query: q, Addresses: tc.addrs, PageSize: page}
			got := map[string]bool{}
			var last Meta
			err := src.Each(ctx, func(m Meta) error {
				if got[m.ID] {
					return fmt.Errorf("%s twice", m.ID)
				}
				if m.Date.Before(last.Date) {
					return fmt.Errorf("out of date order")
				}
				got[m.ID], last = true, m
				return nil
			})
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("%s page %d: %v, %d of %d", name, page, err, len(got), len(tc.want))
			}
			for id := range tc.want {
				if !got[id] {
					t.Fatalf("%s page %d: %s missing", name, page, id)
				}
			}
		}
	}
}
