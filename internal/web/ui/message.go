package ui

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/microcosm-cc/bluemonday"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/message"
	"github.com/mailarc/mailarc/internal/web"
)

// maxSourceView caps the raw source shown inline (the .eml download is
// always complete).
const maxSourceView = 2 << 20

type headerRow struct{ Key, Value string }

type attachmentRow struct {
	N           int
	Filename    string
	ContentType string
	Size        int64
	URL         string
	Inline      bool // an image the HTML body shows (cid:)
}

type messageData struct {
	ID          string
	Subject     string
	From        string
	To, Cc, Bcc string
	Date        time.Time
	DateSource  string
	Arrival     time.Time
	Size        int64
	Headers     []headerRow
	Text        string
	HasHTML     bool
	FrameURL    string
	Images      bool   // remote images are shown
	ImagesURL   string // the view with remote images; empty when there are none
	Attachments []attachmentRow
	RawURL      string
	SourceURL   string
	Origins     string
	MailFrom    string
	RcptTo      string
	Problems    []string
}

// loadVisible returns the catalog record if the user may see it; another
// user's message is reported exactly like an unknown one.
func (h *Handler) loadVisible(r *http.Request, c *reqCtx) (*archive.Message, error) {
	id := r.PathValue("id")
	if !message.ValidID(id) {
		return nil, notFound()
	}
	m, err := h.d.Archive.Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	ok, err := web.Visible(r.Context(), h.d.Archive, c.User, m)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound()
	}
	return m, nil
}

func (h *Handler) messagePage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	m, err := h.loadVisible(r, c)
	if err != nil {
		return err
	}
	raw, err := h.d.Archive.Raw(r.Context(), m.ID)
	if err != nil {
		return err
	}
	p := message.Parse(raw, message.Options{Arrival: m.Arrival})
	images := r.URL.Query().Get("images") == "1"
	d := messageData{
		ID: m.ID, Subject: m.Subject, From: m.From, To: strings.Join(m.To, ", "), Cc: strings.Join(m.Cc, ", "),
		Bcc: strings.Join(m.Bcc, ", "), Date: m.Date, DateSource: m.DateSource, Arrival: m.Arrival, Size: m.Size,
		Text: p.Text, HasHTML: len(p.HTML) > 0, Images: images,
		RawURL:    "/api/v1/messages/" + m.ID + "/raw",
		SourceURL: "/messages/" + m.ID + "/source",
		Origins:   strings.Join(m.Origins, ", "), MailFrom: strings.Join(m.MailFrom, ", "), RcptTo: strings.Join(m.RcptTo, ", "),
		Problems: p.Problems,
	}
	if d.Subject == "" {
		d.Subject = "(no subject)"
	}
	d.FrameURL = "/messages/" + m.ID + "/html"
	if images {
		d.FrameURL += "?images=1"
	} else if d.HasHTML && remoteImages(frameDocument(newPolicy(), p.HTML)) {
		d.ImagesURL = "/messages/" + m.ID + "?images=1"
	}
	for _, f := range p.Header {
		d.Headers = append(d.Headers, headerRow{f.Key, f.Value})
	}
	refs := cidRefs(p.HTML)
	for _, a := range p.Attachments {
		name := a.Filename
		if name == "" {
			name = "attachment-" + strconv.Itoa(a.Index)
		}
		d.Attachments = append(d.Attachments, attachmentRow{N: a.Index, Filename: name, ContentType: a.ContentType, Size: a.Size,
			URL: "/api/v1/messages/" + m.ID + "/attachments/" + strconv.Itoa(a.Index), Inline: referenced(refs, a)})
	}
	h.record(r.Context(), c, audit.ActionView, map[string]string{"id": m.ID, "via": "web"})
	h.render(w, r, http.StatusOK, "message", c.view(d.Subject, "search", d))
	return nil
}

// frameCSP is the policy of the sanitised HTML document: nothing may load
// except inline styles and data: images (the message's own cid: images are
// inlined as data: URIs; remote images only on request);
// the sandbox directive keeps it script-less even when opened directly.
func frameCSP(images bool) string {
	img := "img-src data:"
	if images {
		img = "img-src data: https: http:"
	}
	return "default-src 'none'; style-src 'unsafe-inline'; " + img +
		"; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
}

func (h *Handler) messageHTML(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	m, err := h.loadVisible(r, c)
	if err != nil {
		return err
	}
	raw, err := h.d.Archive.Raw(r.Context(), m.ID)
	if err != nil {
		return err
	}
	opt := message.Options{Arrival: m.Arrival}
	p := message.Parse(raw, opt)
	doc := frameDocument(newPolicy(), inlineHTML(raw, p, opt))
	hd := w.Header()
	hd.Set("Content-Security-Policy", frameCSP(r.URL.Query().Get("images") == "1"))
	hd.Set("X-Frame-Options", "SAMEORIGIN")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "private, no-store")
	_, _ = w.Write([]byte(doc))
	return nil
}

// newPolicy is the sanitiser for archived HTML: bluemonday's UGC policy
// (no script, no event handlers, no javascript: URLs, no forms, no style
// elements) plus data: images, legacy presentational markup and a short
// list of harmless inline style properties.
func newPolicy() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowDataURIImages()
	p.AllowElements("font", "center", "span", "div")
	p.AllowAttrs("color", "face", "size").OnElements("font")
	p.AllowAttrs("bgcolor", "background", "width", "height", "align", "valign", "border", "cellpadding", "cellspacing").
		OnElements("table", "tr", "td", "th", "tbody", "thead", "tfoot")
	p.AllowAttrs("align").OnElements("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "img")
	p.AllowStyles("color", "background-color", "font-weight", "font-style", "font-size", "font-family",
		"text-align", "text-decoration", "line-height", "margin", "margin-top", "margin-bottom", "margin-left",
		"margin-right", "padding", "padding-top", "padding-bottom", "padding-left", "padding-right",
		"border", "border-collapse", "width", "max-width", "height", "vertical-align", "white-space").Globally()
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowURLSchemes("http", "https", "mailto")
	return p
}

// frameDocument wraps the sanitised HTML parts in a minimal document.
func frameDocument(p *bluemonday.Policy, parts []string) string {
	var b strings.Builder
	b.WriteString(`<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">` +
		`<style>body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:12px;word-wrap:break-word}` +
		`img{max-width:100%;height:auto}table{max-width:100%}pre{white-space:pre-wrap}</style></head><body>`)
	for i, part := range parts {
		if i > 0 {
			b.WriteString("<hr>")
		}
		b.WriteString(p.Sanitize(part))
	}
	b.WriteString("</body></html>")
	return b.String()
}

type sourceData struct {
	ID, Subject, Source, RawURL string
	Truncated                   bool
	Size                        int
}

func (h *Handler) messageSource(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	m, err := h.loadVisible(r, c)
	if err != nil {
		return err
	}
	raw, err := h.d.Archive.Raw(r.Context(), m.ID)
	if err != nil {
		return err
	}
	d := sourceData{ID: m.ID, Subject: m.Subject, RawURL: "/api/v1/messages/" + m.ID + "/raw", Size: len(raw)}
	if len(raw) > maxSourceView {
		raw, d.Truncated = raw[:maxSourceView], true
	}
	d.Source = strings.ToValidUTF8(string(raw), "\uFFFD")
	h.record(r.Context(), c, audit.ActionRaw, map[string]string{"id": m.ID, "via": "web"})
	h.render(w, r, http.StatusOK, "source", c.view("Source — "+m.Subject, "search", d))
	return nil
}
