// Package ui is mailarc's browser interface: server-rendered HTML pages
// (html/template, no front-end build) for searching and reading archived
// mail, holds, retention, users, the audit log and node status.
//
// The core flows (log in, search, open a message, download) work without
// JavaScript; static/app.js only adds conveniences (keyboard shortcut,
// confirmations). Templates and static assets are embedded with go:embed.
//
// Security model:
//   - Sessions are HMAC-signed cookies (auth.Sessions), HttpOnly,
//     SameSite=Lax, Secure under TLS. Every state-changing form carries a
//     session-bound CSRF token; the login form uses a double-submit cookie.
//   - Every page is served with a strict Content-Security-Policy (no inline
//     script, frames only from 'self'), X-Content-Type-Options and
//     Referrer-Policy no-referrer.
//   - Archived HTML never runs: it is sanitised with bluemonday and shown in
//     a sandboxed iframe (no allow-scripts, no allow-same-origin) whose
//     document comes from /messages/{id}/html with its own CSP
//     (default-src 'none'; remote images blocked until asked for). The
//     message's own cid: images are inlined as data: URIs before sanitising
//     (inline.go).
//   - A user-role account only ever sees its own mail: searches are scoped
//     by the Searcher, single messages are checked with web.Visible and
//     another's message answers 404.
//
// Routes (all but /login and /static/ need a session):
//
//	GET  /                         redirect to /search
//	GET  /login, POST /login       sign in (fields username, password)
//	POST /logout                   sign out (revokes the user's sessions)
//	GET  /search                   search form and results (field q)
//	GET  /messages/{id}            message view
//	GET  /messages/{id}/html       sanitised HTML body (iframe document)
//	GET  /messages/{id}/source     raw source as text
//	GET  /holds, POST /holds        holds (admin, auditor)
//	POST /holds/{id}/release       release a hold (admin only)
//	GET  /retention, POST /retention, POST /retention/run
//	GET  /users, POST /users, POST /users/{name}/delete,
//	POST /users/{name}/password    accounts (admin only)
//	GET  /audit                    audit log with filters
//	GET  /status                   node status dashboard
//	GET  /static/...               embedded CSS and JS
//
// Downloads (original .eml, attachments) and exports link to the JSON API
// (/api/v1/...), which accepts the session cookie.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/web"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// AuditLog records and queries the audit log (*audit.Log satisfies it).
type AuditLog interface {
	Record(ctx context.Context, user, action string, detail any) (audit.Entry, error)
	RecordLogin(ctx context.Context, user, method, client string, ok bool, reason string) error
	Query(ctx context.Context, f audit.Filter) ([]audit.Entry, error)
}

// Hold is a legal hold as shown by the UI.
type Hold struct {
	ID          string
	Name        string
	Query       string
	Description string
	CreatedBy   string
	Created     time.Time
	Matches     int64 // messages currently held; -1 when unknown
}

// Holds manages legal holds. The server adapts the governance service to
// it; user is the acting account (for the audit log).
type Holds interface {
	List(ctx context.Context) ([]Hold, error)
	Create(ctx context.Context, user, name, query, description string) (Hold, error)
	Release(ctx context.Context, user, id string) error
}

// RetentionPolicy is one retention rule (DESIGN §5).
type RetentionPolicy struct {
	Name  string
	Query string
	Keep  string // 30d, 6m, 7y or forever
}

// RetentionConfig is the whole retention configuration.
type RetentionConfig struct {
	Default  string
	Policies []RetentionPolicy
}

// Retention reads and changes retention policies and runs them.
type Retention interface {
	Get(ctx context.Context) (RetentionConfig, error)
	Put(ctx context.Context, user string, c RetentionConfig) error
	// Run purges (or, with dryRun, counts) expired unheld messages. A real
	// run must pass the dry run's count as confirm.
	Run(ctx context.Context, user string, dryRun bool, confirm int) (purged, held int, err error)
}

// Deps are what the UI needs from the node. Search, Status, Audit, Holds and
// Retention may be nil: their pages then say the feature is unavailable.
type Deps struct {
	Archive   *archive.Archive
	Auth      *auth.Service
	Sessions  *auth.Sessions
	Search    web.Searcher
	Status    func(ctx context.Context) (any, error)
	Audit     AuditLog
	Holds     Holds
	Retention Retention
	Logger    *slog.Logger
	// SecureCookies forces the Secure cookie flag (behind a TLS-terminating
	// proxy); cookies are always Secure on TLS connections.
	SecureCookies bool
}

// Handler serves the UI. It implements http.Handler.
type Handler struct {
	d     Deps
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
}

