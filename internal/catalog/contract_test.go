package catalog_test

import (
	"os"
	"testing"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
)

// pg is the PostgreSQL cluster shared by this package's tests, started on
// first use.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func TestContract(t *testing.T) {
	catalogtest.ForEach(t, &pg, func(t *testing.T, b catalogtest.Backend) {
		catalogtest.Run(t, func(t testing.TB) *catalog.Catalog { return b.New(t) })
	})
}

func TestConcurrentNodes(t *testing.T) {
	catalogtest.ForEach(t, &pg, catalogtest.RunConcurrent)
}
