package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DefaultMaxMessageSize is the size limit used when Options.MaxMessageSize
// (or NewMboxReader's maxSize) is zero or negative.
const DefaultMaxMessageSize = 100 << 20

// ErrTooLarge is wrapped by the error reported for a message larger than the
// size limit.
var ErrTooLarge = errors.New("message exceeds the size limit")

// MboxReader splits an mbox stream into messages; see the package
// documentation for the formats it accepts and what it changes.
// It holds at most one message (bounded by the size limit) in memory.
type MboxReader struct {
	lr      *lineReader
	max     int64
	started bool  // leading blank lines and the first From line are consumed
	err     error // sticky: io.EOF or a read error
}

// NewMboxReader returns a reader that splits r into messages of at most
// maxSize bytes (DefaultMaxMessageSize when maxSize <= 0).
func NewMboxReader(r io.Reader, maxSize int64) *MboxReader {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return &MboxReader{lr: newLineReader(r), max: maxSize}
}

// Next returns the next message, without its From line and with mboxrd
// quoting undone. The returned slice belongs to the caller. A message may be
// empty (a From line directly followed by another one).
//
// At the end of the stream Next returns io.EOF. A message over the size limit
// is skipped and reported with an error wrapping ErrTooLarge; the reader stays
// usable and the following call returns the next message. Any other error is
// a read error of the underlying stream: the message being read is lost and
// every later call returns the same error.
func (m *MboxReader) Next() ([]byte, error) {
	if m.err != nil {
		return nil, m.err
	}
	if !m.started {
		m.started = true
		if err := m.skipPreamble(); err != nil {
			m.err = err
			return nil, err
		}
	}
	return m.readMessage()
}

// skipPreamble consumes leading blank lines and the first From line. Text
// that is not a From line is pushed back and becomes the first message.
func (m *MboxReader) skipPreamble() error {
	for {
		p, err := m.lr.line(0)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return fmt.Errorf("read mbox: %w", err)
		}
		switch {
		case isBlankLine(p):
			continue
		case isFromLine(p):
			if p[len(p)-1] != '\n' {
				m.lr.skipLine()
			}
		default:
			m.lr.unread(p)
		}
		return nil
	}
}

// msgState is the bookkeeping for one message being read.
type msgState struct {
	buf         []byte
	atLineStart bool  // the next piece starts a line
	lastStart   int   // offset in buf of the last line
	lastBlank   bool  // the last line is complete and blank
	inHeader    bool  // still in the header section
	bodyStart   int   // offset in buf of the body (valid when !inHeader)
	cl          int64 // Content-Length of the body, -1 when unknown or given up
	fromOff     int   // offset in buf of the first unquoted From line inside a Content-Length body, or -1
	quoted      int   // lines in buf matching ^>+From (each loses a byte)
	tooLarge    bool  // over the limit: bytes are counted, not kept
	size        int64 // bytes seen, for the error message
}

func (m *MboxReader) readMessage() ([]byte, error) {
	s := msgState{
		buf:         make([]byte, 0, 4096),
		atLineStart: true,
		lastStart:   -1,
		inHeader:    true,
		cl:          -1,
		fromOff:     -1,
	}
	for {
		inBody := s.cl >= 0 && !s.inHeader // reading a Content-Length body
		lineStart := s.atLineStart
		from := lineStart && bytes.HasPrefix(m.lr.peek(len(fromPrefix)), []byte(fromPrefix))
		if from && !inBody {
			// A separator: the next message begins after it.
			m.lr.skipLine()
			return m.finish(&s, true)
		}
		limit := 0
		if inBody {
			limit = int(s.cl - int64(len(s.buf)-s.bodyStart))
		}
		p, err := m.lr.line(limit)
		if err != nil {
			if s.fromOff >= 0 {
				// EOF inside an announced body: the Content-Length was wrong.
				m.clFallback(&s)
				return m.finish(&s, true)
			}
			if !errors.Is(err, io.EOF) {
				m.err = fmt.Errorf("read mbox: %w", err)
				return nil, m.err
			}
			m.err = io.EOF
			return m.finish(&s, true)
		}
		// The message may exceed the limit by the '>' that unquoting
		// removes and by a separator blank line; finish checks exactly.
		if !s.tooLarge && int64(len(s.buf)+len(p)-s.quoted) > m.max+2 {
			if from && s.fromOff < 0 {
				s.fromOff = len(s.buf)
			}
			if s.fromOff >= 0 {
				// The announced body swallowed a From line and grew too
				// large: the Content-Length was wrong, split at that line.
				m.lr.unread(p)
				m.clFallback(&s)
				return m.finish(&s, true)
			}
			s.tooLarge = true
			s.buf = nil
			s.cl = -1
		}
		s.atLineStart = p[len(p)-1] == '\n'
		s.size += int64(len(p))
		if s.tooLarge {
			continue
		}
		if from && s.fromOff < 0 {
			s.fromOff = len(s.buf)
		}
		if lineStart {
			s.lastStart = len(s.buf)
			if isQuotedFrom(p) {
				s.quoted++
			}
		}
		s.buf = append(s.buf, p...)
		s.lastBlank = lineStart && isBlankLine(p)
		if s.inHeader && lineStart && s.atLineStart {
			switch {
			case isBlankLine(p):
				s.inHeader = false
				s.bodyStart = len(s.buf)
				if s.cl >= 0 && int64(s.bodyStart)+s.cl > m.max {
					s.cl = -1 // cannot be checked within the limit
				}
			case s.cl < 0:
				s.cl = contentLength(p)
			}
		}
		if s.cl >= 0 && !s.inHeader && int64(len(s.buf)-s.bodyStart) == s.cl {
			if m.clEnd(&s) {
				return m.finish(&s, s.fromOff < 0)
			}
			// Implausible: split on From lines from here on, starting
			// with any that the announced body swallowed.
			if s.fromOff >= 0 {
				m.clFallback(&s)
				return m.finish(&s, true)
			}
			s.cl = -1
		}
	}
}

