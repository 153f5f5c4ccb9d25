package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/store"
)

// TestAppendThenSync: Append makes blobs readable at once but leaves their
// index entries unwritten until Sync (the index only describes durable
// records); a pack roll syncs the pack it seals; Put of a blob that was
// appended but not synced syncs it; Close syncs what is left; everything
// survives a reopen and verifies.
func TestAppendThenSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	const size = 4000
	const recLen = 60 + size // record header + uncompressed payload
	s := open(t, dir, store.LocalOptions{MaxPackSize: 10 << 10, NoCompress: true})
	idxOf := func(pack string) string { return strings.TrimSuffix(pack, ".pack") + ".idx" }
	// wantIndexed checks that every pack but the active one (the last) has
	// an index entry for each record, and that the active pack's index has
	// active entries.
	wantIndexed := func(active int64) {
		t.Helper()
		packs := packFiles(t, dir)
		for i, p := range packs {
			records := (fileSize(t, p) - 16) / recLen
			want := 16 + 52*records
			if i == len(packs)-1 {
				want = 16 + 52*active
			}
			if got := fileSize(t, idxOf(p)); got != want {
				t.Fatalf("%s: index is %d bytes, want %d (pack %d of %d holds %d records)", idxOf(p), got, want, i+1, len(packs), records)
			}
		}
	}

	first := []store.Blob{msg(0, size), msg(1, size)}
	if err := s.Append(ctx, first); err != nil {
		t.Fatalf("Append: %v", err)
	}
	for _, b := range first {
		mustGet(t, s, b)
	}
	wantIndexed(0) // appended, not synced: no index entries yet
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	wantIndexed(2)
	if err := s.Sync(ctx); err != nil { // nothing left to sync
		t.Fatalf("second Sync: %v", err)
	}
	wantIndexed(2)

	// Enough to roll the pack twice: the sealed packs are synced and fully
	// indexed by the roll; the records in the new active pack are not yet.
	var more []store.Blob
	for i := range 6 {
		more = append(more, msg(10+i, size))
	}
	if err := s.Append(ctx, more); err != nil {
		t.Fatalf("Append across rolls: %v", err)
	}
	if n := len(packFiles(t, dir)); n < 3 {
		t.Fatalf("%d packs after appending %d bytes with 10 KiB packs, want at least 3", n, 8*recLen)
	}
	wantIndexed(0)

	// Put of a blob that is appended but not synced returns only once it is
	// durable: it syncs, although it has nothing new to write.
	mustPut(t, s, more[len(more)-1])
	active := (fileSize(t, packFiles(t, dir)[len(packFiles(t, dir))-1]) - 16) / recLen
	if active == 0 {
		t.Fatal("the active pack holds no record")
	}
	wantIndexed(active)

	// Delete logs only durable records: it syncs what Append left first.
	doomed := msg(50, size)
	if err := s.Append(ctx, []store.Blob{doomed}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.Delete(ctx, []string{doomed.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	active = (fileSize(t, packFiles(t, dir)[len(packFiles(t, dir))-1]) - 16) / recLen
	wantIndexed(active)

	// Close syncs records that were appended and never synced.
	last := msg(99, size)
	if err := s.Append(ctx, []store.Blob{last}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	closeStore(t, s)
	s = open(t, dir, store.LocalOptions{MaxPackSize: 10 << 10, NoCompress: true})
	defer closeStore(t, s)
	for _, b := range append(append(first, more...), last) {
		mustGet(t, s, b)
	}
	wantIndexed((fileSize(t, packFiles(t, dir)[len(packFiles(t, dir))-1]) - 16) / recLen)
	mustVerifyClean(t, s)
}
