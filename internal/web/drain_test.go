package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/archive/archivetest"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/web"
)

const adminPass = "web-admin-pass"

// newServer serves a web.Server over a fresh SQLite catalog and local store
// with one admin user.
func newServer(t *testing.T) (*web.Server, *httptest.Server, *archive.Archive) {
	t.Helper()
	ctx := context.Background()
	env := archivetest.Open(t, archive.Options{}, store.LocalOptions{})
	a := env.Archive
	w, r := env.Catalog.DB()
	svc := auth.New(w, r)
	if err := svc.AddUser(ctx, "admin", adminPass, auth.RoleAdmin, nil); err != nil {
		t.Fatal(err)
	}
	s := web.New(web.Deps{Archive: a, Auth: svc})
	s.SetReady(true)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs, a
}

// post sends raw to POST /api/v1/messages+query as the admin.
func post(t *testing.T, hs *httptest.Server, query string, raw []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, hs.URL+"/api/v1/messages"+query, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "message/rfc822")
	req.SetBasicAuth("admin", adminPass)
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("not the JSON error shape: %v: %s", err, b)
	}
	return e.Error.Code
}

// TestDrainAnswersShuttingDown: once Drain is called (on SIGTERM), an ingest
// is refused with 503 shutting_down and a Retry-After, so clients retry on
// another node or after the restart; /readyz turns unready.
func TestDrainAnswersShuttingDown(t *testing.T) {
	s, hs, _ := newServer(t)
	if resp, b := post(t, hs, "", []byte("Subject: before drain\r\n\r\nx\r\n")); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST before Drain: %d %s", resp.StatusCode, b)
	}

	s.Drain()
	resp, b := post(t, hs, "", []byte("Subject: after drain\r\n\r\ny\r\n"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST after Drain: %d %s, want 503", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if code := errorCode(t, b); code != "shutting_down" {
		t.Errorf("error code %q, want shutting_down: %s", code, b)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Error("no Retry-After header on 503 shutting_down")
	}
	r, err := hs.Client().Get(hs.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz after Drain: %d, want 503", r.StatusCode)
	}
}

// TestPostOrigin: a client may tag its message "import" (mailarc import
// --server) instead of the default "api", and claim no other origin.
func TestPostOrigin(t *testing.T) {
	_, hs, a := newServer(t)
	ctx := context.Background()
	origins := func(b []byte) []string {
		t.Helper()
		var res struct{ ID string }
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		m, err := a.Get(ctx, res.ID)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(m.Origins)
		return m.Origins
	}

	resp, b := post(t, hs, "?origin=import", []byte("Subject: imported\r\n\r\nfrom a file\r\n"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST ?origin=import: %d %s", resp.StatusCode, b)
	}
	if got := origins(b); !slices.Equal(got, []string{"import"}) {
		t.Errorf("origins %v, want [import]", got)
	}
	resp, b = post(t, hs, "", []byte("Subject: posted\r\n\r\nby a script\r\n"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, b)
	}
	if got := origins(b); !slices.Equal(got, []string{"api"}) {
		t.Errorf("origins %v, want [api]", got)
	}
	// The same bytes again through the API union the origins.
	resp, b = post(t, hs, "?origin=api", []byte("Subject: imported\r\n\r\nfrom a file\r\n"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("duplicate POST ?origin=api: %d %s", resp.StatusCode, b)
	}
	if got := origins(b); !slices.Equal(got, []string{"api", "import"}) {
		t.Errorf("origins %v, want [api import]", got)
	}

	for _, o := range []string{"peer:arc-b", "smtp", "imap:journal", "IMPORT"} {
		resp, b := post(t, hs, "?origin="+o, []byte("Subject: forged "+o+"\r\n\r\nz\r\n"))
		if resp.StatusCode != http.StatusBadRequest || errorCode(t, b) != "bad_origin" {
			t.Errorf("POST ?origin=%s: %d %s, want 400 bad_origin", o, resp.StatusCode, b)
		}
	}
	st, err := a.Catalog().Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 2 {
		t.Errorf("%d messages archived, want 2 (refused origins store nothing)", st.Messages)
	}
}
