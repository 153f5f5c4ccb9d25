package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/message"
)

// POST /api/v1/messages: body = raw message. The optional ?origin= names
// the ingest path recorded with it: "api" (the default) or "import" (what
// `mailarc import --server` sends). Clients may claim no other origin: smtp,
// imap:NAME and peer:NAME are only ever set by the node itself.
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) error {
	origin := "api"
	switch o := r.URL.Query().Get("origin"); o {
	case "", "api":
	case "import":
		origin = o
	default:
		return errf(http.StatusBadRequest, "bad_origin", `origin may only be "api" (the default) or "import"`)
	}
	limit := s.d.MaxMessageSize
	if limit <= 0 {
		limit = 100 << 20
	}
	if r.ContentLength > limit {
		return errf(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("message exceeds the size limit of %d bytes", limit))
	}
	raw, err := readBody(http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errf(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("message exceeds the size limit of %d bytes", limit))
		}
		return errf(http.StatusBadRequest, "bad_body", "could not read the request body")
	}
	if len(raw) == 0 {
		return errf(http.StatusBadRequest, "empty", "empty message: send the raw RFC 5322 message as the request body")
	}
	res, err := s.d.Archive.Ingest(r.Context(), raw, archive.Origin{Source: origin})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Duplicate {
		status = http.StatusOK
	}
	out := map[string]any{"id": res.ID, "duplicate": res.Duplicate}
	if res.Purged {
		out["purged"] = true
	}
	writeJSON(w, status, out)
	return nil
}

// loadVisible returns the message if the caller may see it; another user's
// message answers 404, exactly like an unknown id.
func (s *Server) loadVisible(r *http.Request) (*archive.Message, error) {
	id := r.PathValue("id")
	if !message.ValidID(id) {
		return nil, errf(http.StatusBadRequest, "bad_id", "a message id is 64 lowercase hex digits")
	}
	m, err := s.d.Archive.Get(r.Context(), id)
	if errors.Is(err, archive.ErrNotFound) {
		return s.loadReport(r, id)
	}
	if err != nil {
		return nil, err
	}
	ok, err := Visible(r.Context(), s.d.Archive, userFrom(r), m)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, archive.ErrNotFound
	}
	return m, nil
}

// loadReport serves a journal report blob (listed in a message's
// journal_reports) to whoever may see one of the messages unwrapped from it.
// The record returned describes the report itself.
func (s *Server) loadReport(r *http.Request, id string) (*archive.Message, error) {
	owners, err := s.d.Archive.Catalog().ReportOwners(r.Context(), id)
	if err != nil {
		return nil, err
	}
	for _, o := range owners {
		ok, err := Visible(r.Context(), s.d.Archive, userFrom(r), o)
		if err != nil {
			return nil, err
		}
		if ok {
			return &archive.Message{ID: id, Subject: "journal report of " + o.ID, Arrival: o.Arrival}, nil
		}
	}
	return nil, archive.ErrNotFound
}

// Visible applies the whole per-user visibility rule: admins and auditors
// see everything; a user sees a message where one of their addresses is a
// sender (any From address, the Sender field, the envelope sender) or a
// recipient (To, Cc, Bcc, the envelope recipients). It is the rule the
// index applies to searches and counts (index.Options.Addresses), so
// totals, hits, get, raw, attachments and exports agree.
//
// CanSee decides from the catalog record alone, which keeps the first From
// address and no Sender field; only when it says no for a user with
// addresses are the From and Sender fields read from the stored message.
func Visible(ctx context.Context, a *archive.Archive, u *auth.User, m *archive.Message) (bool, error) {
	if CanSee(u, m) {
		return true, nil
	}
	if u == nil || len(u.Addresses) == 0 {
		return false, nil
	}
	raw, err := a.Raw(ctx, m.ID)
	if errors.Is(err, archive.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// Header fields only: the body stays one opaque part.
	p := message.Parse(raw, message.Options{SkipText: true, MaxParts: 1})
	mine := userAddrs(u)
	for _, list := range [][]message.Address{p.From, p.Sender} {
		for _, ad := range list {
			if mine[strings.ToLower(strings.TrimSpace(ad.Addr))] {
				return true, nil
			}
		}
	}
	return false, nil
}

// userAddrs is the set of a user's addresses, lowercased.
func userAddrs(u *auth.User) map[string]bool {
	mine := make(map[string]bool, len(u.Addresses))
	for _, a := range u.Addresses {
		mine[strings.ToLower(strings.TrimSpace(a))] = true
	}
	return mine
}

// CanSee applies the per-user visibility rule to a catalog record: admins
// and auditors see everything; a user sees a message where one of their
// addresses is a sender or recipient (the first From address, To, Cc, Bcc
// or the envelope). Visible completes it with the header fields the
// catalog does not keep.
func CanSee(u *auth.User, m *archive.Message) bool {
	if u == nil {
		return false
	}
	if u.SeesAll() {
		return true
	}
	mine := userAddrs(u)
	check := func(list ...string) bool {
		for _, s := range list {
			if mine[addrOf(s)] {
				return true
			}
		}
		return false
	}
	return check(m.From) || check(m.To...) || check(m.Cc...) || check(m.MailFrom...) || check(m.RcptTo...) || check(m.Bcc...)
}

// addrOf extracts the lowercase address from "Name <addr>" or "addr".
func addrOf(s string) string {
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	}
	return strings.ToLower(strings.TrimSpace(s))
}

