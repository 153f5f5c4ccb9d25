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

func TestSQLiteContract(t *testing.T) {
	t.Parallel()
	requireFTS5(t)
	var mu sync.Mutex
	paths := map[*testing.T]string{}
	indextest.Run(t, func(t *testing.T) index.Index {
		mu.Lock()
		p, ok := paths[t]
		if !ok {
			p = filepath.Join(t.TempDir(), "index.db")
			paths[t] = p
		}
		mu.Unlock()
		ix, err := index.OpenSQLite(p)
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
		var mu sync.Mutex
		dirs := map[*testing.T]string{}
		indextest.Run(t, func(t *testing.T) index.Index {
			mu.Lock()
			d, ok := dirs[t]
			if !ok {
				d = t.TempDir()
				dirs[t] = d
			}
			mu.Unlock()
			ix, err := index.OpenSQLiteDir(d)
			if err != nil {
				t.Fatalf("OpenSQLiteDir: %v", err)
			}
			return ix
		})
	})
	t.Run("three", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		dirs := map[*testing.T]string{}
		indextest.Run(t, func(t *testing.T) index.Index {
			mu.Lock()
			d, ok := dirs[t]
			if !ok {
				d = t.TempDir()
				dirs[t] = d
			}
			mu.Unlock()
			var shards []index.Index
			for i := range 3 {
				ix, err := index.OpenSQLite(filepath.Join(d, fmt.Sprintf("s%d.db", i)))
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
