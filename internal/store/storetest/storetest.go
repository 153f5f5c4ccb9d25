// Package storetest is the contract test suite every store.Store
// implementation must pass. A backend's test calls Run with a function that
// opens a fresh, empty store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := store.OpenLocal(t.TempDir(), store.LocalOptions{NoSync: true})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Run closes each store it opens. The suite uses only the Store interface, so
// remote backends (S3) run exactly the same checks.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/mailarc/mailarc/internal/store"
)

// Run runs the contract suite. open must return a new, empty store each time
// it is called; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Large", testLarge},
		{"IdempotentPut", testIdempotentPut},
		{"HashMismatch", testHashMismatch},
		{"Has", testHas},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"Walk", testWalk},
		{"VerifyClean", testVerifyClean},
		{"Concurrent", testConcurrent},
		{"Stats", testStats},
		{"Compact", testCompact},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// blob returns a Blob for data.
func blob(data []byte) store.Blob {
	sum := sha256.Sum256(data)
	return store.Blob{ID: hex.EncodeToString(sum[:]), Data: data}
}

// randBytes returns n pseudo-random bytes from a seeded generator.
func randBytes(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// textBytes returns n bytes of compressible, message-like text, unique per seed.
func textBytes(seed uint64, n int) []byte {
	words := []string{"Received:", "from", "mail.example.com", "by", "archive", "with", "ESMTP", "id", "the", "quick", "brown", "fox", "\r\n", "Subject:", "Re:", "patch", "btrfs", "balance"}
	r := rand.New(rand.NewPCG(seed, 42))
	var b bytes.Buffer
	fmt.Fprintf(&b, "Message-ID: <%d@storetest>\r\n", seed)
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func put(t *testing.T, s store.Store, blobs ...store.Blob) {
	t.Helper()
	if err := s.Put(context.Background(), blobs); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func mustGet(t *testing.T, s store.Store, b store.Blob) {
	t.Helper()
	got, err := s.Get(context.Background(), b.ID)
	if err != nil {
		t.Fatalf("Get(%s): %v", b.ID, err)
	}
	if !bytes.Equal(got, b.Data) {
		t.Fatalf("Get(%s): got %d bytes, want %d bytes (content differs)", b.ID, len(got), len(b.Data))
	}
}

func mustNotFound(t *testing.T, s store.Store, id string) {
	t.Helper()
	got, err := s.Get(context.Background(), id)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%s) = %d bytes, %v; want ErrNotFound", id, len(got), err)
	}
}

func testRoundTrip(t *testing.T, s store.Store) {
	nul := make([]byte, 1000) // all NUL
	bin := make([]byte, 256*4)
	for i := range bin {
		bin[i] = byte(i)
	}
	blobs := []store.Blob{
		blob([]byte("x")),
		blob([]byte{0}),
		blob(nul),
		blob(bin),
		blob(randBytes(1, 20_000)),
		blob(textBytes(2, 15_000)),
		blob([]byte("From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")),
	}
	put(t, s, blobs...)
	for _, b := range blobs {
		mustGet(t, s, b)
	}
	// The returned slice belongs to the caller: scribbling on it must not
	// change what the store returns next time.
	got, err := s.Get(context.Background(), blobs[3].ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = 0xff
	}
	mustGet(t, s, blobs[3])
}

func testLarge(t *testing.T, s store.Store) {
	if testing.Short() {
		t.Skip("50 MB blob skipped in -short mode")
	}
	// Half random (incompressible), half text: both paths of a compressor.
	data := append(randBytes(3, 25<<20), textBytes(4, 25<<20)...)
	b := blob(data)
	put(t, s, b)
	mustGet(t, s, b)
}

func testIdempotentPut(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := blob(textBytes(10, 5000)), blob(textBytes(11, 5000))
	put(t, s, a)
	before, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, a)
	put(t, s, a, b, b, a) // duplicates inside one batch too
	after, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Blobs != before.Blobs+1 {
		t.Fatalf("Blobs after re-putting a and adding b = %d, want %d", after.Blobs, before.Blobs+1)
	}
	if want := before.RawBytes + int64(len(b.Data)); after.RawBytes != want {
		t.Fatalf("RawBytes = %d, want %d", after.RawBytes, want)
	}
	mustGet(t, s, a)
	mustGet(t, s, b)
	n := 0
	if err := s.Walk(ctx, func(string, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("Walk saw %d blobs, want 2", n)
	}
}

func testHashMismatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	good := blob([]byte("good blob"))
	bad := store.Blob{ID: good.ID, Data: []byte("other content")}
	if err := s.Put(ctx, []store.Blob{bad}); err == nil {
		t.Fatal("Put accepted data whose sha256 differs from its id")
	}
	if ok, err := s.Has(ctx, good.ID); err != nil || ok {
		t.Fatalf("Has after refused put = %v, %v; want false", ok, err)
	}
	// A mismatch inside a batch stores nothing of the bad blob.
	other := blob([]byte("other content"))
	wrong := store.Blob{ID: blob([]byte("something else")).ID, Data: []byte("mismatching")}
	if err := s.Put(ctx, []store.Blob{other, wrong}); err == nil {
		t.Fatal("Put accepted a batch containing a mismatching blob")
	}
	for _, id := range []string{wrong.ID, blob(wrong.Data).ID} {
		if ok, err := s.Has(ctx, id); err != nil || ok {
			t.Fatalf("Has(%s) after refused batch = %v, %v; want false", id, ok, err)
		}
	}
	// Ids that are not lowercase hex sha256 are refused.
	up := good
	up.ID = string(bytes.ToUpper([]byte(good.ID)))
	for _, b := range []store.Blob{up, {ID: "", Data: []byte("x")}, {ID: good.ID[:10], Data: good.Data}} {
		if err := s.Put(ctx, []store.Blob{b}); err == nil {
			t.Fatalf("Put accepted malformed id %q", b.ID)
		}
	}
	put(t, s, good)
	mustGet(t, s, good)
}

