// Package catalogtest is the contract test suite of package catalog: Run
// checks every Catalog method against a freshly opened catalog, and
// RunConcurrent checks two Catalogs sharing one database. The same suite
// runs against SQLite and PostgreSQL, so both backends behave alike.
//
// It also gives other packages' tests the backends to open catalogs on
// (Backends, ForEach), so a package that keeps tables in the catalog (auth,
// audit, governance) can run its own tests on both engines. PostgreSQL
// backends use a throwaway cluster from package pgtest, one per test
// binary, with a fresh database per catalog:
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestX(t *testing.T) {
//		catalogtest.ForEach(t, &pg, func(t *testing.T, b catalogtest.Backend) {
//			cat := b.New(t)
//			...
//		})
//	}
//
// When the PostgreSQL server binaries are missing the PostgreSQL subtests
// are skipped (failed under MAILARC_INTEGRATION=1), as pgtest does.
package catalogtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
)

// Backend opens catalogs on one engine.
type Backend struct {
	// Name is "sqlite" or "postgres" (the subtest name).
	Name string
	// Fresh returns the location of a new, empty catalog for t: a file
	// path (SQLite) or a DSN (PostgreSQL).
	Fresh func(t testing.TB) string
	// Open opens the catalog at loc and closes it when t ends. Opening the
	// same loc twice gives two Catalogs sharing one database, as two
	// mailarc nodes (or processes) would.
	Open func(t testing.TB, loc string) *catalog.Catalog
}

// New opens a fresh, empty catalog for t.
func (b Backend) New(t testing.TB) *catalog.Catalog {
	t.Helper()
	return b.Open(t, b.Fresh(t))
}

// SQLiteBackend opens catalogs in files under t.TempDir().
func SQLiteBackend() Backend {
	return Backend{
		Name: string(catalog.SQLite),
		Fresh: func(t testing.TB) string {
			return filepath.Join(t.TempDir(), "catalog.db")
		},
		Open: func(t testing.TB, loc string) *catalog.Catalog {
			t.Helper()
			c, err := catalog.Open(context.Background(), loc)
			if err != nil {
				t.Fatalf("open sqlite catalog: %v", err)
			}
			t.Cleanup(func() {
				if err := c.Close(); err != nil {
					t.Errorf("close catalog: %v", err)
				}
			})
			return c
		},
	}
}

// PostgresBackend opens catalogs in fresh databases of pg's cluster
// (started on first use).
func PostgresBackend(pg *pgtest.Shared) Backend {
	return Backend{
		Name: string(catalog.Postgres),
		Fresh: func(t testing.TB) string {
			t.Helper()
			return pg.Get(t).CreateDB(t)
		},
		Open: func(t testing.TB, dsn string) *catalog.Catalog {
			t.Helper()
			c, err := catalog.OpenPostgres(context.Background(), dsn)
			if err != nil {
				t.Fatalf("open postgres catalog: %v", err)
			}
			t.Cleanup(func() {
				if err := c.Close(); err != nil {
					t.Errorf("close catalog: %v", err)
				}
			})
			return c
		},
	}
}

// Backends returns the SQLite backend and, when pg is not nil, the
// PostgreSQL backend on pg.
func Backends(pg *pgtest.Shared) []Backend {
	bs := []Backend{SQLiteBackend()}
	if pg != nil {
		bs = append(bs, PostgresBackend(pg))
	}
	return bs
}

// ForEach runs fn as one subtest per backend of Backends(pg).
func ForEach(t *testing.T, pg *pgtest.Shared, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends(pg) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}
