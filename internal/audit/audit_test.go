package audit

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
)

// pg is the PostgreSQL cluster of this package's tests, started on first
// use: every test runs on a SQLite and on a PostgreSQL catalog.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func open(t *testing.T, b catalogtest.Backend) (*catalog.Catalog, *Log) {
	t.Helper()
	ctx := context.Background()
	cat := b.New(t) // closed by its cleanup, which runs after the log's
	l, err := Open(ctx, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return cat, l
}

func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.Record(context.Background(), fmt.Sprintf("user%d", i%3), ActionSearch, map[string]any{"query": fmt.Sprint("q", i), "total": i})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mustVerify(t *testing.T, cat *catalog.Catalog) Report {
	t.Helper()
	rep, err := Verify(context.Background(), cat)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// tamper runs SQL as an attacker with file access would: without the
// append-only triggers.
func tamper(t *testing.T, cat *catalog.Catalog, stmts ...string) {
	t.Helper()
	w, _ := cat.DB()
	drop := []string{`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`}
	if cat.Dialect() == catalog.Postgres {
		drop = []string{`DROP TRIGGER IF EXISTS audit_no_update ON audit`, `DROP TRIGGER IF EXISTS audit_no_delete ON audit`}
	}
	for _, s := range append(drop, stmts...) {
		if _, err := w.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestChainVerifies(t *testing.T) { catalogtest.ForEach(t, &pg, testChainVerifies) }

func testChainVerifies(t *testing.T, b catalogtest.Backend) {
	cat, l := open(t, b)
	if rep := mustVerify(t, cat); !rep.OK() || rep.Entries != 0 {
		t.Fatalf("empty log: %+v", rep)
	}
	fill(t, l, 50)
	rep := mustVerify(t, cat)
	if !rep.OK() || rep.Entries != 50 || rep.HeadSeq != 50 {
		t.Fatalf("intact log: %+v", rep)
	}
	es, err := l.Query(context.Background(), Filter{Limit: 5, User: "user1"})
	if err != nil || len(es) != 5 {
		t.Fatalf("query: %v %d", err, len(es))
	}
	for i, e := range es {
		if e.User != "user1" || e.Action != ActionSearch || (i > 0 && e.Seq >= es[i-1].Seq) {
			t.Fatalf("query order/filter: %+v", es)
		}
	}
	if es, _ := l.Query(context.Background(), Filter{Action: "sea*"}); len(es) != 50 {
		t.Fatalf("prefix filter: %d", len(es))
	}
	if es, _ := l.Query(context.Background(), Filter{Action: "export"}); len(es) != 0 {
		t.Fatalf("action filter: %d", len(es))
	}
	if es, _ := l.Query(context.Background(), Filter{After: time.Now().Add(time.Hour)}); len(es) != 0 {
		t.Fatalf("time filter: %d", len(es))
	}
}

func TestAppendOnlyTriggers(t *testing.T) { catalogtest.ForEach(t, &pg, testAppendOnlyTriggers) }

func testAppendOnlyTriggers(t *testing.T, b catalogtest.Backend) {
	cat, l := open(t, b)
	fill(t, l, 3)
	w, _ := cat.DB()
	if _, err := w.Exec(`UPDATE audit SET "user"='x' WHERE seq=1`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("update allowed: %v", err)
	}
	if _, err := w.Exec(`DELETE FROM audit WHERE seq=3`); err == nil {
		t.Fatal("delete allowed")
	}
}

func TestTamperDetected(t *testing.T) {
	cases := map[string][]string{
		"edited detail":    {`UPDATE audit SET detail='{"query":"innocent"}' WHERE seq=5`},
		"edited user":      {`UPDATE audit SET "user"='nobody' WHERE seq=1`},
		"deleted middle":   {`DELETE FROM audit WHERE seq=7`},
		"deleted last":     {`DELETE FROM audit WHERE seq>=9`},
		"deleted all":      {`DELETE FROM audit`},
		"head removed":     {`DELETE FROM meta WHERE key='audit_head'`},
		"rehashed one":     {`UPDATE audit SET "user"='nobody', hash='` + strings.Repeat("a", 64) + `' WHERE seq=3`},
		"appended outside": {`INSERT INTO audit(seq,time,"user",action,detail,prev_hash,hash) VALUES (11,0,'x','x','{}','x','x')`},
	}
	catalogtest.ForEach(t, &pg, func(t *testing.T, b catalogtest.Backend) {
		testTamperDetected(t, b, cases)
	})
}

func testTamperDetected(t *testing.T, b catalogtest.Backend, cases map[string][]string) {
	for name, stmts := range cases {
		t.Run(name, func(t *testing.T) {
			cat, l := open(t, b)
			fill(t, l, 10)
			tamper(t, cat, stmts...)
			if rep := mustVerify(t, cat); rep.OK() {
				t.Fatalf("tampering not detected: %+v", rep)
			}
		})
	}
}

func TestLoginDedup(t *testing.T) { catalogtest.ForEach(t, &pg, testLoginDedup) }

func testLoginDedup(t *testing.T, b catalogtest.Backend) {
	cat, l := open(t, b)
	ctx := context.Background()
	for range 3 {
		if err := l.RecordLogin(ctx, "alice", "basic", "127.0.0.1", true, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.RecordLogin(ctx, "alice", "basic", "127.0.0.1", false, "bad password"); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordLogin(ctx, "alice", "basic", "10.0.0.1", true, ""); err != nil {
		t.Fatal(err)
	}
	es, err := l.Query(ctx, Filter{User: "alice"})
	if err != nil || len(es) != 3 {
		t.Fatalf("want login, failure, login from another client: %v %+v", err, es)
	}
	if !mustVerify(t, cat).OK() {
		t.Fatal("verify")
	}
}

func TestRecordAfterClose(t *testing.T) { catalogtest.ForEach(t, &pg, testRecordAfterClose) }

func testRecordAfterClose(t *testing.T, b catalogtest.Backend) {
	_, l := open(t, b)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(context.Background(), "u", "x", nil); err != ErrClosed {
		t.Fatalf("got %v", err)
	}
}

// Two nodes sharing one catalog database (two Catalogs on one PostgreSQL
// database or SQLite file) append to one chain that still verifies.
func TestSharedCatalogOneChain(t *testing.T) {
	catalogtest.ForEach(t, &pg, func(t *testing.T, b catalogtest.Backend) {
		loc := b.Fresh(t)
		var logs []*Log
		var cat *catalog.Catalog
		for range 2 {
			cat = b.Open(t, loc)
			l, err := Open(context.Background(), cat, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := l.Close(context.Background()); err != nil {
					t.Error(err)
				}
			})
			logs = append(logs, l)
		}
		errs := make(chan error, 2*60)
		var wg sync.WaitGroup
		for n, l := range logs {
			for i := range 60 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := l.Record(context.Background(), fmt.Sprintf("node%d", n), ActionSearch, map[string]any{"i": i})
					errs <- err
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		rep := mustVerify(t, cat)
		if !rep.OK() || rep.Entries != 120 || rep.HeadSeq != 120 {
			t.Fatalf("shared chain: %+v", rep)
		}
	})
}
