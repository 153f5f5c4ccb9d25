package catalog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
)

func open(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func msg(id string, origin string, rcpt ...string) catalog.NewMessage {
	return catalog.NewMessage{ID: id, Date: time.Unix(1_700_000_000, 0), DateSource: "header", Arrival: time.Now(),
		Size: 10, From: "a@x", To: []string{"b@x"}, Subject: "s", Origin: origin, RcptTo: rcpt}
}

func TestCommitDedupeUnionAndFeed(t *testing.T) {
	c := open(t)
	ctx := context.Background()
	res, err := c.Commit(ctx, []catalog.NewMessage{msg("a", "api"), msg("b", "smtp", "x@y"), msg("a", "smtp", "Z@Y")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || res[2].Seq != res[0].Seq || res[1].Seq != res[0].Seq+1 {
		t.Fatalf("results %+v", res)
	}
	m, err := c.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Origins) != 2 || len(m.RcptTo) != 1 || m.RcptTo[0] != "z@y" {
		t.Fatalf("union: origins %v rcpt %v", m.Origins, m.RcptTo)
	}
	// Metadata growth bumps mseq past b's, so the indexer sees a again.
	ch, err := c.ChangedAfter(ctx, 0, 10)
	if err != nil || len(ch) != 2 || ch[1].ID != "a" {
		t.Fatalf("changes %v %v", ch, err)
	}
	// A duplicate that adds nothing does not bump mseq.
	before := ch[1].MSeq
	if _, err := c.Commit(ctx, []catalog.NewMessage{msg("a", "api")}); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Get(ctx, "a"); m.MSeq != before {
		t.Fatalf("mseq moved %d -> %d on a no-op duplicate", before, m.MSeq)
	}
	feed, err := c.FeedAfter(ctx, 0, 10)
	if err != nil || len(feed) != 2 || feed[0].ID != "a" || feed[1].ID != "b" {
		t.Fatalf("feed %v %v", feed, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Messages != 2 || st.Head != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
	ex, err := c.Exists(ctx, []string{"a", "b", "c"})
	if err != nil || !ex["a"] || !ex["b"] || ex["c"] {
		t.Fatalf("exists %v %v", ex, err)
	}
	if _, err := c.Get(ctx, "nope"); err != catalog.ErrNotFound {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestMigrateComponents(t *testing.T) {
	c := open(t)
	ctx := context.Background()
	steps := []string{`CREATE TABLE t1 (x INTEGER)`, `ALTER TABLE t1 ADD COLUMN y TEXT`}
	for i := 0; i < 2; i++ { // idempotent
		if err := c.Migrate(ctx, "test", steps); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Migrate(ctx, "test", steps[:1]); err == nil {
		t.Fatal("an older release must refuse a newer schema")
	}
	if err := c.Migrate(ctx, "broken", []string{`CREATE TABLE (`}); err == nil {
		t.Fatal("bad migration accepted")
	}
}

func TestSourceStateAndMeta(t *testing.T) {
	c := open(t)
	ctx := context.Background()
	if err := c.SetSourceState(ctx, "j", map[string]string{"INBOX": "1:5", "x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSourceState(ctx, "j", map[string]string{"x": ""}); err != nil {
		t.Fatal(err)
	}
	st, err := c.SourceState(ctx, "j")
	if err != nil || len(st) != 1 || st["INBOX"] != "1:5" {
		t.Fatalf("state %v %v", st, err)
	}
	if err := c.SetMeta(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Meta(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("meta %q %v", v, err)
	}
}

func TestLargeBatch(t *testing.T) {
	c := open(t)
	ctx := context.Background()
	var batch []catalog.NewMessage
	for i := 0; i < 2000; i++ {
		batch = append(batch, msg(fmt.Sprintf("%064d", i), "import"))
	}
	if _, err := c.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, 2000)
	for _, m := range batch {
		ids = append(ids, m.ID)
	}
	ex, err := c.Exists(ctx, ids)
	if err != nil || len(ex) != 2000 {
		t.Fatalf("exists over chunks: %d %v", len(ex), err)
	}
	ms, err := c.GetMany(ctx, ids[:900])
	if err != nil || len(ms) != 900 {
		t.Fatalf("get many: %d %v", len(ms), err)
	}
}
