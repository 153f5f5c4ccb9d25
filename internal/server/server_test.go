package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/server"
	"github.com/mailarc/mailarc/internal/testutil"
)

type node struct {
	base   string
	n      *server.Node
	cancel context.CancelFunc
	done   chan error
}

// testConfig is the configuration of a test node in dir.
func testConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.NodeName = "test"
	cfg.DataDir = dir
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	cfg.MaxMessageSize = 1 << 20
	return cfg
}

func start(t *testing.T, dir string) *node {
	t.Helper()
	return startConfig(t, testConfig(dir))
}

func startConfig(t *testing.T, cfg config.Config) *node {
	t.Helper()
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5 (use make test)")
	n, err := server.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Listeners, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.Serve(ctx, server.ServeOptions{AdminPassword: "admin-pass-1", Ready: func(l server.Listeners) { ready <- l }})
	}()
	var ls server.Listeners
	select {
	case ls = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	nd := &node{base: "http://" + ls.HTTP.String(), n: n, cancel: cancel, done: done}
	t.Cleanup(func() { nd.stop(t) })
	return nd
}

func (nd *node) stop(t *testing.T) {
	if nd.cancel == nil {
		return
	}
	nd.cancel()
	if err := <-nd.done; err != nil {
		t.Errorf("serve returned %v", err)
	}
	if err := nd.n.Close(context.Background()); err != nil {
		t.Errorf("close: %v", err)
	}
	nd.cancel = nil
}

