package pull

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// watchdogConn bounds how long an IMAP session waits for its server. Every
// command written and every byte read re-arms a read deadline of timeout,
// so a server that stops answering in the middle of a session fails it
// after timeout instead of leaving the source "polling" forever.
//
// The deadline is held off (hold/release) while the session deliberately
// waits: during IDLE, where the server may rightly stay silent until the
// session renews the IDLE, and while the client works locally (archiving
// a message, saving state) with no command in flight.
//
// The deadline setters of net.Conn are no-ops: imapclient sets and clears
// read deadlines around each response (and none while it waits between
// responses, which is the gap this closes), and those calls would undo the
// watchdog's.
type watchdogConn struct {
	net.Conn
	timeout time.Duration

	mu   sync.Mutex
	held int // nesting depth of hold
}

func newWatchdogConn(c net.Conn, timeout time.Duration) *watchdogConn {
	w := &watchdogConn{Conn: c, timeout: timeout}
	w.arm()
	return w
}

// errNoAnswer reports a server that stopped answering.
var errNoAnswer = errors.New("the server stopped answering")

// arm sets the read deadline to now+timeout unless held.
func (w *watchdogConn) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == 0 && w.timeout > 0 {
		_ = w.Conn.SetReadDeadline(time.Now().Add(w.timeout))
	}
}

// hold removes the read deadline until the matching release.
func (w *watchdogConn) hold() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held++
	_ = w.Conn.SetReadDeadline(time.Time{})
}

// release ends a hold; the last one re-arms the deadline.
func (w *watchdogConn) release() {
	w.mu.Lock()
	if w.held > 0 {
		w.held--
	}
	w.mu.Unlock()
	w.arm()
}

func (w *watchdogConn) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if n > 0 {
		w.arm()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: no answer within %s (%w)", errNoAnswer, w.timeout, err)
	}
	return n, err
}

func (w *watchdogConn) Write(b []byte) (int, error) {
	w.arm() // a command expects an answer
	if w.timeout > 0 {
		_ = w.Conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	n, err := w.Conn.Write(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: a write did not complete within %s (%w)", errNoAnswer, w.timeout, err)
	}
	return n, err
}

// SetDeadline, SetReadDeadline and SetWriteDeadline are ignored: the
// watchdog owns the deadlines (see the type comment).
func (w *watchdogConn) SetDeadline(time.Time) error      { return nil }
func (w *watchdogConn) SetReadDeadline(time.Time) error  { return nil }
func (w *watchdogConn) SetWriteDeadline(time.Time) error { return nil }