type messageJSON struct {
	ID          string               `json:"id"`
	Seq         int64                `json:"seq"`
	Date        time.Time            `json:"date"`
	DateSource  string               `json:"date_source"`
	Arrival     time.Time            `json:"arrival"`
	Size        int64                `json:"size"`
	From        string               `json:"from"`
	To          []string             `json:"to"`
	Cc          []string             `json:"cc"`
	Bcc         []string             `json:"bcc,omitempty"`
	Subject     string               `json:"subject"`
	MessageID   string               `json:"message_id"`
	Attachments []archive.Attachment `json:"attachments"`
	Origins     []string             `json:"origins"`
	Envelope    envelopeJSON         `json:"envelope"`
	Reports     []string             `json:"journal_reports,omitempty"`
	Headers     []headerJSON         `json:"headers,omitempty"`
	Text        string               `json:"text,omitempty"`
	HTML        []string             `json:"html,omitempty"`
	Problems    []string             `json:"problems,omitempty"`
}

type envelopeJSON struct {
	MailFrom []string `json:"mail_from"`
	RcptTo   []string `json:"rcpt_to"`
}

type headerJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// GET /api/v1/messages/{id}: metadata and text.
func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) error {
	m, err := s.loadVisible(r)
	if err != nil {
		return err
	}
	raw, err := s.d.Archive.Raw(r.Context(), m.ID)
	if err != nil {
		return err
	}
	if err := s.record(r, audit.ActionView, map[string]string{"id": m.ID}); err != nil {
		return err
	}
	p := message.Parse(raw, message.Options{Arrival: m.Arrival})
	out := messageJSON{
		ID: m.ID, Seq: m.Seq, Date: m.Date, DateSource: m.DateSource, Arrival: m.Arrival, Size: m.Size,
		From: m.From, To: nonNil(m.To), Cc: nonNil(m.Cc), Subject: m.Subject, MessageID: m.MessageID,
		Attachments: m.Attachments, Origins: nonNil(m.Origins),
		Envelope: envelopeJSON{MailFrom: nonNil(m.MailFrom), RcptTo: nonNil(m.RcptTo)},
		Reports:  m.Reports, Text: p.Text, HTML: p.HTML, Problems: p.Problems,
	}
	out.Bcc = m.Bcc
	if out.Attachments == nil {
		out.Attachments = []archive.Attachment{}
	}
	for _, h := range p.Header {
		out.Headers = append(out.Headers, headerJSON{h.Key, h.Value})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// GET /api/v1/messages/{id}/raw: the exact stored bytes.
func (s *Server) getRaw(w http.ResponseWriter, r *http.Request) error {
	m, err := s.loadVisible(r)
	if err != nil {
		return err
	}
	raw, err := s.d.Archive.Raw(r.Context(), m.ID)
	if err != nil {
		return err
	}
	if err := s.record(r, audit.ActionRaw, map[string]string{"id": m.ID}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.Header().Set("Content-Disposition", `attachment; filename="`+m.ID+`.eml"`)
	w.Header().Set("X-Mailarc-Sha256", m.ID)
	_, _ = w.Write(raw)
	return nil
}

// GET /api/v1/messages/{id}/attachments/{n}: one decoded attachment.
func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request) error {
	m, err := s.loadVisible(r)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 {
		return errf(http.StatusBadRequest, "bad_index", "attachment index must be a non-negative integer")
	}
	raw, err := s.d.Archive.Raw(r.Context(), m.ID)
	if err != nil {
		return err
	}
	att, data, err := message.AttachmentData(raw, n)
	if err != nil {
		return errf(http.StatusNotFound, "not_found", "no such attachment")
	}
	if err := s.record(r, audit.ActionAttachment, map[string]any{"id": m.ID, "n": n, "filename": att.Filename}); err != nil {
		return err
	}
	ct := att.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	name := att.Filename
	if name == "" {
		name = fmt.Sprintf("attachment-%d", n)
	}
	// Attachments are always downloaded, never rendered in our origin.
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// readBody reads a request body whose announced length is n (-1: unknown)
// into one buffer of that size, instead of io.ReadAll's doubling (which
// copied and cleared a message several times over: 5% of the API's CPU).
// The announced length is only a hint; r must already be size-limited.
func readBody(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 || n > 64<<20 {
		return io.ReadAll(r)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	rest, err := io.ReadAll(r) // empty: net/http ends the body at its length
	if len(rest) > 0 {
		buf = append(buf, rest...)
	}
	return buf, err
}
