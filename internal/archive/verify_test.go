package archive_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/store"
)

// ingestN archives n distinct small messages and returns their ids.
func ingestN(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i++ {
		r, err := f.a.Ingest(context.Background(), []byte(fmt.Sprintf("Subject: verify %d\r\n\r\nbody %d\r\n", i, i)), archive.Origin{Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	return ids
}

// TestVerifyClean: a consistent archive has no problems and no orphans.
func TestVerifyClean(t *testing.T) {
	f := open(t, t.TempDir(), archive.Options{})
	ingestN(t, f, 3)
	rep, err := f.a.Verify(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 3 || rep.Messages != 3 || len(rep.Problems) != 0 || len(rep.Orphans) != 0 {
		t.Fatalf("verify of a clean archive: %+v", rep)
	}
}

// TestVerifyReportsMissingBlob: a catalogued message whose blob is gone from
// the store (deleted and compacted away behind the catalog's back) is a
// problem naming exactly that id.
func TestVerifyReportsMissingBlob(t *testing.T) {
	f := open(t, t.TempDir(), archive.Options{})
	ctx := context.Background()
	ids := ingestN(t, f, 3)
	victim := ids[1]
	if err := f.st.Delete(ctx, []string{victim}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.st.Has(ctx, victim); err != nil || ok {
		t.Fatalf("blob still present after Delete+Compact: %v %v", ok, err)
	}

	rep, err := f.a.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 2 || rep.Messages != 3 {
		t.Errorf("verified %d blobs and %d messages, want 2 and 3", rep.Blobs, rep.Messages)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].ID != victim || !strings.Contains(rep.Problems[0].Reason, "blob is missing") {
		t.Fatalf("problems %+v, want one naming %s with its blob missing", rep.Problems, victim)
	}
	if len(rep.Orphans) != 0 {
		t.Errorf("orphans %v, want none", rep.Orphans)
	}
}

// TestVerifyReportsOrphanBlob: a blob in the store that no catalog row
// references (an ingest interrupted between the store sync and the catalog
// commit) is listed as an orphan, not as a problem.
func TestVerifyReportsOrphanBlob(t *testing.T) {
	f := open(t, t.TempDir(), archive.Options{})
	ctx := context.Background()
	ingestN(t, f, 2)
	orphan := store.NewBlob([]byte("Subject: never acknowledged\r\n\r\nstored, not catalogued\r\n"))
	if err := f.st.Put(ctx, []store.Blob{orphan}); err != nil {
		t.Fatal(err)
	}

	var progress []int64
	rep, err := f.a.Verify(ctx, func(n int64) { progress = append(progress, n) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Orphans, []string{orphan.ID}) {
		t.Fatalf("orphans %v, want [%s]", rep.Orphans, orphan.ID)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("problems %+v, want none (an orphan is harmless)", rep.Problems)
	}
	if rep.Blobs != 3 || rep.Messages != 2 || !slices.Equal(progress, []int64{1, 2, 3}) {
		t.Errorf("verified %d blobs, %d messages, progress %v; want 3, 2, [1 2 3]", rep.Blobs, rep.Messages, progress)
	}

	// The same message arriving later adopts the orphan: one copy, no orphan.
	r, err := f.a.Ingest(ctx, orphan.Data, archive.Origin{Source: "api"})
	if err != nil || r.ID != orphan.ID {
		t.Fatalf("ingest of the orphan's bytes: %+v %v", r, err)
	}
	rep, err = f.a.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Orphans) != 0 || len(rep.Problems) != 0 || rep.Blobs != 3 || rep.Messages != 3 {
		t.Errorf("after adoption: %+v", rep)
	}
}
