package ui

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/archive/archivetest"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/store"
)

// fakeHolds is an in-memory Holds.
type fakeHolds struct {
	mu       sync.Mutex
	holds    []Hold
	released []string
}

func (f *fakeHolds) List(ctx context.Context) ([]Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Hold(nil), f.holds...), nil
}

func (f *fakeHolds) Create(ctx context.Context, user, name, query, description string) (Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := Hold{ID: fmt.Sprintf("h%d", len(f.holds)+1), Name: name, Query: query, Description: description, CreatedBy: user, Created: time.Now(), Matches: 3}
	f.holds = append(f.holds, h)
	return h, nil
}

func (f *fakeHolds) Release(ctx context.Context, user, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, h := range f.holds {
		if h.ID == id {
			f.holds = append(f.holds[:i], f.holds[i+1:]...)
			f.released = append(f.released, id)
			return nil
		}
	}
	return fmt.Errorf("no hold %s", id)
}

func (f *fakeHolds) state() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.holds), len(f.released)
}

// fakeRetention is an in-memory Retention that counts changes.
type fakeRetention struct {
	mu         sync.Mutex
	cfg        RetentionConfig
	puts, runs int
}

func (f *fakeRetention) Get(ctx context.Context) (RetentionConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg, nil
}

func (f *fakeRetention) Put(ctx context.Context, user string, c RetentionConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg, f.puts = c, f.puts+1
	return nil
}

func (f *fakeRetention) Run(ctx context.Context, user string, dryRun bool, confirm int) (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs++
	return 2, 1, nil
}

func (f *fakeRetention) state() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts, f.runs
}

// testUI is a Handler over a real catalog, store, archive and accounts
// (admin, auditor "aud", user "alice") with fake holds and retention.
type testUI struct {
	h    *Handler
	arch *archive.Archive
	auth *auth.Service
	sess *auth.Sessions
	hold *fakeHolds
	ret  *fakeRetention
}

