// Package archivetest opens throwaway archives for the tests of packages
// built on internal/archive: a SQLite catalog and a local store under
// t.TempDir(), closed (archive, then store, then catalog) when the test
// ends. Cleanups registered after Open run before it, so a component
// using the archive is stopped first.
package archivetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/store"
)

// Env is an open archive with its catalog and store.
type Env struct {
	Archive *archive.Archive
	Catalog *catalog.Catalog
	Store   *store.Local
	// Dir is the temporary directory holding catalog.db and store/.
	Dir string
}

// Open opens a fresh archive in a new temporary directory.
func Open(t testing.TB, opt archive.Options, sopt store.LocalOptions) *Env {
	t.Helper()
	return OpenWrapped(t, opt, sopt, nil)
}

// OpenWrapped is Open with the archive over wrap(the local store) instead of
// the store itself, for tests that put a fault or a gate in front of it
// (nil: the store itself). Env.Store is the local store underneath.
func OpenWrapped(t testing.TB, opt archive.Options, sopt store.LocalOptions, wrap func(*store.Local) store.Store) *Env {
	t.Helper()
	e := &Env{Dir: t.TempDir()}
	var err error
	if e.Catalog, err = catalog.Open(context.Background(), filepath.Join(e.Dir, "catalog.db")); err != nil {
		t.Fatal(err)
	}
	if e.Store, err = store.OpenLocal(filepath.Join(e.Dir, "store"), sopt); err != nil {
		e.Catalog.Close()
		t.Fatal(err)
	}
	var st store.Store = e.Store
	if wrap != nil {
		st = wrap(e.Store)
	}
	e.Archive = archive.New(e.Catalog, st, opt)
	if _, err := e.Archive.RecoverTail(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Archive.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := e.Store.Close(); err != nil {
			t.Error(err)
		}
		if err := e.Catalog.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}
