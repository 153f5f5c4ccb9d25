package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/source/file"
	"github.com/mailarc/mailarc/internal/testutil"
)

func mail(from, to, subject, date, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n%s\r\n--B\r\nContent-Type: text/plain; name=\"a.txt\"\r\nContent-Disposition: attachment; filename=\"a.txt\"\r\n\r\nattached %s\r\n--B--\r\n",
		from, to, subject, date, strings.ReplaceAll(subject, " ", "."), body, body)
}

func (nd *node) post(t *testing.T, raw string) string {
	t.Helper()
	c, b := nd.admin(t, "POST", "/api/v1/messages", []byte(raw))
	var r struct{ ID string }
	if err := json.Unmarshal(b, &r); err != nil || (c != 201 && c != 200) {
		t.Fatalf("post: %d %s", c, b)
	}
	return r.ID
}

func (nd *node) waitIndexed(t *testing.T, n int) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "messages to be indexed", func() bool {
		_, b := nd.admin(t, "GET", "/api/v1/status", nil)
		return strings.Contains(string(b), fmt.Sprintf(`"indexed":%d`, n))
	})
}

func zipFiles(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("export is not a zip: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = data
	}
	return out
}

// TestUserIsolation: a user can neither see nor fetch another user's mail
// by any route.
func TestUserIsolation(t *testing.T) {
	nd := start(t, t.TempDir())
	mine := nd.post(t, mail("Alice <alice@corp.example>", "x@corp.example", "alpha report", "Mon, 2 Mar 2020 10:00:00 +0000", "shared word"))
	theirs := nd.post(t, mail("bob@corp.example", "y@corp.example", "bravo report", "Mon, 2 Mar 2020 11:00:00 +0000", "shared word"))
	nd.waitIndexed(t, 2)
	if c, b := nd.admin(t, "POST", "/api/v1/users", []byte(`{"name":"alice","password":"alice-pass-1","role":"user","addresses":["alice@corp.example"]}`)); c != 201 {
		t.Fatalf("add user: %d %s", c, b)
	}
	as := func(method, path string) (int, []byte, http.Header) {
		return nd.req(t, method, path, "alice", "alice-pass-1", nil)
	}
	// Own mail is reachable.
	for _, p := range []string{"", "/raw", "/attachments/0"} {
		if c, b, _ := as("GET", "/api/v1/messages/"+mine+p); c != 200 {
			t.Fatalf("own message%s: %d %s", p, c, b)
		}
	}
	// Another user's mail answers 404 everywhere, like an unknown id.
	for _, p := range []string{"", "/raw", "/attachments/0"} {
		if c, b, _ := as("GET", "/api/v1/messages/"+theirs+p); c != 404 || errCode(b) != "not_found" {
			t.Errorf("other's message%s: %d %s", p, c, b)
		}
	}
	c, b, _ := as("GET", "/api/v1/search?q="+url.QueryEscape("shared"))
	if c != 200 || !strings.Contains(string(b), mine) || strings.Contains(string(b), theirs) || !strings.Contains(string(b), `"total":1`) {
		t.Errorf("search: %d %s", c, b)
	}
	for _, q := range []string{"", "shared", "bravo", "from:bob@corp.example"} {
		c, b, _ := as("GET", "/api/v1/export?format=zip&q="+url.QueryEscape(q))
		if c != 200 {
			t.Fatalf("export %q: %d %s", q, c, b)
		}
		files := zipFiles(t, b)
		if _, ok := files["messages/"+theirs+".eml"]; ok {
			t.Errorf("export %q leaked another user's message", q)
		}
		if strings.Contains(string(files["manifest.csv"]), theirs) || strings.Contains(string(files["manifest.csv"]), "bravo") {
			t.Errorf("export %q manifest leaks: %s", q, files["manifest.csv"])
		}
		_, has := files["messages/"+mine+".eml"]
		if has != (q == "" || q == "shared") {
			t.Errorf("export %q: own message present=%v", q, has)
		}
	}
	c, b, _ = as("GET", "/api/v1/export?format=mbox&q=")
	if c != 200 || !strings.Contains(string(b), "alpha report") || strings.Contains(string(b), "bravo") {
		t.Errorf("mbox export: %d %s", c, b)
	}
	if c, b, _ = as("GET", "/api/v1/export?format=mbox&part=manifest"); c != 200 || strings.Contains(string(b), theirs) || !strings.Contains(string(b), mine) {
		t.Errorf("manifest export: %d %s", c, b)
	}
	// Governance endpoints are closed to users.
	for _, p := range []string{"GET /api/v1/holds", "POST /api/v1/holds", "GET /api/v1/audit", "GET /api/v1/retention",
		"PUT /api/v1/retention", "POST /api/v1/retention/run?dry_run=true", "GET /api/v1/export?hold=abc"} {
		m, path, _ := strings.Cut(p, " ")
		if c, b, _ := as(m, path); c != 403 {
			t.Errorf("%s as user: %d %s", p, c, b)
		}
	}
	// Everything above is on record.
	c, b = nd.admin(t, "GET", "/api/v1/audit?user=alice&limit=1000", nil)
	for _, a := range []string{audit.ActionLogin, audit.ActionView, audit.ActionRaw, audit.ActionAttachment, audit.ActionSearch, audit.ActionExport} {
		if !strings.Contains(string(b), `"action":"`+a+`"`) {
			t.Errorf("audit has no %s for alice: %d", a, c)
		}
	}
	nd.req(t, "GET", "/api/v1/status", "alice", "wrong", nil)
	if _, b = nd.admin(t, "GET", "/api/v1/audit?action=login.failed", nil); !strings.Contains(string(b), `"user":"alice"`) {
		t.Errorf("failed login not audited: %s", b)
	}
	if _, b = nd.admin(t, "GET", "/api/v1/audit?action=user.add", nil); !strings.Contains(string(b), `alice@corp.example`) {
		t.Errorf("user change not audited: %s", b)
	}
}

