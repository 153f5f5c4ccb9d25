package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
)

// redirectNotice sends the browser back to path with a one-line notice
// (post/redirect/get).
func redirectNotice(w http.ResponseWriter, r *http.Request, path, kind, msg string) {
	http.Redirect(w, r, path+"?"+url.Values{kind: {msg}}.Encode(), http.StatusSeeOther)
}

// notices copies ?notice= and ?error= into the view (rendered as text).
func notices(v *view, r *http.Request) {
	v.Notice = shorten(r.URL.Query().Get("notice"), 300)
	v.Error = shorten(r.URL.Query().Get("error"), 300)
}

// ---- holds

type holdsData struct {
	Available bool
	Holds     []Hold
	Query     string
}

func (h *Handler) holdsPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	d := holdsData{Available: h.d.Holds != nil, Query: r.URL.Query().Get("q")}
	if d.Available {
		hs, err := h.d.Holds.List(r.Context())
		if err != nil {
			return err
		}
		d.Holds = hs
	}
	v := c.view("Legal holds", "holds", d)
	notices(&v, r)
	h.render(w, r, http.StatusOK, "holds", v)
	return nil
}

func (h *Handler) createHold(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if h.d.Holds == nil {
		return errorf(http.StatusServiceUnavailable, "Unavailable", "Legal holds are not available on this node.")
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	q := strings.TrimSpace(r.PostFormValue("query"))
	if name == "" || q == "" {
		redirectNotice(w, r, "/holds", "error", "A hold needs a name and a query.")
		return nil
	}
	hd, err := h.d.Holds.Create(r.Context(), c.User.Name, name, q, strings.TrimSpace(r.PostFormValue("description")))
	if err != nil {
		h.log.Warn("create hold failed", "err", err)
		redirectNotice(w, r, "/holds", "error", "Could not create the hold: "+err.Error())
		return nil
	}
	redirectNotice(w, r, "/holds", "notice", "Hold “"+hd.Name+"” created.")
	return nil
}

func (h *Handler) releaseHold(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if h.d.Holds == nil {
		return errorf(http.StatusServiceUnavailable, "Unavailable", "Legal holds are not available on this node.")
	}
	if err := h.d.Holds.Release(r.Context(), c.User.Name, r.PathValue("id")); err != nil {
		h.log.Warn("release hold failed", "err", err)
		redirectNotice(w, r, "/holds", "error", "Could not release the hold: "+err.Error())
		return nil
	}
	redirectNotice(w, r, "/holds", "notice", "Hold released.")
	return nil
}

// ---- retention

type retentionData struct {
	Available bool
	Config    RetentionConfig
	Rows      []RetentionPolicy // policies plus empty rows to add
	DryRun    bool
	Would     int
	Held      int
}

func (h *Handler) retentionPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	d := retentionData{Available: h.d.Retention != nil}
	if d.Available {
		cfg, err := h.d.Retention.Get(r.Context())
		if err != nil {
			return err
		}
		d.Config = cfg
		d.Rows = append(append([]RetentionPolicy{}, cfg.Policies...), RetentionPolicy{}, RetentionPolicy{})
		if v := r.URL.Query().Get("would"); v != "" {
			d.DryRun = true
			d.Would, _ = strconv.Atoi(v)
			d.Held, _ = strconv.Atoi(r.URL.Query().Get("held"))
		}
	}
	v := c.view("Retention", "retention", d)
	notices(&v, r)
	h.render(w, r, http.StatusOK, "retention", v)
	return nil
}

func (h *Handler) saveRetention(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if h.d.Retention == nil {
		return errorf(http.StatusServiceUnavailable, "Unavailable", "Retention is not available on this node.")
	}
	if err := r.ParseForm(); err != nil {
		return errorf(http.StatusBadRequest, "Bad form", "The form could not be read.")
	}
	cfg := RetentionConfig{Default: strings.TrimSpace(r.PostForm.Get("default"))}
	names, queries, keeps := r.PostForm["name"], r.PostForm["query"], r.PostForm["keep"]
	for i := range names {
		if i >= len(queries) || i >= len(keeps) {
			break
		}
		p := RetentionPolicy{Name: strings.TrimSpace(names[i]), Query: strings.TrimSpace(queries[i]), Keep: strings.TrimSpace(keeps[i])}
		if p.Name == "" && p.Query == "" && p.Keep == "" {
			continue
		}
		cfg.Policies = append(cfg.Policies, p)
	}
	if err := h.d.Retention.Put(r.Context(), c.User.Name, cfg); err != nil {
		h.log.Warn("save retention failed", "err", err)
		redirectNotice(w, r, "/retention", "error", "Not saved: "+err.Error())
		return nil
	}
	redirectNotice(w, r, "/retention", "notice", "Retention policies saved.")
	return nil
}

func (h *Handler) runRetention(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	if h.d.Retention == nil {
		return errorf(http.StatusServiceUnavailable, "Unavailable", "Retention is not available on this node.")
	}
	if r.PostFormValue("dry_run") == "true" {
		n, held, err := h.d.Retention.Run(r.Context(), c.User.Name, true, 0)
		if err != nil {
			redirectNotice(w, r, "/retention", "error", "Dry run failed: "+err.Error())
			return nil
		}
		http.Redirect(w, r, "/retention?"+url.Values{"would": {strconv.Itoa(n)}, "held": {strconv.Itoa(held)}}.Encode(), http.StatusSeeOther)
		return nil
	}
	confirm, err := strconv.Atoi(r.PostFormValue("confirm"))
	if err != nil {
		redirectNotice(w, r, "/retention", "error", "Run a dry run first, then confirm its count.")
		return nil
	}
	n, held, err := h.d.Retention.Run(r.Context(), c.User.Name, false, confirm)
	if err != nil {
		redirectNotice(w, r, "/retention", "error", "Not run: "+err.Error())
		return nil
	}
	redirectNotice(w, r, "/retention", "notice", "Purged "+strconv.Itoa(n)+" messages; "+strconv.Itoa(held)+" held messages kept.")
	return nil
}

