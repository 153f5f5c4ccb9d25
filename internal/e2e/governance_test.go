package e2e

import (
	"archive/zip"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3" // to tamper with the audit log as an attacker would
)

// TestGovernanceCLI drives `mailarc export` (local and --server) and
// `mailarc audit verify` on a real data directory, including tampering with
// the audit log behind mailarc's back.
func TestGovernanceCLI(t *testing.T) {
	dir := t.TempDir()
	p := newProc(t, dir, "")
	mails := filepath.Join(dir, "mails")
	if err := os.MkdirAll(mails, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"alpha kumquat", "beta kumquat", "gamma"} {
		body := "From: a@corp.example\nSubject: " + s + "\nDate: Mon, 2 Mar 2020 10:00:0" + string(rune('0'+i)) + " +0000\n\nFrom the body\n"
		if err := os.WriteFile(filepath.Join(mails, s+".eml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := cli(t, nil, "import", "--config", p.config, mails); code != 0 {
		t.Fatalf("import: %d %s", code, out)
	}
	// Local mbox export with sidecars.
	mbox := filepath.Join(dir, "out.mbox")
	out, code := cli(t, nil, "export", "--config", p.config, "--format", "mbox", "-o", mbox, "kumquat")
	if code != 0 || !strings.Contains(out, "exported 2 messages") {
		t.Fatalf("local export: %d %s", code, out)
	}
	b, err := os.ReadFile(mbox)
	if err != nil || strings.Count(string(b), "\nFrom ") != 1 || !strings.HasPrefix(string(b), "From ") || !strings.Contains(string(b), ">From the body") {
		t.Fatalf("mbox: %v %q", err, b)
	}
	var cust struct {
		Count int64
		User  string
	}
	cb, err := os.ReadFile(mbox + ".custody.json")
	if err != nil || json.Unmarshal(cb, &cust) != nil || cust.Count != 2 || !strings.HasPrefix(cust.User, "local") {
		t.Fatalf("custody sidecar: %v %s", err, cb)
	}
	if m, err := os.ReadFile(mbox + ".manifest.csv"); err != nil || strings.Count(string(m), "\n") != 3 {
		t.Fatalf("manifest sidecar: %v %q", err, m)
	}

	p.start()
	zipPath := filepath.Join(dir, "out.zip")
	out, code = cli(t, nil, "export", "--server", "http://"+p.httpAddr, "--format", "zip", "-o", zipPath, "kumquat OR gamma")
	if code != 0 || !strings.Contains(out, "exported 3 messages") {
		t.Fatalf("remote zip export: %d %s", code, out)
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil || len(zr.File) != 5 {
		t.Fatalf("zip: %v", err)
	}
	zr.Close()
	rmbox := filepath.Join(dir, "remote.mbox")
	out, code = cli(t, nil, "export", "--server", "http://"+p.httpAddr, "--format", "mbox", "-o", rmbox, "gamma")
	if code != 0 || !strings.Contains(out, "exported 1 messages") || strings.Contains(out, "warning") {
		t.Fatalf("remote mbox export: %d %s", code, out)
	}
	if _, err := os.Stat(rmbox + ".custody.json"); err != nil {
		t.Fatal(err)
	}
	if code, _, err := p.do("GET", "/api/v1/search?q=kumquat", nil); err != nil || code != 200 {
		t.Fatalf("search: %d %v", code, err)
	}
	p.stop()

	out, code = cli(t, nil, "audit", "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	out, code = cli(t, nil, "audit", "list", "--config", p.config, "--action", "export*")
	if code != 0 || strings.Count(out, "export.complete") != 4 {
		t.Fatalf("audit list: %d %s", code, out)
	}

	// Remove the newest entries as an attacker with file access would.
	db, err := sql.Open("sqlite3", filepath.Join(dir, "data", "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`DROP TRIGGER audit_no_delete`, `DELETE FROM audit WHERE seq > (SELECT max(seq) - 2 FROM audit)`} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, nil, "audit", "verify", "--config", p.config)
	if code != 1 || !strings.Contains(out, "truncated") {
		t.Fatalf("audit verify after truncation: %d %s", code, out)
	}
}
