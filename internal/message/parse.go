package message

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults for Options fields left at zero.
const (
	DefaultMaxDepth     = 20
	DefaultMaxParts     = 1000
	DefaultMaxTextBytes = 8 << 20
)

// maxProblems caps Parsed.Problems per message.
const maxProblems = 100

// Date sources reported in Parsed.DateSource.
const (
	DateFromHeader   = "header"
	DateFromReceived = "received"
	DateFromArrival  = "arrival"
)

// ErrNoAttachment is returned (wrapped) by AttachmentData when the message
// has no attachment with the requested number.
var ErrNoAttachment = errors.New("no such attachment")

// Attachment describes one attachment of a message.
type Attachment struct {
	// Index is the 0-based position among the message's attachments, stable
	// for the same bytes (GET /messages/{id}/attachments/{n}).
	Index int
	// Filename is decoded (RFC 2047 and RFC 2231, continuations and
	// charset'lang' form included); empty when the part names none.
	Filename string
	// ContentType is the lowercased media type, e.g. "application/pdf".
	ContentType string
	// Disposition is "attachment", "inline" or "" (no Content-Disposition).
	Disposition string
	// ContentID is the part's Content-ID without the angle brackets
	// ("logo@example.com"), as HTML refers to it with cid: URLs
	// (RFC 2392); empty when the part has none.
	ContentID string
	// Size is the decoded size in bytes.
	Size int64
	// Data is the decoded content, only with Options.KeepAttachmentData.
	Data []byte
	// Nested is the parsed inner message of a message/rfc822 (or
	// message/global) attachment, within the depth limit.
	Nested *Parsed
}

// Parsed is what Parse understood of a message. Every string is valid UTF-8.
type Parsed struct {
	// Header lists the header fields in message order, values unfolded and
	// RFC 2047-decoded.
	Header []HeaderField

	From, Sender, To, Cc, Bcc, ReplyTo []Address

	// Date is the message date in UTC; DateSource says where it came from:
	// DateFromHeader, DateFromReceived (first parseable Received date) or
	// DateFromArrival (Options.Arrival).
	Date       time.Time
	DateSource string

	Subject    string
	MessageID  string // without angle brackets
	InReplyTo  []string
	References []string

	// Text holds the text/plain body parts decoded to UTF-8 (CRLF turned
	// into LF), joined with "\n"; attachments are not included.
	Text string
	// HTML holds the text/html body parts decoded to UTF-8.
	HTML []string

	Attachments []Attachment

	// Problems lists human-readable notes on what was malformed. They never
	// contain body text.
	Problems []string
}

// Get returns the value of the first header field named key
// (case-insensitive), or "".
func (p *Parsed) Get(key string) string {
	for _, f := range p.Header {
		if strings.EqualFold(f.Key, key) {
			return f.Value
		}
	}
	return ""
}

// Options tunes Parse. The zero value is ready to use.
type Options struct {
	// Arrival is the date used when neither the Date header nor any
	// Received header has a parseable date.
	Arrival time.Time
	// KeepAttachmentData fills Attachment.Data.
	KeepAttachmentData bool
	// MaxDepth caps MIME nesting (multiparts and message/rfc822 together);
	// DefaultMaxDepth when 0. Deeper parts are kept as opaque attachments.
	MaxDepth int
	// MaxParts caps the total number of MIME entities parsed;
	// DefaultMaxParts when 0.
	MaxParts int
	// MaxTextBytes caps Text plus HTML (nested messages included);
	// DefaultMaxTextBytes when 0. Beyond it text is truncated.
	MaxTextBytes int
	// SkipText leaves Text and HTML empty and does not decode text parts:
	// for callers that need only the header fields and the attachment list
	// (the ingest path; the indexer parses again with text).
	SkipText bool
	// SkipHeaderList leaves Parsed.Header nil (so Get returns ""): the
	// well-known fields (addresses, Date, Subject, ids) are still filled.
	// Decoding every field is a tenth of the parse; the ingest path and
	// the indexer do not need the list.
	SkipHeaderList bool
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxParts <= 0 {
		o.MaxParts = DefaultMaxParts
	}
	if o.MaxTextBytes <= 0 {
		o.MaxTextBytes = DefaultMaxTextBytes
	}
	return o
}

