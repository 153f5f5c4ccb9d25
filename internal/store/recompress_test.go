package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
)

// text returns n bytes of mail-like text that zstd compresses well,
// distinct for each seed.
func text(seed, n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "Received: from host%d.example.org (seed %d) by mx.example.net; line %d\r\n", i%37, seed, i)
	}
	return b.Bytes()[:n]
}

func openRecompressTest(t *testing.T, dir string, key []byte) *Local {
	t.Helper()
	l, err := OpenLocal(dir, LocalOptions{NoSync: true, Key: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendDeferred stores blobs encoded with Deferred, as the archive does
// during a burst.
func appendDeferred(t *testing.T, l *Local, blobs []Blob) {
	t.Helper()
	for i := range blobs {
		if err := l.Encode(&blobs[i], Deferred); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(context.Background(), blobs); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, l *Local, blobs []Blob) {
	t.Helper()
	for _, b := range blobs {
		got, err := l.Get(context.Background(), b.ID)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("Get %s: %d bytes, %v; want the %d bytes stored", b.ID, len(got), err, len(b.Data))
		}
	}
}

func mustVerify(t *testing.T, l *Local) {
	t.Helper()
	err := l.Verify(context.Background(), func(id string, err error) error {
		if err != nil {
			return fmt.Errorf("verify: %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mustRecompressAll runs Recompress to the end and checks that nothing is
// left pending.
func mustRecompressAll(t *testing.T, l *Local) {
	t.Helper()
	if done, err := l.Recompress(context.Background(), nil); !done || err != nil {
		t.Fatalf("Recompress = %v, %v; want done", done, err)
	}
	if p := l.PendingRecompress(); p != 0 {
		t.Errorf("pending after Recompress: %d bytes, want 0", p)
	}
}

func packCount(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestRecompress: records written with Deferred are plain (their bytes
// count as pending), Recompress compresses them into a new pack and
// removes the burst's pack, every blob reads back exactly, and after a
// reopen (where plain records are told from the index lengths) there is
// nothing pending. It holds for encrypted stores too, and a blob deleted
// before the rewrite is not carried over.
func TestRecompress(t *testing.T) {
	t.Parallel()
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			t.Parallel()
			var key []byte
			if enc {
				key = make([]byte, 32)
				rand.Read(key)
			}
			dir := t.TempDir()
			ctx := context.Background()
			l := openRecompressTest(t, dir, key)
			var blobs []Blob
			for i := range 40 {
				blobs = append(blobs, Blob{Data: text(i, 20_000)})
			}
			appendDeferred(t, l, blobs)
			before, _ := l.Stats(ctx)
			if p := l.PendingRecompress(); p != before.StoredBytes || before.StoredBytes < before.RawBytes {
				t.Fatalf("after a deferred append: pending %d, stored %d, raw %d; want everything plain and pending", p, before.StoredBytes, before.RawBytes)
			}
			gone := blobs[7]
			if err := l.Delete(ctx, []string{gone.ID}); err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs[:7], blobs[8:]...)

			mustRecompressAll(t, l)
			after, _ := l.Stats(ctx)
			if after.StoredBytes*4 > after.RawBytes {
				t.Errorf("after Recompress: %d bytes stored for %d raw: not compressed", after.StoredBytes, after.RawBytes)
			}
			if n := packCount(t, dir); n != 1 {
				t.Errorf("%d pack files after Recompress, want 1 (the burst's pack removed)", n)
			}
			if ok, _ := l.Has(ctx, gone.ID); ok {
				t.Errorf("deleted blob came back with the rewrite")
			}
			mustRead(t, l, blobs)
			mustVerify(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			l = openRecompressTest(t, dir, key)
			defer l.Close()
			if p := l.PendingRecompress(); p != 0 {
				t.Errorf("pending after reopen: %d bytes, want 0", p)
			}
			mustRead(t, l, blobs)
		})
	}
}

// TestRecompressAfterReopen: plain records written before a restart are
// found again from the index (their lengths) and compressed then.
func TestRecompressAfterReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := openRecompressTest(t, dir, nil)
	blobs := []Blob{{Data: text(1, 50_000)}, {Data: text(2, 50_000)}}
	appendDeferred(t, l, blobs)
	pending := l.PendingRecompress()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openRecompressTest(t, dir, nil)
	defer l.Close()
	if p := l.PendingRecompress(); p != pending || p == 0 {
		t.Fatalf("pending after reopen: %d bytes, want the %d before", p, pending)
	}
	mustRecompressAll(t, l)
	mustRead(t, l, blobs)
	mustVerify(t, l)
}

// TestRecompressYields: Recompress stops between steps when yield says so
// (a burst came back), leaving every blob readable, and a later call
// finishes the job.
func TestRecompressYields(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	l := openRecompressTest(t, dir, nil)
	defer l.Close()
	var blobs []Blob
	for i := range 20 { // 20 MB: three steps of compactChunk
		blobs = append(blobs, Blob{Data: text(i, 1<<20)})
	}
	appendDeferred(t, l, blobs)
	pending := l.PendingRecompress()

	if done, err := l.Recompress(ctx, func() bool { return true }); done || err != nil {
		t.Fatalf("Recompress with a busy archive = %v, %v; want not done, no error", done, err)
	}
	steps := 0
	done, err := l.Recompress(ctx, func() bool { steps++; return steps > 2 })
	if done || err != nil {
		t.Fatalf("Recompress stopped after a step = %v, %v; want not done, no error", done, err)
	}
	if p := l.PendingRecompress(); p == 0 || p >= pending {
		t.Errorf("pending after one step: %d bytes (was %d); want some but not all compressed", p, pending)
	}
	mustRead(t, l, blobs)
	mustVerify(t, l)
	mustRecompressAll(t, l)
	mustRead(t, l, blobs)
	mustVerify(t, l)
}

// TestRecompressBurstPack: a burst that starts when the active pack is
// large goes to a pack of its own, so Recompress rewrites the burst and
// leaves the older, compressed records where they are; a blob that does
// not compress is rewritten once, then never again.
func TestRecompressBurstPack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	l := openRecompressTest(t, dir, nil)
	defer l.Close()
	l.deferRoll = 4 << 10
	var old []Blob
	for i := range 30 {
		d := text(100+i, 30_000)
		old = append(old, Blob{ID: ID(d), Data: d})
	}
	if err := l.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	if p := l.PendingRecompress(); p != 0 {
		t.Fatalf("compressed records count as pending: %d bytes", p)
	}
	oldPack := l.m[key(t, old[0].ID)].pack
	// A blob that does not compress, stored normally, is plain too, but is
	// not a burst: it does not start a new pack.
	odd := make([]byte, 3000)
	rand.Read(odd)
	oddBlob := Blob{ID: ID(odd), Data: odd}
	if err := l.Put(ctx, []Blob{oddBlob}); err != nil {
		t.Fatal(err)
	}
	if lc := l.m[key(t, oddBlob.ID)]; lc.pack != oldPack || !l.plain(lc) {
		t.Fatalf("an incompressible blob put normally: %+v (plain %v), want plain in pack %d", lc, l.plain(lc), oldPack)
	}
	old = append(old, oddBlob)
	noise := make([]byte, 8000)
	rand.Read(noise)
	burst := []Blob{{Data: text(1, 40_000)}, {Data: text(2, 40_000)}, {Data: noise}}
	appendDeferred(t, l, burst)
	if got := l.m[key(t, burst[0].ID)].pack; got == oldPack {
		t.Fatalf("the burst went into the large active pack %d; want a new pack", oldPack)
	}
	mustRecompressAll(t, l)
	for _, b := range old {
		if lc := l.m[key(t, b.ID)]; lc.pack != oldPack {
			t.Fatalf("an older compressed record moved from pack %d to %d", oldPack, lc.pack)
		}
	}
	noiseLoc := l.m[key(t, burst[2].ID)]
	if l.plain(noiseLoc) {
		t.Errorf("the incompressible blob is still plain after Recompress: it would be rewritten again")
	}
	packs := packCount(t, dir)
	if done, err := l.Recompress(ctx, nil); !done || err != nil {
		t.Fatalf("second Recompress = %v, %v", done, err)
	}
	if got := l.m[key(t, burst[2].ID)]; got != noiseLoc || packCount(t, dir) != packs {
		t.Errorf("a second Recompress with nothing plain moved records (%v -> %v, %d -> %d packs)", noiseLoc, got, packs, packCount(t, dir))
	}
	mustRead(t, l, append(old, burst...))
	mustVerify(t, l)
}

func key(t *testing.T, id string) [32]byte {
	t.Helper()
	k, err := parseID(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCompactCompressesPlain: compaction after a delete compresses the
// plain records it moves, like Recompress.
func TestCompactCompressesPlain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l := openRecompressTest(t, t.TempDir(), nil)
	defer l.Close()
	var blobs []Blob
	for i := range 10 {
		blobs = append(blobs, Blob{Data: text(i, 20_000)})
	}
	appendDeferred(t, l, blobs)
	if err := l.Delete(ctx, []string{blobs[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := l.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if p := l.PendingRecompress(); p != 0 {
		t.Errorf("%d plain bytes left after Compact moved them", p)
	}
	mustRead(t, l, blobs[1:])
	mustVerify(t, l)
}
