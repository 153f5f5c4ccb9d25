// Package web serves mailarc's HTTP interface: the JSON REST API under
// /api/v1 (DESIGN §5), health and readiness probes, Prometheus metrics and
// (later) the web UI.
//
// Every /api/v1 request is authenticated (HTTP Basic, a bearer API token, or
// a session cookie) and authorised by role; failures answer with
// {"error":{"code","message"}} and the matching status. Internal causes are
// logged, never returned.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/governance"
	"github.com/mailarc/mailarc/internal/index"
)

// Deps are what the HTTP layer needs from the rest of the node.
type Deps struct {
	Archive  *archive.Archive
	Auth     *auth.Service
	Search   Searcher // may be nil until the index is wired
	Status   func(ctx context.Context) (any, error)
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer
	// MaxMessageSize caps POST /api/v1/messages bodies.
	MaxMessageSize int64
	// UI, when set, serves every non-API path (the browser interface,
	// package web/ui).
	UI http.Handler
	// Sessions, when set, lets API calls authenticate with the browser's
	// session cookie; unsafe methods then need the X-CSRF-Token header.
	Sessions *auth.Sessions
	// Audit records logins, searches, views, exports and changes (nil:
	// nothing is recorded, for tests only).
	Audit *audit.Log
	// Governance serves retention and holds (nil: those answer 503).
	Governance *governance.Service
	// Index backs exports (nil: export answers 503).
	Index index.Index
	// NodeName goes into export custody records.
	NodeName string
	// Peers serves the peers sync and repair endpoints (nil: they answer 503).
	Peers PeerAdmin
}

// Server is the HTTP handler. It implements http.Handler.
type Server struct {
	d        Deps
	log      *slog.Logger
	mux      *http.ServeMux
	draining atomic.Bool
	ready    atomic.Bool
}

// New builds the handler.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	s := &Server{d: d, log: d.Logger, mux: http.NewServeMux()}
	s.routes()
	return s
}

// SetReady marks the node ready (or not) for /readyz.
func (s *Server) SetReady(v bool) { s.ready.Store(v) }

// Drain makes every API request answer 503 (used during shutdown).
func (s *Server) Drain() { s.draining.Store(true); s.ready.Store(false) }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if s.d.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.d.Gatherer, promhttp.HandlerOpts{}))
	}
	s.api("POST /api/v1/messages", s.requireRole(auth.RoleAdmin), s.postMessage)
	s.api("GET /api/v1/messages/{id}", nil, s.getMessage)
	s.api("GET /api/v1/messages/{id}/raw", nil, s.getRaw)
	s.api("GET /api/v1/messages/{id}/attachments/{n}", nil, s.getAttachment)
	s.api("GET /api/v1/search", nil, s.search)
	s.api("GET /api/v1/status", nil, s.status)
	s.api("GET /api/v1/users", s.requireRole(auth.RoleAdmin), s.listUsers)
	s.api("POST /api/v1/users", s.requireRole(auth.RoleAdmin), s.addUser)
	s.api("DELETE /api/v1/users/{name}", s.requireRole(auth.RoleAdmin), s.deleteUser)
	s.api("PATCH /api/v1/users/{name}", s.requireRole(auth.RoleAdmin), s.updateUser)
	s.api("PUT /api/v1/users/{name}/password", nil, s.setPassword)
	s.api("GET /api/v1/tokens", nil, s.listTokens)
	s.api("POST /api/v1/tokens", nil, s.createToken)
	s.api("DELETE /api/v1/tokens/{id}", nil, s.revokeToken)
	seesAll := s.requireRole(auth.RoleAdmin, auth.RoleAuditor)
	s.api("GET /api/v1/retention", seesAll, s.getRetention)
	s.api("PUT /api/v1/retention", s.requireRole(auth.RoleAdmin), s.putRetention)
	s.api("POST /api/v1/retention/run", s.requireRole(auth.RoleAdmin), s.runRetention)
	s.api("GET /api/v1/holds", seesAll, s.listHolds)
	s.api("POST /api/v1/holds", seesAll, s.createHold)
	s.api("GET /api/v1/holds/{id}", seesAll, s.getHold)
	s.api("GET /api/v1/holds/{id}/messages", seesAll, s.holdMessages)
	s.api("DELETE /api/v1/holds/{id}", s.requireRole(auth.RoleAdmin), s.releaseHold)
	s.api("GET /api/v1/audit", seesAll, s.getAudit)
	s.api("GET /api/v1/export", nil, s.export)
	s.api("POST /api/v1/peers/{name}/sync", s.requireRole(auth.RoleAdmin), s.syncPeer)
	s.api("POST /api/v1/peers/{name}/repair", s.requireRole(auth.RoleAdmin), s.repairPeer)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such API endpoint")
	})
	if s.d.UI != nil {
		s.mux.Handle("/", s.d.UI)
	}
}

