package message

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf8"
)

// HeaderField is one header field in message order. Value is unfolded,
// trimmed, converted to UTF-8 and RFC 2047-decoded.
type HeaderField struct {
	Key   string // field name as written (trimmed)
	Value string
}

// rawField is one header field as it appears in the message.
type rawField struct {
	key   string // field name as written, trimmed
	value []byte // everything after the colon, continuation lines included (line breaks kept)
}

// headerInfo records what splitHeader had to tolerate.
type headerInfo struct {
	noHeader    bool // the entity starts directly with body text
	noSeparator bool // the header ended at a non-header line instead of a blank line
	mboxFrom    bool // a leading mbox "From " line was skipped
	brokenFolds int  // non-header lines inside the header, appended to the previous field
	truncated   bool // more than maxHeaderFields fields; the rest were ignored
}

// maxHeaderFields caps the number of header fields kept per entity.
const maxHeaderFields = 10000

// nextLine returns the line starting at pos without its line break, and the
// position of the following line.
func nextLine(b []byte, pos int) (line []byte, next int) {
	j := bytes.IndexByte(b[pos:], '\n')
	if j < 0 {
		return b[pos:], len(b)
	}
	line = b[pos : pos+j]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, pos + j + 1
}

// headerKey returns the field name of a "Name: value" line and the index of
// the colon, or ok=false when the line is not a header field.
func headerKey(line []byte) (key string, colon int, ok bool) {
	colon = bytes.IndexByte(line, ':')
	if colon <= 0 {
		return "", 0, false
	}
	k := line[:colon]
	for len(k) > 0 && (k[len(k)-1] == ' ' || k[len(k)-1] == '\t') {
		k = k[:len(k)-1]
	}
	if len(k) == 0 || len(k) > 256 {
		return "", 0, false
	}
	for _, c := range k {
		if c <= ' ' || c == 0x7f {
			return "", 0, false
		}
	}
	return internKey(k), colon, true
}

// internKey returns k as a string, without allocating for the field names
// most messages carry (the switch compares the bytes in place).
func internKey(k []byte) string {
	switch string(k) {
	case "From":
		return "From"
	case "To":
		return "To"
	case "Cc":
		return "Cc"
	case "Subject":
		return "Subject"
	case "Date":
		return "Date"
	case "Message-ID":
		return "Message-ID"
	case "Message-Id":
		return "Message-Id"
	case "In-Reply-To":
		return "In-Reply-To"
	case "References":
		return "References"
	case "Received":
		return "Received"
	case "Return-Path":
		return "Return-Path"
	case "Reply-To":
		return "Reply-To"
	case "Sender":
		return "Sender"
	case "MIME-Version":
		return "MIME-Version"
	case "Mime-Version":
		return "Mime-Version"
	case "Content-Type":
		return "Content-Type"
	case "Content-Transfer-Encoding":
		return "Content-Transfer-Encoding"
	case "Content-Disposition":
		return "Content-Disposition"
	case "X-Mailer":
		return "X-Mailer"
	}
	return string(k)
}

// lowerKey is strings.ToLower for a field name, without allocating for the
// names fillHeader looks for as they are usually written.
func lowerKey(k string) string {
	switch k {
	case "From":
		return "from"
	case "To":
		return "to"
	case "Cc", "CC":
		return "cc"
	case "Bcc", "BCC":
		return "bcc"
	case "Subject":
		return "subject"
	case "Date":
		return "date"
	case "Message-ID", "Message-Id":
		return "message-id"
	case "In-Reply-To":
		return "in-reply-to"
	case "References":
		return "references"
	case "Received":
		return "received"
	case "Reply-To":
		return "reply-to"
	case "Sender":
		return "sender"
	}
	return strings.ToLower(k)
}

// splitHeader splits an entity into its header fields and body (top: the
// entity is a whole message, which may start with an mbox "From " line). It never
// fails: an entity that does not start with a header field is all body, and
// a header that is not ended by a blank line ends at the first line that
// cannot be a header field (unless the next line is one again, in which case
// the stray line is taken as a broken continuation of the previous field).
func splitHeader(b []byte, top bool) (fields []rawField, body []byte, info headerInfo) {
	pos := 0
	if top && bytes.HasPrefix(b, []byte("From ")) {
		_, pos = nextLine(b, 0)
		info.mboxFrom = true
	}
	skipping := false // the previous field was dropped (maxHeaderFields)
	for pos < len(b) {
		line, next := nextLine(b, pos)
		if len(line) == 0 {
			return fields, b[next:], info
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				info.noHeader = true
				return nil, b[pos:], info
			}
			if !skipping {
				f := &fields[len(fields)-1]
				f.value = f.value[:len(f.value)+(next-pos)]
			}
			pos = next
			continue
		}
		key, colon, ok := headerKey(line)
		if !ok {
			if len(fields) == 0 {
				info.noHeader = true
				return nil, b[pos:], info
			}
			// A stray line: broken folding if a header field follows.
			nl, _ := nextLine(b, next)
			if _, _, ok2 := headerKey(nl); ok2 && next < len(b) {
				if !skipping {
					f := &fields[len(fields)-1]
					f.value = f.value[:len(f.value)+(next-pos)]
				}
				info.brokenFolds++
				pos = next
				continue
			}
			info.noSeparator = true
			return fields, b[pos:], info
		}
		if len(fields) >= maxHeaderFields {
			info.truncated = true
			skipping = true
			pos = next
			continue
		}
		skipping = false
		// value spans from after the colon to the end of this line (its
		// line break included); continuation lines extend it.
		fields = append(fields, rawField{key: key, value: b[pos+colon+1 : next : len(b)]})
		pos = next
	}
	return fields, nil, info
}

// unfold removes the line breaks of a folded header value, trims surrounding
// white space and returns valid UTF-8 (windows-1252 fallback for 8-bit bytes
// that are not UTF-8).
func unfold(v []byte) string {
	if bytes.IndexByte(v, '\n') >= 0 || bytes.IndexByte(v, '\r') >= 0 {
		out := make([]byte, 0, len(v))
		for _, c := range v {
			if c != '\r' && c != '\n' {
				out = append(out, c)
			}
		}
		v = out
	}
	v = bytes.TrimSpace(v)
	return fallbackUTF8(v)
}

// wordDecoder returns an RFC 2047 decoder that knows every charset
// lookupCharset knows and never fails on an unknown one.
func wordDecoder() *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: func(label string, r io.Reader) (io.Reader, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		s, _ := decodeCharset(b, label)
		return strings.NewReader(s), nil
	}}
}

// decodeWords decodes RFC 2047 encoded words in s (already valid UTF-8) and
// returns valid UTF-8 without NUL bytes.
func decodeWords(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder().DecodeHeader(s); err == nil {
			s = d
		}
	}
	return cleanText(s)
}

// cleanText makes s valid UTF-8 and removes NUL bytes.
func cleanText(s string) string {
	if !utf8.ValidString(s) { // ValidString is much faster on the usual valid text
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}

// decodeField returns the display value of a raw header field.
func decodeField(v []byte) string {
	return decodeWords(unfold(v))
}

// getRaw returns the first field named key (case-insensitive).
func getRaw(fields []rawField, key string) ([]byte, bool) {
	for i := range fields {
		if strings.EqualFold(fields[i].key, key) {
			return fields[i].value, true
		}
	}
	return nil, false
}
