// Package indextest is the contract test suite every index.Index
// implementation must pass. Its core is an exactness test: documents are
// generated with known words in known fields, random queries over every
// operator and field are run, and each result set is compared with a
// brute-force evaluator over the generated documents.
package indextest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// Run runs the contract suite. open must return an empty index the first
// time it is called with a given t, and reopen the same persisted index when
// called again with that t after the previous instance was closed. The
// suite closes every index it opens.
func Run(t *testing.T, open func(t *testing.T) index.Index) {
	t.Run("Exactness", func(t *testing.T) { t.Parallel(); testExactness(t, open) })
	t.Run("Sorting", func(t *testing.T) { t.Parallel(); testSorting(t, open) })
	t.Run("Relevance", func(t *testing.T) { t.Parallel(); testRelevance(t, open) })
	t.Run("Paging", func(t *testing.T) { t.Parallel(); testPaging(t, open) })
	t.Run("KeysetPaging", func(t *testing.T) { t.Parallel(); testKeysetPaging(t, open) })
	t.Run("Visibility", func(t *testing.T) { t.Parallel(); testVisibility(t, open) })
	t.Run("Folding", func(t *testing.T) { t.Parallel(); testFolding(t, open) })
	t.Run("CJK", func(t *testing.T) { t.Parallel(); testCJK(t, open) })
	t.Run("Addresses", func(t *testing.T) { t.Parallel(); testAddresses(t, open) })
	t.Run("Filters", func(t *testing.T) { t.Parallel(); testFilters(t, open) })
	t.Run("DeleteAndReplace", func(t *testing.T) { t.Parallel(); testDeleteReplace(t, open) })
	t.Run("WatermarkReopen", func(t *testing.T) { t.Parallel(); testWatermarkReopen(t, open) })
	t.Run("Reset", func(t *testing.T) { t.Parallel(); testReset(t, open) })
	t.Run("Concurrent", func(t *testing.T) { t.Parallel(); testConcurrent(t, open) })
	t.Run("SyntaxError", func(t *testing.T) { t.Parallel(); testSyntaxError(t) })
}

// opened wraps an index so that the suite closes it exactly once.
type opened struct {
	index.Index
	once sync.Once
	err  error
}

func (o *opened) Close() error {
	o.once.Do(func() { o.err = o.Index.Close() })
	return o.err
}

func openIdx(t *testing.T, open func(t *testing.T) index.Index) *opened {
	t.Helper()
	o := &opened{Index: open(t)}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return o
}

func parse(t *testing.T, s string) *query.Query {
	t.Helper()
	q, err := query.Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return q
}

func add(t *testing.T, ix index.Index, docs []index.Document, wm int64) {
	t.Helper()
	if err := ix.Add(context.Background(), docs, wm); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

func search(t *testing.T, ix index.Index, q string, opt index.Options) index.Result {
	t.Helper()
	r, err := ix.Search(context.Background(), parse(t, q), opt)
	if err != nil {
		t.Fatalf("Search(%q): %v", q, err)
	}
	return r
}

func ids(r index.Result) []string {
	out := make([]string, len(r.Hits))
	for i, h := range r.Hits {
		out[i] = h.ID
	}
	return out
}

func sortedIDs(r index.Result) []string {
	s := ids(r)
	sort.Strings(s)
	return s
}

// expectIDs checks that q finds exactly want (any order).
func expectIDs(t *testing.T, ix index.Index, q string, want ...string) {
	t.Helper()
	got := sortedIDs(search(t, ix, q, index.Options{Limit: 10000}))
	want = slices.Clone(want)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("Search(%q) = %v, want %v", q, got, want)
	}
}

var day0 = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

func doc(seq int64, id string, body string) index.Document {
	return index.Document{
		Seq: seq, ID: id, Date: day0.Add(time.Duration(seq) * time.Hour), Size: 1000 + seq,
		From: []string{"sender@example.org"}, To: []string{"rcpt@example.org"},
		Subject: "subject " + id, Body: body, Origins: []string{"import"},
	}
}

