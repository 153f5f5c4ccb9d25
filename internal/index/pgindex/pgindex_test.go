package pgindex_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/index/indextest"
	"github.com/mailarc/mailarc/internal/index/pgindex"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
)

var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func open(t testing.TB, dsn string) *pgindex.Index {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ix, err := pgindex.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return ix
}

func TestContract(t *testing.T) {
	t.Parallel()
	c := pg.Get(t)
	var mu sync.Mutex
	dsns := map[*testing.T]string{}
	indextest.Run(t, func(t *testing.T) index.Index {
		mu.Lock()
		dsn, ok := dsns[t]
		mu.Unlock()
		if !ok {
			dsn = c.CreateDB(t)
			mu.Lock()
			dsns[t] = dsn
			mu.Unlock()
		}
		return open(t, dsn)
	})
}

func doc(seq int64, id, body string) index.Document {
	return index.Document{
		Seq: seq, ID: id, Date: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Minute),
		Size: 100, From: []string{"a@example.org"}, Body: body, Origins: []string{"smtp"},
	}
}

func mustSearch(t *testing.T, ix index.Index, q string) []string {
	t.Helper()
	pq, err := query.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ix.Search(context.Background(), pq, index.Options{Limit: 100000, CountTotal: true})
	if err != nil {
		t.Fatalf("Search(%q): %v", q, err)
	}
	if r.Total != len(r.Hits) {
		t.Errorf("Search(%q): Total %d, %d hits", q, r.Total, len(r.Hits))
	}
	var ids []string
	for _, h := range r.Hits {
		ids = append(ids, h.ID)
	}
	sort.Strings(ids)
	return ids
}

// TestTwoNodes: two Index instances (as on two mailarc nodes) on one
// database add overlapping batches concurrently; every document is stored
// once, both see all of them, and the watermark is one of the written ones.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).CreateDB(t)
	var nodes [2]*pgindex.Index
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Add(1)
		go func() { // open concurrently: migrations must not collide
			defer wg.Done()
			ix, err := pgindex.Open(context.Background(), dsn)
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			nodes[i] = ix
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, n := range nodes {
		t.Cleanup(func() { n.Close() })
	}
	const total, batch = 600, 25
	errs := make(chan error, 2)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Node 0 goes forwards, node 1 backwards: every batch overlaps
			// with the other node's work at some point.
			for b := 0; b < total/batch; b++ {
				start := b * batch
				if i == 1 {
					start = total - (b+1)*batch
				}
				var docs []index.Document
				for s := start; s < start+batch; s++ {
					docs = append(docs, doc(int64(s+1), fmt.Sprintf("m%04d", s+1), fmt.Sprintf("shared word%d", s+1)))
				}
				if err := n.Add(context.Background(), docs, int64(start+batch)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Add: %v", err)
	}
	for i, n := range nodes {
		if c, err := n.Count(context.Background()); err != nil || c != total {
			t.Errorf("node %d: Count = %d, %v; want %d", i, c, err, total)
		}
		if got := mustSearch(t, n, "shared"); len(got) != total {
			t.Errorf("node %d: %d hits for shared, want %d", i, len(got), total)
		}
		if got := mustSearch(t, n, "word17"); !slices.Equal(got, []string{"m0017"}) {
			t.Errorf("node %d: word17 = %v", i, got)
		}
		if w, err := n.Watermark(context.Background()); err != nil || w <= 0 || w > total || w%batch != 0 {
			t.Errorf("node %d: watermark %d, %v", i, w, err)
		}
	}
}

// TestReopenKeepsSchema: opening an existing database applies no migration
// twice and keeps the data.
func TestReopenKeepsSchema(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).CreateDB(t)
	ix := open(t, dsn)
	if err := ix.Add(context.Background(), []index.Document{doc(1, "a", "kept")}, 1); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	ix = open(t, dsn)
	defer ix.Close()
	if got := mustSearch(t, ix, "kept"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after reopen: %v", got)
	}
}

func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pgindex.Open(ctx, "host=/nonexistent-socket-dir port=1 user=x dbname=y connect_timeout=2"); err == nil {
		t.Fatal("Open with an unreachable server succeeded")
	}
	if _, err := pgindex.Open(ctx, "::not a dsn::"); err == nil {
		t.Fatal("Open with a malformed DSN succeeded")
	}
}

