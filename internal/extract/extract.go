// Package extract turns an email attachment into plain text for the full-text
// index, choosing a parser by magic bytes, media type and file name.
//
// It is pure: it knows nothing of the index or the store, reads only the
// bytes it is given and writes nothing. Because it runs on every attachment
// of every archived message, every call is bounded (see [Limits]):
//
//   - the input size (MaxInput), checked before any parsing;
//   - the size of the returned text (MaxText): longer text is truncated at a
//     UTF-8 boundary, which is not an error;
//   - container nesting (MaxDepth): a zip inside a zip inside a zip ...;
//   - archive expansion: every decompressed member is read through a counter
//     that enforces both a per-member compression ratio (MaxRatio, applied
//     once a member has produced more than 1 MiB, so small highly repetitive
//     XML parts are fine) and a total decompressed budget per call
//     (MaxExpand), whatever the archive headers claim;
//   - time (Timeout plus the caller's context): the parsers check the context
//     between tokens, pages and members; the whole extraction runs in a
//     goroutine whose result is abandoned when the deadline passes, so a
//     third-party parser that does not look at the context cannot hang the
//     caller (the input-size caps make such a stray goroutine short-lived).
//
// A failing or hostile attachment yields an error that says why; the text
// extracted before the failure is returned alongside it, so callers may index
// what was found. Panics inside any parser are recovered and returned as
// errors. Text never panics and never blocks past its deadline.
//
// Supported formats:
//
//   - PDF (github.com/ledongthuc/pdf with its own text walker, falling back
//     to a scrape of the raw content streams when the library fails);
//   - OOXML: DOCX, XLSX, PPTX (zip + streamed encoding/xml);
//   - OpenDocument: ODT, ODS, ODP (content.xml);
//   - RTF (own parser: code pages, \uN, skipped destinations);
//   - HTML and XHTML ([HTMLToText]), generic XML (character data);
//   - inside Word documents, altChunk parts (HTML, text, RTF);
//   - plain text, CSV, vCard and .eml inside archives (UTF-8, UTF-16 with a
//     BOM, the charset parameter of the media type, else windows-1252);
//   - iCalendar/vCalendar (SUMMARY, DESCRIPTION, LOCATION, ORGANIZER,
//     ATTENDEE, COMMENT, CONTACT, CATEGORIES);
//   - ZIP (and EPUB), TAR, GZIP: members are extracted recursively and their
//     names are part of the text;
//   - TNEF (winmail.dat, application/ms-tnef): own reader; subject, body
//     (plain, compressed RTF or HTML) and the attachments, recursively;
//   - legacy OLE2 compound files (.doc, .xls, .ppt, .msg): best-effort
//     printable-string extraction (8-bit and UTF-16LE runs of at least four
//     characters), which finds the words of most documents along with some
//     noise such as font and style names.
//
// Everything else — images, audio, video (no OCR), Outlook .pst stores,
// 7z/rar, S/MIME .p7m, unknown binary data — returns [ErrUnsupported], and so
// does a top-level message/rfc822 attachment: the indexer parses those with
// the message parser (an .eml file found inside an archive is extracted as
// plain text).
//
// The lookup tables at package level (element names, RTF destinations,
// code pages) are never modified after initialisation.
package extract

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrUnsupported is returned (possibly wrapped) for attachments whose format
// has no text extractor, such as images, audio and video.
var ErrUnsupported = errors.New("extract: unsupported type")

// ErrTooLarge is returned when the attachment exceeds Limits.MaxInput.
var ErrTooLarge = errors.New("extract: input too large")

// ErrLimit is returned (wrapped, with the detail) when a container exceeds
// one of the nesting or expansion limits: nesting depth, compression ratio or
// total decompressed size. Text extracted before the limit was hit is still
// returned.
var ErrLimit = errors.New("extract: limit exceeded")

// ErrCorrupt is returned (wrapped, with the detail) when a parser rejects the
// input or panics on it.
var ErrCorrupt = errors.New("extract: corrupt input")

// Limits bounds the work done for one attachment. Zero fields take the
// corresponding value of [DefaultLimits].
type Limits struct {
	MaxInput  int64         // bytes of attachment accepted (default 50 MiB)
	MaxText   int           // bytes of text returned (default 4 MiB); truncate beyond, not an error
	MaxDepth  int           // container nesting (default 3)
	MaxRatio  float64       // max uncompressed/compressed ratio for archive members (default 100)
	MaxExpand int64         // max total uncompressed bytes read from an archive (default 200 MiB)
	Timeout   time.Duration // per top-level call (default 10 s)
}

// DefaultLimits returns the limits used for zero fields of a [Limits].
func DefaultLimits() Limits {
	return Limits{
		MaxInput:  50 << 20,
		MaxText:   4 << 20,
		MaxDepth:  3,
		MaxRatio:  100,
		MaxExpand: 200 << 20,
		Timeout:   10 * time.Second,
	}
}