func newTestUI(t *testing.T, secureCookies bool) *testUI {
	t.Helper()
	ctx := context.Background()
	env := archivetest.Open(t, archive.Options{}, store.LocalOptions{NoSync: true})
	arch, cat := env.Archive, env.Catalog
	w, r := cat.DB()
	svc := auth.New(w, r)
	for _, u := range []struct {
		name string
		role auth.Role
	}{{"admin", auth.RoleAdmin}, {"aud", auth.RoleAuditor}, {"alice", auth.RoleUser}} {
		if err := svc.AddUser(ctx, u.name, u.name+"-pass-1", u.role, []string{u.name + "@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := auth.NewSessions(ctx, cat, svc, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tu := &testUI{arch: arch, auth: svc, sess: sess, hold: &fakeHolds{}, ret: &fakeRetention{cfg: RetentionConfig{Default: "forever"}}}
	if _, err := tu.hold.Create(ctx, "admin", "Case 1", "budget", ""); err != nil {
		t.Fatal(err)
	}
	tu.h, err = New(Deps{Archive: arch, Auth: svc, Sessions: sess, Holds: tu.hold, Retention: tu.ret, SecureCookies: secureCookies})
	if err != nil {
		t.Fatal(err)
	}
	return tu
}

// session returns a session cookie value and its CSRF token.
func (tu *testUI) session(t *testing.T, user string) (cookie, csrf string) {
	t.Helper()
	tok, _, err := tu.sess.Issue(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tu.sess.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, tu.sess.CSRFToken(s.ID)
}

// do serves one request; form (if not nil) is sent url-encoded.
func (tu *testUI) do(method, target string, form url.Values, cookies ...*http.Cookie) *http.Response {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	tu.h.ServeHTTP(w, r)
	return w.Result()
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sessionCookie(v string) *http.Cookie { return &http.Cookie{Name: auth.SessionCookie, Value: v} }

func TestPostRoutesNeedCSRF(t *testing.T) {
	tu := newTestUI(t, false)
	tok, csrf := tu.session(t, "admin")
	routes := []struct {
		path string
		form url.Values
	}{
		{"/logout", url.Values{}},
		{"/holds", url.Values{"name": {"Case 2"}, "query": {"from:x@example.com"}}},
		{"/holds/h1/release", url.Values{}},
		{"/retention", url.Values{"default": {"1d"}}},
		{"/retention/run", url.Values{"dry_run": {"true"}}},
		{"/retention/run", url.Values{"confirm": {"2"}}},
		{"/users", url.Values{"name": {"mallory"}, "new_password": {"mallory-pass-1"}, "role": {"admin"}}},
		{"/users/alice/delete", url.Values{}},
		{"/users/alice/password", url.Values{"new_password": {"changed-pass-1"}}},
	}
	for _, rt := range routes {
		for _, bad := range []string{"", "wrong", csrf + "x", tu.sess.CSRFToken("another-session")} {
			f := url.Values{}
			for k, v := range rt.form {
				f[k] = v
			}
			if bad != "" {
				f.Set("csrf", bad)
			}
			resp := tu.do("POST", rt.path, f, sessionCookie(tok))
			if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Form expired") {
				t.Errorf("POST %s with csrf %q: %d, want 403 Form expired", rt.path, bad, resp.StatusCode)
			}
		}
	}
	// Nothing changed.
	ctx := context.Background()
	if n, rel := tu.hold.state(); n != 1 || rel != 0 {
		t.Errorf("holds: %d active, %d released; want 1, 0", n, rel)
	}
	if puts, runs := tu.ret.state(); puts != 0 || runs != 0 {
		t.Errorf("retention: %d saves, %d runs", puts, runs)
	}
	if us, err := tu.auth.List(ctx); err != nil || len(us) != 3 {
		t.Errorf("users: %v %v, want admin, aud, alice", us, err)
	}
	if _, err := tu.auth.Login(ctx, "alice", "alice-pass-1", "192.0.2.9"); err != nil {
		t.Errorf("alice's password changed: %v", err)
	}
	if _, err := tu.sess.Verify(ctx, tok); err != nil {
		t.Errorf("session ended by a forged logout: %v", err)
	}
	// Control: the same requests with the token do act.
	for _, rt := range routes[1:3] {
		f := url.Values{"csrf": {csrf}}
		for k, v := range rt.form {
			f[k] = v
		}
		if resp := tu.do("POST", rt.path, f, sessionCookie(tok)); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("POST %s with the token: %d, want 303", rt.path, resp.StatusCode)
		}
	}
	if n, rel := tu.hold.state(); n != 1 || rel != 1 {
		t.Errorf("after create and release with the token: %d active, %d released; want 1, 1", n, rel)
	}
}

func TestLoginCSRF(t *testing.T) {
	tu := newTestUI(t, false)
	creds := url.Values{"username": {"admin"}, "password": {"admin-pass-1"}, "csrf": {"tok123"}}
	for name, cookies := range map[string][]*http.Cookie{
		"no cookie":    nil,
		"other cookie": {{Name: loginCSRFCookie, Value: "tok999"}},
		"empty cookie": {{Name: loginCSRFCookie, Value: ""}},
	} {
		resp := tu.do("POST", "/login", creds, cookies...)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "sign-in form expired") {
			t.Errorf("%s: login answered %d, want 403", name, resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if c.Name == auth.SessionCookie && c.Value != "" {
				t.Errorf("%s: a session cookie was set", name)
			}
		}
	}
	resp := tu.do("POST", "/login", creds, &http.Cookie{Name: loginCSRFCookie, Value: "tok123"})
	if resp.StatusCode != http.StatusSeeOther || cookieNamed(resp, auth.SessionCookie) == nil {
		t.Errorf("login with the double-submit cookie: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// loginForm fetches the login page and returns its CSRF cookie and token.
func (tu *testUI) loginForm(t *testing.T, target string) (*http.Cookie, string) {
	t.Helper()
	resp := tu.do("GET", target, nil)
	c := cookieNamed(resp, loginCSRFCookie)
	if c == nil {
		t.Fatalf("GET %s set no %s cookie", target, loginCSRFCookie)
	}
	body := readBody(t, resp)
	if !strings.Contains(body, `name="csrf" value="`+c.Value+`"`) {
		t.Fatalf("login form lacks its token")
	}
	return c, c.Value
}

func TestLoginThrottled(t *testing.T) {
	tu := newTestUI(t, false)
	var last *http.Response
	var body string
	for i := 0; i < 6; i++ {
		c, tok := tu.loginForm(t, "/login")
		last = tu.do("POST", "/login", url.Values{"username": {"admin"}, "password": {fmt.Sprint("wrong-", i)}, "csrf": {tok}}, c)
		body = readBody(t, last)
		if i < 5 && last.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong login %d: %d, want 401", i+1, last.StatusCode)
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many failed attempts") || last.Header.Get("Retry-After") == "" {
		t.Errorf("sixth wrong login: %d (Retry-After %q), want 429 with “Too many failed attempts”", last.StatusCode, last.Header.Get("Retry-After"))
	}
	// The right password is refused too while throttled.
	c, tok := tu.loginForm(t, "/login")
	if resp := tu.do("POST", "/login", url.Values{"username": {"admin"}, "password": {"admin-pass-1"}, "csrf": {tok}}, c); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password while throttled: %d, want 429", resp.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	tu := newTestUI(t, false)
	res, err := tu.arch.Ingest(context.Background(), []byte("From: a@example.com\r\nTo: b@example.com\r\nSubject: html\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/html\r\n\r\n<p>hi <img src=\"https://remote.example/t.png\"></p>\r\n"), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tu.session(t, "admin")
	for _, p := range []string{"/login", "/search", "/messages/" + res.ID, "/holds"} {
		var cs []*http.Cookie
		if p != "/login" {
			cs = append(cs, sessionCookie(tok))
		}
		resp := tu.do("GET", p, nil, cs...)
		h := resp.Header
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "frame-ancestors 'self'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q allows inline script", p, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "SAMEORIGIN" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", p, h)
		}
	}
	for q, remote := range map[string]bool{"": false, "?images=1": true} {
		resp := tu.do("GET", "/messages/"+res.ID+"/html"+q, nil, sessionCookie(tok))
		body := readBody(t, resp)
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "remote.example/t.png") {
			t.Errorf("frame%s: %d %s", q, resp.StatusCode, body)
		}
		for _, want := range []string{"default-src 'none'", "img-src data:", "frame-ancestors 'self'", "form-action 'none'", "sandbox"} {
			if !strings.Contains(csp, want) {
				t.Errorf("frame%s CSP %q lacks %q", q, csp, want)
			}
		}
		if strings.Contains(csp, "script-src") || strings.Contains(csp, "allow-scripts") || strings.Contains(csp, "allow-same-origin") {
			t.Errorf("frame%s CSP %q lets scripts run", q, csp)
		}
		if got := strings.Contains(csp, "https:"); got != remote {
			t.Errorf("frame%s CSP %q: remote images allowed = %v, want %v", q, csp, got, remote)
		}
		if resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("frame%s headers %v", q, resp.Header)
		}
	}
}

func TestSecureCookies(t *testing.T) {
	for _, c := range []struct {
		name   string
		flag   bool
		scheme string
		secure bool
	}{
		{"plain http", false, "http", false},
		{"SecureCookies behind a proxy", true, "http", true},
		{"TLS", false, "https", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tu := newTestUI(t, c.flag)
			base := c.scheme + "://archive.example"
			ck, tok := tu.loginForm(t, base+"/login")
			if ck.Secure != c.secure || !ck.HttpOnly {
				t.Errorf("login CSRF cookie Secure=%v HttpOnly=%v, want Secure=%v", ck.Secure, ck.HttpOnly, c.secure)
			}
			resp := tu.do("POST", base+"/login", url.Values{"username": {"admin"}, "password": {"admin-pass-1"}, "csrf": {tok}}, ck)
			s := cookieNamed(resp, auth.SessionCookie)
			if resp.StatusCode != http.StatusSeeOther || s == nil {
				t.Fatalf("login: %d", resp.StatusCode)
			}
			if s.Secure != c.secure || !s.HttpOnly || s.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie Secure=%v HttpOnly=%v SameSite=%v, want Secure=%v, HttpOnly, Lax", s.Secure, s.HttpOnly, s.SameSite, c.secure)
			}
		})
	}
}

func TestReleaseHoldAdminOnly(t *testing.T) {
	tu := newTestUI(t, false)
	tok, csrf := tu.session(t, "aud")
	page := readBody(t, tu.do("GET", "/holds", nil, sessionCookie(tok)))
	if !strings.Contains(page, "Case 1") || strings.Contains(page, "/release") {
		t.Errorf("auditor's holds page: lists hold %v, offers release %v", strings.Contains(page, "Case 1"), strings.Contains(page, "/release"))
	}
	resp := tu.do("POST", "/holds/h1/release", url.Values{"csrf": {csrf}}, sessionCookie(tok))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor release: %d, want 403", resp.StatusCode)
	}
	if n, rel := tu.hold.state(); n != 1 || rel != 0 {
		t.Errorf("after the auditor's release: %d active, %d released; want 1, 0", n, rel)
	}
	// An auditor may still place holds.
	if resp := tu.do("POST", "/holds", url.Values{"csrf": {csrf}, "name": {"Case 2"}, "query": {"x"}}, sessionCookie(tok)); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("auditor create: %d, want 303", resp.StatusCode)
	}
	// A user may do neither.
	utok, ucsrf := tu.session(t, "alice")
	if resp := tu.do("POST", "/holds/h1/release", url.Values{"csrf": {ucsrf}}, sessionCookie(utok)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("user release: %d, want 403", resp.StatusCode)
	}
	// The admin sees the button and may release.
	atok, acsrf := tu.session(t, "admin")
	if page := readBody(t, tu.do("GET", "/holds", nil, sessionCookie(atok))); !strings.Contains(page, `action="/holds/h1/release"`) {
		t.Error("admin's holds page lacks the release button")
	}
	if resp := tu.do("POST", "/holds/h1/release", url.Values{"csrf": {acsrf}}, sessionCookie(atok)); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("admin release: %d, want 303", resp.StatusCode)
	}
	if n, rel := tu.hold.state(); n != 1 || rel != 1 {
		t.Errorf("after the admin's release: %d active, %d released; want 1 (Case 2), 1", n, rel)
	}
}