// ---- users

type usersData struct {
	Users []auth.User
	Roles []string
}

func (h *Handler) usersPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	us, err := h.d.Auth.List(r.Context())
	if err != nil {
		return err
	}
	v := c.view("Users", "users", usersData{Users: us, Roles: []string{"user", "auditor", "admin"}})
	notices(&v, r)
	h.render(w, r, http.StatusOK, "users", v)
	return nil
}

func (h *Handler) addUser(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	role := auth.Role(r.PostFormValue("role"))
	addrs := strings.FieldsFunc(r.PostFormValue("addresses"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == ';' })
	err := h.d.Auth.AddUser(r.Context(), name, r.PostFormValue("new_password"), role, addrs)
	if errors.Is(err, auth.ErrExists) {
		redirectNotice(w, r, "/users", "error", "A user named “"+name+"” exists.")
		return nil
	}
	if err != nil {
		redirectNotice(w, r, "/users", "error", strings.TrimPrefix(err.Error(), "auth: "))
		return nil
	}
	h.record(r.Context(), c, audit.ActionUserAdd, map[string]any{"name": name, "role": role, "addresses": addrs, "via": "web"})
	redirectNotice(w, r, "/users", "notice", "User “"+name+"” added.")
	return nil
}

// setPassword sets another account's password (admin; the same rules as
// PUT /api/v1/users/{name}/password).
func (h *Handler) setPassword(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	name := r.PathValue("name")
	err := h.d.Auth.SetPassword(r.Context(), name, r.PostFormValue("new_password"))
	if errors.Is(err, auth.ErrNoUser) {
		redirectNotice(w, r, "/users", "error", "No such user.")
		return nil
	}
	if err != nil {
		redirectNotice(w, r, "/users", "error", strings.TrimPrefix(err.Error(), "auth: "))
		return nil
	}
	h.record(r.Context(), c, audit.ActionUserPassword, map[string]string{"name": name, "via": "web"})
	redirectNotice(w, r, "/users", "notice", "Password of “"+name+"” changed.")
	return nil
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	name := r.PathValue("name")
	if name == c.User.Name {
		redirectNotice(w, r, "/users", "error", "You cannot delete your own account.")
		return nil
	}
	if err := h.d.Auth.DeleteUser(r.Context(), name); err != nil {
		if errors.Is(err, auth.ErrNoUser) {
			redirectNotice(w, r, "/users", "error", "No such user.")
			return nil
		}
		return err
	}
	if err := h.d.Sessions.Revoke(r.Context(), name); err != nil {
		h.log.Warn("revoke sessions of deleted user", "err", err)
	}
	h.record(r.Context(), c, audit.ActionUserDelete, map[string]string{"name": name, "via": "web"})
	redirectNotice(w, r, "/users", "notice", "User “"+name+"” deleted.")
	return nil
}

// ---- audit

type auditRow struct {
	Seq    int64
	Time   time.Time
	User   string
	Action string
	Detail string
	Hash   string
}

type auditData struct {
	Available     bool
	Action, User  string
	After, Before string
	Limit         int
	Rows          []auditRow
	Older         string
	Limits        []option
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	q := r.URL.Query()
	d := auditData{Available: h.d.Audit != nil, Action: strings.TrimSpace(q.Get("action")), User: strings.TrimSpace(q.Get("user")),
		After: q.Get("after"), Before: q.Get("before")}
	d.Limit, _ = strconv.Atoi(q.Get("limit"))
	if d.Limit < 1 || d.Limit > 1000 {
		d.Limit = 100
	}
	for _, n := range []int{50, 100, 500, 1000} {
		d.Limits = append(d.Limits, option{strconv.Itoa(n), strconv.Itoa(n), n == d.Limit})
	}
	v := c.view("Audit log", "audit", d)
	if d.Available {
		f := audit.Filter{Limit: d.Limit, Action: d.Action, User: d.User}
		var bad []string
		if d.After != "" {
			t, err := time.Parse("2006-01-02", d.After)
			if err != nil {
				bad = append(bad, "from date")
			}
			f.After = t
		}
		if d.Before != "" {
			t, err := time.Parse("2006-01-02", d.Before)
			if err != nil {
				bad = append(bad, "to date")
			}
			f.Before = t.Add(24 * time.Hour)
		}
		f.BeforeSeq, _ = strconv.ParseInt(q.Get("before_seq"), 10, 64)
		if len(bad) > 0 {
			v.Error = "Invalid " + strings.Join(bad, " and ") + " (use YYYY-MM-DD)."
		} else {
			es, err := h.d.Audit.Query(r.Context(), f)
			if err != nil {
				return err
			}
			for _, e := range es {
				d.Rows = append(d.Rows, auditRow{Seq: e.Seq, Time: e.Time, User: e.User, Action: e.Action,
					Detail: shorten(compactJSON(e.Detail), 400), Hash: e.Hash})
			}
			if len(es) == d.Limit && len(es) > 0 {
				nq := url.Values{}
				for k, vs := range q {
					nq[k] = vs
				}
				nq.Set("before_seq", strconv.FormatInt(es[len(es)-1].Seq, 10))
				d.Older = "/audit?" + nq.Encode()
			}
		}
		v.Data = d
	}
	h.render(w, r, http.StatusOK, "audit", v)
	return nil
}

func compactJSON(b json.RawMessage) string {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || len(m) == 0 {
		return string(b)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return string(b)
	}
	return string(out)
}
