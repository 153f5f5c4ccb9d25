package file

import (
	"bytes"
	"io"
)

// chunkSize is how much lineReader reads from its source at a time and the
// longest line piece it returns: longer lines come back in several pieces, so
// a file without newlines never needs more than this much buffer.
const chunkSize = 64 << 10

// lineReader is a buffered reader that returns lines (or pieces of long
// lines) and can push bytes back in front of the stream, which the mbox
// reader needs when a Content-Length turns out to be wrong.
type lineReader struct {
	r        io.Reader
	buf      []byte
	off, end int   // unread bytes are buf[off:end]
	err      error // sticky error from r (io.EOF at the end)
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: r, buf: make([]byte, chunkSize)}
}

// fill reads more data from r into the buffer. It reports whether any bytes
// were added.
func (l *lineReader) fill() bool {
	if l.err != nil {
		return false
	}
	switch {
	case l.off == l.end && len(l.buf) > 2*chunkSize:
		// A large pushback has been consumed: give the memory back.
		l.buf = make([]byte, chunkSize)
		l.off, l.end = 0, 0
	case l.off > 0:
		n := copy(l.buf, l.buf[l.off:l.end])
		l.off, l.end = 0, n
	}
	if l.end == len(l.buf) {
		nb := make([]byte, 2*len(l.buf))
		copy(nb, l.buf[:l.end])
		l.buf = nb
	}
	for range 100 {
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		if err != nil {
			l.err = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	l.err = io.ErrNoProgress
	return false
}

// line returns the next line including its '\n', or the next limit bytes of
// a longer line, or what is left before the end of the stream. limit <= 0
// means chunkSize; limit is capped at chunkSize. The slice is valid until the
// next call. At the end it returns (nil, io.EOF), or the read error.
func (l *lineReader) line(limit int) ([]byte, error) {
	if limit <= 0 || limit > chunkSize {
		limit = chunkSize
	}
	scanned := 0
	for {
		avail := l.end - l.off
		window := min(avail, limit)
		if i := bytes.IndexByte(l.buf[l.off+scanned:l.off+window], '\n'); i >= 0 {
			return l.take(scanned + i + 1), nil
		}
		if avail >= limit {
			return l.take(limit), nil
		}
		scanned = window
		if !l.fill() {
			if l.end > l.off {
				return l.take(l.end - l.off), nil
			}
			return nil, l.err
		}
	}
}

func (l *lineReader) take(n int) []byte {
	p := l.buf[l.off : l.off+n]
	l.off += n
	return p
}

// peek returns up to n upcoming bytes without consuming them (fewer at the
// end of the stream).
func (l *lineReader) peek(n int) []byte {
	for l.end-l.off < n && l.fill() {
	}
	return l.buf[l.off:min(l.end, l.off+n)]
}

// skipLine consumes the rest of the current line (through '\n' or EOF).
func (l *lineReader) skipLine() {
	for {
		p, err := l.line(0)
		if err != nil || p[len(p)-1] == '\n' {
			return
		}
	}
}

// unread pushes p back so that it is read again before anything else.
func (l *lineReader) unread(p []byte) {
	if len(p) == 0 {
		return
	}
	if l.off >= len(p) {
		l.off -= len(p)
		copy(l.buf[l.off:], p)
		return
	}
	nb := make([]byte, len(p)+l.end-l.off, len(p)+l.end-l.off+chunkSize)
	n := copy(nb, p)
	copy(nb[n:], l.buf[l.off:l.end])
	l.buf, l.off, l.end = nb[:cap(nb)], 0, len(nb)
}
