package pull

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// pop3 limits: a status or listing line (RFC 1939 allows 512 octets; we
// are lenient) and the number of messages in one listing.
const (
	pop3MaxLine     = 8192
	pop3MaxMessages = 5_000_000
	pop3Timeout     = 2 * time.Minute
)

// pop3Error is a -ERR reply.
type pop3Error struct{ cmd, msg string }

func (e *pop3Error) Error() string {
	return fmt.Sprintf("pop3 %s: server replied -ERR %s", e.cmd, e.msg)
}

// errPOP3TooLarge reports a message above the size cap (fully drained).
var errPOP3TooLarge = errors.New("pop3: message exceeds the size limit")

// pop3Client is a minimal RFC 1939/2449/5034 client: USER/PASS, AUTH
// PLAIN/XOAUTH2, STLS, CAPA, UIDL, LIST, RETR, DELE, QUIT.
type pop3Client struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
	caps    map[string]string
}

func newPOP3Client(conn net.Conn) *pop3Client {
	return &pop3Client{conn: conn, r: bufio.NewReaderSize(conn, 32<<10), w: bufio.NewWriter(conn), timeout: pop3Timeout}
}

func (c *pop3Client) deadline() {
	if c.timeout > 0 {
		_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	}
}

// readLine reads one line without its line ending.
func (c *pop3Client) readLine() (string, error) {
	var buf []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > pop3MaxLine {
			return "", errors.New("pop3: line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("pop3 read: %w", c.readErr(err))
		}
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

// status reads a +OK/-ERR line and returns the text after +OK.
func (c *pop3Client) status(cmd string) (string, error) {
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(line, "+OK"):
		return strings.TrimSpace(line[3:]), nil
	case strings.HasPrefix(line, "-ERR"):
		return "", &pop3Error{cmd: cmd, msg: strings.TrimSpace(line[4:])}
	default:
		return "", fmt.Errorf("pop3 %s: unexpected reply %q", cmd, truncate(line, 80))
	}
}

// readErr makes a read error explicit: EOF mid-reply is unexpected, and a
// deadline means the server stopped answering.
func (c *pop3Client) readErr(err error) error {
	switch {
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: no answer within %s (%w)", errNoAnswer, c.timeout, err)
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// send writes one command line; name is what errors show (never secrets).
func (c *pop3Client) send(name, line string) error {
	c.deadline()
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("pop3 %s: argument contains a line break", name)
	}
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return fmt.Errorf("pop3 %s: %w", name, err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("pop3 %s: %w", name, err)
	}
	return nil
}

func (c *pop3Client) cmd(name, line string) (string, error) {
	if err := c.send(name, line); err != nil {
		return "", err
	}
	return c.status(name)
}

// multiline reads dot-terminated lines (unstuffed) of a listing.
func (c *pop3Client) multiline(fn func(line string) error) error {
	for n := 0; ; n++ {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if line == "." {
			return nil
		}
		if n > pop3MaxMessages {
			return errors.New("pop3: listing too long")
		}
		line = strings.TrimPrefix(line, ".")
		if err := fn(line); err != nil {
			return err
		}
	}
}

func (c *pop3Client) greeting() error {
	c.deadline()
	_, err := c.status("greeting")
	return err
}

// capa reads the capabilities; servers without CAPA give an empty set.
func (c *pop3Client) capa() error {
	c.caps = map[string]string{}
	if _, err := c.cmd("CAPA", "CAPA"); err != nil {
		var pe *pop3Error
		if errors.As(err, &pe) {
			return nil
		}
		return err
	}
	return c.multiline(func(line string) error {
		name, arg, _ := strings.Cut(line, " ")
		if len(c.caps) < 1000 {
			c.caps[strings.ToUpper(name)] = strings.ToUpper(arg)
		}
		return nil
	})
}

func (c *pop3Client) hasSASL(mech string) bool {
	arg, ok := c.caps["SASL"]
	if !ok {
		return false
	}
	for _, m := range strings.Fields(arg) {
		if m == mech {
			return true
		}
	}
	return false
}

// stls upgrades the connection (RFC 2595).
func (c *pop3Client) stls(tc *tls.Config) error {
	if _, err := c.cmd("STLS", "STLS"); err != nil {
		return err
	}
	if c.r.Buffered() > 0 {
		return errors.New("pop3 STLS: server sent data before the TLS handshake")
	}
	tconn := tls.Client(c.conn, tc)
	c.deadline()
	if err := tconn.Handshake(); err != nil {
		return fmt.Errorf("pop3 STLS handshake: %w", err)
	}
	c.conn = tconn
	c.r = bufio.NewReaderSize(tconn, 32<<10)
	c.w = bufio.NewWriter(tconn)
	return c.capa()
}

func (c *pop3Client) userPass(user, pass string) error {
	if _, err := c.cmd("USER", "USER "+user); err != nil {
		return err
	}
	_, err := c.cmd("PASS", "PASS "+pass)
	return err
}

// auth runs AUTH MECH with an initial response (RFC 2449/5034). A server
// challenge (XOAUTH2's JSON error) is answered with an empty line.
func (c *pop3Client) auth(mech string, ir []byte) error {
	if err := c.send("AUTH", "AUTH "+mech+" "+base64.StdEncoding.EncodeToString(ir)); err != nil {
		return err
	}
	for i := 0; ; i++ {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "+OK"):
			return nil
		case strings.HasPrefix(line, "-ERR"):
			return &pop3Error{cmd: "AUTH " + mech, msg: strings.TrimSpace(line[4:])}
		case strings.HasPrefix(line, "+") && i < 3:
			if err := c.send("AUTH", ""); err != nil {
				return err
			}
		default:
			return fmt.Errorf("pop3 AUTH %s: unexpected reply %q", mech, truncate(line, 80))
		}
	}
}

