package index_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/testutil"
)

// memFeed is an in-memory change feed.
type memFeed struct {
	mu      sync.Mutex
	changes []index.Change
	raw     map[string][]byte
	failAt  int64 // ChangesAfter fails when asked for changes after this mseq (until reset)
}

func (f *memFeed) add(id string, raw string, rcpt ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mseq := int64(len(f.changes) + 1)
	f.raw[id] = []byte(raw)
	f.changes = append(f.changes, index.Change{MSeq: mseq, Seq: mseq, ID: id, Date: time.Unix(1_600_000_000+mseq, 0), Size: int64(len(raw)), RcptTo: rcpt})
}

func (f *memFeed) ChangesAfter(ctx context.Context, after int64, limit int) ([]index.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt != 0 && after >= f.failAt {
		return nil, fmt.Errorf("simulated feed failure")
	}
	var out []index.Change
	for _, c := range f.changes {
		if c.MSeq > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *memFeed) Raw(ctx context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.raw[id], nil
}

func count(t *testing.T, ix index.Index, q string) int {
	t.Helper()
	pq, err := query.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ix.Search(context.Background(), pq, index.Options{Limit: 1000, CountTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	return r.Total
}

func TestIndexerResumesWithoutSkipsOrDoubles(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := index.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	f := &memFeed{raw: map[string][]byte{}}
	for i := 0; i < 250; i++ {
		f.add(fmt.Sprintf("%064x", i), fmt.Sprintf("From: a%d@x.example\r\nSubject: wombat %d\r\n\r\nbody\r\n", i, i))
	}
	x := index.NewIndexer(ix, f, index.IndexerOptions{BatchSize: 100, Workers: 2})
	// First pass: only part of the feed (simulate a crash after 2 batches).
	f.failAt = 200
	if err := x.CatchUp(ctx, nil); err == nil {
		t.Fatal("expected the simulated failure")
	}
	if wm, _ := ix.Watermark(ctx); wm != 200 {
		t.Fatalf("watermark %d after two batches, want 200", wm)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// "Restart": a new index handle and indexer resume from the watermark.
	f.mu.Lock()
	f.failAt = 0
	f.mu.Unlock()
	ix, err = index.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	x = index.NewIndexer(ix, f, index.IndexerOptions{BatchSize: 100})
	if err := x.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ix, "wombat"); n != 250 {
		t.Fatalf("wombat matches %d, want 250 (no skips, no doubles)", n)
	}
	if n, _ := ix.Count(ctx); n != 250 {
		t.Fatalf("index holds %d docs, want 250", n)
	}
	// A metadata change (new envelope recipient) re-indexes the document in place.
	f.mu.Lock()
	c := f.changes[0]
	c.MSeq = int64(len(f.changes) + 1)
	c.RcptTo = []string{"hidden@corp.example"}
	f.changes = append(f.changes, c)
	f.mu.Unlock()
	if err := x.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ix, "bcc:hidden@corp.example"); n != 1 {
		t.Fatalf("bcc: after envelope merge matches %d, want 1", n)
	}
	if n, _ := ix.Count(ctx); n != 250 {
		t.Fatalf("index holds %d docs after re-index, want 250", n)
	}
}

func TestIndexerRunFollowsNotify(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	ix, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	f := &memFeed{raw: map[string][]byte{}}
	x := index.NewIndexer(ix, f, index.IndexerOptions{PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = x.Run(ctx); close(done) }()
	f.add(fmt.Sprintf("%064x", 1), "Subject: quokka\r\n\r\nattachment-free\r\n")
	x.Notify()
	testutil.Eventually(t, 10*time.Second, "the notified change to be indexed", func() bool { return x.Watermark() == 1 })
	if n := count(t, ix, "quokka"); n != 1 {
		t.Fatalf("quokka matches %d", n)
	}
	cancel()
	<-done
}