// TestLongDocument: a body beyond PostgreSQL's position and size limits is
// stored; its words stay searchable.
func TestLongDocument(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).CreateDB(t)
	ix := open(t, dsn)
	defer ix.Close()
	var body []byte
	for i := 0; len(body) < 3<<20; i++ {
		body = fmt.Appendf(body, "tok%x filler ", i)
	}
	body = append(body, " finalword"...)
	long := doc(1, "long", string(body))
	long.Subject = "long subject phrase"
	// Not only the body: a huge subject must not make Add fail either.
	huge := doc(2, "huge", "small body")
	huge.Subject = string(body)
	if err := ix.Add(context.Background(), []index.Document{long, huge}, 1); err != nil {
		t.Fatalf("Add long documents: %v", err)
	}
	for _, q := range []string{"tok0", `"long subject phrase"`, "body:filler", "subject:long", `"tok1 filler tok2"`} {
		if got := mustSearch(t, ix, q); !slices.Contains(got, "long") {
			t.Errorf("%s: %v, want long among them", q, got)
		}
	}
	// Words first occurring beyond the size budget are not indexed.
	if got := mustSearch(t, ix, "finalword"); len(got) != 0 {
		t.Errorf("finalword: %v, want none (beyond the tsvector budget)", got)
	}
	for _, q := range []string{"subject:tok0", "subject:filler", `"small body"`} {
		if got := mustSearch(t, ix, q); !slices.Equal(got, []string{"huge"}) {
			t.Errorf("%s: %v, want [huge]", q, got)
		}
	}
}

// FuzzAddSearch: any document text and any parsable query give a valid
// tsvector and tsquery (PostgreSQL accepts them), and a document always
// matches its own subject as a phrase.
func FuzzAddSearch(f *testing.F) {
	for _, s := range [][2]string{
		{"hello world", "hello"},
		{"東京都庁 で 会議", "京都 OR 都*"},
		{"café 'quoted' back\\slash", `"CAFE quoted" -back*`},
		{"a:b !x & y | z <-> w", `from:a@b subject:"x y"* origin:peer:arc-b has:attachment size>1k`},
		{"\xff\x00\uE000 bogus", "after:2024-01-01 before:2025-01-01 (a OR -b)"},
		{strings.Repeat("long", 100), "long*"},
	} {
		f.Add(s[0], s[1])
	}
	ix := open(f, pg.Get(f).CreateDB(f))
	f.Cleanup(func() { ix.Close() })
	f.Fuzz(func(t *testing.T, text, qs string) {
		ctx := context.Background()
		d := doc(1, "fuzz", text)
		d.Subject = text
		d.From = []string{text}
		d.AttachmentNames = []string{text}
		d.Origins = []string{text}
		if err := ix.Add(ctx, []index.Document{d}, 1); err != nil {
			t.Fatalf("Add(%q): %v", text, err)
		}
		if q, err := query.Parse(qs); err == nil {
			if _, err := ix.Search(ctx, q, index.Options{Sort: index.SortRelevance, CountTotal: true, Addresses: []string{text}}); err != nil {
				t.Fatalf("Search(%q): %v", qs, err)
			}
			if _, err := ix.Matches(ctx, q, []string{"fuzz"}); err != nil {
				t.Fatalf("Matches(%q): %v", qs, err)
			}
		}
		q := &query.Query{Root: &query.Term{Field: query.FieldSubject, Text: text, Phrase: true}}
		m, err := ix.Matches(ctx, q, []string{"fuzz"})
		if err != nil {
			t.Fatalf("Matches(subject phrase %q): %v", text, err)
		}
		// Texts whose folded tokens run past the size limits lose
		// positions; otherwise the subject must match itself.
		if len(text) < 1000 && len(m) != 1 {
			t.Errorf("subject %q does not match itself as a phrase", text)
		}
	})
}

// TestIndexingLead: one node leads indexing at a time; the lead passes on
// release and when the leader's connection dies.
func TestIndexingLead(t *testing.T) {
	dsn := pg.Get(t).CreateDB(t)
	a, b := open(t, dsn), open(t, dsn)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	releaseA, lostA, err := a.LeadIndexing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if _, _, err := b.LeadIndexing(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second node took the lead while the first held it: %v", err)
	}
	cancel()
	got := make(chan func(), 1)
	go func() {
		release, _, err := b.LeadIndexing(ctx)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- release
	}()
	releaseA()
	select {
	case <-lostA:
		t.Fatal("released lead reported as lost")
	default:
	}
	var releaseB func()
	select {
	case releaseB = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the lead did not pass to the second node after release")
	}
	if releaseB == nil {
		t.FailNow()
	}
	releaseB()

	// A leader whose session dies loses the lead, and another takes it.
	releaseA, lost, err := a.LeadIndexing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseA() // a lost lead is still released (returns its connection)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("a leader whose connection was terminated did not notice")
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	release, _, err := b.LeadIndexing(tctx)
	if err != nil {
		t.Fatalf("lead not available after the leader's session died: %v", err)
	}
	release()
}