// parser holds the state of one Parse or AttachmentData call.
type parser struct {
	opt         Options
	parts       int
	partsCapped bool
	textLeft    int
	textCapped  bool

	// AttachmentData mode: decode only top-level attachment want, skip text.
	attachOnly bool
	want       int
	wantData   []byte
}

// msgState accumulates one (possibly nested) message.
type msgState struct {
	msg   *Parsed
	texts []string
	top   bool
}

func (s *msgState) problem(format string, args ...any) {
	switch n := len(s.msg.Problems); {
	case n < maxProblems:
		s.msg.Problems = append(s.msg.Problems, fmt.Sprintf(format, args...))
	case n == maxProblems:
		s.msg.Problems = append(s.msg.Problems, "further problems omitted")
	}
}

// internalErrorProblem marks a result produced after a recovered panic.
const internalErrorProblem = "internal error while parsing; message kept unparsed"

// Parse parses raw leniently. It never fails and never panics: whatever it
// cannot parse is noted in Problems, and it always returns a usable *Parsed.
// raw is normally normalised (see Normalize) but bare LF line endings are
// understood too. The result does not share memory with raw.
func Parse(raw []byte, opt Options) (out *Parsed) {
	opt = opt.withDefaults()
	defer func() {
		if r := recover(); r != nil {
			out = &Parsed{Date: arrival(opt), DateSource: DateFromArrival, Problems: []string{internalErrorProblem}}
		}
	}()
	p := &parser{opt: opt, textLeft: opt.MaxTextBytes, want: -1}
	return p.parseMessage(raw, 0, true)
}

// AttachmentData returns the decoded bytes and metadata of attachment n of
// raw, numbered as Parse numbers them with default Options. The returned
// Attachment has no Data and no Nested; the bytes are returned separately and
// do not share memory with raw.
func AttachmentData(raw []byte, n int) (att Attachment, data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			att, data, err = Attachment{}, nil, fmt.Errorf("attachment %d: %s", n, internalErrorProblem)
		}
	}()
	if n < 0 {
		return Attachment{}, nil, fmt.Errorf("attachment %d: %w", n, ErrNoAttachment)
	}
	p := &parser{opt: Options{}.withDefaults(), attachOnly: true, want: n}
	p.textLeft = p.opt.MaxTextBytes
	msg := p.parseMessage(raw, 0, true)
	if n >= len(msg.Attachments) {
		return Attachment{}, nil, fmt.Errorf("attachment %d of %d: %w", n, len(msg.Attachments), ErrNoAttachment)
	}
	att = msg.Attachments[n]
	att.Data, att.Nested = nil, nil
	data = p.wantData
	if data == nil {
		data = []byte{}
	}
	return att, data, nil
}

func arrival(opt Options) time.Time {
	if opt.Arrival.IsZero() {
		return time.Time{}
	}
	return opt.Arrival.UTC()
}

// parseMessage parses one message (top level or nested).
func (p *parser) parseMessage(raw []byte, depth int, top bool) *Parsed {
	st := &msgState{msg: &Parsed{}, top: top}
	fields, body, info := splitHeader(raw, true)
	switch {
	case info.noHeader && len(raw) > 0:
		st.problem("no header fields; the whole message is body")
	case info.noSeparator:
		st.problem("header not followed by a blank line; body starts at the first non-header line")
	}
	if info.mboxFrom {
		st.problem("leading mbox From line ignored")
	}
	if info.brokenFolds > 0 {
		st.problem("%d header line(s) without a field name joined to the previous field", info.brokenFolds)
	}
	if info.truncated {
		st.problem("more than %d header fields; the rest are ignored", maxHeaderFields)
	}
	if !p.attachOnly {
		p.fillHeader(st, fields)
	}
	p.walk(st, fields, body, depth, "", "text/plain")
	if len(st.texts) > 0 {
		st.msg.Text = strings.Join(st.texts, "\n")
	}
	return st.msg
}

