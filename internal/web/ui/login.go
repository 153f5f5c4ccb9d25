package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/mailarc/mailarc/internal/auth"
)

// loginCSRFCookie holds the double-submit token of the login form.
const loginCSRFCookie = "mailarc_login_csrf"

type loginData struct {
	Next     string
	Username string
	CSRF     string
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if s, err := h.session(r); err == nil && s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	h.showLogin(w, r, http.StatusOK, "", "")
}

func (h *Handler) showLogin(w http.ResponseWriter, r *http.Request, status int, username, msg string) {
	tok := make([]byte, 18)
	_, _ = rand.Read(tok)
	csrf := base64.RawURLEncoding.EncodeToString(tok)
	http.SetCookie(w, &http.Cookie{Name: loginCSRFCookie, Value: csrf, Path: "/login", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: h.secure(r), MaxAge: 3600})
	next := r.FormValue("next")
	h.render(w, r, status, "login", view{Title: "Sign in", Error: msg,
		Data: loginData{Next: safeNext(next), Username: username, CSRF: csrf}})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name, pw := r.PostFormValue("username"), r.PostFormValue("password")
	ck, err := r.Cookie(loginCSRFCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		h.showLogin(w, r, http.StatusForbidden, name, "The sign-in form expired. Please try again.")
		return
	}
	client := clientIP(r)
	u, err := h.d.Auth.Login(r.Context(), name, pw, client)
	if err != nil {
		reason := "bad credentials"
		status, msg := http.StatusUnauthorized, "Wrong user name or password."
		switch {
		case errors.Is(err, auth.ErrThrottled):
			reason, status, msg = "throttled", http.StatusTooManyRequests, "Too many failed attempts. Wait a minute and try again."
			w.Header().Set("Retry-After", "60")
		case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrNoUser):
		default:
			h.log.Error("login failed", "err", err)
			reason, status, msg = "error", http.StatusInternalServerError, "Sign-in failed on the server (logged). Try again later."
		}
		if h.d.Audit != nil {
			if err := h.d.Audit.RecordLogin(r.Context(), name, "web", client, false, reason); err != nil {
				h.log.Error("audit record failed", "action", "login", "err", err)
			}
		}
		h.showLogin(w, r, status, name, msg)
		return
	}
	tok, exp, err := h.d.Sessions.Issue(r.Context(), u.Name)
	if err != nil {
		h.log.Error("issue session", "err", err)
		h.showLogin(w, r, http.StatusInternalServerError, name, "Sign-in failed on the server (logged). Try again later.")
		return
	}
	if h.d.Audit != nil {
		if err := h.d.Audit.RecordLogin(r.Context(), u.Name, "web", client, true, ""); err != nil {
			h.log.Error("audit record failed", "action", "login", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: loginCSRFCookie, Value: "", Path: "/login", MaxAge: -1, HttpOnly: true, Secure: h.secure(r)})
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: tok, Path: "/", Expires: exp, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: h.secure(r)})
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if err := h.d.Sessions.Revoke(r.Context(), c.User.Name); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: h.secure(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