func TestSetPassword(t *testing.T) {
	tu := newTestUI(t, false)
	tok, csrf := tu.session(t, "admin")
	page := readBody(t, tu.do("GET", "/users", nil, sessionCookie(tok)))
	if !strings.Contains(page, `action="/users/alice/password"`) {
		t.Fatal("users page lacks the password form")
	}
	resp := tu.do("POST", "/users/alice/password", url.Values{"csrf": {csrf}, "new_password": {"short"}}, sessionCookie(tok))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "error=") {
		t.Errorf("short password: %d %s", resp.StatusCode, loc)
	}
	resp = tu.do("POST", "/users/alice/password", url.Values{"csrf": {csrf}, "new_password": {"alice-pass-2"}}, sessionCookie(tok))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "notice=") {
		t.Errorf("set password: %d %s", resp.StatusCode, loc)
	}
	if _, err := tu.auth.Login(context.Background(), "alice", "alice-pass-2", "192.0.2.9"); err != nil {
		t.Errorf("new password refused: %v", err)
	}
	// Not for an auditor.
	atok, acsrf := tu.session(t, "aud")
	if resp := tu.do("POST", "/users/alice/password", url.Values{"csrf": {acsrf}, "new_password": {"aud-set-pass-1"}}, sessionCookie(atok)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("auditor sets a password: %d, want 403", resp.StatusCode)
	}
}