func testSorting(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	// Inserted out of date order; two share a second (tie broken by seq).
	dates := []time.Time{day0.Add(5 * time.Hour), day0.Add(-48 * time.Hour), day0.Add(time.Hour), day0.Add(time.Hour), day0.Add(200 * 24 * time.Hour)}
	var docs []index.Document
	for i, d := range dates {
		x := doc(int64(i+1), fmt.Sprintf("s%d", i), "common")
		x.Date = d
		docs = append(docs, x)
	}
	add(t, ix, docs, 5)
	wantAsc := []string{"s1", "s2", "s3", "s0", "s4"}
	for _, q := range []string{"common", ""} {
		asc := ids(search(t, ix, q, index.Options{Sort: index.SortDateAsc}))
		if !slices.Equal(asc, wantAsc) {
			t.Errorf("%q ascending = %v, want %v", q, asc, wantAsc)
		}
		desc := ids(search(t, ix, q, index.Options{}))
		wantDesc := slices.Clone(wantAsc)
		slices.Reverse(wantDesc)
		if !slices.Equal(desc, wantDesc) {
			t.Errorf("%q descending = %v, want %v", q, desc, wantDesc)
		}
	}
	r := search(t, ix, "common", index.Options{Limit: 1, Sort: index.SortDateAsc})
	if len(r.Hits) != 1 || !r.Hits[0].Date.Equal(dates[1]) || r.Hits[0].Seq != 2 || r.Hits[0].Size != 1002 {
		t.Errorf("first hit = %+v, want seq 2 dated %v size 1002", r.Hits, dates[1])
	}
}

func testRelevance(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	weak := doc(1, "weak", "a long body about many things and once zebra among them, plus filler words here")
	strong := doc(2, "strong", "zebra zebra zebra")
	strong.Subject = "zebra"
	strong.Date = day0.Add(-time.Hour) // older, so date order differs
	none := doc(3, "none", "nothing")
	add(t, ix, []index.Document{weak, strong, none}, 3)
	r := search(t, ix, "zebra", index.Options{Sort: index.SortRelevance})
	if got := ids(r); !slices.Equal(got, []string{"strong", "weak"}) {
		t.Fatalf("relevance order = %v, want [strong weak]", got)
	}
	if !(r.Hits[0].Rank > r.Hits[1].Rank) || r.Hits[1].Rank <= 0 {
		t.Errorf("ranks %v, %v: want positive and decreasing", r.Hits[0].Rank, r.Hits[1].Rank)
	}
	if got := ids(search(t, ix, "zebra", index.Options{})); !slices.Equal(got, []string{"weak", "strong"}) {
		t.Errorf("date order = %v, want [weak strong]", got)
	}
}