// fromPrefix starts an mbox separator line.
const fromPrefix = "From "

// clEnd checks, when exactly Content-Length body bytes have been read,
// whether the count is plausible. If so it consumes the separator (blank
// line and From line) that follows and reports true.
func (m *MboxReader) clEnd(s *msgState) bool {
	pk := m.lr.peek(2 + len(fromPrefix))
	nl := 0
	switch {
	case bytes.HasPrefix(pk, []byte("\r\n")):
		nl = 2
	case bytes.HasPrefix(pk, []byte("\n")):
		nl = 1
	}
	rest := pk[nl:]
	atEnd := len(rest) == 0
	from := bytes.HasPrefix(rest, []byte(fromPrefix))
	if !atEnd && !from {
		return false
	}
	if nl == 0 && !s.atLineStart {
		// The count ends mid-line; only a newline may follow it there.
		return false
	}
	m.lr.take(nl)
	if from {
		m.lr.skipLine()
	} else {
		m.err = io.EOF
	}
	if nl > 0 {
		// The line ending after the counted body was the separator.
		s.lastBlank = false
	}
	return true
}

// clFallback ends the message at the first From line that an implausible
// Content-Length body swallowed: it pushes everything from that line on back
// into the stream and consumes the From line as the next separator.
func (m *MboxReader) clFallback(s *msgState) {
	m.lr.unread(s.buf[s.fromOff:])
	m.lr.skipLine()
	s.buf = s.buf[:s.fromOff]
	s.fromOff = -1
	// Recompute whether the message now ends with a blank line.
	b := s.buf
	s.lastBlank = false
	if len(b) > 0 && b[len(b)-1] == '\n' {
		start := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
		if isBlankLine(b[start:]) {
			s.lastStart, s.lastBlank = start, true
		}
	}
}

// finish returns the message in s, without a trailing separator blank line
// and, when unquote is set, with >From quoting undone.
func (m *MboxReader) finish(s *msgState, unquote bool) ([]byte, error) {
	if s.tooLarge {
		return nil, m.tooLarge(s)
	}
	b := s.buf
	if s.lastBlank {
		b = b[:s.lastStart]
	}
	if unquote {
		b = unquoteFrom(b)
	}
	if int64(len(b)) > m.max {
		return nil, m.tooLarge(s)
	}
	return b, nil
}

func (m *MboxReader) tooLarge(s *msgState) error {
	return fmt.Errorf("%w (more than %d bytes; %d bytes read)", ErrTooLarge, m.max, s.size)
}

// isFromLine reports whether p (at the start of a line) is an mbox separator.
func isFromLine(p []byte) bool {
	return bytes.HasPrefix(p, []byte(fromPrefix))
}

// isBlankLine reports whether p is an empty line with its line ending.
func isBlankLine(p []byte) bool {
	return len(p) == 1 && p[0] == '\n' || len(p) == 2 && p[0] == '\r' && p[1] == '\n'
}

// isQuotedFrom reports whether the line p matches ^>+From .
func isQuotedFrom(p []byte) bool {
	i := 0
	for i < len(p) && p[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(p[i:], []byte("From "))
}

// unquoteFrom removes one '>' from every line matching ^>+From , in place.
func unquoteFrom(b []byte) []byte {
	if !bytes.Contains(b, []byte(">From ")) {
		return b
	}
	w := 0
	for i := 0; i < len(b); {
		end := len(b)
		if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
			end = i + j + 1
		}
		line := b[i:end]
		if isQuotedFrom(line) {
			line = line[1:]
		}
		w += copy(b[w:], line)
		i = end
	}
	return b[:w]
}

// contentLength parses a "Content-Length:" header line, returning -1 when p
// is not one or its value is not a plain decimal number.
func contentLength(p []byte) int64 {
	const name = "content-length:"
	if len(p) < len(name) || !bytes.EqualFold(p[:len(name)], []byte(name)) {
		return -1
	}
	v := bytes.TrimSpace(p[len(name):])
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