// grepTree returns the files under dir that contain needle.
func grepTree(t *testing.T, dir, needle string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(needle)) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestRetentionHoldsAndScrub: a held message survives a purge run that
// would delete it; the purged message leaves no trace on disk; the audit
// log records it and verifies.
func TestRetentionHoldsAndScrub(t *testing.T) {
	dir := t.TempDir()
	nd := start(t, dir)
	const token = "qxzvwkjtoken4711plumbob"
	old := "Mon, 5 Mar 2001 10:00:00 +0000"
	doomed := nd.post(t, mail("spam@junk.example", "bob@corp.example", "offer "+token, old, "cheap "+token+" stuff"))
	held := nd.post(t, mail("ceo@corp.example", "bob@corp.example", "merger plans", old, "confidential numbers"))
	recent := nd.post(t, mail("spam@junk.example", "bob@corp.example", "fresh offer", time.Now().Format(time.RFC1123Z), "new"))
	nd.waitIndexed(t, 3)
	if hits := grepTree(t, dir, token); len(hits) == 0 {
		t.Fatal("the token is nowhere on disk before the purge: the test would prove nothing")
	}

	if c, b := nd.admin(t, "POST", "/api/v1/holds", []byte(`{"name":"Case 12","query":"from:ceo@corp.example","description":"merger"}`)); c != 201 || !strings.Contains(string(b), `"id"`) {
		t.Fatalf("create hold: %d %s", c, b)
	}
	if c, b := nd.admin(t, "PUT", "/api/v1/retention", []byte(`{"default":"5y","policies":[{"name":"junk","query":"from:junk.example","keep":"30d"},{"name":"bad","query":"(","keep":"1d"}]}`)); c != 400 || !strings.Contains(string(b), "policies[1].query") {
		t.Fatalf("invalid policy accepted: %d %s", c, b)
	}
	c, b := nd.admin(t, "PUT", "/api/v1/retention", []byte(`{"default":"5y","policies":[{"name":"junk","query":"from:junk.example","keep":"30d"}]}`))
	if c != 200 || !strings.Contains(string(b), `"version":1`) {
		t.Fatalf("put retention: %d %s", c, b)
	}
	// GET output can be PUT back.
	_, b = nd.admin(t, "GET", "/api/v1/retention", nil)
	if c, b2 := nd.admin(t, "PUT", "/api/v1/retention", b); c != 200 || !strings.Contains(string(b2), `"version":2`) {
		t.Fatalf("round trip put: %d %s", c, b2)
	}
	c, b = nd.admin(t, "POST", "/api/v1/retention/run?dry_run=true", nil)
	var dry struct {
		WouldPurge int64    `json:"would_purge"`
		Held       int64    `json:"held"`
		Samples    []string `json:"samples"`
	}
	if err := json.Unmarshal(b, &dry); c != 200 || err != nil || dry.WouldPurge != 1 || dry.Held != 1 || len(dry.Samples) != 1 || dry.Samples[0] != doomed {
		t.Fatalf("dry run: %d %s", c, b)
	}
	for _, q := range []string{"", "?confirm=", "?confirm=2", "?confirm=0"} {
		if c, b := nd.admin(t, "POST", "/api/v1/retention/run"+q, nil); c != 409 || errCode(b) != "confirm_mismatch" {
			t.Fatalf("run%s: %d %s", q, c, b)
		}
	}
	if c, b, _ := nd.req(t, "POST", "/api/v1/retention/run?confirm=1", "", "", nil); c != 401 {
		t.Fatalf("anonymous run: %d %s", c, b)
	}
	c, b = nd.admin(t, "POST", "/api/v1/retention/run?confirm=1", nil)
	if c != 200 || !strings.Contains(string(b), `"purged":1`) || !strings.Contains(string(b), `"held":1`) {
		t.Fatalf("run: %d %s", c, b)
	}
	for id, want := range map[string]int{doomed: 404, held: 200, recent: 200} {
		if c, _ := nd.admin(t, "GET", "/api/v1/messages/"+id+"/raw", nil); c != want {
			t.Errorf("%s: %d, want %d", id, c, want)
		}
	}
	if hits := grepTree(t, dir, token); len(hits) != 0 {
		t.Fatalf("purged token still on disk in %v", hits)
	}
	if hits := grepTree(t, dir, "merger plans"); len(hits) == 0 {
		t.Error("sanity: the held message's words should still be on disk")
	}
	// Re-ingesting a purged message stores nothing.
	_, b = nd.admin(t, "POST", "/api/v1/messages", []byte(mail("spam@junk.example", "bob@corp.example", "offer "+token, old, "cheap "+token+" stuff")))
	if !strings.Contains(string(b), `"purged":true`) {
		t.Fatalf("re-ingest of a purged message: %s", b)
	}
	// The hold lists what it covers; releasing it is admin only.
	_, b = nd.admin(t, "GET", "/api/v1/holds", nil)
	var hl struct {
		Holds []struct{ ID string } `json:"holds"`
	}
	if err := json.Unmarshal(b, &hl); err != nil || len(hl.Holds) != 1 {
		t.Fatalf("holds: %s", b)
	}
	hid := hl.Holds[0].ID
	if c, b := nd.admin(t, "GET", "/api/v1/holds/"+hid+"/messages", nil); c != 200 || !strings.Contains(string(b), held) || !strings.Contains(string(b), `"total":1`) {
		t.Fatalf("hold messages: %d %s", c, b)
	}
	c, b = nd.admin(t, "GET", "/api/v1/export?format=zip&hold="+hid, nil)
	if files := zipFiles(t, b); c != 200 || len(files) != 3 || files["messages/"+held+".eml"] == nil {
		t.Fatalf("hold export: %d %d files", c, len(files))
	}
	if c, b := nd.admin(t, "DELETE", "/api/v1/holds/"+hid, nil); c != 204 {
		t.Fatalf("release: %d %s", c, b)
	}
	if c, _ := nd.admin(t, "DELETE", "/api/v1/holds/"+hid, nil); c != 409 {
		t.Fatalf("double release: %d", c)
	}
	// The audit log has the purge with its id, in JSON and CSV, and verifies.
	if _, b := nd.admin(t, "GET", "/api/v1/audit?action=retention.purge", nil); !strings.Contains(string(b), doomed) {
		t.Errorf("purge not audited: %s", b)
	}
	c, b, h := nd.req(t, "GET", "/api/v1/audit?format=csv&action=retention.*", "admin", "admin-pass-1", nil)
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if c != 200 || err != nil || len(rows) < 3 || rows[0][0] != "seq" || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Errorf("audit csv: %d %v %q", c, err, b)
	}
	if rep, err := audit.Verify(context.Background(), nd.n.Catalog); err != nil || !rep.OK() || rep.Entries < 10 {
		t.Errorf("audit verify: %+v %v", rep, err)
	}
}