func testPaging(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	var docs []index.Document
	for i := 1; i <= 23; i++ {
		body := "page"
		if i%2 == 0 {
			body += " even"
		}
		docs = append(docs, doc(int64(i), fmt.Sprintf("p%02d", i), body))
	}
	add(t, ix, docs, 23)
	for _, q := range []string{"page", "", "-even", "page size<1100"} {
		all := search(t, ix, q, index.Options{Limit: 1000, CountTotal: true})
		if all.Total != len(all.Hits) {
			t.Errorf("%q: Total %d, %d hits", q, all.Total, len(all.Hits))
		}
		var paged []string
		for off := 0; ; off += 5 {
			r := search(t, ix, q, index.Options{Limit: 5, Offset: off, CountTotal: true})
			if r.Total != all.Total {
				t.Errorf("%q offset %d: Total %d, want %d", q, off, r.Total, all.Total)
			}
			if len(r.Hits) > 5 {
				t.Fatalf("%q: page of %d > limit 5", q, len(r.Hits))
			}
			if len(r.Hits) == 0 {
				break
			}
			paged = append(paged, ids(r)...)
		}
		if !slices.Equal(paged, ids(all)) {
			t.Errorf("%q: pages %v != all %v", q, paged, ids(all))
		}
	}
	if n := search(t, ix, "page", index.Options{CountTotal: true}).Total; n != 23 {
		t.Errorf("Total = %d, want 23", n)
	}
	if n := len(search(t, ix, "", index.Options{}).Hits); n != 23 {
		t.Errorf("default limit returned %d, want all 23", n)
	}
	if r := search(t, ix, "page", index.Options{}); r.Total != 0 {
		t.Errorf("Total without CountTotal = %d, want 0", r.Total)
	}
	// Capped counts: at most CountLimit, flagged only when more match.
	for _, c := range []struct {
		q          string
		limit      int
		want       int
		wantCapped bool
	}{
		{"page", 10, 10, true},
		{"page", 23, 23, false},
		{"page", 100, 23, false},
		{"even", 11, 11, false},
		{"even", 5, 5, true},
		{"", 22, 22, true},
		{"page -even size<1100", 3, 3, true},
	} {
		r := search(t, ix, c.q, index.Options{Limit: 2, CountTotal: true, CountLimit: c.limit})
		if r.Total != c.want || r.TotalCapped != c.wantCapped {
			t.Errorf("%q CountLimit %d: Total %d capped %v, want %d capped %v", c.q, c.limit, r.Total, r.TotalCapped, c.want, c.wantCapped)
		}
		if len(r.Hits) != 2 {
			t.Errorf("%q CountLimit %d: %d hits, want a page of 2", c.q, c.limit, len(r.Hits))
		}
	}
}

func testVisibility(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	mk := func(seq int64, id string, f func(d *index.Document)) index.Document {
		d := doc(seq, id, "visible")
		d.From, d.To = []string{"x@other.example"}, []string{"y@other.example"}
		f(&d)
		return d
	}
	add(t, ix, []index.Document{
		mk(1, "from", func(d *index.Document) { d.From = []string{"User <User@Corp.example>"} }),
		mk(2, "sender", func(d *index.Document) { d.Sender = []string{"user@corp.example"} }),
		mk(3, "to", func(d *index.Document) { d.To = []string{"a@b.example", "user@corp.example"} }),
		mk(4, "cc", func(d *index.Document) { d.Cc = []string{"user@corp.example"} }),
		mk(5, "bcc", func(d *index.Document) { d.Bcc = []string{"user@corp.example"} }),
		mk(6, "env", func(d *index.Document) { d.Envelope = []string{"user@corp.example"} }),
		mk(7, "other", func(d *index.Document) { d.Body = "visible user@corp.example mentioned in the body only" }),
		mk(8, "similar", func(d *index.Document) { d.To = []string{"user@corp.example.org", "xuser@corp.example"} }),
		mk(9, "second", func(d *index.Document) { d.Cc = []string{"boss@corp.example"} }),
	}, 9)
	all := []string{"from", "sender", "to", "cc", "bcc", "env"}
	for _, q := range []string{"visible", "", "-nothing", "visible OR size>1"} {
		got := sortedIDs(search(t, ix, q, index.Options{Addresses: []string{"user@corp.example"}, CountTotal: true}))
		want := slices.Clone(all)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%q visible to user = %v, want %v", q, got, want)
		}
		got = sortedIDs(search(t, ix, q, index.Options{Addresses: []string{"nobody@x.example", "boss@corp.example"}}))
		if !slices.Equal(got, []string{"second"}) {
			t.Errorf("%q visible to boss = %v, want [second]", q, got)
		}
		r := search(t, ix, q, index.Options{Addresses: []string{}, CountTotal: true})
		if len(r.Hits) != 0 || r.Total != 0 {
			t.Errorf("%q with empty address list = %v (total %d), want nothing", q, ids(r), r.Total)
		}
		// Only whole addresses count: a domain or local part sees nothing.
		r = search(t, ix, q, index.Options{Addresses: []string{"@corp.example", "user@", "@example"}, CountTotal: true})
		if len(r.Hits) != 0 || r.Total != 0 {
			t.Errorf("%q visible to a domain = %v (total %d), want nothing", q, ids(r), r.Total)
		}
	}
}

