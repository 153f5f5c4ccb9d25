package catalogtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
)

// RunConcurrent checks two Catalogs sharing one database, as two mailarc
// nodes (or processes) sharing one PostgreSQL would: open(t) returns a
// location and b.Open is called on it three times (two committers and a
// follower). The committers commit overlapping batches concurrently while
// the follower reads the change feed (seq > watermark) and the metadata
// feed (mseq > watermark). It asserts that every id is stored once, that
// each id got exactly one non-duplicate result across both committers, that
// the union of origins is complete, and that the followers, reading while
// the commits run, missed nothing.
func RunConcurrent(t *testing.T, b Backend) {
	const (
		pool    = 400 // distinct ids
		batches = 40  // per committer
		batch   = 25  // ids per batch
	)
	loc := b.Fresh(t)
	nodes := []*catalog.Catalog{b.Open(t, loc), b.Open(t, loc)}
	follower := b.Open(t, loc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type outcome struct {
		id, origin string
		res        catalog.CommitResult
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
		errs     = make(chan error, 8)
	)
	for n, c := range nodes {
		for w := range 2 { // two goroutines per node
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				origin := fmt.Sprintf("node%d", n)
				for range batches / 2 {
					items := make([]catalog.NewMessage, batch)
					for i := range items {
						items[i] = Msg(ID(rng.IntN(pool)), origin, fmt.Sprintf("rcpt%d@x", n))
					}
					res, err := c.Commit(ctx, items)
					if err != nil {
						errs <- fmt.Errorf("node %d: %w", n, err)
						return
					}
					mu.Lock()
					for i, r := range res {
						outcomes = append(outcomes, outcome{items[i].ID, origin, r})
					}
					mu.Unlock()
				}
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// Follow both feeds while the commits run; after they finish, drain.
	seen := map[string]int64{} // id -> seq, from the change feed
	changed := map[string]bool{}
	var seqWM, mseqWM int64
	follow := func() error {
		for {
			page, err := follower.FeedAfter(ctx, seqWM, 100)
			if err != nil {
				return err
			}
			for _, m := range page {
				if m.Seq <= seqWM {
					return fmt.Errorf("feed went backwards: %d after %d", m.Seq, seqWM)
				}
				if prev, ok := seen[m.ID]; ok {
					return fmt.Errorf("id %s in the feed twice (seq %d and %d)", m.ID, prev, m.Seq)
				}
				seen[m.ID], seqWM = m.Seq, m.Seq
			}
			ch, err := follower.ChangedAfter(ctx, mseqWM, 100)
			if err != nil {
				return err
			}
			for _, m := range ch {
				changed[m.ID] = true
				mseqWM = m.MSeq
			}
			if len(page) == 0 && len(ch) == 0 {
				return nil
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		if err := follow(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if err := follow(); err != nil {
		t.Fatal(err)
	}

	// Every id committed is stored once and got one non-duplicate result.
	fresh := map[string]int{}
	committed := map[string]bool{}
	for _, o := range outcomes {
		committed[o.id] = true
		if !o.res.Duplicate {
			fresh[o.id]++
		}
		if o.res.Purged {
			t.Fatalf("purged reported for %s", o.id)
		}
	}
	for id := range committed {
		if fresh[id] != 1 {
			t.Errorf("id %s reported new %d times", id, fresh[id])
		}
	}
	st, err := follower.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != int64(len(committed)) {
		t.Fatalf("%d messages stored for %d distinct ids", st.Messages, len(committed))
	}
	// The follower saw every id exactly once, and the feed has no holes:
	// seqs are 1..N.
	if len(seen) != len(committed) {
		t.Fatalf("the concurrent follower saw %d of %d ids", len(seen), len(committed))
	}
	seqs := make([]int64, 0, len(seen))
	for id, s := range seen {
		if !committed[id] {
			t.Fatalf("follower saw unknown id %s", id)
		}
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	if seqs[0] != 1 || seqs[len(seqs)-1] != int64(len(seqs)) || st.Head != int64(len(seqs)) {
		t.Fatalf("feed seqs %d..%d for %d entries, head %d", seqs[0], seqs[len(seqs)-1], len(seqs), st.Head)
	}
	if len(changed) != len(committed) {
		t.Fatalf("the metadata follower saw %d of %d ids", len(changed), len(committed))
	}
	// Results agree with the rows, and origins are the union of committers.
	all := make([]string, 0, len(committed))
	for id := range committed {
		all = append(all, id)
	}
	rows, err := follower.MessagesByID(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, o := range outcomes {
		if rows[o.id] == nil || rows[o.id].Seq != o.res.Seq {
			t.Fatalf("result seq %d for %s, row %+v", o.res.Seq, o.id, rows[o.id])
		}
		if !slices.Contains(want[o.id], o.origin) {
			want[o.id] = append(want[o.id], o.origin)
		}
	}
	for id, m := range rows {
		slices.Sort(want[id])
		if !slices.Equal(m.Origins, want[id]) || len(m.RcptTo) != len(want[id]) {
			t.Fatalf("metadata of %s: origins %v rcpt %v, committed by %v", id, m.Origins, m.RcptTo, want[id])
		}
		// The follower saw the latest metadata change of every row.
		if m.MSeq > mseqWM {
			t.Fatalf("row %s has mseq %d above the follower's watermark %d", id, m.MSeq, mseqWM)
		}
	}
}
