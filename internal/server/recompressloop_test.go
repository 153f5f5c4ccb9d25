package server

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

// fakeRecompressor counts Recompress calls; each call clears what is
// pending unless its yield (the archive's Busy) says stop.
type fakeRecompressor struct {
	pending atomic.Int64
	calls   atomic.Int64
}

func (f *fakeRecompressor) PendingRecompress() int64 { return f.pending.Load() }
func (f *fakeRecompressor) Stats(context.Context) (store.Stats, error) {
	return store.Stats{}, nil
}
func (f *fakeRecompressor) Recompress(_ context.Context, yield func() bool) (bool, error) {
	f.calls.Add(1)
	if yield() {
		return false, nil
	}
	f.pending.Store(0)
	return true, nil
}

// TestRecompressLoopWaitsForQuiet: the node compresses nothing while
// ingest is busy, starts once it has been quiet for the quiet period, and
// leaves the store alone when nothing is pending.
func TestRecompressLoopWaitsForQuiet(t *testing.T) {
	n := &Node{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	rc := &fakeRecompressor{}
	rc.pending.Store(1000)
	var busy atomic.Bool
	var asked atomic.Int64
	busy.Store(true)
	busyFn := func() bool { asked.Add(1); return busy.Load() }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.recompressLoop(ctx, rc, busyFn, time.Millisecond, 20*time.Millisecond)
	}()
	defer func() { cancel(); wg.Wait() }()

	testutil.Eventually(t, 10*time.Second, "the loop consulted busy 50 times", func() bool { return asked.Load() >= 50 })
	if c := rc.calls.Load(); c != 0 {
		t.Fatalf("Recompress called %d times while ingest was busy", c)
	}
	busy.Store(false)
	testutil.Eventually(t, 10*time.Second, "pending records compressed once quiet", func() bool { return rc.pending.Load() == 0 })
	calls := rc.calls.Load()
	seen := asked.Load()
	testutil.Eventually(t, 10*time.Second, "the loop went on looking", func() bool { return asked.Load() >= seen+50 })
	if c := rc.calls.Load(); c != calls {
		t.Errorf("Recompress called %d more times with nothing pending", c-calls)
	}
}
