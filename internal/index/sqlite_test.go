package index_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/index/indextest"
)

// requireFTS5 skips (or, under MAILARC_INTEGRATION=1, fails) when the test
// binary was built without the sqlite_fts5 tag.
func requireFTS5(tb testing.TB) {
	tb.Helper()
	dir := tb.TempDir()
	ix, err := index.OpenSQLite(filepath.Join(dir, "probe.db"))
	if errors.Is(err, index.ErrNoFTS5) {
		if os.Getenv("MAILARC_INTEGRATION") == "1" {
			tb.Fatalf("built without -tags sqlite_fts5 (MAILARC_INTEGRATION=1): %v", err)
		}
		tb.Skip("built without -tags sqlite_fts5: run go test -tags sqlite_fts5 ./internal/index/...")
	}
	if err != nil {
		tb.Fatalf("OpenSQLite: %v", err)
	}
	if err := ix.Close(); err != nil {
		tb.Fatal(err)
	}
}

// dirPerTest returns a function giving each (sub)test its own directory,
// the same one every time that test asks (the contract suite reopens an
// index to check what persisted).
func dirPerTest() func(t *testing.T) string {
	var mu sync.Mutex
	dirs := map[*testing.T]string{}
	return func(t *testing.T) string {
		mu.Lock()
		defer mu.Unlock()
		d, ok := dirs[t]
		if !ok {
			d = t.TempDir()
			dirs[t] = d
		}
		return d
	}
}

func TestSQLiteContract(t *testing.T) {
	t.Parallel()
	requireFTS5(t)
	dir := dirPerTest()
	indextest.Run(t, func(t *testing.T) index.Index {
		ix, err := index.OpenSQLite(filepath.Join(dir(t), "index.db"))
		if err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
		return ix
	})
}

// TestShardedContract runs the contract suite over SQLite indexes split
// into shards: the data directory's layout (index.OpenSQLiteDir) and three
// shards, which exercises the key translation of keyset paging with a
// shard on either side.
func TestShardedContract(t *testing.T) {
	t.Parallel()
	requireFTS5(t)
	t.Run("dir", func(t *testing.T) {
		t.Parallel()
		dir := dirPerTest()
		indextest.Run(t, func(t *testing.T) index.Index {
			ix, err := index.OpenSQLiteDir(dir(t))
			if err != nil {
				t.Fatalf("OpenSQLiteDir: %v", err)
			}
			return ix
		})
	})
	t.Run("three", func(t *testing.T) {
		t.Parallel()
		dir := dirPerTest()
		indextest.Run(t, func(t *testing.T) index.Index {
			var shards []index.Index
			for i := range 3 {
				ix, err := index.OpenSQLite(filepath.Join(dir(t), fmt.Sprintf("s%d.db", i)))
				if err != nil {
					t.Fatalf("OpenSQLite: %v", err)
				}
				shards = append(shards, ix)
			}
			return index.NewSharded(shards...)
		})
	})
}

func TestOpenWithoutFTS5Message(t *testing.T) {
	t.Parallel()
	if got := index.ErrNoFTS5.Error(); !contains(got, "-tags sqlite_fts5") {
		t.Errorf("ErrNoFTS5 = %q, want it to name the build tag", got)
	}
}

func TestOpenBadPath(t *testing.T) {
	t.Parallel()
	requireFTS5(t)
	if _, err := index.OpenSQLite(filepath.Join(t.TempDir(), "missing", "dir", "x.db")); err == nil {
		t.Fatal("OpenSQLite in a missing directory succeeded")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
