package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
)

// TestImportServerAcrossRestart: `mailarc import --server` keeps going
// while the node is stopped (SIGTERM: 503 shutting_down, then connection
// refused) and started again: every message ends up archived, none is
// reported failed, and they are tagged origin "import".
func TestImportServerAcrossRestart(t *testing.T) {
	const n = 2000
	dir := t.TempDir()
	p := newProc(t, dir, "")
	mails := filepath.Join(dir, "mails")
	if err := os.MkdirAll(mails, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("From: restart@example.com\nSubject: restart %d\nMessage-ID: <%d@restart.e2e>\n\nbody %d\n", i, i, i)
		if err := os.WriteFile(filepath.Join(mails, fmt.Sprintf("%04d.eml", i)), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.start()
	archived := func() int64 {
		_, b, err := p.do("GET", "/api/v1/status", nil)
		if err != nil {
			return -1
		}
		var st struct{ Counts struct{ Archived int64 } }
		_ = json.Unmarshal(b, &st)
		return st.Counts.Archived
	}

	imp := exec.Command(binary, "import", "--server", "http://"+p.httpAddr, "--retry-for", "2m", mails)
	imp.Env = append(os.Environ(), "MAILARC_USER=admin", "MAILARC_PASSWORD="+adminPass)
	out := &testutil.SyncBuffer{}
	imp.Stdout, imp.Stderr = out, out
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- imp.Wait() }()
	t.Cleanup(func() {
		if imp.ProcessState == nil {
			_ = imp.Process.Kill()
			<-done
		}
	})

	testutil.Eventually(t, 60*time.Second, "the import to be under way", func() bool { return archived() >= 100 })
	before := archived()
	p.stop() // SIGTERM mid-import
	if before >= n {
		t.Fatalf("the import finished before the restart (%d archived): nothing tested", before)
	}
	p.start()

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("import across a restart: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("import did not finish:\n%s", out.String())
	}
	summary := out.String()
	var imported, dups, failed int
	for _, l := range lines(summary) {
		if strings.HasPrefix(l, "imported ") {
			if _, err := fmt.Sscanf(l, "imported %d, duplicates %d, failed %d", &imported, &dups, &failed); err != nil {
				t.Fatalf("summary %q: %v", l, err)
			}
		}
	}
	// A message stored by an attempt whose answer was lost comes back as a
	// duplicate of itself on retry; none may be lost or failed.
	if failed != 0 || imported+dups != n || imported < n-16 {
		t.Fatalf("import across a restart: imported %d, duplicates %d, failed %d; want %d, none failed\n%s", imported, dups, failed, n, summary)
	}
	if got := archived(); got != n {
		t.Fatalf("%d messages archived after the import, want %d", got, n)
	}
	t.Logf("%d archived before the restart; summary: imported %d, duplicates %d", before, imported, dups)

	raw := []byte("From: restart@example.com\r\nSubject: restart 1999\r\nMessage-ID: <1999@restart.e2e>\r\n\r\nbody 1999\r\n")
	code, b, err := p.do("GET", "/api/v1/messages/"+sha(raw), nil)
	var meta struct{ Origins []string }
	if err != nil || code != 200 || json.Unmarshal(b, &meta) != nil {
		t.Fatalf("last message: %d %v %s", code, err, b)
	}
	if len(meta.Origins) != 1 || meta.Origins[0] != "import" {
		t.Errorf("origins %v, want [import]", meta.Origins)
	}
	if code, got, err := p.do("GET", "/api/v1/messages/"+sha(raw)+"/raw", nil); err != nil || code != 200 || !bytes.Equal(got, raw) {
		t.Errorf("raw of the last message: %d %v", code, err)
	}
}
