package server_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/config"
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
	lost, seq := commitLostRow(t, cfg.DataDir)
	ix, err := index.OpenSQLiteDir(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(ctx, []index.Document{{Seq: seq, ID: lost, Date: time.Now(), Subject: "lost"}}, 0); err != nil {
		t.Fatal(err)
	}
	before, err := ix.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}

	n = reopenWithoutLost(t, cfg, lost, "")
	if after, err := n.Index.Count(ctx); err != nil || after != before-1 {
		t.Errorf("index holds %d documents after reopening (%v), want %d", after, err, before-1)
	}
	if _, err := n.Archive.Get(ctx, kept.ID); err != nil {
		t.Errorf("the acknowledged message: %v", err)
	}
}

// TestFailedOpenKeepsLostGroup: a start that fails before RecoverTail ran
// (here: an unreadable index file) must not clear the catalog's record of
// the crashed group on its way out, so the next start still removes it.
func TestFailedOpenKeepsLostGroup(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5 (use make test)")
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	n, err := server.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	lost, _ := commitLostRow(t, cfg.DataDir)
	shard := index.SQLiteFiles(cfg.DataDir)[0]
	saved, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shard, bytes.Repeat([]byte("not a database "), 20), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Open(ctx, cfg, nil); err == nil {
		n.Close(ctx)
		t.Fatal("open with an unreadable index file succeeded")
	}
	if err := os.WriteFile(shard, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	reopenWithoutLost(t, cfg, lost, ": the failed start settled the record of the crashed group")
}

// reopenWithoutLost opens the node again (closed when the test ends) and
// checks that the message lost in the simulated crash is no longer
// catalogued; why says what it would mean if it still were.
func reopenWithoutLost(t *testing.T, cfg config.Config, lost, why string) *server.Node {
	t.Helper()
	ctx := context.Background()
	n, err := server.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { n.Close(ctx) })
	if _, err := n.Archive.Get(ctx, lost); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("the lost message is still catalogued after reopening%s (%v)", why, err)
	}
	return n
}

// commitLostRow leaves in the stopped node's catalog under dataDir what a
// crash between the two overlapped fsyncs leaves: the last commit's row for
// a message whose blob never reached the store. It returns the id and seq.
func commitLostRow(t *testing.T, dataDir string) (string, int64) {
	t.Helper()
	ctx := context.Background()
	raw := []byte("Subject: lost\r\n\r\nnever acknowledged\r\n")
	cat, err := catalog.Open(ctx, filepath.Join(dataDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	res, err := cat.Commit(ctx, []catalog.NewMessage{{ID: store.ID(raw), Date: time.Now(), Arrival: time.Now(), Size: int64(len(raw)), Origin: "api"}})
	if err != nil {
		t.Fatal(err)
	}
	return store.ID(raw), res[0].Seq
}