func testFolding(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	a := doc(1, "cafe", "Meeting at the CAFE tomorrow")
	b := doc(2, "accent", "Le café est fermé. Über naïve résumé")
	c := doc(3, "other", "cafeteria")
	add(t, ix, []index.Document{a, b, c}, 3)
	for _, q := range []string{"café", "CAFE", "cafe", "Café", "CAFÉ", `"le CAFE"`} {
		want := []string{"cafe", "accent"}
		if strings.HasPrefix(q, `"`) {
			want = []string{"accent"}
		}
		expectIDs(t, ix, q, want...)
	}
	expectIDs(t, ix, "uber NAIVE Resume ferme", "accent")
	expectIDs(t, ix, "meeting", "cafe")
	expectIDs(t, ix, "caf*", "cafe", "accent", "other")
	expectIDs(t, ix, "cafet*", "other")
	expectIDs(t, ix, "subject:CAFE", "cafe")
	expectIDs(t, ix, "re*", "accent")
}

func testCJK(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	jp := doc(1, "jp", "明日は東京都庁で会議があります。")
	jp.Subject = "会議のお知らせ meeting東京"
	zh := doc(2, "zh", "我们在北京开会")
	ko := doc(3, "ko", "서울에서 회의가 있습니다")
	mixed := doc(4, "mixed", "東京 大阪")
	add(t, ix, []index.Document{jp, zh, ko, mixed}, 4)
	expectIDs(t, ix, "東京", "jp", "mixed")
	expectIDs(t, ix, "東京都", "jp")
	expectIDs(t, ix, "都庁", "jp")
	expectIDs(t, ix, "京都", "jp") // substring of 東京都
	expectIDs(t, ix, "会議", "jp")
	expectIDs(t, ix, "subject:会議", "jp")
	expectIDs(t, ix, "subject:お知らせ", "jp")
	expectIDs(t, ix, "subject:meeting東京", "jp")
	expectIDs(t, ix, `"meeting 東京"`, "jp")
	expectIDs(t, ix, "庁", "jp")
	expectIDs(t, ix, "す", "jp")
	expectIDs(t, ix, "北京", "zh")
	expectIDs(t, ix, "开会", "zh")
	expectIDs(t, ix, "회의가", "ko")
	expectIDs(t, ix, "서울", "ko")
	expectIDs(t, ix, "大阪", "mixed")
	expectIDs(t, ix, `"東京 大阪"`, "mixed")
	expectIDs(t, ix, "京大") // spans two separate runs: no match
	expectIDs(t, ix, "東京 -大阪", "jp")
	expectIDs(t, ix, "上海")
}

func testAddresses(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	mk := func(seq int64, id string, from ...string) index.Document {
		d := doc(seq, id, "mail")
		d.From = from
		return d
	}
	add(t, ix, []index.Document{
		mk(1, "alice", "Alice Smith <alice@corp.example>"),
		mk(2, "alice-org", "alice@corp.example.org"),
		mk(3, "malice", "malice@corp.example"),
		mk(4, "sub", "Bob <bob@mail.corp.example>"),
		mk(5, "dotted", `"Jones, Alice" <alice.jones@other.example>`),
	}, 5)
	expectIDs(t, ix, "from:alice", "alice", "alice-org", "dotted")
	expectIDs(t, ix, "from:alice@corp.example", "alice")
	expectIDs(t, ix, "from:ALICE@Corp.Example", "alice")
	expectIDs(t, ix, "from:corp.example", "alice", "alice-org", "malice", "sub")
	expectIDs(t, ix, `from:"Alice Smith"`, "alice")
	expectIDs(t, ix, `from:"Smith Corp"`)
	expectIDs(t, ix, "from:@corp.example", "alice", "malice", "sub")
	expectIDs(t, ix, "from:alice@", "alice", "alice-org")
	expectIDs(t, ix, "from:alice.jones@other.example", "dotted")
	expectIDs(t, ix, "alice@corp.example", "alice")
	expectIDs(t, ix, "to:alice@corp.example")
	expectIDs(t, ix, "from:(alice@corp.example OR bob@mail.corp.example)", "alice", "sub")
	expectIDs(t, ix, "from:mali*", "malice")
}