// fillHeader decodes the header fields and the envelope-like fields.
func (p *parser) fillHeader(st *msgState, fields []rawField) {
	m := st.msg
	if !p.opt.SkipHeaderList {
		m.Header = make([]HeaderField, 0, len(fields))
	}
	nul := false
	for _, f := range fields {
		if bytes.IndexByte(f.value, 0) >= 0 {
			nul = true
		}
		if !p.opt.SkipHeaderList {
			m.Header = append(m.Header, HeaderField{Key: cleanText(fallbackUTF8String(f.key)), Value: decodeField(f.value)})
		}
	}
	if nul {
		st.problem("NUL bytes in header values removed")
	}
	var dateRaw, subjectSeen, midSeen bool
	var dateVal string
	for _, f := range fields {
		var dst *[]Address
		switch lowerKey(f.key) {
		case "from":
			dst = &m.From
		case "sender":
			dst = &m.Sender
		case "to":
			dst = &m.To
		case "cc":
			dst = &m.Cc
		case "bcc":
			dst = &m.Bcc
		case "reply-to":
			dst = &m.ReplyTo
		case "subject":
			if !subjectSeen {
				m.Subject, subjectSeen = decodeField(f.value), true
			}
		case "message-id":
			if !midSeen {
				if ids := msgIDs(unfold(f.value)); len(ids) > 0 {
					m.MessageID = ids[0]
				}
				midSeen = true
			}
		case "in-reply-to":
			m.InReplyTo = append(m.InReplyTo, msgIDs(unfold(f.value))...)
		case "references":
			m.References = append(m.References, msgIDs(unfold(f.value))...)
		case "date":
			if !dateRaw {
				dateVal, dateRaw = unfold(f.value), true
			}
		}
		if dst != nil {
			list, ok := parseAddressList(unfold(f.value))
			if !ok {
				st.problem("%s: malformed address list, parsed leniently", f.key)
			}
			if room := maxAddresses - len(*dst); room > 0 {
				*dst = append(*dst, list[:min(len(list), room)]...)
			}
		}
	}
	if t, ok := parseDate(dateVal); ok {
		m.Date, m.DateSource = t, DateFromHeader
		return
	}
	if dateRaw {
		st.problem("Date header not parseable")
	} else {
		st.problem("no Date header")
	}
	for _, f := range fields {
		if !strings.EqualFold(f.key, "received") {
			continue
		}
		v := unfold(f.value)
		if i := strings.LastIndexByte(v, ';'); i >= 0 {
			if t, ok := parseDate(v[i+1:]); ok {
				m.Date, m.DateSource = t, DateFromReceived
				return
			}
		}
	}
	m.Date, m.DateSource = arrival(p.opt), DateFromArrival
}

// maxMsgIDs caps the ids read from one References or In-Reply-To field.
const maxMsgIDs = 1000

// msgIDs extracts message ids (without angle brackets) from a Message-ID,
// In-Reply-To or References value: every <...> token, or, when there is
// none, every white-space or comma separated word.
func msgIDs(v string) []string {
	var out []string
	rest := v
	for len(out) < maxMsgIDs {
		lt := strings.IndexByte(rest, '<')
		if lt < 0 {
			break
		}
		gt := strings.IndexByte(rest[lt:], '>')
		if gt < 0 {
			if id := strings.TrimSpace(rest[lt+1:]); id != "" {
				out = append(out, cleanText(id))
			}
			break
		}
		if id := strings.TrimSpace(rest[lt+1 : lt+gt]); id != "" {
			out = append(out, cleanText(id))
		}
		rest = rest[lt+gt+1:]
	}
	if len(out) > 0 || strings.IndexByte(v, '<') >= 0 {
		return out
	}
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if len(out) >= maxMsgIDs {
			break
		}
		out = append(out, cleanText(w))
	}
	return out
}

// validMediaType reports whether t looks like "type/subtype".
func validMediaType(t string) bool {
	i := strings.IndexByte(t, '/')
	if i <= 0 || i == len(t)-1 || strings.IndexByte(t[i+1:], '/') >= 0 {
		return false
	}
	for j := 0; j < len(t); j++ {
		if c := t[j]; c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"[]?=", c) >= 0 {
			return false
		}
	}
	return true
}