func testHas(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := blob([]byte("has me"))
	if ok, err := s.Has(ctx, a.ID); err != nil || ok {
		t.Fatalf("Has before Put = %v, %v", ok, err)
	}
	put(t, s, a)
	if ok, err := s.Has(ctx, a.ID); err != nil || !ok {
		t.Fatalf("Has after Put = %v, %v", ok, err)
	}
	if ok, err := s.Has(ctx, "not-an-id"); err != nil || ok {
		t.Fatalf("Has(malformed) = %v, %v; want false, nil", ok, err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	mustNotFound(t, s, blob([]byte("never stored")).ID)
	mustNotFound(t, s, "zz")
	put(t, s, blob([]byte("stored")))
	mustNotFound(t, s, blob([]byte("never stored")).ID)
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b, c := blob(textBytes(20, 3000)), blob(textBytes(21, 3000)), blob(textBytes(22, 3000))
	put(t, s, a, b, c)
	unknown := blob([]byte("unknown")).ID
	if err := s.Delete(ctx, []string{a.ID, unknown, a.ID}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustNotFound(t, s, a.ID)
	if ok, _ := s.Has(ctx, a.ID); ok {
		t.Fatal("Has true after Delete")
	}
	mustGet(t, s, b)
	mustGet(t, s, c)
	if err := s.Delete(ctx, []string{a.ID}); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := s.Delete(ctx, nil); err != nil {
		t.Fatalf("Delete(nil): %v", err)
	}
	// A deleted blob can be stored again.
	put(t, s, a)
	mustGet(t, s, a)
}

func walkAll(t *testing.T, s store.Store) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := s.Walk(context.Background(), func(id string, size int64) error {
		if _, dup := got[id]; dup {
			t.Errorf("Walk reported %s twice", id)
		}
		got[id] = size
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

func testWalk(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got := walkAll(t, s); len(got) != 0 {
		t.Fatalf("Walk on empty store saw %d blobs", len(got))
	}
	want := map[string]int64{}
	var blobs []store.Blob
	for i := range 50 {
		b := blob(textBytes(uint64(100+i), 100+i*37))
		blobs = append(blobs, b)
		want[b.ID] = int64(len(b.Data))
	}
	put(t, s, blobs[:25]...)
	put(t, s, blobs[25:]...)
	var del []string
	for _, b := range blobs[:10] {
		del = append(del, b.ID)
		delete(want, b.ID)
	}
	if err := s.Delete(ctx, del); err != nil {
		t.Fatal(err)
	}
	got := walkAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("Walk saw %d blobs, want %d", len(got), len(want))
	}
	for id, size := range want {
		if got[id] != size {
			t.Fatalf("Walk: %s size %d, want %d (present: %v)", id, got[id], size, got[id] != 0)
		}
	}
	// An error from fn stops the walk and is returned.
	stop := errors.New("stop")
	n := 0
	err := s.Walk(ctx, func(string, int64) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk with failing fn: err %v after %d calls; want stop after 1", err, n)
	}
}

func testVerifyClean(t *testing.T, s store.Store) {
	ctx := context.Background()
	var blobs []store.Blob
	for i := range 20 {
		blobs = append(blobs, blob(textBytes(uint64(200+i), 2000)), blob(randBytes(uint64(300+i), 500)))
	}
	put(t, s, blobs...)
	if err := s.Delete(ctx, []string{blobs[0].ID}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err := s.Verify(ctx, func(id string, err error) error {
		if err != nil {
			t.Errorf("Verify reported %s: %v", id, err)
		}
		seen[id] = true
		return nil
	})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(seen) != len(blobs)-1 || seen[blobs[0].ID] {
		t.Fatalf("Verify visited %d blobs (deleted one visited: %v), want %d live ones", len(seen), seen[blobs[0].ID], len(blobs)-1)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, batches, perBatch = 4, 5, 20
	var mu sync.Mutex
	var all []store.Blob
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for bi := range batches {
				var batch []store.Blob
				for i := range perBatch {
					seed := uint64(w*10000 + bi*100 + i)
					// Every writer also puts a blob shared with the others.
					if i == 0 {
						seed = uint64(bi)
					}
					batch = append(batch, blob(textBytes(seed+1000, 1000+i*50)))
				}
				if err := s.Put(ctx, batch); err != nil {
					errs <- fmt.Errorf("put: %w", err)
					return
				}
				mu.Lock()
				all = append(all, batch...)
				mu.Unlock()
			}
		}()
	}
	// Readers run alongside, reading what has been acknowledged.
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for r := range 2 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				var b store.Blob
				if len(all) > 0 {
					b = all[rng.IntN(len(all))]
				}
				mu.Unlock()
				if b.ID == "" {
					if _, err := s.Stats(ctx); err != nil {
						errs <- err
						return
					}
					continue
				}
				got, err := s.Get(ctx, b.ID)
				if err != nil {
					errs <- fmt.Errorf("get of acknowledged blob: %w", err)
					return
				}
				if !bytes.Equal(got, b.Data) {
					errs <- fmt.Errorf("Get(%s) returned different bytes", b.ID)
					return
				}
				if err := s.Walk(ctx, func(string, int64) error { return nil }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids := map[string]bool{}
	for _, b := range all {
		ids[b.ID] = true
		mustGet(t, s, b)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != int64(len(ids)) {
		t.Fatalf("Stats.Blobs = %d, want %d distinct blobs", st.Blobs, len(ids))
	}
}

func testStats(t *testing.T, s store.Store) {
	ctx := context.Background()
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 0 || st.RawBytes != 0 || st.StoredBytes != 0 || st.DeletedBytes != 0 {
		t.Fatalf("Stats of an empty store = %+v", st)
	}
	a, b := blob(textBytes(400, 30_000)), blob(randBytes(401, 10_000))
	put(t, s, a, b)
	st, err = s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 2 || st.RawBytes != 40_000 {
		t.Fatalf("Stats after 2 puts = %+v; want 2 blobs, 40000 raw bytes", st)
	}
	if st.StoredBytes <= 0 {
		t.Fatalf("StoredBytes = %d, want > 0", st.StoredBytes)
	}
	if err := s.Delete(ctx, []string{b.ID}); err != nil {
		t.Fatal(err)
	}
	st2, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Blobs != 1 || st2.RawBytes != 30_000 || st2.StoredBytes >= st.StoredBytes {
		t.Fatalf("Stats after delete = %+v (before %+v)", st2, st)
	}
	if st2.DeletedBytes < 0 {
		t.Fatalf("DeletedBytes negative: %+v", st2)
	}
}

func testCompact(t *testing.T, s store.Store) {
	ctx := context.Background()
	var blobs []store.Blob
	for i := range 30 {
		blobs = append(blobs, blob(textBytes(uint64(500+i), 4000)))
	}
	put(t, s, blobs...)
	var del []string
	for _, b := range blobs[:15] {
		del = append(del, b.ID)
	}
	if err := s.Delete(ctx, del); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	for _, b := range blobs[:15] {
		mustNotFound(t, s, b.ID)
	}
	for _, b := range blobs[15:] {
		mustGet(t, s, b)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 15 || st.DeletedBytes != 0 {
		t.Fatalf("Stats after Compact = %+v; want 15 blobs, 0 deleted bytes", st)
	}
	// Put and Get keep working while a compaction runs.
	if err := s.Delete(ctx, []string{blobs[15].ID}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Compact(ctx) }()
	more := []store.Blob{blob(textBytes(600, 1000)), blob(textBytes(601, 1000))}
	put(t, s, more...)
	for _, b := range append(more, blobs[16:]...) {
		mustGet(t, s, b)
	}
	if err := <-done; err != nil {
		t.Fatalf("concurrent Compact: %v", err)
	}
	for _, b := range append(more, blobs[16:]...) {
		mustGet(t, s, b)
	}
	got := walkAll(t, s)
	ids := make([]string, 0, len(got))
	for id := range got {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) != 16 {
		t.Fatalf("Walk after compactions saw %d blobs, want 16", len(ids))
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := blob([]byte("canceled"))
	if err := s.Put(ctx, []store.Blob{a}); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	if ok, err := s.Has(context.Background(), a.ID); err != nil || ok {
		t.Fatalf("Has after canceled Put = %v, %v; want false", ok, err)
	}
}
