package e2e

import (
	"archive/zip"
	"database/sql"
	"encoding/json"
	"os"
	"os/user"
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

// TestGovernanceUserCLI drives `mailarc user add|passwd|set|del|list`
// through a running node (--server) and on the stopped data directory, and
// `mailarc export --hold` both ways: every user change is in the audit log
// (by the API user, or by local:OSUSER with via=cli; the bootstrap admin by
// system), refused commands change and record nothing, and the log verifies.
func TestGovernanceUserCLI(t *testing.T) {
	dir := t.TempDir()
	p := newProc(t, dir, "")
	mails := filepath.Join(dir, "mails")
	if err := os.MkdirAll(mails, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, from := range []string{"ceo@corp.example", "ceo@corp.example", "intern@corp.example"} {
		body := "From: " + from + "\nSubject: case " + string(rune('a'+i)) + "\nDate: Mon, 2 Mar 2020 10:00:0" + string(rune('0'+i)) + " +0000\n\nmerger talk\n"
		if err := os.WriteFile(filepath.Join(mails, string(rune('a'+i))+".eml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := cli(t, nil, "import", "--config", p.config, mails); code != 0 {
		t.Fatalf("import: %d %s", code, out)
	}
	run := func(stdin string, want int, args ...string) string {
		t.Helper()
		var in []byte
		if stdin != "" {
			in = []byte(stdin + "\n")
		}
		out, code := cli(t, in, args...)
		if code != want {
			t.Fatalf("mailarc %s: exit %d, want %d: %s", strings.Join(args, " "), code, want, out)
		}
		return out
	}

	p.start() // creates the bootstrap admin
	srv := "http://" + p.httpAddr
	run("bob-pass-1234", 0, "user", "add", "--server", srv, "--role", "user", "--addresses", "bob@corp.example", "bob")
	if out := run("", 0, "user", "set", "--server", srv, "--role", "auditor", "--addresses", "bob@corp.example,robert@corp.example", "bob"); !strings.Contains(out, "role auditor") {
		t.Errorf("remote set: %s", out)
	}
	run("bob-pass-5678", 0, "user", "passwd", "--server", srv, "bob")
	if out := run("", 0, "user", "list", "--server", srv); !strings.Contains(out, "auditor") || !strings.Contains(out, "robert@corp.example") {
		t.Errorf("remote list: %s", out)
	}
	run("x-pass-12345", 2, "user", "add", "--server", srv, "--role", "superuser", "mallory")
	run("", 2, "user", "set", "--server", srv, "bob") // nothing to change
	if out := run("", 1, "user", "set", "--server", srv, "--role", "user", "nobody"); !strings.Contains(out, "404") {
		t.Errorf("remote set of an unknown user: %s", out)
	}
	// A hold, exported through the running node.
	code, b, err := p.do("POST", "/api/v1/holds", []byte(`{"name":"Case 9","query":"from:ceo@corp.example"}`))
	var hold struct{ ID string }
	if err != nil || code != 201 || json.Unmarshal(b, &hold) != nil || hold.ID == "" {
		t.Fatalf("create hold: %d %v %s", code, err, b)
	}
	if out := run("", 0, "export", "--server", srv, "--format", "zip", "-o", filepath.Join(dir, "hold-remote.zip"), "--hold", hold.ID); !strings.Contains(out, "exported 2 messages") {
		t.Errorf("remote hold export: %s", out)
	}
	run("", 0, "user", "del", "--server", srv, "bob")
	p.stop()

	// The same on the data directory.
	run("audrey-pass-1", 0, "user", "add", "--config", p.config, "--role", "auditor", "audrey")
	run("audrey-pass-2", 0, "user", "passwd", "--config", p.config, "audrey")
	if out := run("", 0, "user", "set", "--config", p.config, "--role", "user", "--addresses", "Audrey@Corp.Example, a.smith@corp.example", "audrey"); !strings.Contains(out, "audrey@corp.example,a.smith@corp.example") {
		t.Errorf("local set: %s", out)
	}
	if out := run("", 0, "user", "list", "--config", p.config); !strings.Contains(out, "a.smith@corp.example") || !strings.Contains(out, "admin") {
		t.Errorf("local list: %s", out)
	}
	run("x-pass-12345", 2, "user", "add", "--config", p.config, "--role", "superuser", "mallory")
	run("x-pass-12345", 1, "user", "add", "--config", p.config, "--addresses", "@corp.example", "mallory")
	run("", 1, "user", "set", "--config", p.config, "--role", "user", "admin") // the last admin
	run("", 0, "user", "del", "--config", p.config, "audrey")
	run("", 1, "user", "del", "--config", p.config, "audrey")
	hz := filepath.Join(dir, "hold-local.zip")
	if out := run("", 0, "export", "--config", p.config, "--format", "zip", "-o", hz, "--hold", hold.ID); !strings.Contains(out, "exported 2 messages") {
		t.Errorf("local hold export: %s", out)
	}
	zr, err := zip.OpenReader(hz)
	if err != nil {
		t.Fatal(err)
	}
	var cust struct {
		Hold     string `json:"hold"`
		HoldName string `json:"hold_name"`
		Query    string `json:"query"`
		Count    int    `json:"count"`
	}
	for _, f := range zr.File {
		if f.Name != "custody.json" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(rc).Decode(&cust)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	zr.Close()
	if cust.Hold != hold.ID || cust.HoldName != "Case 9" || cust.Query != "from:ceo@corp.example" || cust.Count != 2 {
		t.Errorf("local hold export custody: %+v", cust)
	}
	run("", 2, "export", "--config", p.config, "-o", filepath.Join(dir, "x.zip"), "--hold", hold.ID, "merger")

	// The log: who did what, nothing for the refused commands.
	out := run("", 0, "audit", "list", "--config", p.config, "--action", "user.*", "--limit", "1000", "--json")
	var res struct {
		Entries []struct {
			User   string
			Action string
			Detail map[string]any
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("audit list --json: %v %s", err, out)
	}
	osUser, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	local := "local:" + osUser.Username
	var got []string
	for i := len(res.Entries) - 1; i >= 0; i-- { // oldest first
		e := res.Entries[i]
		via, _ := e.Detail["via"].(string)
		name, _ := e.Detail["name"].(string)
		got = append(got, e.User+" "+e.Action+" "+name+" "+via)
	}
	want := []string{
		"system user.add admin ",
		"admin user.add bob ", "admin user.update bob ", "admin user.password bob ", "admin user.delete bob ",
		local + " user.add audrey cli", local + " user.password audrey cli", local + " user.update audrey cli", local + " user.delete audrey cli",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("user.* audit entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range res.Entries {
		if e.Action == "user.update" && e.User == local {
			if before, _ := e.Detail["before"].(map[string]any); e.Detail["role"] != "user" || before["role"] != "auditor" {
				t.Errorf("local user.update detail: %v", e.Detail)
			}
		}
	}
	if out := run("", 0, "audit", "list", "--config", p.config, "--action", "export*"); strings.Count(out, "export.complete") != 2 || !strings.Contains(out, local) {
		t.Errorf("export entries: %s", out)
	}
	if out := run("", 0, "audit", "verify", "--config", p.config); !strings.Contains(out, "intact") {
		t.Errorf("audit verify: %s", out)
	}
}