// short quotes s for a Problem note, truncated.
func short(s string) string {
	if len(s) > 40 {
		s = s[:40]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	return fmt.Sprintf("%q", s)
}

// partName names a part in Problem notes.
func partName(path string) string {
	if path == "" {
		return "body"
	}
	return "part " + path
}

// walk handles one MIME entity.
func (p *parser) walk(st *msgState, fields []rawField, body []byte, depth int, path, deftype string) {
	p.parts++
	if p.parts > p.opt.MaxParts {
		if !p.partsCapped {
			p.partsCapped = true
			st.problem("more than %d MIME parts; the rest is not parsed", p.opt.MaxParts)
		}
		return
	}
	name := partName(path)
	typ := deftype
	var params map[string]string
	if v, ok := getRaw(fields, "Content-Type"); ok {
		t, prm := parseMediaHeader(unfold(v))
		params = prm
		switch {
		case validMediaType(t):
			typ = t
		case t != "":
			st.problem("%s: invalid Content-Type %s, read as %s", name, short(t), deftype)
		}
	}
	cte := cteIdentity
	if v, ok := getRaw(fields, "Content-Transfer-Encoding"); ok {
		s := unfold(v)
		cte = transferEncoding(s)
		if cte == cteUnknown {
			st.problem("%s: unknown Content-Transfer-Encoding %s, kept as is", name, short(s))
			cte = cteIdentity
		}
	}
	disp, dparams := "", map[string]string(nil)
	if v, ok := getRaw(fields, "Content-Disposition"); ok {
		disp, dparams = parseMediaHeader(unfold(v))
	}

	forceAttachment := false
	if strings.HasPrefix(typ, "multipart/") {
		if depth >= p.opt.MaxDepth {
			st.problem("%s: MIME nesting deeper than %d; kept as an attachment", name, p.opt.MaxDepth)
			forceAttachment = true
		} else if p.walkMultipart(st, typ, params, cte, body, depth, path) {
			return
		} else {
			typ, params = "text/plain", nil
		}
	}

	// A leaf.
	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	if filename == "" {
		filename = dparams["name"]
	}
	switch disp {
	case "", "inline", "attachment":
	default:
		disp = "attachment" // RFC 2183: unknown dispositions are attachments
	}
	if !forceAttachment && filename == "" && disp != "attachment" && (typ == "text/plain" || typ == "text/html") {
		p.bodyText(st, typ, params["charset"], cte, body, name)
		return
	}

	att := Attachment{Index: len(st.msg.Attachments), Filename: filename, ContentType: typ, Disposition: disp}
	if v, ok := getRaw(fields, "Content-ID"); ok {
		att.ContentID = contentID(unfold(v))
	}
	nested := !forceAttachment && (typ == "message/rfc822" || typ == "message/global")
	wanted := st.top && p.attachOnly && att.Index == p.want
	keep := p.opt.KeepAttachmentData && !p.attachOnly
	data, size, bad := decodeBody(body, cte, keep || nested || wanted)
	if bad {
		st.problem("%s: malformed transfer encoding, decoded as far as possible", name)
	}
	att.Size = size
	if nested {
		if depth+1 > p.opt.MaxDepth {
			st.problem("%s: nested message deeper than %d not parsed", name, p.opt.MaxDepth)
		} else {
			att.Nested = p.parseMessage(data, depth+1, false)
		}
	}
	if keep || wanted {
		if cte == cteIdentity { // data aliases the input
			data = bytes.Clone(data)
		}
		if data == nil {
			data = []byte{}
		}
		if keep {
			att.Data = data
		}
		if wanted {
			p.wantData = data
		}
	}
	st.msg.Attachments = append(st.msg.Attachments, att)
}

// contentID returns a Content-ID field value without its angle brackets
// and anything around them (a trailing comment, white space).
func contentID(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i+1:], '>'); j >= 0 {
			v = v[i+1 : i+1+j]
		} else {
			v = v[i+1:]
		}
	}
	return cleanText(strings.TrimSpace(v))
}

