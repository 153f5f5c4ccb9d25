package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/store"
)

// TestVerifyMissingBlobAndOrphan: `mailarc verify` exits non-zero naming a
// catalogued message whose blob is gone from the store, and notes (without
// failing) a stored blob no catalog row references.
func TestVerifyMissingBlobAndOrphan(t *testing.T) {
	dir := t.TempDir()
	p := newProc(t, dir, "")
	mails := filepath.Join(dir, "mails")
	if err := os.MkdirAll(mails, 0o755); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("Subject: verify cli %d\r\n\r\nbody %d\r\n", i, i)
		ids = append(ids, sha([]byte(msg)))
		if err := os.WriteFile(filepath.Join(mails, fmt.Sprintf("%d.eml", i)), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := cli(t, nil, "import", "--config", p.config, mails); code != 0 || !strings.Contains(out, "imported 3, duplicates 0, failed 0") {
		t.Fatalf("import: %d %s", code, out)
	}
	if out, code := cli(t, nil, "verify", "--config", p.config); code != 0 || !strings.Contains(out, ": 0 problems, 0 unreferenced blobs") {
		t.Fatalf("verify of a clean archive: exit %d\n%s", code, out)
	}

	// Behind the catalog's back: remove one message's blob for good, and
	// store a blob that no catalog row references.
	ctx := context.Background()
	st, err := store.OpenLocal(filepath.Join(dir, "data", "store"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := ids[1]
	orphan := store.NewBlob([]byte("Subject: stored, never catalogued\r\n\r\nx\r\n"))
	if err := st.Delete(ctx, []string{victim}); err != nil {
		t.Fatal(err)
	}
	if err := st.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, []store.Blob{orphan}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	out, code := cli(t, nil, "verify", "--config", p.config)
	var bad, notes []string
	for _, l := range lines(out) {
		f := strings.Fields(l)
		switch {
		case strings.HasPrefix(l, "BAD "):
			bad = append(bad, strings.TrimSuffix(f[1], ":"))
			if !strings.Contains(l, "blob is missing") {
				t.Errorf("reason for %s: %q", f[1], l)
			}
		case strings.HasPrefix(l, "note "):
			notes = append(notes, strings.TrimSuffix(f[1], ":"))
		}
	}
	if code != 1 || len(bad) != 1 || bad[0] != victim || len(notes) != 1 || notes[0] != orphan.ID ||
		!strings.Contains(out, "verified 3 blobs and 3 catalog messages: 1 problems, 1 unreferenced blobs") {
		t.Fatalf("verify: exit %d, bad %v (want [%s]), notes %v (want [%s])\n%s", code, bad, victim, notes, orphan.ID, out)
	}
}