// pop3Msg is one entry of the maildrop.
type pop3Msg struct {
	num  int
	uidl string
	size int64
}

// list returns the maildrop (UIDL joined with LIST sizes).
func (c *pop3Client) list() ([]pop3Msg, error) {
	if _, err := c.cmd("UIDL", "UIDL"); err != nil {
		return nil, err
	}
	var msgs []pop3Msg
	idx := map[int]int{}
	err := c.multiline(func(line string) error {
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("pop3 UIDL: bad line %q", truncate(line, 80))
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n <= 0 || len(f[1]) > 70 {
			return fmt.Errorf("pop3 UIDL: bad line %q", truncate(line, 80))
		}
		if _, dup := idx[n]; dup {
			return fmt.Errorf("pop3 UIDL: message %d listed twice", n)
		}
		idx[n] = len(msgs)
		msgs = append(msgs, pop3Msg{num: n, uidl: f[1], size: -1})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.cmd("LIST", "LIST"); err != nil {
		return nil, err
	}
	err = c.multiline(func(line string) error {
		f := strings.Fields(line)
		if len(f) < 2 {
			return fmt.Errorf("pop3 LIST: bad line %q", truncate(line, 80))
		}
		n, err1 := strconv.Atoi(f[0])
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || size < 0 {
			return fmt.Errorf("pop3 LIST: bad line %q", truncate(line, 80))
		}
		if i, ok := idx[n]; ok {
			msgs[i].size = size
		}
		return nil
	})
	return msgs, err
}

// stat returns the message count and maildrop size.
func (c *pop3Client) stat() (int, int64, error) {
	text, err := c.cmd("STAT", "STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("pop3 STAT: bad reply %q", truncate(text, 80))
	}
	n, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("pop3 STAT: bad reply %q", truncate(text, 80))
	}
	return n, size, nil
}

// retr streams message n, dot-unstuffed, into a buffer of at most max
// bytes. A larger message is drained and errPOP3TooLarge returned, so the
// session stays usable and memory stays bounded.
func (c *pop3Client) retr(ctx context.Context, n int, max int64) ([]byte, error) {
	if _, err := c.cmd("RETR", fmt.Sprintf("RETR %d", n)); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tooLarge := false
	atStart := true
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			c.deadline()
		}
		frag, err := c.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return nil, fmt.Errorf("pop3 RETR %d: %w", n, c.readErr(err))
		}
		if atStart && len(frag) > 0 && frag[0] == '.' {
			if err == nil && (string(frag) == ".\r\n" || string(frag) == ".\n") {
				if tooLarge {
					return nil, errPOP3TooLarge
				}
				return buf.Bytes(), nil
			}
			frag = frag[1:]
		}
		atStart = err == nil
		if !tooLarge {
			if int64(buf.Len()+len(frag)) > max {
				tooLarge = true
				buf = bytes.Buffer{}
			} else {
				buf.Write(frag)
			}
		}
	}
}

func (c *pop3Client) dele(n int) error {
	_, err := c.cmd("DELE", fmt.Sprintf("DELE %d", n))
	return err
}

// quit ends the session; the server commits DELEs only on a +OK reply.
func (c *pop3Client) quit() error {
	_, err := c.cmd("QUIT", "QUIT")
	return err
}

func (c *pop3Client) close() error { return c.conn.Close() }