// walkMultipart splits and walks a multipart body. It returns false when
// no part could be found (the caller then treats the body as text).
func (p *parser) walkMultipart(st *msgState, typ string, params map[string]string, cte int, body []byte, depth int, path string) bool {
	name := partName(path)
	if cte != cteIdentity {
		st.problem("%s: multipart with a transfer encoding; decoded first", name)
		body, _, _ = decodeBody(body, cte, true)
	}
	boundary := params["boundary"]
	if boundary == "" {
		boundary = sniffBoundary(body)
		st.problem("%s: multipart without boundary parameter", name)
	}
	if boundary == "" {
		st.problem("%s: no boundary found; read as text", name)
		return false
	}
	parts, closed := splitMultipart(body, boundary, p.opt.MaxParts-p.parts+1)
	if len(parts) == 0 {
		st.problem("%s: boundary never occurs; read as text", name)
		return false
	}
	if !closed {
		st.problem("%s: multipart not terminated", name)
	}
	childType := "text/plain"
	if typ == "multipart/digest" {
		childType = "message/rfc822"
	}
	for i, pb := range parts {
		child := fmt.Sprint(i + 1)
		if path != "" {
			child = path + "." + child
		}
		pf, pbody, info := splitHeader(pb, false)
		if info.noSeparator {
			st.problem("%s: header not followed by a blank line", partName(child))
		}
		p.walk(st, pf, pbody, depth+1, child, childType)
		if p.partsCapped {
			break
		}
	}
	return true
}

// bodyText decodes a text/plain or text/html body part.
func (p *parser) bodyText(st *msgState, typ, charset string, cte int, body []byte, name string) {
	if p.attachOnly || p.opt.SkipText {
		return
	}
	data, _, bad := decodeBody(body, cte, true)
	if bad {
		st.problem("%s: malformed transfer encoding, decoded as far as possible", name)
	}
	s, known := decodeCharset(data, charset)
	if !known {
		st.problem("%s: unknown charset %s, read as UTF-8 or windows-1252", name, short(charset))
	}
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	s = cleanText(s)
	if len(s) > p.textLeft {
		s = s[:p.textLeft]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		if !p.textCapped {
			p.textCapped = true
			st.problem("text longer than %d bytes truncated", p.opt.MaxTextBytes)
		}
	}
	p.textLeft -= len(s)
	if typ == "text/html" {
		st.msg.HTML = append(st.msg.HTML, s)
	} else {
		st.texts = append(st.texts, s)
	}
}

// sniffBoundary guesses the boundary of a multipart without one: the first
// line that starts with "--".
func sniffBoundary(body []byte) string {
	for pos := 0; pos < len(body); {
		line, next := nextLine(body, pos)
		if len(line) > 2 && line[0] == '-' && line[1] == '-' {
			b := strings.TrimRight(string(line[2:]), " \t")
			if len(b) > 200 {
				return ""
			}
			return b
		}
		pos = next
	}
	return ""
}

// splitMultipart returns the parts of a multipart body (sub-slices, without
// the line break before each delimiter) and whether the close delimiter was
// found. It returns at most maxParts parts. A delimiter is a line starting
// with "--boundary" followed by white space, "--" or the end of the line; a
// missing close delimiter ends the last part at the end of body.
func splitMultipart(body []byte, boundary string, maxParts int) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	cur := -1 // start of the current part
	pos := 0
	for pos < len(body) {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		i += pos
		after := i + len(delim)
		if i > 0 && body[i-1] != '\n' {
			pos = after
			continue
		}
		isClose := bytes.HasPrefix(body[after:], []byte("--"))
		j := after
		if isClose {
			j += 2
		}
		if !isClose && j < len(body) {
			if c := body[j]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				pos = after // "--boundaryX": another boundary
				continue
			}
		}
		_, next := nextLine(body, i)
		if cur >= 0 {
			end := i
			if end > cur && body[end-1] == '\n' {
				end--
				if end > cur && body[end-1] == '\r' {
					end--
				}
			}
			parts = append(parts, body[cur:end])
		}
		if isClose {
			return parts, true
		}
		if len(parts) >= maxParts {
			return parts, false
		}
		cur, pos = next, next
	}
	if cur >= 0 {
		parts = append(parts, body[cur:])
	}
	return parts, false
}
