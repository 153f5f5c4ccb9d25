package ui

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/catalog"
)

func TestMarkSnippet(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain &amp; simple", "plain &amp; simple"},
		{"a <mark>budget</mark> b", "a <mark>budget</mark> b"},
		{"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"&lt;b&gt;x <mark>y", "&lt;b&gt;x <mark>y</mark>"},
		{"</mark>stray<mark>x</mark>", "&lt;/mark&gt;stray<mark>x</mark>"},
		{`<mark><img src=x onerror=alert(1)></mark>`, `<mark>&lt;img src=x onerror=alert(1)&gt;</mark>`},
	}
	for _, c := range cases {
		if got := string(markSnippet(c.in)); got != c.want {
			t.Errorf("markSnippet(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSanitize(t *testing.T) {
	p := newPolicy()
	hostile := []string{
		`<script>parent.__pwned()</script>`,
		`<img src=x onerror="parent.__pwned()">`,
		`<a href="javascript:parent.__pwned()">x</a>`,
		`<svg><script>parent.__pwned()</script></svg>`,
		`<meta http-equiv="refresh" content="0;url=javascript:parent.__pwned()">`,
		`<div style="background:url(javascript:parent.__pwned())">x</div>`,
		`<iframe src="javascript:parent.__pwned()"></iframe>`,
		`<object data="x.swf"></object><embed src=x>`,
		`<form action="https://evil.example/"><input name=p></form>`,
		`<base href="https://evil.example/">`,
		`<style>body{background:url(https://evil.example/t.png)}</style>`,
		`<body onload="parent.__pwned()"><p>x`,
		`<<script>script>parent.__pwned()<</script>/script>`,
	}
	doc := frameDocument(p, hostile)
	low := strings.ToLower(doc)
	for _, bad := range []string{"<script", "onerror", "onload", "javascript:", "<svg", "<meta http-equiv", "<iframe", "<object", "<embed", "<form", "<base href", "evil.example/t.png", "url(javascript"} {
		if strings.Contains(low, bad) {
			t.Errorf("sanitised document contains %q:\n%s", bad, doc)
		}
	}
	ok := frameDocument(p, []string{`<p style="color: red; position: fixed">Hi <b>there</b> <a href="https://example.com/">link</a></p><img src="data:image/png;base64,iVBORw0KGgo=">`})
	for _, want := range []string{"color: red", "<b>there</b>", `href="https://example.com/"`, `rel="nofollow noreferrer noopener"`, "data:image/png"} {
		if !strings.Contains(ok, want) {
			t.Errorf("sanitised document lacks %q:\n%s", want, ok)
		}
	}
	if strings.Contains(ok, "position") {
		t.Errorf("position style kept: %s", ok)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"": "/search", "/messages/ab": "/messages/ab", "//evil.example": "/search", "https://evil.example": "/search",
		"/\\evil.example": "/search", "/login?next=/x": "/search", "/search?q=a%20b": "/search?q=a%20b",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSearchFormQuery(t *testing.T) {
	f := searchForm{Q: "budget", From: "alice@example.com", To: "Bob Smith", After: "2024-01-01", HasAttachment: true}
	want := `budget from:alice@example.com to:"Bob Smith" after:2024-01-01 has:attachment`
	if got := f.query(); got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cat.Close() })
	w, r := cat.DB()
	svc := auth.New(w, r)
	if err := svc.AddUser(ctx, "alice", "alice-pass-1", auth.RoleUser, []string{"alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSessions(ctx, cat, svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Issue(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := s.Verify(ctx, tok)
	if err != nil || sess.User.Name != "alice" {
		t.Fatalf("verify = %v, %v", sess, err)
	}
	csrf := s.CSRFToken(sess.ID)
	if !s.CheckCSRF(sess.ID, csrf) || s.CheckCSRF(sess.ID, csrf+"x") || s.CheckCSRF("other", csrf) {
		t.Error("CSRF check wrong")
	}
	// The key persists: a second Sessions over the same catalog accepts the token.
	s2, err := auth.NewSessions(ctx, cat, svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Verify(ctx, tok); err != nil {
		t.Errorf("token not valid after restart: %v", err)
	}
	// Tampering is detected.
	p, m, _ := strings.Cut(tok, ".")
	for _, bad := range []string{"", "x", p + ".", "." + m, p + "." + m + "A", strings.ToUpper(p) + "." + m} {
		if _, err := s.Verify(ctx, bad); err == nil {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
	// Logout revokes.
	if err := s.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Verify(ctx, tok); err == nil {
		t.Error("revoked token accepted")
	}
	tok2, _, _ := s.Issue(ctx, "alice")
	if _, err := s.Verify(ctx, tok2); err != nil {
		t.Errorf("new token after logout: %v", err)
	}
	// A deleted user's session dies.
	if err := svc.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, tok2); err == nil {
		t.Error("deleted user's token accepted")
	}
}

func FuzzMarkSnippet(f *testing.F) {
	f.Add("a <mark>b</mark> &amp; c")
	f.Add("<mark><script>")
	f.Fuzz(func(t *testing.T, s string) {
		out := string(markSnippet(s))
		rest := strings.NewReplacer("<mark>", "", "</mark>", "").Replace(out)
		if strings.ContainsAny(rest, "<>") {
			t.Fatalf("markSnippet(%q) = %q: tag other than mark", s, out)
		}
	})
}
