package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

type dataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r: c.text.R,
	}

	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

// States of dataReader's dot-unstuffing state machine (mailarc patch: moved
// out of Read for atLimit).
const (
	stateBeginLine = iota // beginning of line; initial state; must be zero
	stateDot              // read . at beginning of line
	stateDotCR            // read .\r at beginning of line
	stateCR               // read \r (possibly at end of line)
	stateData             // reading data in middle of line
	stateEOF              // reached .\r\n end marker line
)

func (r *dataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, r.atLimit() // mailarc patch: was ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// Code below is taken from net/textproto with only one modification to
	// not rewrite CRLF -> LF.

	// Run data through a simple state machine to
	// elide leading dots and detect End-of-Data (<CR><LF>.<CR><LF>) line.
	for n < len(b) && r.state != stateEOF {
		// mailarc patch: in the middle of a line, copy the run of bytes up
		// to the next CR straight from the buffer instead of one ReadByte
		// per byte (the byte loop was a quarter of the archiver's CPU).
		if r.state == stateData {
			if r.r.Buffered() == 0 {
				if n > 0 {
					break // hand over what we have rather than block
				}
				if _, err = r.r.Peek(1); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					break
				}
			}
			buf, _ := r.r.Peek(r.r.Buffered())
			if len(buf) > len(b)-n {
				buf = buf[:len(b)-n]
			}
			run := dataRun(buf)
			if run > 0 {
				copy(b[n:], buf[:run])
				_, _ = r.r.Discard(run)
				n += run
				continue
			}
		}
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}

// dataRun returns how many bytes at the start of buf, read in the middle
// of a line, the state machine would pass through unchanged and end in
// stateData: everything up to the next CR, and past each CR LF whose next
// byte (also in buf) is neither a dot nor a CR, since that byte starts an
// ordinary line. (mailarc patch: one ReadByte per line end otherwise.)
func dataRun(buf []byte) int {
	i := 0
	for {
		j := bytes.IndexByte(buf[i:], '\r')
		if j < 0 {
			return len(buf)
		}
		k := i + j
		if k+2 >= len(buf) || buf[k+1] != '\n' || buf[k+2] == '.' || buf[k+2] == '\r' {
			return k
		}
		i = k + 3
	}
}

// atLimit is Read once MaxMessageBytes bytes of data have been returned.
//
// mailarc patch: upstream returns ErrDataTooLarge here at once, so a
// message of exactly MaxMessageBytes bytes was refused before its
// end-of-data line was seen. That line adds no data: when it is what
// follows, the message ends here and fits. Any other byte would be data
// beyond the limit. The bytes are only peeked, so after ErrDataTooLarge the
// caller's drain of the rest starts where upstream's would.
func (r *dataReader) atLimit() error {
	if r.state == stateEOF {
		return io.EOF
	}
	// What may still follow without adding data: the rest of the
	// end-of-data line, when one can start or has started here.
	want := ""
	switch r.state {
	case stateBeginLine:
		want = ".\r\n"
	case stateDot:
		want = "\r\n"
	case stateDotCR:
		want = "\n"
	}
	for i := 1; ; i++ {
		p, err := r.r.Peek(i)
		if len(p) < i {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if i > len(want) || p[i-1] != want[i-1] {
			return ErrDataTooLarge
		}
		if i == len(want) {
			_, _ = r.r.Discard(i)
			r.state = stateEOF
			return io.EOF
		}
	}
}