type ctxKey int

const userKey ctxKey = 1

// userFrom returns the authenticated user of a request.
func userFrom(r *http.Request) *auth.User {
	u, _ := r.Context().Value(userKey).(*auth.User)
	return u
}

type check func(*auth.User) bool

func (s *Server) requireRole(roles ...auth.Role) check {
	return func(u *auth.User) bool {
		for _, r := range roles {
			if u.Role == r {
				return true
			}
		}
		return false
	}
}

// api registers an authenticated JSON endpoint.
func (s *Server) api(pattern string, allowed check, h func(w http.ResponseWriter, r *http.Request) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, "shutting_down", "the node is shutting down; retry on another node or later")
			return
		}
		u, err := s.authenticate(r)
		if err != nil {
			if errors.Is(err, auth.ErrThrottled) {
				w.Header().Set("Retry-After", "60")
				writeError(w, http.StatusTooManyRequests, "throttled", "too many failed logins; try again later")
				return
			}
			if !errors.Is(err, auth.ErrBadCredentials) && !errors.Is(err, auth.ErrNoUser) {
				s.log.Error("authentication failed", "err", err)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="mailarc", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "authentication required")
			return
		}
		if allowed != nil && !allowed(u) {
			writeError(w, http.StatusForbidden, "forbidden", "your role may not do this")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), userKey, u))
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

func (s *Server) authenticate(r *http.Request) (*auth.User, error) {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		u, err := s.d.Auth.TokenUser(r.Context(), strings.TrimSpace(strings.TrimPrefix(h, "Bearer ")))
		s.recordLogin(r, "", "token", u, err)
		return u, err
	}
	if name, pw, ok := r.BasicAuth(); ok {
		u, err := s.d.Auth.Login(r.Context(), name, pw, clientIP(r))
		s.recordLogin(r, name, "basic", u, err)
		return u, err
	}
	if c, err := r.Cookie(auth.SessionCookie); err == nil && s.d.Sessions != nil {
		sess, err := s.d.Sessions.Verify(r.Context(), c.Value)
		if err != nil {
			if errors.Is(err, auth.ErrBadSession) {
				return nil, auth.ErrBadCredentials
			}
			return nil, err
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !s.d.Sessions.CheckCSRF(sess.ID, r.Header.Get("X-CSRF-Token")) {
				return nil, auth.ErrBadCredentials
			}
		}
		return sess.User, nil
	}
	return nil, auth.ErrBadCredentials
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// apiError is an error with a client-facing status, code and message.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, msg string) error { return &apiError{status, code, msg} }

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.code, ae.message)
	case errors.Is(err, archive.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such message")
	case errors.Is(err, archive.ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "message exceeds the size limit")
	case errors.Is(err, archive.ErrEmpty):
		writeError(w, http.StatusBadRequest, "empty", "empty message")
	case errors.Is(err, archive.ErrShuttingDown):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the node is shutting down")
	case errors.Is(err, archive.ErrLowSpace):
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, "low_space", "disk nearly full: the node refuses new mail until space is freed; retry")
	case errors.Is(err, archive.ErrUnavailable):
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "temporarily unable to store; retry")
	case errors.Is(err, context.Canceled):
		// client went away
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error (logged on the server)")
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// NewHTTPServer wraps h in an *http.Server with sane timeouts.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}
