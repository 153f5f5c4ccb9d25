package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/archive/archivetest"
	"github.com/mailarc/mailarc/internal/message"
	"github.com/mailarc/mailarc/internal/store"
)

// openWithClock opens an archive whose clock moves only when the test
// adds to the returned nanoseconds.
func openWithClock(t *testing.T) (*archivetest.Env, *atomic.Int64) {
	t.Helper()
	clock := new(atomic.Int64)
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	return archivetest.Open(t, archive.Options{Now: now}, store.LocalOptions{}), clock
}

// TestBusy: ingest counts as busy while the commit rate, estimated over
// about half a second, is above 500 messages a second, and stops counting
// once the burst has passed.
func TestBusy(t *testing.T) {
	env, clock := openWithClock(t)
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
	ingest(100) // 100 messages in an instant: about 200 a second over the half-second window
	if a.Busy() {
		t.Fatal("busy after 100 messages")
	}
	ingest(300)
	if !a.Busy() {
		t.Fatal("not busy after 400 messages in an instant")
	}
	clock.Add(int64(200 * time.Millisecond))
	if !a.Busy() {
		t.Error("not busy 200 ms after the burst")
	}
	clock.Add(int64(time.Second))
	if a.Busy() {
		t.Error("still busy 1.2 s after the burst")
	}
	ingest(1)
	if a.Busy() {
		t.Error("busy after a single message")
	}
}

// TestBusyDefersCompression: a message ingested while ingest is busy is
// stored uncompressed (store.Deferred), for the node to compress once the
// burst is over; one ingested otherwise is compressed at once. Either way
// it reads back exactly.
func TestBusyDefersCompression(t *testing.T) {
	env, _ := openWithClock(t)
	a := env.Archive
	ctx := context.Background()
	long := func(n int) []byte {
		return []byte(fmt.Sprintf("Subject: long %d\r\n\r\n%s\r\n", n, strings.Repeat("a compressible line of body text\r\n", 200)))
	}
	quiet, err := a.Ingest(ctx, long(0), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if p := env.Store.PendingRecompress(); p != 0 {
		t.Fatalf("a message ingested while quiet left %d bytes to compress later", p)
	}
	var wg sync.WaitGroup
	for i := range 600 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Ingest(ctx, []byte(fmt.Sprintf("Subject: burst %d\r\n\r\nx\r\n", i)), archive.Origin{Source: "api"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if !a.Busy() {
		t.Fatal("not busy after 600 messages in an instant")
	}
	busy, err := a.Ingest(ctx, long(1), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if p := env.Store.PendingRecompress(); p == 0 {
		t.Fatal("a message ingested during a burst was compressed at once; want it deferred")
	}
	for i, res := range []archive.Result{quiet, busy} {
		got, err := a.Raw(ctx, res.ID)
		if err != nil || !bytes.Equal(got, message.Normalize(long(i))) {
			t.Errorf("message %d: read back %d bytes, %v", i, len(got), err)
		}
	}
	if done, err := env.Store.Recompress(ctx, a.Busy); done || err != nil {
		t.Errorf("Recompress while busy = %v, %v; want it to yield", done, err)
	}
}

// gatedAppend is a local store whose Append waits until gate is closed, so
// that the requests queued behind it stay in flight.
type gatedAppend struct {
	*store.Local
	gate chan struct{}
}

func (g *gatedAppend) Append(ctx context.Context, blobs []store.Blob) error {
	<-g.gate
	return g.Local.Append(ctx, blobs)
}

// TestBusyAtOnceWithManyInFlight: ingest counts as busy as soon as eight
// messages are being ingested at once, before any of them is committed (the
// clock does not move, so the commit rate says nothing yet; what Busy then
// changes is tested above). Once they are answered and ingest is down to
// one message at a time, it is not busy.
func TestBusyAtOnceWithManyInFlight(t *testing.T) {
	ctx := context.Background()
	gate := make(chan struct{})
	frozen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env := archivetest.OpenWrapped(t, archive.Options{Now: func() time.Time { return frozen }}, store.LocalOptions{NoSync: true},
		func(l *store.Local) store.Store { return &gatedAppend{Local: l, gate: gate} })
	a := env.Archive
	body := strings.Repeat("a compressible line of body text\r\n", 200)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Ingest(ctx, []byte(fmt.Sprintf("Subject: held %d\r\n\r\n%s", i, body)), archive.Origin{Source: "api"}); err != nil {
				t.Error(err)
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); !a.Busy(); {
		if time.Now().After(deadline) {
			t.Fatal("12 messages in flight and not busy")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if a.Busy() {
		t.Fatal("still busy once every message was answered (no commit rate: the clock is frozen)")
	}
	if _, err := a.Ingest(ctx, []byte("Subject: alone\r\n\r\n"+body), archive.Origin{Source: "api"}); err != nil {
		t.Fatal(err)
	}
	if a.Busy() {
		t.Error("busy with one message at a time")
	}
}