func testFilters(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	mid := time.Date(2023, 5, 10, 0, 0, 0, 0, time.UTC)
	mk := func(seq int64, id string, date time.Time, size int64) index.Document {
		d := doc(seq, id, "filtered")
		d.Date, d.Size = date, size
		return d
	}
	a := mk(1, "before", mid.Add(-time.Second), 10<<10)
	b := mk(2, "midnight", mid, 10<<10+1)
	c := mk(3, "later", mid.Add(24*time.Hour), 2<<20)
	c.AttachmentNames = []string{"report.pdf"}
	c.AttachmentTypes = []string{"application/pdf"}
	c.Origins = []string{"peer:arc-b"}
	d := mk(4, "ancient", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	d.AttachmentTypes = []string{"image/png"}
	d.Origins = []string{"smtp", "imap:journal"}
	add(t, ix, []index.Document{a, b, c, d}, 4)
	expectIDs(t, ix, "after:2023-05-10", "midnight", "later")
	expectIDs(t, ix, "before:2023-05-10", "before", "ancient")
	expectIDs(t, ix, "after:2023-05-10 before:2023-05-11", "midnight")
	expectIDs(t, ix, "after:2023-05-11 before:2023-05-10")
	expectIDs(t, ix, "size>10k", "midnight", "later")
	expectIDs(t, ix, "size>=10k", "before", "midnight", "later")
	expectIDs(t, ix, "size<10k", "ancient")
	expectIDs(t, ix, "size<=2m -size<2m", "later")
	expectIDs(t, ix, "has:attachment", "later", "ancient")
	expectIDs(t, ix, "-has:attachment filtered", "before", "midnight")
	expectIDs(t, ix, "filename:pdf", "later")
	expectIDs(t, ix, "filename:report.pdf", "later")
	expectIDs(t, ix, "origin:peer", "later")
	expectIDs(t, ix, "origin:peer:arc-b", "later")
	expectIDs(t, ix, "origin:peer:arc")
	expectIDs(t, ix, "origin:imap", "ancient")
	expectIDs(t, ix, "origin:SMTP", "ancient")
	expectIDs(t, ix, "origin:import", "before", "midnight")
	expectIDs(t, ix, "has:attachment OR size>2m", "later", "ancient")
	expectIDs(t, ix, "before:2023-05-10 OR origin:peer", "before", "ancient", "later")
}

func testDeleteReplace(t *testing.T, open func(t *testing.T) index.Index) {
	ctx := context.Background()
	ix := openIdx(t, open)
	add(t, ix, []index.Document{doc(1, "a", "apple"), doc(2, "b", "apple banana"), doc(3, "c", "cherry")}, 3)
	if err := ix.Delete(ctx, []string{"b", "unknown"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	expectIDs(t, ix, "apple", "a")
	expectIDs(t, ix, "banana")
	if n, err := ix.Count(ctx); err != nil || n != 2 {
		t.Errorf("Count = %d, %v; want 2", n, err)
	}
	// Re-add a with new content and a new date; twice in one batch.
	a2 := doc(1, "a", "avocado")
	a2.Date = day0.Add(1000 * time.Hour)
	a3 := a2
	a3.Body = "apricot"
	add(t, ix, []index.Document{a2, a3}, 4)
	add(t, ix, []index.Document{a3}, 5)
	expectIDs(t, ix, "apple")
	expectIDs(t, ix, "avocado")
	expectIDs(t, ix, "apricot", "a")
	expectIDs(t, ix, "", "a", "c")
	if n, err := ix.Count(ctx); err != nil || n != 2 {
		t.Errorf("Count = %d, %v; want 2", n, err)
	}
	r := search(t, ix, "apricot", index.Options{})
	if len(r.Hits) != 1 || !r.Hits[0].Date.Equal(a3.Date) {
		t.Errorf("replaced hit = %+v, want date %v", r.Hits, a3.Date)
	}
	got, err := ix.Matches(ctx, parse(t, "apricot OR cherry"), []string{"a", "b", "c", "zzz"})
	sort.Strings(got)
	if err != nil || !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Matches = %v, %v; want [a c]", got, err)
	}
}

func testWatermarkReopen(t *testing.T, open func(t *testing.T) index.Index) {
	ctx := context.Background()
	ix := openIdx(t, open)
	if w, err := ix.Watermark(ctx); err != nil || w != 0 {
		t.Fatalf("new index watermark = %d, %v; want 0", w, err)
	}
	add(t, ix, []index.Document{doc(1, "a", "persist")}, 41)
	add(t, ix, nil, 42)
	if err := ix.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ix2 := openIdx(t, open)
	if w, err := ix2.Watermark(ctx); err != nil || w != 42 {
		t.Errorf("watermark after reopen = %d, %v; want 42", w, err)
	}
	expectIDs(t, ix2, "persist", "a")
	// A failed (cancelled) Add changes nothing, watermark included.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := ix2.Add(cctx, []index.Document{doc(2, "b", "persist")}, 99); err == nil {
		t.Errorf("Add with cancelled context succeeded")
	}
	if w, err := ix2.Watermark(ctx); err != nil || w != 42 {
		t.Errorf("watermark after failed Add = %d, %v; want 42", w, err)
	}
	expectIDs(t, ix2, "persist", "a")
}

func testReset(t *testing.T, open func(t *testing.T) index.Index) {
	ctx := context.Background()
	ix := openIdx(t, open)
	add(t, ix, []index.Document{doc(1, "a", "gone"), doc(2, "b", "gone")}, 7)
	if err := ix.Reset(ctx); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if n, err := ix.Count(ctx); err != nil || n != 0 {
		t.Errorf("Count after Reset = %d, %v", n, err)
	}
	if w, err := ix.Watermark(ctx); err != nil || w != 0 {
		t.Errorf("Watermark after Reset = %d, %v", w, err)
	}
	expectIDs(t, ix, "gone")
	expectIDs(t, ix, "")
	add(t, ix, []index.Document{doc(3, "c", "back")}, 1)
	expectIDs(t, ix, "back", "c")
}

func testConcurrent(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; b < 10; b++ {
			var docs []index.Document
			for i := 0; i < 20; i++ {
				n := int64(b*20 + i + 1)
				docs = append(docs, doc(n, fmt.Sprintf("c%d", n), "concurrent words"))
			}
			if err := ix.Add(ctx, docs, int64(b*20+20)); err != nil {
				errs <- err
				return
			}
		}
	}()
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q, _ := query.Parse("concurrent -nothing")
			for i := 0; i < 20; i++ {
				if _, err := ix.Search(ctx, q, index.Options{CountTotal: true}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if r := search(t, ix, "concurrent", index.Options{CountTotal: true}); r.Total != 200 {
		t.Errorf("Total = %d, want 200", r.Total)
	}
}

func testSyntaxError(t *testing.T) {
	_, err := query.Parse(`from:(alice OR`)
	var se *query.SyntaxError
	if !errors.As(err, &se) || se.Pos < 0 {
		t.Fatalf("Parse error = %v, want *query.SyntaxError with a position", err)
	}
	if !strings.Contains(err.Error(), "position") {
		t.Errorf("error %q does not name the position", err)
	}
}

// newRand returns a deterministic source for the generated tests.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// testKeysetPaging pages with Options.After through documents that mostly
// share one second (and seqs beyond the SQLite rowid's low bits): the pages
// equal the full listing in both date orders, with a query, a date range
// and a visibility restriction; documents added behind the cursor do not
// shift later pages.
func testKeysetPaging(t *testing.T, open func(t *testing.T) index.Index) {
	ix := openIdx(t, open)
	same := day0.Add(30 * 24 * time.Hour)
	var docs []index.Document
	for i := 1; i <= 40; i++ {
		// Seqs around 2^20, so a rowid built from low seq bits wraps.
		d := doc(int64(1<<20-20+i), fmt.Sprintf("k%02d", i), "keyset")
		d.Date = same
		if i%7 == 0 {
			d.Date = same.Add(time.Duration(i) * time.Second)
		}
		if i%3 == 0 {
			d.Body += " third"
			d.To = []string{"mine@corp.example"}
		}
		docs = append(docs, d)
	}
	// Pairs of documents whose seqs differ by 2^20 on the same date: their
	// first-choice rowids collide, so an index moves one of them (or,
	// sharded, two shards may hold the same key).
	for i := range 8 {
		for _, seq := range []int64{int64(100 + i), int64(100 + i + 1<<20)} {
			d := doc(seq, fmt.Sprintf("c%d-%d", i, seq), "keyset")
			d.Date = same.Add(-time.Hour)
			docs = append(docs, d)
		}
	}
	add(t, ix, docs, 1<<20+200)
	for _, c := range []struct {
		q     string
		addrs []string
	}{{"keyset", nil}, {"", nil}, {"-third", nil}, {"keyset after:2022-01-31", nil}, {"keyset", []string{"mine@corp.example"}}} {
		for _, order := range []index.Sort{index.SortDateAsc, index.SortDateDesc} {
			all := search(t, ix, c.q, index.Options{Limit: 1000, Sort: order, Addresses: c.addrs})
			if len(all.Hits) == 0 {
				t.Fatalf("%q: no hits", c.q)
			}
			var paged []string
			var after *index.Hit
			for range 100 {
				r := search(t, ix, c.q, index.Options{Limit: 3, Sort: order, Addresses: c.addrs, After: after})
				if len(r.Hits) == 0 {
					break
				}
				if len(r.Hits) > 3 {
					t.Fatalf("%q: page of %d > limit 3", c.q, len(r.Hits))
				}
				paged = append(paged, ids(r)...)
				last := r.Hits[len(r.Hits)-1]
				after = &last
			}
			if !slices.Equal(paged, ids(all)) {
				t.Errorf("%q sort %d: keyset pages %v != all %v", c.q, order, paged, ids(all))
			}
		}
	}
	// A document added before the cursor does not shift the next page.
	first := search(t, ix, "keyset", index.Options{Limit: 10, Sort: index.SortDateAsc})
	last := first.Hits[len(first.Hits)-1]
	want := ids(search(t, ix, "keyset", index.Options{Limit: 5, Sort: index.SortDateAsc, After: &last}))
	early := doc(1<<20+30, "early", "keyset")
	early.Date = day0
	add(t, ix, []index.Document{early}, 1<<20+30)
	if got := ids(search(t, ix, "keyset", index.Options{Limit: 5, Sort: index.SortDateAsc, After: &last})); !slices.Equal(got, want) {
		t.Errorf("after adding an earlier document: next page %v, want %v", got, want)
	}
	if _, err := ix.Search(context.Background(), parse(t, "keyset"), index.Options{Sort: index.SortRelevance, After: &last}); err == nil {
		t.Error("After with SortRelevance: no error")
	}
}