// withDefaults fills zero (or negative) fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxInput <= 0 {
		l.MaxInput = d.MaxInput
	}
	if l.MaxText <= 0 {
		l.MaxText = d.MaxText
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	if l.MaxExpand <= 0 {
		l.MaxExpand = d.MaxExpand
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	return l
}

// Text returns the text of one attachment. contentType may be empty or wrong
// (application/octet-stream): then sniff by file extension and magic bytes.
//
// On error the returned text holds whatever was extracted before the failure
// (often empty); it is valid UTF-8 and at most lim.MaxText bytes long. The
// error wraps ErrUnsupported, ErrTooLarge, ErrLimit, ErrCorrupt or the
// context's error (context.DeadlineExceeded on timeout).
func Text(ctx context.Context, filename, contentType string, data []byte, lim Limits) (string, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxInput {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxInput)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("extract %q: %w", filename, err)
	}
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()

	j := &job{ctx: ctx, lim: lim, out: &sink{max: lim.MaxText}}
	done := make(chan error, 1) // buffered: an abandoned goroutine must not block
	go func() {
		done <- j.extract(filename, contentType, data, 0)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if errors.Is(err, errTextFull) {
		err = nil
	}
	text := j.out.String()
	if err != nil {
		return text, fmt.Errorf("extract %q: %w", filename, err)
	}
	return text, nil
}

// errTextFull stops extraction once MaxText bytes of text were produced. It
// never leaves the package.
var errTextFull = errors.New("extract: text limit reached")

// job is the state of one top-level Text call, shared by nested extractions.
type job struct {
	ctx      context.Context
	lim      Limits
	out      *sink
	expanded int64 // decompressed bytes read from archives so far; only the extraction goroutine touches it
}

// check returns a non-nil error when the extraction must stop.
func (j *job) check() error {
	if err := j.ctx.Err(); err != nil {
		return err
	}
	if j.out.full() {
		return errTextFull
	}
	return nil
}

// extract dispatches one (possibly nested) document. depth is the number of
// containers it is inside. Panics are converted to errors here.
func (j *job) extract(name, contentType string, data []byte, depth int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: parser panic: %v", ErrCorrupt, r)
		}
	}()
	if err := j.check(); err != nil {
		return err
	}
	mediaType, params := parseContentType(contentType)
	k := detect(name, mediaType, data)
	switch k {
	case kindPDF:
		return j.pdf(data)
	case kindZip:
		return j.zipFile(name, data, depth)
	case kindTar:
		return j.tarFile(data, depth)
	case kindGzip:
		return j.gzipFile(name, data, depth)
	case kindRTF:
		return j.rtf(data)
	case kindHTML:
		return j.html(decodeText(data, params["charset"]))
	case kindXML:
		return j.xmlAll(data)
	case kindText:
		return j.out.WriteString(decodeText(data, params["charset"]))
	case kindICS:
		return j.ics(decodeText(data, params["charset"]))
	case kindTNEF:
		return j.tnef(data, depth)
	case kindOLE:
		return j.printable(data)
	}
	return fmt.Errorf("%w (%s)", ErrUnsupported, describe(name, mediaType))
}

func describe(name, mediaType string) string {
	if mediaType == "" {
		mediaType = "no media type"
	}
	if ext := path.Ext(name); ext != "" {
		return mediaType + ", " + strings.ToLower(ext)
	}
	return mediaType
}

// parseContentType returns the lower-case media type and its parameters,
// tolerating garbage.
func parseContentType(ct string) (string, map[string]string) {
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mt, _, _ = strings.Cut(ct, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt, params
}

// sink collects the text of one Text call, up to max bytes. It is guarded by
// a mutex because Text may read it while an abandoned extraction goroutine
// is still writing after a timeout.
type sink struct {
	mu      sync.Mutex
	b       strings.Builder
	max     int
	isFull  bool
	lastNL  bool // last byte written was a newline (or nothing written yet)
	written bool
}

// WriteString appends s, truncating at max. It returns errTextFull once the
// limit is reached so that callers stop early.
func (s *sink) WriteString(str string) error {
	if str == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isFull {
		return errTextFull
	}
	room := s.max - s.b.Len()
	if len(str) >= room {
		str = truncateUTF8(str, room)
		s.isFull = true
	}
	s.b.WriteString(str)
	if str != "" {
		s.written = true
		s.lastNL = str[len(str)-1] == '\n'
	}
	if s.isFull {
		return errTextFull
	}
	return nil
}

// Newline writes a newline unless the text is empty or already ends with one.
func (s *sink) Newline() error {
	s.mu.Lock()
	need := s.written && !s.lastNL
	s.mu.Unlock()
	if !need {
		return nil
	}
	return s.WriteString("\n")
}

func (s *sink) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isFull
}

func (s *sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// since returns the raw text written after the first n bytes.
func (s *sink) since(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	str := s.b.String()
	if n >= len(str) {
		return ""
	}
	return str[n:]
}

// String returns the collected text as valid UTF-8 without control
// characters other than newline and tab. The result is never longer than
// what was collected.
func (s *sink) String() string {
	s.mu.Lock()
	str := s.b.String()
	s.mu.Unlock()
	return clean(str)
}

// clean replaces invalid UTF-8 and control characters (except \n and \t)
// with spaces, and \r\n with \n; it never makes the string longer.
func clean(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteByte(' ')
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				// drop: the \n follows
			} else {
				b.WriteByte('\n')
			}
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfeff:
			// C0/C1 controls and stray BOMs become spaces (C1 and BOM are
			// 2-3 bytes, so this only shrinks the text).
			b.WriteByte(' ')
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// truncateUTF8 returns the longest prefix of s of at most n bytes that does
// not split a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}
