package file

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/testutil"
)

// corpusDir returns <repo root>/../shared/corpus/<sub>, or "" when it is
// absent.
func corpusDir(sub string) string { return testutil.FindCorpus(sub) }

// needCorpus returns the corpus folder sub, skipping the test when it is
// absent (failing instead under MAILARC_INTEGRATION=1).
func needCorpus(t *testing.T, sub string) string {
	t.Helper()
	p := corpusDir(sub)
	if p == "" {
		if os.Getenv("MAILARC_INTEGRATION") == "1" {
			t.Fatalf("corpus folder %q not found at <repo root>/../shared/corpus", sub)
		}
		t.Skipf("corpus folder %q not found at <repo root>/../shared/corpus; skipping", sub)
	}
	return p
}

// TestCorpusReal walks the real mailing-list corpus: exactly one item per
// .eml file, in lexical path order, with the file's bytes.
func TestCorpusReal(t *testing.T) {
	t.Parallel()
	root := needCorpus(t, "real")
	var want []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".eml") {
			want = append(want, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 10000 {
		t.Fatalf("corpus has only %d .eml files", len(want))
	}
	i := 0
	err = Walk(context.Background(), []string{root}, Options{}, func(it Item) error {
		if it.Err != nil {
			t.Errorf("%s: %v", it.Source, it.Err)
			return nil
		}
		if i >= len(want) || it.Source != want[i] {
			t.Fatalf("item %d is %s, want %s", i+1, it.Source, want[min(i, len(want)-1)])
		}
		i++
		b, err := os.ReadFile(it.Source)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, it.Raw) {
			t.Errorf("%s: %d bytes read, file has %d", it.Source, len(it.Raw), len(b))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if i != len(want) {
		t.Errorf("Walk yielded %d messages, corpus has %d .eml files", i, len(want))
	}
	n, err := Count(context.Background(), []string{root})
	if err != nil || n != len(want) {
		t.Errorf("Count = %d, %v; want %d", n, err, len(want))
	}
}

// TestCorpusMimeEdge walks the malformed-mail corpus (which holds mboxes,
// binary documents and parser torture tests): every item is either bytes
// or an error, never both, and no message exceeds the limit.
func TestCorpusMimeEdge(t *testing.T) {
	t.Parallel()
	root := needCorpus(t, "mime-edge")
	const limit = 4 << 20
	var ok, failed int
	err := Walk(context.Background(), []string{root}, Options{MaxMessageSize: limit}, func(it Item) error {
		switch {
		case (it.Err == nil) == (it.Raw == nil):
			t.Errorf("%s: Raw %d bytes with Err %v", it.Source, len(it.Raw), it.Err)
		case it.Err != nil:
			failed++
		case len(it.Raw) > limit:
			t.Errorf("%s: %d bytes, over the limit", it.Source, len(it.Raw))
		default:
			ok++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if ok < 1500 {
		t.Errorf("only %d messages read (%d failed)", ok, failed)
	}
	t.Logf("%d messages, %d failed", ok, failed)
}
