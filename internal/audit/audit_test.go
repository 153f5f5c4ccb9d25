package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
)

func open(t *testing.T) (*catalog.Catalog, *Log) {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := cat.Close(); err != nil {
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
	for _, s := range append([]string{`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`}, stmts...) {
		if _, err := w.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestChainVerifies(t *testing.T) {
	cat, l := open(t)
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

func TestAppendOnlyTriggers(t *testing.T) {
	cat, l := open(t)
	fill(t, l, 3)
	w, _ := cat.DB()
	if _, err := w.Exec(`UPDATE audit SET user='x' WHERE seq=1`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("update allowed: %v", err)
	}
	if _, err := w.Exec(`DELETE FROM audit WHERE seq=3`); err == nil {
		t.Fatal("delete allowed")
	}
}

func TestTamperDetected(t *testing.T) {
	cases := map[string][]string{
		"edited detail":    {`UPDATE audit SET detail='{"query":"innocent"}' WHERE seq=5`},
		"edited user":      {`UPDATE audit SET user='nobody' WHERE seq=1`},
		"deleted middle":   {`DELETE FROM audit WHERE seq=7`},
		"deleted last":     {`DELETE FROM audit WHERE seq>=9`},
		"deleted all":      {`DELETE FROM audit`},
		"head removed":     {`DELETE FROM meta WHERE key='audit_head'`},
		"rehashed one":     {`UPDATE audit SET user='nobody', hash='` + strings.Repeat("a", 64) + `' WHERE seq=3`},
		"appended outside": {`INSERT INTO audit(seq,time,user,action,detail,prev_hash,hash) VALUES (11,0,'x','x','{}','x','x')`},
	}
	for name, stmts := range cases {
		t.Run(name, func(t *testing.T) {
			cat, l := open(t)
			fill(t, l, 10)
			tamper(t, cat, stmts...)
			if rep := mustVerify(t, cat); rep.OK() {
				t.Fatalf("tampering not detected: %+v", rep)
			}
		})
	}
}

func TestLoginDedup(t *testing.T) {
	cat, l := open(t)
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

func TestRecordAfterClose(t *testing.T) {
	_, l := open(t)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(context.Background(), "u", "x", nil); err != ErrClosed {
		t.Fatalf("got %v", err)
	}
}
