package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/testutil"
)

// recordingIndex records the options of every search.
type recordingIndex struct {
	index.Index
	mu   sync.Mutex
	opts []index.Options
}

func (r *recordingIndex) Search(ctx context.Context, q *query.Query, opt index.Options) (index.Result, error) {
	r.mu.Lock()
	r.opts = append(r.opts, opt)
	r.mu.Unlock()
	return r.Index.Search(ctx, q, opt)
}

// sameSecondSource builds a catalog and an index of n small messages that
// all carry the same date (to the second), without a store: RawFunc
// regenerates a message from its id.
func sameSecondSource(tb testing.TB, n int) (*IndexSource, *recordingIndex) {
	tb.Helper()
	testutil.Require(tb, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5")
	ctx := context.Background()
	dir := tb.TempDir()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cat.Close() })
	idx, err := index.OpenSQLite(filepath.Join(dir, "index.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { idx.Close() })
	date := time.Date(2021, 6, 1, 12, 0, 0, 0, time.UTC)
	gen := func(i int) []byte {
		return fmt.Appendf(nil, "From: s%d@corp.example\r\nTo: r@corp.example\r\nSubject: burst %d\r\nDate: Tue, 1 Jun 2021 12:00:00 +0000\r\n\r\nburst body %d\r\n", i, i, i)
	}
	pos := make(map[string]int, n)
	const batch = 2000
	for start := 0; start < n; start += batch {
		var items []catalog.NewMessage
		for i := start; i < min(start+batch, n); i++ {
			raw := gen(i)
			sum := sha256.Sum256(raw)
			id := hex.EncodeToString(sum[:])
			pos[id] = i
			items = append(items, catalog.NewMessage{ID: id, Date: date, DateSource: "header", Arrival: date, Size: int64(len(raw)),
				From: fmt.Sprintf("s%d@corp.example", i), To: []string{"r@corp.example"}, Subject: fmt.Sprintf("burst %d", i), Origin: "import"})
		}
		res, err := cat.Commit(ctx, items)
		if err != nil {
			tb.Fatal(err)
		}
		docs := make([]index.Document, len(items))
		for k, m := range items {
			docs[k] = index.Document{Seq: res[k].Seq, ID: m.ID, Date: date, Size: m.Size, From: []string{m.From}, To: m.To,
				Subject: m.Subject, Body: "burst body", Origins: []string{"import"}}
		}
		if err := idx.Add(ctx, docs, res[len(res)-1].Seq); err != nil {
			tb.Fatal(err)
		}
	}
	rec := &recordingIndex{Index: idx}
	q, err := query.Parse("burst")
	if err != nil {
		tb.Fatal(err)
	}
	src := &IndexSource{Index: rec, Catalog: cat, Query: q, RawFunc: func(_ context.Context, id string) ([]byte, error) {
		i, ok := pos[id]
		if !ok {
			return nil, fmt.Errorf("no message %s", id)
		}
		return gen(i), nil
	}}
	return src, rec
}

// TestIndexSourceSameSecond exports 20,000 messages dated the same second:
// each exactly once, every index page asked by keyset (no offset), and the
// live heap does not grow with the number exported.
func TestIndexSourceSameSecond(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 messages: skipped with -short")
	}
	const n = 20000
	src, rec := sameSecondSource(t, n)
	src.PageSize = 500
	seen := make(map[string]bool, n)
	if err := src.Each(context.Background(), func(m Meta) error {
		if seen[m.ID] {
			return fmt.Errorf("%s exported twice", m.ID)
		}
		seen[m.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("exported %d of %d", len(seen), n)
	}
	if want := n/src.PageSize + 1; len(rec.opts) != want {
		t.Errorf("%d index searches, want %d pages", len(rec.opts), want)
	}
	for i, o := range rec.opts {
		if o.Offset != 0 || o.Limit != src.PageSize || (i > 0) != (o.After != nil) {
			t.Fatalf("search %d: offset %d, limit %d, after %v: want keyset pages", i, o.Offset, o.Limit, o.After)
		}
	}

	if raceEnabled {
		return // heap figures under the race detector mean nothing
	}
	// The whole export as mbox (manifest included) with the live heap
	// sampled along the way: it stays flat however far the export is.
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	count := 0
	sampled := &sampledSource{IndexSource: src, every: 1000, sample: func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
		count++
	}}
	c, err := WriteMbox(context.Background(), io.Discard, io.Discard, sampled, Custody{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Count != n || count < n/1000 {
		t.Fatalf("mbox export: %d messages, %d samples", c.Count, count)
	}
	growth := int64(peak) - int64(base)
	t.Logf("%d messages in one second: live heap growth %.2f MB", n, float64(growth)/(1<<20))
	// A page of ids and metadata is well under 1 MB; ids remembered per
	// exported message would be about 2.5 MB at this count.
	if growth > 2<<20 {
		t.Errorf("heap grew by %.2f MB exporting %d messages of one second", float64(growth)/(1<<20), n)
	}
}

// sampledSource calls sample every `every` messages of the wrapped source.
type sampledSource struct {
	*IndexSource
	every  int
	sample func()
}

func (s *sampledSource) Each(ctx context.Context, fn func(Meta) error) error {
	i := 0
	return s.IndexSource.Each(ctx, func(m Meta) error {
		if i%s.every == 0 {
			s.sample()
		}
		i++
		return fn(m)
	})
}

// BenchmarkIndexSource100k exports 100,000 messages of one second as mbox
// (opt-in: go test -tags sqlite_fts5 -run '^$' -bench IndexSource100k
// ./internal/export/). It reports the live heap growth.
func BenchmarkIndexSource100k(b *testing.B) {
	const n = 100000
	src, _ := sameSecondSource(b, n)
	b.ResetTimer()
	for range b.N {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var peak uint64
		sampled := &sampledSource{IndexSource: src, every: 5000, sample: func() {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}}
		c, err := WriteMbox(context.Background(), io.Discard, io.Discard, sampled, Custody{})
		if err != nil || c.Count != n {
			b.Fatalf("export: %d messages, %v", c.Count, err)
		}
		b.ReportMetric(float64(int64(peak)-int64(base))/(1<<20), "heapMB")
	}
}
