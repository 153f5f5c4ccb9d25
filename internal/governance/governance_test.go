package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
)

// now is the fixed clock of these tests.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	t    *testing.T
	cat  *catalog.Catalog
	st   *store.Local
	arch *archive.Archive
	idx  *index.SQLite
	ixr  *index.Indexer
	aud  *audit.Log
	gov  *Service
}

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

// pg is the PostgreSQL cluster of this package's tests, started on first
// use: the catalog-backed tests run on SQLite and on PostgreSQL catalogs
// (the full-text index stays SQLite here).
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func newEnv(t *testing.T, b catalogtest.Backend) *env {
	t.Helper()
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5")
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{t: t}
	var err error
	e.cat = b.New(t) // closed by its own cleanup, after the one below
	if e.st, err = store.OpenLocal(filepath.Join(dir, "store"), store.LocalOptions{}); err != nil {
		t.Fatal(err)
	}
	e.arch = archive.New(e.cat, e.st, archive.Options{})
	if e.idx, err = index.OpenSQLite(filepath.Join(dir, "index.db")); err != nil {
		t.Fatal(err)
	}
	e.ixr = index.NewIndexer(e.idx, feed{e.arch}, index.IndexerOptions{})
	if e.aud, err = audit.Open(ctx, e.cat, audit.Options{}); err != nil {
		t.Fatal(err)
	}
	if e.gov, err = New(ctx, e.cat, e.idx, e.st, Options{Audit: e.aud, Now: func() time.Time { return testNow }, BatchSize: 3,
		Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, err := range []error{e.arch.Close(ctx), e.aud.Close(ctx), e.idx.Close(), e.st.Close()} {
			if err != nil {
				t.Error(err)
			}
		}
	})
	return e
}

// add ingests a message dated daysAgo before testNow.
func (e *env) add(from, subject string, daysAgo int) string {
	e.t.Helper()
	d := testNow.AddDate(0, 0, -daysAgo).Format(time.RFC1123Z)
	raw := fmt.Sprintf("From: %s\r\nTo: bob@corp.example\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%d@x>\r\n\r\nbody of %s\r\n", from, subject, d, subject, daysAgo, subject)
	r, err := e.arch.Ingest(context.Background(), []byte(raw), archive.Origin{Source: "api"})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.ID
}

