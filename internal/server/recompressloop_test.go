package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

// fakeRecompressor counts Recompress calls. Each call clears what is
// pending, unless its yield (the archive's Busy) says stop, or stuck bytes
// cannot be compressed, or fail is set.
type fakeRecompressor struct {
	pending atomic.Int64
	stuck   atomic.Int64
	fail    atomic.Bool
	calls   atomic.Int64
	first   atomic.Pointer[time.Time] // when Recompress was first called
}

func (f *fakeRecompressor) PendingRecompress() int64 { return f.pending.Load() }
func (f *fakeRecompressor) Stats(context.Context) (store.Stats, error) {
	return store.Stats{}, nil
}
func (f *fakeRecompressor) Recompress(_ context.Context, yield func() bool) (bool, error) {
	now := time.Now()
	f.first.CompareAndSwap(nil, &now)
	f.calls.Add(1)
	if f.fail.Load() {
		return false, errors.New("store: write pack 00000007: input/output error")
	}
	if yield() {
		return false, nil
	}
	f.pending.Store(f.stuck.Load())
	return true, nil
}

type loopEnv struct {
	rc    *fakeRecompressor
	busy  atomic.Bool
	asked atomic.Int64
}

// runLoop runs recompressLoop over a fake store until the test ends.
func runLoop(t *testing.T, interval, quiet time.Duration) *loopEnv {
	n := &Node{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e := &loopEnv{rc: &fakeRecompressor{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.recompressLoop(ctx, e.rc, func() bool { e.asked.Add(1); return e.busy.Load() }, interval, quiet)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e
}

// waitRounds waits until the loop has looked k more times.
func (e *loopEnv) waitRounds(t *testing.T, k int64) {
	t.Helper()
	seen := e.asked.Load()
	testutil.Eventually(t, 10*time.Second, "the loop to look again", func() bool { return e.asked.Load() >= seen+k })
}

// TestRecompressLoopWaitsForQuiet: the node compresses nothing while
// ingest is busy, starts only once it has been quiet for the quiet period,
// and leaves the store alone when nothing is pending.
func TestRecompressLoopWaitsForQuiet(t *testing.T) {
	const quiet = 50 * time.Millisecond
	e := runLoop(t, time.Millisecond, quiet)
	e.busy.Store(true)
	e.rc.pending.Store(1000) // after busy: the loop cannot have seen it quiet
	e.waitRounds(t, 50)
	if c := e.rc.calls.Load(); c != 0 {
		t.Fatalf("Recompress called %d times while ingest was busy", c)
	}
	calm := time.Now()
	e.busy.Store(false)
	testutil.Eventually(t, 10*time.Second, "pending records compressed once quiet", func() bool { return e.rc.pending.Load() == 0 })
	if waited := e.rc.first.Load().Sub(calm); waited < quiet {
		t.Errorf("Recompress called %v after ingest became quiet, want at least %v", waited, quiet)
	}
	calls := e.rc.calls.Load()
	e.waitRounds(t, 50)
	if c := e.rc.calls.Load(); c != calls {
		t.Errorf("Recompress called %d more times with nothing pending", c-calls)
	}
}

// TestRecompressLoopLeavesStuckRecords: records a round could not compress
// are not retried until more is pending; a failing store is retried with a
// growing pause, not at every tick.
func TestRecompressLoopLeavesStuckRecords(t *testing.T) {
	e := runLoop(t, time.Millisecond, 0)
	e.rc.stuck.Store(300)
	e.rc.pending.Store(1000)
	testutil.Eventually(t, 10*time.Second, "a first round", func() bool { return e.rc.calls.Load() == 1 })
	e.waitRounds(t, 50)
	if c := e.rc.calls.Load(); c != 1 {
		t.Fatalf("%d rounds for records that cannot be compressed, want 1", c)
	}
	e.rc.pending.Add(500) // a new burst
	testutil.Eventually(t, 10*time.Second, "a round for the new burst", func() bool { return e.rc.calls.Load() == 2 })

	start := time.Now() // before the failing round, whose time starts the pause
	e.rc.fail.Store(true)
	e.rc.pending.Add(500)
	testutil.Eventually(t, 10*time.Second, "a failing round", func() bool { return e.rc.calls.Load() == 3 })
	e.waitRounds(t, 200) // 200 ticks of 1 ms
	// The pause starts at 1 s and doubles: at most one retry per second.
	if c, most := e.rc.calls.Load()-3, int64(time.Since(start)/time.Second); c > most {
		t.Errorf("a failing store was retried %d times in %v, want at most %d", c, time.Since(start), most)
	}
}
