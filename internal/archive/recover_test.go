package archive_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/archive/archivetest"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/store"
)

// TestRecoverTail: a crash during an overlapped group commit can leave the
// last group's catalog rows on disk without their blobs (the catalog's
// fsync finished, the pack's did not). RecoverTail removes exactly the rows
// of that group whose blob or journal report blob is missing: not the
// group's other rows, not a duplicate it merged into an older row, and not
// older rows (damage like that is for verify to report). A removed message
// can be ingested again as new.
func TestRecoverTail(t *testing.T) {
	ctx := context.Background()
	env := archivetest.Open(t, archive.Options{}, store.LocalOptions{NoSync: true})
	a, cat := env.Archive, env.Catalog
	raw := func(i int) []byte { return []byte(fmt.Sprintf("Subject: recover %d\r\n\r\nbody %d\r\n", i, i)) }
	newMessage := func(b []byte) catalog.NewMessage {
		return catalog.NewMessage{ID: store.ID(b), Date: time.Unix(1700000000, 0), Arrival: time.Now(), Size: int64(len(b)), Origin: "api"}
	}

	// Acknowledged messages: stored and catalogued the normal way.
	var kept []string
	for i := range 3 {
		r, err := a.Ingest(ctx, raw(i), archive.Origin{Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, r.ID)
	}
	// An older commit whose blob is missing (damage RecoverTail must leave
	// to verify): not the last commit, so not touched.
	older := newMessage(raw(10))
	if _, err := cat.Commit(ctx, []catalog.NewMessage{older}); err != nil {
		t.Fatal(err)
	}
	// The crashed group: two new messages whose blobs never became durable,
	// one new message whose blob did, one whose journal report did not, and
	// a duplicate of an acknowledged message (its row changes, its blob is
	// there).
	lostA, lostB, stored := newMessage(raw(20)), newMessage(raw(21)), newMessage(raw(22))
	if err := env.Store.Put(ctx, []store.Blob{store.NewBlob(raw(22)), store.NewBlob(raw(23))}); err != nil {
		t.Fatal(err)
	}
	withReport := newMessage(raw(23))
	withReport.ReportID = store.ID([]byte("a journal report that was never stored"))
	dup := newMessage(raw(0))
	dup.Origin = "smtp"
	if _, err := cat.Commit(ctx, []catalog.NewMessage{lostA, stored, dup, withReport, lostB}); err != nil {
		t.Fatal(err)
	}

	lost, err := a.RecoverTail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lost)
	want := []string{lostA.ID, lostB.ID, withReport.ID}
	slices.Sort(want)
	if !slices.Equal(lost, want) {
		t.Fatalf("RecoverTail removed %v, want %v", lost, want)
	}
	for _, id := range want {
		if _, err := a.Get(ctx, id); err != archive.ErrNotFound {
			t.Errorf("%s: still catalogued after RecoverTail (%v)", id, err)
		}
	}
	for _, id := range append(kept, stored.ID, older.ID) {
		if _, err := a.Get(ctx, id); err != nil {
			t.Errorf("%s: %v; RecoverTail must leave it", id, err)
		}
	}
	if m, err := a.Get(ctx, dup.ID); err != nil || !slices.Contains(m.Origins, "smtp") {
		t.Errorf("the duplicate lost its row or its new origin: %+v, %v", m, err)
	}
	// Nothing left to recover; the lost message comes back as new (no
	// tombstone), and then it is safe.
	if again, err := a.RecoverTail(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second RecoverTail: %v, %v", again, err)
	}
	r, err := a.Ingest(ctx, raw(20), archive.Origin{Source: "api"})
	if err != nil || r.Duplicate || r.Purged {
		t.Fatalf("re-ingest of a recovered message: %+v, %v; want a new message", r, err)
	}
	if again, err := a.RecoverTail(ctx); err != nil || len(again) != 0 {
		t.Fatalf("RecoverTail after a normal commit: %v, %v", again, err)
	}
	// After a clean close (SettleCommits) a missing blob is damage for
	// verify to report: RecoverTail leaves the row.
	damaged := newMessage(raw(30))
	if _, err := cat.Commit(ctx, []catalog.NewMessage{damaged}); err != nil {
		t.Fatal(err)
	}
	if err := cat.SettleCommits(ctx); err != nil {
		t.Fatal(err)
	}
	if again, err := a.RecoverTail(ctx); err != nil || len(again) != 0 {
		t.Fatalf("RecoverTail after SettleCommits removed %v (%v)", again, err)
	}
	if _, err := a.Get(ctx, damaged.ID); err != nil {
		t.Errorf("the settled row is gone: %v", err)
	}
}

// failingSync is a local store whose Sync fails while fail is set, as an
// fsync returning EIO would.
type failingSync struct {
	*store.Local
	fail atomic.Bool
}

func (f *failingSync) Sync(ctx context.Context) error {
	if f.fail.Load() {
		return errors.New("injected: fsync failed")
	}
	return f.Local.Sync(ctx)
}

// TestFailedSyncStopsIngest: when the pack's sync fails after the catalog
// committed the group, the group is refused, and so is every later group
// (even one whose blobs the store already holds), so the catalog's record of
// the last commit keeps pointing at the unsynced rows; Close then leaves
// that record for RecoverTail.
func TestFailedSyncStopsIngest(t *testing.T) {
	ctx := context.Background()
	var st *failingSync
	env := archivetest.OpenWrapped(t, archive.Options{}, store.LocalOptions{NoSync: true},
		func(l *store.Local) store.Store { st = &failingSync{Local: l}; return st })
	a, cat := env.Archive, env.Catalog
	ok := []byte("Subject: before\r\n\r\nsynced\r\n")
	if _, err := a.Ingest(ctx, ok, archive.Origin{Source: "api"}); err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	raw := []byte("Subject: unsynced\r\n\r\nbody\r\n")
	if _, err := a.Ingest(ctx, raw, archive.Origin{Source: "api"}); !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("ingest whose sync failed: %v, want ErrUnavailable", err)
	}
	st.fail.Store(false)
	for _, retry := range [][]byte{raw, ok, []byte("Subject: new\r\n\r\nafter the failure\r\n")} {
		if _, err := a.Ingest(ctx, retry, archive.Origin{Source: "smtp"}); !errors.Is(err, archive.ErrUnavailable) {
			t.Fatalf("ingest after a failed sync: %v, want ErrUnavailable until a restart", err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ms, err := cat.LastInserted(ctx)
	if err != nil || len(ms) != 1 || ms[0].ID != store.ID(raw) || slices.Contains(ms[0].Origins, "smtp") {
		t.Fatalf("after close, the last commit's rows are %+v (%v); want the unsynced message's row alone, untouched by the retries", ms, err)
	}
}