func (e *env) index() {
	e.t.Helper()
	if err := e.ixr.CatchUp(context.Background(), nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) setPolicy(r Retention) {
	e.t.Helper()
	if _, err := e.gov.SetRetention(context.Background(), "admin", r); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dry() RunResult {
	e.t.Helper()
	res, err := e.gov.DryRun(context.Background(), "admin")
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) exists(id string) bool {
	e.t.Helper()
	_, err := e.arch.Get(context.Background(), id)
	if err != nil && !errors.Is(err, archive.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

func TestLongestMatchWinsAndConfirm(t *testing.T) {
	catalogtest.ForEach(t, &pg, testLongestMatchWinsAndConfirm)
}

func testLongestMatchWinsAndConfirm(t *testing.T, be catalogtest.Backend) {
	e := newEnv(t, be)
	ctx := context.Background()
	short := e.add("a@x.example", "routine", 60)     // 30d policy: expired
	both := e.add("a@x.example", "keepme", 60)       // 30d and 7y: longest wins, kept
	old := e.add("c@y.example", "other", 800)        // default 1y: expired
	young := e.add("c@y.example", "younger", 30)     // default 1y: kept
	forever := e.add("legal@x.example", "deal", 900) // forever policy: kept
	e.index()
	e.setPolicy(Retention{Default: "1y", Policies: []Policy{
		{Name: "noise", Query: "from:a@x.example", Keep: "30d"},
		{Name: "keep", Query: "subject:keepme", Keep: "7y"},
		{Name: "legal", Query: "from:legal@x.example", Keep: "forever"},
	}})
	res := e.dry()
	if res.WouldPurge != 2 || res.Held != 0 || res.Pending != 0 {
		t.Fatalf("dry run: %+v", res)
	}
	slices.Sort(res.Samples)
	want := []string{short, old}
	slices.Sort(want)
	if !slices.Equal(res.Samples, want) {
		t.Fatalf("samples %v, want %v", res.Samples, want)
	}
	// Nothing happened.
	for _, id := range []string{short, both, old, young, forever} {
		if !e.exists(id) {
			t.Fatalf("dry run purged %s", id)
		}
	}
	var ce *ConfirmError
	if _, err := e.gov.Run(ctx, "admin", 1); !errors.As(err, &ce) || ce.Count != 2 {
		t.Fatalf("wrong confirm: %v", err)
	}
	if !e.exists(short) {
		t.Fatal("refused run purged")
	}
	res, err := e.gov.Run(ctx, "admin", 2)
	if err != nil || res.Purged != 2 {
		t.Fatalf("run: %+v %v", res, err)
	}
	for id, want := range map[string]bool{short: false, old: false, both: true, young: true, forever: true} {
		if e.exists(id) != want {
			t.Errorf("%s exists=%v, want %v", id, !want, want)
		}
	}
	if ok, _ := e.st.Has(ctx, short); ok {
		t.Error("blob still in store")
	}
	if r, _ := e.idx.Matches(ctx, nil, []string{short, old}); len(r) != 0 {
		t.Errorf("still indexed: %v", r)
	}
	// A purged message is not stored again: not even written to a pack
	// and deleted after.
	d := testNow.AddDate(0, 0, -60).Format(time.RFC1123Z)
	before, err := e.st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.arch.Ingest(ctx, []byte(fmt.Sprintf("From: a@x.example\r\nTo: bob@corp.example\r\nSubject: routine\r\nDate: %s\r\nMessage-ID: <routine.60@x>\r\n\r\nbody of routine\r\n", d)), archive.Origin{Source: "api"})
	if err != nil || r.ID != short || !r.Purged || e.exists(short) {
		t.Fatalf("re-ingest of a purged id: %+v %v", r, err)
	}
	if after, err := e.st.Stats(ctx); err != nil || after != before {
		t.Errorf("re-ingest of a purged id changed the store: %+v -> %+v (%v)", before, after, err)
	}
	// The purge is on record with its ids, and the chain verifies.
	es, err := e.aud.Query(ctx, audit.Filter{Action: audit.ActionPurge})
	if err != nil || len(es) == 0 {
		t.Fatalf("no purge audit entry: %v", err)
	}
	if rep, err := audit.Verify(ctx, e.cat); err != nil || !rep.OK() {
		t.Fatalf("audit verify: %+v %v", rep, err)
	}
}

func TestHoldsProtect(t *testing.T) { catalogtest.ForEach(t, &pg, testHoldsProtect) }

func testHoldsProtect(t *testing.T, be catalogtest.Backend) {
	e := newEnv(t, be)
	ctx := context.Background()
	held := e.add("exec@corp.example", "merger", 400)
	free := e.add("spam@junk.example", "offer", 400)
	dated := e.add("other@corp.example", "dated", 400)
	e.index()
	// A hold created before its mail arrives covers it too.
	if _, err := e.gov.CreateHold(ctx, "auditor", HoldSpec{Name: "case 1", Query: "from:exec@corp.example OR from:late@corp.example"}); err != nil {
		t.Fatal(err)
	}
	after := testNow.AddDate(0, 0, -401).Format("2006-01-02")
	before := testNow.AddDate(0, 0, -399).Format("2006-01-02")
	if _, err := e.gov.CreateHold(ctx, "auditor", HoldSpec{Name: "range", Query: "from:other@corp.example", After: after, Before: before}); err != nil {
		t.Fatal(err)
	}
	late := e.add("late@corp.example", "arrived later", 500)
	e.index()
	e.setPolicy(Retention{Default: "30d"})
	res := e.dry()
	if res.WouldPurge != 1 || res.Held != 3 || res.Samples[0] != free {
		t.Fatalf("dry run: %+v", res)
	}
	if res, err := e.gov.Run(ctx, "admin", 1); err != nil || res.Purged != 1 || res.Held != 3 {
		t.Fatalf("run: %+v %v", res, err)
	}
	for id, want := range map[string]bool{held: true, late: true, dated: true, free: false} {
		if e.exists(id) != want {
			t.Errorf("%s exists=%v, want %v", id, !want, want)
		}
	}
	// A hold whose date range does not cover the message does not hold it.
	hs, err := e.gov.Holds(ctx, false)
	if err != nil || len(hs) != 2 {
		t.Fatalf("holds: %v %v", hs, err)
	}
	for _, h := range hs {
		page, err := e.gov.HoldMessages(ctx, h.ID, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"case 1": 2, "range": 1}[h.Name]
		if page.Total != want || len(page.Hits) != want {
			t.Fatalf("hold %s covers %d, want %d", h.Name, page.Total, want)
		}
	}
	// Release: mail is purged by the next confirmed run.
	for _, h := range hs {
		if err := e.gov.ReleaseHold(ctx, "admin", h.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.gov.ReleaseHold(ctx, "admin", hs[0].ID); !errors.Is(err, ErrReleased) {
		t.Fatalf("double release: %v", err)
	}
	if res, err := e.gov.Run(ctx, "admin", 3); err != nil || res.Purged != 3 {
		t.Fatalf("run after release: %+v %v", res, err)
	}
	if e.exists(held) {
		t.Fatal("released hold still protects")
	}
}

func TestHoldExpiry(t *testing.T) { catalogtest.ForEach(t, &pg, testHoldExpiry) }

func testHoldExpiry(t *testing.T, be catalogtest.Backend) {
	e := newEnv(t, be)
	ctx := context.Background()
	e.add("x@corp.example", "m", 400)
	e.index()
	if _, err := e.gov.CreateHold(ctx, "a", HoldSpec{Name: "expired", Query: "", Expires: testNow.AddDate(0, 0, -1).Format("2006-01-02")}); err != nil {
		t.Fatal(err)
	}
	e.setPolicy(Retention{Default: "1y"})
	if res := e.dry(); res.WouldPurge != 1 || res.Held != 0 {
		t.Fatalf("expired hold still holds: %+v", res)
	}
	if _, err := e.gov.CreateHold(ctx, "a", HoldSpec{Name: "everything", Query: ""}); err != nil {
		t.Fatal(err)
	}
	if res := e.dry(); res.WouldPurge != 0 || res.Held != 1 {
		t.Fatalf("empty-query hold must hold everything: %+v", res)
	}
}

func TestUnindexedNotPurged(t *testing.T) { catalogtest.ForEach(t, &pg, testUnindexedNotPurged) }

func testUnindexedNotPurged(t *testing.T, be catalogtest.Backend) {
	e := newEnv(t, be)
	ctx := context.Background()
	e.setPolicy(Retention{Default: "30d"})
	id := e.add("x@corp.example", "not yet indexed", 400)
	res := e.dry()
	if res.WouldPurge != 0 || res.Pending != 1 {
		t.Fatalf("unindexed: %+v", res)
	}
	if res, err := e.gov.Run(ctx, "admin", 0); err != nil || res.Purged != 0 || !e.exists(id) {
		t.Fatalf("run purged an unindexed message: %+v %v", res, err)
	}
	e.index()
	// New envelope metadata not yet indexed: pending again (a hold on the
	// new recipient could match once indexed).
	d := testNow.AddDate(0, 0, -400).Format(time.RFC1123Z)
	raw := fmt.Sprintf("From: x@corp.example\r\nTo: bob@corp.example\r\nSubject: not yet indexed\r\nDate: %s\r\nMessage-ID: <not yet indexed.400@x>\r\n\r\nbody of not yet indexed\r\n", d)
	if _, err := e.arch.Ingest(ctx, []byte(raw), archive.Origin{Source: "smtp", RcptTo: []string{"new@corp.example"}}); err != nil {
		t.Fatal(err)
	}
	if res := e.dry(); res.Pending != 1 {
		t.Fatalf("metadata change not pending: %+v", res)
	}
	e.index()
	if res := e.dry(); res.WouldPurge != 1 {
		t.Fatalf("after indexing: %+v", res)
	}
}

func TestScheduledNeedsConfirmation(t *testing.T) {
	catalogtest.ForEach(t, &pg, testScheduledNeedsConfirmation)
}

func testScheduledNeedsConfirmation(t *testing.T, be catalogtest.Backend) {
	e := newEnv(t, be)
	ctx := context.Background()
	a := e.add("x@corp.example", "a", 400)
	e.index()
	e.setPolicy(Retention{Default: "1y"})
	res, err := e.gov.Scheduled(ctx)
	if err != nil || !res.AwaitingConfirmation || res.Purged != 0 || res.WouldPurge != 1 || !e.exists(a) {
		t.Fatalf("unconfirmed scheduled sweep: %+v %v", res, err)
	}
	if _, err := e.gov.Run(ctx, "admin", 1); err != nil {
		t.Fatal(err)
	}
	b := e.add("x@corp.example", "b", 500)
	e.index()
	if res, err := e.gov.Scheduled(ctx); err != nil || res.Purged != 1 || e.exists(b) {
		t.Fatalf("confirmed scheduled sweep: %+v %v", res, err)
	}
	// A new version needs a new confirmation.
	e.setPolicy(Retention{Default: "6m"})
	c := e.add("x@corp.example", "c", 300)
	e.index()
	if res, err := e.gov.Scheduled(ctx); err != nil || !res.AwaitingConfirmation || !e.exists(c) {
		t.Fatalf("changed policy purged without confirmation: %+v %v", res, err)
	}
}

func TestValidation(t *testing.T) {
	bad := []Retention{
		{Default: "5x"},
		{Default: "-3d"},
		{Default: "forever", Policies: []Policy{{Name: "", Query: "a", Keep: "1d"}}},
		{Default: "forever", Policies: []Policy{{Name: "a", Query: "(", Keep: "1d"}}},
		{Default: "forever", Policies: []Policy{{Name: "a", Query: "x", Keep: "0d"}}},
		{Default: "forever", Policies: []Policy{{Name: "a", Query: "x", Keep: ""}}},
		{Default: "forever", Policies: []Policy{{Name: "a", Query: "x", Keep: "1d"}, {Name: "a", Query: "y", Keep: "1d"}}},
		{Default: "forever", Policies: []Policy{{Name: "a", Query: "", Keep: "1d"}}},
		{Default: "100000y"},
	}
	for _, r := range bad {
		var fe *FieldError
		if _, err := r.Validate(); !errors.As(err, &fe) {
			t.Errorf("%+v: want a field error, got %v", r, err)
		}
	}
	out, err := Retention{Default: "", Policies: []Policy{{Name: "n", Query: "from:a", Keep: "7Y"}}}.Validate()
	if err != nil || out.Default != "forever" || out.Policies[0].Keep != "7y" {
		t.Fatalf("normalise: %+v %v", out, err)
	}
}

func TestKeepExpiry(t *testing.T) {
	d := time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
	for s, want := range map[string]time.Time{
		"30d": d.AddDate(0, 0, 30), "2w": d.AddDate(0, 0, 14), "1m": d.AddDate(0, 1, 0), "7y": d.AddDate(7, 0, 0),
	} {
		k, err := ParseKeep(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := k.Expiry(d); !ok || !got.Equal(want) {
			t.Errorf("%s: %v", s, got)
		}
	}
	if k, _ := ParseKeep("forever"); !k.Forever() {
		t.Error("forever")
	}
}

func FuzzParseKeep(f *testing.F) {
	for _, s := range []string{"30d", "6m", "7y", "forever", "", "x", "9999999999999999999d", "-1d", "+1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeep(s)
		if err != nil {
			return
		}
		k2, err := ParseKeep(k.String())
		if err != nil || k2 != k {
			t.Fatalf("%q -> %v -> %v %v", s, k, k2, err)
		}
		k.Expiry(time.Now())
	})
}
