package server_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/server"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

// TestOpenRecoversLostGroup: when the node stopped with the last group's
// catalog rows on disk but their blobs lost (a crash between the two
// overlapped fsyncs), the next Open removes those rows from the catalog
// and from the index, and keeps everything acknowledged.
func TestOpenRecoversLostGroup(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5 (use make test)")
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	n, err := server.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := n.Archive.Ingest(ctx, []byte("Subject: kept\r\n\r\nacknowledged\r\n"), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The state a crash leaves on disk: a committed row, and an index
	// document built from the page cache, for a blob that never reached
	// the disk (the node did not close, so the commit is not settled).
	lostRaw := []byte("Subject: lost\r\n\r\nnever acknowledged\r\n")
	lost := store.ID(lostRaw)
	cat, err := catalog.Open(ctx, filepath.Join(cfg.DataDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cat.Commit(ctx, []catalog.NewMessage{{ID: lost, Date: time.Now(), Arrival: time.Now(), Size: int64(len(lostRaw)), Origin: "api"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Close(); err != nil {
		t.Fatal(err)
	}
	ix, err := index.OpenSQLiteDir(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(ctx, []index.Document{{Seq: res[0].Seq, ID: lost, Date: time.Now(), Subject: "lost"}}, 0); err != nil {
		t.Fatal(err)
	}
	before, err := ix.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}

	n, err = server.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer n.Close(ctx)
	if _, err := n.Archive.Get(ctx, lost); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("the lost message is still catalogued after reopening (%v)", err)
	}
	if after, err := n.Index.Count(ctx); err != nil || after != before-1 {
		t.Errorf("index holds %d documents after reopening (%v), want %d", after, err, before-1)
	}
	if _, err := n.Archive.Get(ctx, kept.ID); err != nil {
		t.Errorf("the acknowledged message: %v", err)
	}
}