// New builds the UI handler.
func New(d Deps) (*Handler, error) {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Archive == nil || d.Auth == nil || d.Sessions == nil {
		return nil, errors.New("ui: Archive, Auth and Sessions are required")
	}
	h := &Handler{d: d, log: d.Logger, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	h.routes()
	return h, nil
}

const pageCSP = "default-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "SAMEORIGIN")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) routes() {
	static, _ := fs.Sub(staticFS, "static")
	fileServer := http.StripPrefix("/static/", http.FileServerFS(static))
	h.mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	})
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("POST /logout", h.page(nil, h.logout))
	h.mux.HandleFunc("GET /{$}", h.page(nil, func(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
		http.Redirect(w, r, "/search", http.StatusSeeOther)
		return nil
	}))
	h.mux.HandleFunc("GET /search", h.page(nil, h.searchPage))
	h.mux.HandleFunc("GET /messages/{id}", h.page(nil, h.messagePage))
	h.mux.HandleFunc("GET /messages/{id}/html", h.page(nil, h.messageHTML))
	h.mux.HandleFunc("GET /messages/{id}/source", h.page(nil, h.messageSource))
	seesAll := func(u *auth.User) bool { return u.SeesAll() }
	admin := func(u *auth.User) bool { return u.Role == auth.RoleAdmin }
	h.mux.HandleFunc("GET /holds", h.page(seesAll, h.holdsPage))
	h.mux.HandleFunc("POST /holds", h.page(seesAll, h.createHold))
	h.mux.HandleFunc("POST /holds/{id}/release", h.page(admin, h.releaseHold)) // as DELETE /api/v1/holds/{id}
	h.mux.HandleFunc("GET /retention", h.page(admin, h.retentionPage))
	h.mux.HandleFunc("POST /retention", h.page(admin, h.saveRetention))
	h.mux.HandleFunc("POST /retention/run", h.page(admin, h.runRetention))
	h.mux.HandleFunc("GET /users", h.page(admin, h.usersPage))
	h.mux.HandleFunc("POST /users", h.page(admin, h.addUser))
	h.mux.HandleFunc("POST /users/{name}/delete", h.page(admin, h.deleteUser))
	h.mux.HandleFunc("POST /users/{name}/password", h.page(admin, h.setPassword))
	h.mux.HandleFunc("GET /audit", h.page(seesAll, h.auditPage))
	h.mux.HandleFunc("GET /status", h.page(nil, h.statusPage))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, nil, http.StatusNotFound, "Page not found", "There is no page at this address.")
	})
}

// reqCtx is the per-request state handed to page handlers.
type reqCtx struct {
	User    *auth.User
	Session *auth.Session
	CSRF    string
}

type pageFunc func(w http.ResponseWriter, r *http.Request, c *reqCtx) error

// page wraps a handler that needs a session (and optionally a role). POST
// requests must carry the session's CSRF token in the csrf form field.
func (h *Handler) page(allowed func(*auth.User) bool, f pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		sess, err := h.session(r)
		if err != nil {
			if !errors.Is(err, auth.ErrBadSession) {
				h.log.Error("session check failed", "err", err)
			}
			if r.Method != http.MethodGet {
				h.renderError(w, r, nil, http.StatusUnauthorized, "Signed out", "Your session has ended. Please sign in again.")
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		c := &reqCtx{User: sess.User, Session: sess, CSRF: h.d.Sessions.CSRFToken(sess.ID)}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if !h.d.Sessions.CheckCSRF(sess.ID, r.PostFormValue("csrf")) {
				h.renderError(w, r, c, http.StatusForbidden, "Form expired", "The form was stale or did not come from this site. Go back, reload the page and try again.")
				return
			}
		}
		if allowed != nil && !allowed(sess.User) {
			h.renderError(w, r, c, http.StatusForbidden, "Not allowed", "Your role may not open this page.")
			return
		}
		if err := f(w, r, c); err != nil {
			h.fail(w, r, c, err)
		}
	}
}

func (h *Handler) session(r *http.Request) (*auth.Session, error) {
	ck, err := r.Cookie(auth.SessionCookie)
	if err != nil {
		return nil, auth.ErrBadSession
	}
	return h.d.Sessions.Verify(r.Context(), ck.Value)
}

// userError is an error with a page to show.
type userError struct {
	status       int
	title, short string
}

func (e *userError) Error() string { return e.title + ": " + e.short }

func notFound() error {
	return &userError{http.StatusNotFound, "Not found", "No such message, or you may not see it."}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, c *reqCtx, err error) {
	var ue *userError
	switch {
	case errors.As(err, &ue):
		h.renderError(w, r, c, ue.status, ue.title, ue.short)
	case errors.Is(err, archive.ErrNotFound):
		h.renderError(w, r, c, http.StatusNotFound, "Not found", "No such message, or you may not see it.")
	case errors.Is(err, context.Canceled):
	default:
		h.log.Error("page failed", "method", r.Method, "path", r.URL.Path, "err", err)
		h.renderError(w, r, c, http.StatusInternalServerError, "Something went wrong", "The error was logged on the server.")
	}
}

// record writes an audit entry when an audit log is wired; failures are
// logged (the action itself already happened or is read-only).
func (h *Handler) record(ctx context.Context, c *reqCtx, action string, detail any) {
	if h.d.Audit == nil || c == nil {
		return
	}
	if _, err := h.d.Audit.Record(ctx, c.User.Name, action, detail); err != nil {
		h.log.Error("audit record failed", "action", action, "err", err)
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// safeNext returns a local path to go to after login.
func safeNext(s string) string {
	if s == "" || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") ||
		strings.ContainsAny(s, "\r\n\\") || strings.HasPrefix(s, "/login") {
		return "/search"
	}
	return s
}

func (h *Handler) secure(r *http.Request) bool { return r.TLS != nil || h.d.SecureCookies }

func errorf(status int, title, format string, a ...any) error {
	return &userError{status, title, fmt.Sprintf(format, a...)}
}