func (nd *node) req(t *testing.T, method, path, user, pass string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	r, err := http.NewRequest(method, nd.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(user, "Bearer ") {
		r.Header.Set("Authorization", user)
	} else if user != "" {
		r.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (nd *node) admin(t *testing.T, method, path string, body []byte) (int, []byte) {
	c, b, _ := nd.req(t, method, path, "admin", "admin-pass-1", body)
	return c, b
}

func errCode(b []byte) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return e.Error.Code
}

const withAttachment = "From: Alice Example <alice@corp.example>\r\nTo: Bob <bob@corp.example>\r\nSubject: quarterly zebra report\r\n" +
	"Date: Mon, 2 Mar 2020 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the numbers attached.\r\n" +
	"--XX\r\nContent-Type: text/csv; name=\"numbers.csv\"\r\nContent-Disposition: attachment; filename=\"numbers.csv\"\r\n\r\n" +
	"quarter,revenue\r\nQ1,platypus\r\n--XX--\r\n"

func TestAPI(t *testing.T) {
	nd := start(t, t.TempDir())

	// Auth: none, wrong password, right password.
	if c, b, h := nd.req(t, "GET", "/api/v1/status", "", "", nil); c != 401 || errCode(b) != "unauthorized" || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("no auth: %d %s", c, b)
	}
	if c, _, _ := nd.req(t, "GET", "/api/v1/status", "admin", "wrong", nil); c != 401 {
		t.Fatalf("wrong password: %d", c)
	}
	if c, _, _ := nd.req(t, "GET", "/healthz", "", "", nil); c != 200 {
		t.Fatalf("healthz %d", c)
	}
	if c, _, _ := nd.req(t, "GET", "/readyz", "", "", nil); c != 200 {
		t.Fatalf("readyz %d", c)
	}

	// Ingest, duplicate, refusals.
	c, b := nd.admin(t, "POST", "/api/v1/messages", []byte(withAttachment))
	var posted struct {
		ID        string
		Duplicate bool
	}
	if err := json.Unmarshal(b, &posted); c != 201 || err != nil || posted.Duplicate || len(posted.ID) != 64 {
		t.Fatalf("post: %d %s", c, b)
	}
	if c, b = nd.admin(t, "POST", "/api/v1/messages", []byte(withAttachment)); c != 200 || !strings.Contains(string(b), `"duplicate":true`) {
		t.Fatalf("duplicate post: %d %s", c, b)
	}
	if c, b = nd.admin(t, "POST", "/api/v1/messages", nil); c != 400 || errCode(b) != "empty" {
		t.Fatalf("empty post: %d %s", c, b)
	}
	if c, b = nd.admin(t, "POST", "/api/v1/messages", bytes.Repeat([]byte("a"), 1<<20+1)); c != 413 || errCode(b) != "too_large" {
		t.Fatalf("oversize post: %d %s", c, b)
	}

	// Read back.
	if c, b = nd.admin(t, "GET", "/api/v1/messages/"+posted.ID+"/raw", nil); c != 200 || string(b) != withAttachment {
		t.Fatalf("raw: %d %q", c, b)
	}
	c, b = nd.admin(t, "GET", "/api/v1/messages/"+posted.ID, nil)
	var meta struct {
		Subject     string
		From        string
		Attachments []struct{ Filename string }
		Text        string
	}
	if err := json.Unmarshal(b, &meta); c != 200 || err != nil || meta.Subject != "quarterly zebra report" ||
		len(meta.Attachments) != 1 || meta.Attachments[0].Filename != "numbers.csv" || !strings.Contains(meta.Text, "numbers attached") {
		t.Fatalf("metadata: %d %s", c, b)
	}
	c, b, h := nd.req(t, "GET", "/api/v1/messages/"+posted.ID+"/attachments/0", "admin", "admin-pass-1", nil)
	if c != 200 || !strings.Contains(string(b), "platypus") || !strings.Contains(h.Get("Content-Disposition"), "numbers.csv") {
		t.Fatalf("attachment: %d %s %v", c, b, h)
	}
	if c, b = nd.admin(t, "GET", "/api/v1/messages/"+posted.ID+"/attachments/7", nil); c != 404 {
		t.Fatalf("missing attachment: %d %s", c, b)
	}
	if c, b = nd.admin(t, "GET", "/api/v1/messages/not-an-id", nil); c != 400 || errCode(b) != "bad_id" {
		t.Fatalf("bad id: %d %s", c, b)
	}
	if c, b = nd.admin(t, "GET", "/api/v1/messages/"+strings.Repeat("0", 64), nil); c != 404 || errCode(b) != "not_found" {
		t.Fatalf("unknown id: %d %s", c, b)
	}

	// Search finds body, attachment text and fields once indexed.
	testutil.Eventually(t, 20*time.Second, "the message to be indexed", func() bool {
		_, b := nd.admin(t, "GET", "/api/v1/status", nil)
		return strings.Contains(string(b), `"indexed":1`)
	})
	for _, q := range []string{"platypus", "zebra", "from:alice", "from:corp.example", "filename:numbers.csv", "has:attachment", "after:2020-03-01 before:2020-03-03"} {
		c, b = nd.admin(t, "GET", "/api/v1/search?q="+url.QueryEscape(q), nil)
		if c != 200 || !strings.Contains(string(b), `"total":1`) || !strings.Contains(string(b), posted.ID) {
			t.Errorf("search %q: %d %s", q, c, b)
		}
	}
	c, b = nd.admin(t, "GET", "/api/v1/search?q="+url.QueryEscape("attached"), nil)
	if c != 200 || !strings.Contains(string(b), `\u003cmark\u003e`) {
		t.Errorf("no highlighted snippet: %d %s", c, b)
	}
	if c, b = nd.admin(t, "GET", "/api/v1/search?q="+url.QueryEscape("(unclosed"), nil); c != 400 || errCode(b) != "bad_query" || !strings.Contains(string(b), "position") {
		t.Errorf("bad query: %d %s", c, b)
	}
	for _, count := range []string{"exact", "capped"} {
		if c, b = nd.admin(t, "GET", "/api/v1/search?count="+count+"&q=zebra", nil); c != 200 || !strings.Contains(string(b), `"total":1,"total_capped":false`) {
			t.Errorf("count=%s: %d %s", count, c, b)
		}
	}
	if c, b = nd.admin(t, "GET", "/api/v1/search?count=some&q=zebra", nil); c != 400 || errCode(b) != "bad_count" {
		t.Errorf("count=some: %d %s", c, b)
	}

	// Users, roles and tokens.
	c, b = nd.admin(t, "POST", "/api/v1/users", []byte(`{"name":"carol","password":"carol-pass-1","role":"user","addresses":["carol@corp.example"]}`))
	if c != 201 {
		t.Fatalf("add user: %d %s", c, b)
	}
	if c, b, _ = nd.req(t, "GET", "/api/v1/messages/"+posted.ID, "carol", "carol-pass-1", nil); c != 404 {
		t.Errorf("user sees another's message: %d %s", c, b)
	}
	if c, b, _ = nd.req(t, "GET", "/api/v1/search?q=zebra", "carol", "carol-pass-1", nil); c != 200 || !strings.Contains(string(b), `"total":0`) {
		t.Errorf("user search not scoped: %d %s", c, b)
	}
	if c, _, _ = nd.req(t, "POST", "/api/v1/messages", "carol", "carol-pass-1", []byte("Subject: x\r\n\r\nx")); c != 403 {
		t.Errorf("user may ingest: %d", c)
	}
	c, b, _ = nd.req(t, "POST", "/api/v1/tokens", "carol", "carol-pass-1", []byte(`{"name":"script"}`))
	var tok struct{ Token, ID string }
	if err := json.Unmarshal(b, &tok); c != 201 || err != nil || !strings.HasPrefix(tok.Token, "mla_") {
		t.Fatalf("token: %d %s", c, b)
	}
	if c, b, _ = nd.req(t, "GET", "/api/v1/tokens", "Bearer "+tok.Token, "", nil); c != 200 || !strings.Contains(string(b), tok.ID) {
		t.Fatalf("bearer: %d %s", c, b)
	}
	if c, _, _ = nd.req(t, "DELETE", "/api/v1/tokens/"+tok.ID, "Bearer "+tok.Token, "", nil); c != 204 {
		t.Fatalf("revoke: %d", c)
	}
	if c, _, _ = nd.req(t, "GET", "/api/v1/tokens", "Bearer "+tok.Token, "", nil); c != 401 {
		t.Fatalf("revoked token still works: %d", c)
	}

	// Status and metrics.
	c, b = nd.admin(t, "GET", "/api/v1/status", nil)
	if c != 200 || !strings.Contains(string(b), `"archived":1`) || !strings.Contains(string(b), `"version"`) {
		t.Fatalf("status: %d %s", c, b)
	}
	c, b, _ = nd.req(t, "GET", "/metrics", "", "", nil)
	if c != 200 || !strings.Contains(string(b), "mailarc_archive_messages_ingested_total 1") || !strings.Contains(string(b), "mailarc_archive_commit_seconds_bucket") {
		t.Fatalf("metrics: %d", c)
	}
	// The index block of the status, as gauges read at scrape time.
	for _, m := range []string{"mailarc_archive_messages 1", "mailarc_index_indexed_messages 1", "mailarc_index_lag_messages 0", "mailarc_index_lag_seconds 0"} {
		if !strings.Contains(string(b), "\n"+m+"\n") {
			t.Errorf("metrics lack %q", m)
		}
	}
}

func TestThrottledLogin(t *testing.T) {
	nd := start(t, t.TempDir())
	for i := 0; i < 5; i++ {
		nd.req(t, "GET", "/api/v1/status", "admin", fmt.Sprint("bad", i), nil)
	}
	c, b, _ := nd.req(t, "GET", "/api/v1/status", "admin", "admin-pass-1", nil)
	if c != 429 || errCode(b) != "throttled" {
		t.Fatalf("after 5 failures the right password answered %d %s, want 429", c, b)
	}
}

func TestDataDirSafety(t *testing.T) {
	dir := t.TempDir()
	nd := start(t, dir)
	cfg := config.Default()
	cfg.DataDir = dir
	if _, err := server.Open(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of a held data dir: %v", err)
	}
	nd.stop(t)
	// With the local store the marker names the archive, whatever the
	// pack store's own id: reopening keeps it (an upgrade once adopted the
	// pack store's id and then refused every existing data directory).
	marker, err := os.ReadFile(filepath.Join(dir, "MAILARC"))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := server.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if inst, err := n2.Catalog.Meta(context.Background(), "store_instance"); err != nil || !strings.Contains(string(marker), inst) || inst != n2.Dir.Marker.Instance {
		t.Errorf("catalog store_instance %q (%v), marker %s", inst, err, marker)
	}
	if local, ok := n2.Store.(interface{ InstanceID() string }); ok && local.InstanceID() == n2.Dir.Marker.Instance {
		t.Errorf("the marker took the pack store's own id %s", local.InstanceID())
	}
	if err := n2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "MAILARC")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Open(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "marker") {
		t.Fatalf("open without marker: %v", err)
	}
}
