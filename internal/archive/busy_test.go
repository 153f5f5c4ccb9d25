package archive_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/archive/archivetest"
	"github.com/mailarc/mailarc/internal/store"
)

// TestBusy: ingest counts as busy when more than 500 messages were
// committed in the current second or in the one before it (so a burst
// stays busy across the turn of each second), and stops counting once a
// whole second passes without that many.
func TestBusy(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	env := archivetest.Open(t, archive.Options{Now: now}, store.LocalOptions{})
	a := env.Archive
	n := 0
	ingest := func(count int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, count)
		for range count {
			n++
			raw := []byte(fmt.Sprintf("Subject: busy %d\r\n\r\nbody %d\r\n", n, n))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := a.Ingest(context.Background(), raw, archive.Origin{Source: "api"}); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	if a.Busy() {
		t.Fatal("busy before any ingest")
	}
	ingest(400)
	if a.Busy() {
		t.Fatal("busy after 400 messages in one second")
	}
	ingest(200)
	if !a.Busy() {
		t.Fatal("not busy after 600 messages in one second")
	}
	clock.Add(int64(time.Second)) // next second, nothing committed yet
	if !a.Busy() {
		t.Error("not busy at the start of the second after a burst")
	}
	ingest(1) // the first commit of this second keeps the last one's count
	if !a.Busy() {
		t.Error("not busy after the first commit of the second after a burst")
	}
	clock.Add(int64(time.Second))
	ingest(1)
	if a.Busy() {
		t.Error("busy after a second with a single message")
	}
	clock.Add(int64(5 * time.Second))
	if a.Busy() {
		t.Error("busy after five idle seconds")
	}
}
