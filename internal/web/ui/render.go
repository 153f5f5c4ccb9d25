package ui

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/auth"
)

// view is what every page template receives.
type view struct {
	Title  string
	Active string // nav entry to highlight
	User   *auth.User
	CSRF   string
	Notice string
	Error  string
	Data   any
}

func (v view) IsAdmin() bool  { return v.User != nil && v.User.Role == auth.RoleAdmin }
func (v view) SeesAll() bool  { return v.User != nil && v.User.SeesAll() }
func (v view) SignedIn() bool { return v.User != nil }
func (v view) Year() int      { return time.Now().Year() }
func (v view) NavClass(n string) string {
	if v.Active == n {
		return "active"
	}
	return ""
}

var funcs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04")
	},
	"datetime": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 MST")
	},
	"iso":     func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"size":    humanSize,
	"join":    strings.Join,
	"short":   func(s string, n int) string { return shorten(s, n) },
	"add":     func(a, b int) int { return a + b },
	"who":     who,
	"whoList": whoList,
	"pct": func(a, b int64) string {
		if b <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
	},
}

func humanSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KB", float64(n)/1024)
	case n < 1024*1024*1024:
		return fmt.Sprintf("%.1f MB", float64(n)/(1024*1024))
	default:
		return fmt.Sprintf("%.2f GB", float64(n)/(1024*1024*1024))
	}
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (h *Handler) parseTemplates() error {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("ui: templates: %w", err)
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("ui: parse %s: %w", base, err)
		}
		h.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return nil
}

// render writes a full page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	t := h.pages[page]
	if t == nil {
		h.log.Error("missing template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("render failed", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, c *reqCtx, status int, title, msg string) {
	v := view{Title: title, Data: msg}
	if c != nil {
		v.User, v.CSRF = c.User, c.CSRF
	}
	h.render(w, r, status, "error", v)
}

func (c *reqCtx) view(title, active string, data any) view {
	return view{Title: title, Active: active, User: c.User, CSRF: c.CSRF, Data: data}
}

// markSnippet turns the Searcher's snippet (HTML-escaped text with <mark>
// and </mark>) into trusted HTML without trusting anything else in it: the
// text between the marks is unescaped and escaped again, so any other tag
// is shown as text.
func markSnippet(s string) template.HTML {
	var b strings.Builder
	open := false
	for len(s) > 0 {
		var tag string
		i := strings.Index(s, "<mark>")
		j := strings.Index(s, "</mark>")
		next := -1
		switch {
		case !open && i >= 0:
			next, tag = i, "<mark>"
		case open && j >= 0:
			next, tag = j, "</mark>"
		}
		if next < 0 {
			b.WriteString(html.EscapeString(html.UnescapeString(s)))
			break
		}
		b.WriteString(html.EscapeString(html.UnescapeString(s[:next])))
		b.WriteString(tag)
		open = !open
		s = s[next+len(tag):]
	}
	if open {
		b.WriteString("</mark>")
	}
	return template.HTML(b.String()) //nolint:gosec // rebuilt from escaped text and fixed tags
}

// who shortens "Name <addr>" to the name (the address stays in a title).
func who(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '<'); i > 0 {
		if name := strings.Trim(strings.TrimSpace(s[:i]), `"'`); name != "" {
			return name
		}
	}
	return strings.Trim(s, "<>")
}

// whoList applies who to a comma-separated list.
func whoList(s string) string {
	parts := strings.Split(s, ", ")
	for i, p := range parts {
		parts[i] = who(p)
	}
	return strings.Join(parts, ", ")
}