// TestExportRoundTrip: every exported message equals its raw bytes and the
// manifest hashes verify, for zip and mbox (custody in trailers).
func TestExportRoundTrip(t *testing.T) {
	nd := start(t, t.TempDir())
	raws := map[string]string{}
	for i := range 25 {
		// Many messages share a second: the export cursor must not skip or repeat.
		raw := mail(fmt.Sprintf("s%d@corp.example", i), "r@corp.example", fmt.Sprintf("export %d", i),
			fmt.Sprintf("Mon, 2 Mar 2020 10:00:%02d +0000", i/10), "From the body\r\n>From quoted\r\nexportable")
		raws[nd.post(t, raw)] = raw
	}
	nd.waitIndexed(t, 25)
	c, b := nd.admin(t, "GET", "/api/v1/export?format=zip&q=exportable", nil)
	files := zipFiles(t, b)
	if c != 200 || len(files) != 27 {
		t.Fatalf("zip: %d, %d files", c, len(files))
	}
	for id, raw := range raws {
		if string(files["messages/"+id+".eml"]) != raw {
			t.Errorf("zip message %s differs", id)
		}
	}
	var cust struct {
		Count          int64  `json:"count"`
		ManifestSHA256 string `json:"manifest_sha256"`
		User, Node     string
	}
	if err := json.Unmarshal(files["custody.json"], &cust); err != nil || cust.Count != 25 || cust.User != "admin" || cust.Node != "test" {
		t.Fatalf("custody: %v %s", err, files["custody.json"])
	}
	sum := sha256.Sum256(files["manifest.csv"])
	if hex.EncodeToString(sum[:]) != cust.ManifestSHA256 {
		t.Fatal("manifest hash mismatch")
	}
	rows, _ := csv.NewReader(bytes.NewReader(files["manifest.csv"])).ReadAll()
	if len(rows) != 26 {
		t.Fatalf("manifest rows %d", len(rows))
	}
	for _, r := range rows[1:] {
		s := sha256.Sum256(files["messages/"+r[0]+".eml"])
		if hex.EncodeToString(s[:]) != r[1] {
			t.Fatalf("manifest sha256 of %s does not verify", r[0])
		}
	}

	// mbox with trailers.
	req, _ := http.NewRequest("GET", nd.base+"/api/v1/export?format=mbox&q=exportable", nil)
	req.SetBasicAuth("admin", "admin-pass-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("mbox: %d %v", resp.StatusCode, err)
	}
	if resp.Trailer.Get("X-Mailarc-Export-Count") != "25" || resp.Trailer.Get("X-Mailarc-Manifest-Sha256") != cust.ManifestSHA256 {
		t.Fatalf("mbox trailers: %v", resp.Trailer)
	}
	mr := file.NewMboxReader(bytes.NewReader(body), 0)
	n := 0
	for {
		m, err := mr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id := hex.EncodeToString(func() []byte { s := sha256.Sum256(m); return s[:] }())
		if raws[id] != string(m) {
			t.Fatalf("mbox message %d does not round-trip", n)
		}
		n++
	}
	if n != 25 {
		t.Fatalf("mbox has %d messages", n)
	}
	if _, b := nd.admin(t, "GET", "/api/v1/export?format=mbox&part=manifest&q=exportable", nil); hex.EncodeToString(func() []byte { s := sha256.Sum256(b); return s[:] }()) != cust.ManifestSHA256 {
		t.Error("part=manifest differs from the export's manifest")
	}
	if c, b := nd.admin(t, "GET", "/api/v1/export?format=pst", nil); c != 400 {
		t.Errorf("bad format: %d %s", c, b)
	}
	if c, b := nd.admin(t, "GET", "/api/v1/export?q="+url.QueryEscape("(x"), nil); c != 400 || errCode(b) != "bad_query" {
		t.Errorf("bad query: %d %s", c, b)
	}
}
