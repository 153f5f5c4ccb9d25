package store

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/mailarc/mailarc/internal/testutil"
)

// corpusDir finds ../shared/corpus relative to the repository root (the
// directory holding go.mod). It returns "" when absent, failing the test
// instead when MAILARC_INTEGRATION=1.
func corpusDir(tb testing.TB) string {
	tb.Helper()
	c := testutil.FindCorpus()
	if c == "" && testutil.Integration() {
		tb.Fatal("the shared corpus is missing (MAILARC_INTEGRATION=1)")
	}
	return c
}

// corpusSamples returns up to n real messages from the corpus (nil if absent).
func corpusSamples(tb testing.TB, n int) [][]byte {
	tb.Helper()
	c := corpusDir(tb)
	if c == "" {
		return nil
	}
	var out [][]byte
	for _, sub := range []string{"real/btrfs/000", "real/usrp/000", "mime-edge"} {
		_ = filepath.WalkDir(filepath.Join(c, sub), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || len(out) >= n {
				if len(out) >= n {
					return filepath.SkipAll
				}
				return nil
			}
			if info, err := d.Info(); err == nil && info.Size() < 256<<10 {
				if b, err := os.ReadFile(path); err == nil {
					out = append(out, b)
				}
			}
			return nil
		})
	}
	return out
}

func testCodec(tb testing.TB, key []byte, compress bool) *codec {
	tb.Helper()
	c := &codec{}
	var err error
	if compress {
		if c.enc, err = zstd.NewWriter(nil); err != nil {
			tb.Fatal(err)
		}
	}
	if c.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxBlobSize)); err != nil {
		tb.Fatal(err)
	}
	if key != nil {
		if c.aead, err = newAEAD(key); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() {
		if c.enc != nil {
			c.enc.Close()
		}
		c.dec.Close()
	})
	return c
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	inputs := [][]byte{{0}, []byte("x"), bytes.Repeat([]byte("abc"), 10000), make([]byte, 5000)}
	inputs = append(inputs, corpusSamples(t, 20)...)
	for _, k := range [][]byte{nil, key} {
		for _, z := range []bool{false, true} {
			c := testCodec(t, k, z)
			for _, data := range inputs {
				id := [32]byte(mustSum(data))
				rec, err := c.encodeRecord([]byte("prefix"), id, data)
				if err != nil {
					t.Fatal(err)
				}
				h, got, err := c.decodeRecord(rec[len("prefix"):])
				if err != nil {
					t.Fatalf("key=%v z=%v len=%d: %v", k != nil, z, len(data), err)
				}
				if h.id != id || !bytes.Equal(got, data) {
					t.Fatalf("round trip changed the data")
				}
				// Every single-byte change is detected.
				for _, pos := range []int{0, 5, 20, recordHeaderSize - 1, recordHeaderSize, len(rec) - len("prefix") - 1} {
					bad := bytes.Clone(rec[len("prefix"):])
					if pos >= len(bad) {
						continue
					}
					bad[pos] ^= 1
					if _, _, err := c.decodeRecord(bad); err == nil {
						t.Fatalf("flipped byte %d not detected", pos)
					}
				}
			}
		}
	}
}

func mustSum(b []byte) []byte {
	id := ID(b)
	k, _ := parseID(id)
	return k[:]
}

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder, with and
// without a key: it must never panic nor accept bytes whose content does not
// hash to the id in the header.
func FuzzDecodeRecord(f *testing.F) {
	plain := testCodec(f, nil, true)
	enc := testCodec(f, bytes.Repeat([]byte{1}, 32), true)
	seeds := [][]byte{[]byte("hello"), bytes.Repeat([]byte("mail "), 200)}
	seeds = append(seeds, corpusSamples(f, 8)...)
	for _, s := range seeds {
		id := [32]byte(mustSum(s))
		for _, c := range []*codec{plain, enc} {
			rec, err := c.encodeRecord(nil, id, s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(rec)
		}
	}
	f.Add([]byte(recordMagic))
	f.Add(make([]byte, recordHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range []*codec{plain, enc} {
			h, data, err := c.decodeRecord(b)
			if err == nil && [32]byte(mustSum(data)) != h.id {
				t.Fatal("decoder accepted content that does not match its id")
			}
		}
	})
}

// FuzzOpenPack writes arbitrary bytes after a valid pack header (and as an
// index file) and opens the store: opening, Verify and Get must never panic,
// and opening must succeed (recovery truncates or skips what it cannot read).
func FuzzOpenPack(f *testing.F) {
	c := testCodec(f, nil, true)
	var seed []byte
	for i, s := range append([][]byte{[]byte("one"), []byte("two")}, corpusSamples(f, 3)...) {
		var err error
		seed, err = c.encodeRecord(seed, [32]byte(mustSum(s)), s)
		if err != nil {
			f.Fatal(err)
		}
		if i == 1 {
			f.Add(bytes.Clone(seed), []byte{})
		}
	}
	f.Add(seed, []byte{})
	f.Add(append(bytes.Clone(seed), "MABR\x01\x00\x00\x00garbage"...), []byte("MAIX"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, packBody, idx []byte) {
		if len(packBody) > 1<<20 || len(idx) > 1<<16 {
			return
		}
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "packs"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := createMeta(dir, nil, true); err != nil {
			t.Fatal(err)
		}
		pack := append(fileHeader(packMagic, 1), packBody...)
		if err := os.WriteFile(filepath.Join(dir, "packs", packName(1)), pack, 0o600); err != nil {
			t.Fatal(err)
		}
		if len(idx) > 0 {
			if err := os.WriteFile(filepath.Join(dir, "packs", idxName(1)), append(fileHeader(idxMagic, 1), idx...), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := OpenLocal(dir, LocalOptions{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("OpenLocal: %v", err)
		}
		defer s.Close()
		ctx := t.Context()
		if err := s.Verify(ctx, func(string, error) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.Walk(ctx, func(id string, _ int64) error {
			_, _ = s.Get(ctx, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, []Blob{NewBlob([]byte("after"))}); err != nil {
			t.Fatal(err)
		}
	})
}
