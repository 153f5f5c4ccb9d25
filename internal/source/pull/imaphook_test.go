package pull

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailarc/mailarc/internal/config"
)

// hookIMAP is an in-memory IMAP server whose sessions also log in with
// SASL XOAUTH2 (token hookToken) and can leave one UID out of every FETCH.
type hookIMAP struct {
	addr *net.TCPAddr
	user *imapmemserver.User

	mu sync.Mutex
	// omit is left out of every UID FETCH (0: none); asked counts the
	// FETCH commands that asked for it.
	omit  imap.UID
	asked int
	// oauthLogins counts successful XOAUTH2 logins.
	oauthLogins int
}

const hookToken = "ya29.unit-test-token"

func startHookIMAP(t *testing.T) *hookIMAP {
	t.Helper()
	h := &hookIMAP{user: imapmemserver.NewUser("journal", "secret")}
	if err := h.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	h.addr = serveIMAP(t, nil, func() imapserver.Session { return &hookSession{h: h} })
	return h
}

func (h *hookIMAP) append(t *testing.T, raw []byte) {
	t.Helper()
	if _, err := h.user.Append("INBOX", bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *hookIMAP) count(t *testing.T) uint32 {
	t.Helper()
	sd, err := h.user.Status("INBOX", &imap.StatusOptions{NumMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	return *sd.NumMessages
}

func (h *hookIMAP) stats() (asked, oauth int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.asked, h.oauthLogins
}

// hookSession is the memory server's session (nil until login) with
// XOAUTH2 and the FETCH hook.
type hookSession struct {
	*imapmemserver.UserSession
	h *hookIMAP
}

var _ imapserver.SessionSASL = (*hookSession)(nil)

func (s *hookSession) Login(username, password string) error {
	if username != "journal" {
		return imapserver.ErrAuthFailed
	}
	if err := s.h.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.h.user)
	return nil
}

func (s *hookSession) AuthenticateMechanisms() []string { return []string{"PLAIN", "XOAUTH2"} }

func (s *hookSession) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case "PLAIN":
		return sasl.NewPlainServer(func(identity, username, password string) error {
			return s.Login(username, password)
		}), nil
	case "XOAUTH2":
		return &xoauth2Server{s: s}, nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "unsupported SASL mechanism"}
}

// xoauth2Server checks "user=journal^Aauth=Bearer TOKEN^A^A"; on a bad
// token it sends Google's JSON error challenge, then fails.
type xoauth2Server struct {
	s      *hookSession
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "invalid token"}
	}
	if string(resp) == string(xoauth2String("journal", hookToken)) {
		x.s.UserSession = imapmemserver.NewUserSession(x.s.h.user)
		x.s.h.mu.Lock()
		x.s.h.oauthLogins++
		x.s.h.mu.Unlock()
		return nil, true, nil
	}
	x.failed = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
}

// Fetch leaves the hooked UID out of UID FETCH responses, like a server
// that cannot deliver that message.
func (s *hookSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	uids, ok := numSet.(imap.UIDSet)
	s.h.mu.Lock()
	omit := s.h.omit
	if ok && omit != 0 && uids.Contains(omit) {
		s.h.asked++
	}
	s.h.mu.Unlock()
	if !ok || omit == 0 || !uids.Contains(omit) {
		return s.UserSession.Fetch(w, numSet, options)
	}
	var rest imap.UIDSet
	for _, r := range uids {
		if r.Start <= omit && (r.Stop == 0 || omit <= r.Stop) {
			if r.Start < omit {
				rest = append(rest, imap.UIDRange{Start: r.Start, Stop: omit - 1})
			}
			if r.Stop == 0 || omit < r.Stop {
				rest = append(rest, imap.UIDRange{Start: omit + 1, Stop: r.Stop})
			}
			continue
		}
		rest = append(rest, r)
	}
	if len(rest) == 0 {
		return nil
	}
	return s.UserSession.Fetch(w, rest, options)
}

func TestIMAPXOAUTH2Login(t *testing.T) {
	t.Parallel()
	srv := startHookIMAP(t)
	for i := range 3 {
		srv.append(t, testMsg(i))
	}
	src := imapSource(t, "oauth", srv.addr, "")
	src.Auth, src.PasswordFile, src.TokenFile = "xoauth2", "", writeSecret(t, hookToken)
	const badToken = "ya29.revoked-token"
	bad := imapSource(t, "oauth-bad", srv.addr, "")
	bad.Auth, bad.PasswordFile, bad.TokenFile = "xoauth2", "", writeSecret(t, badToken)
	arc := newFakeArchive()
	m, _, _ := startManager(t, []config.Source{src, bad}, arc, newMemState(), testOptions())
	waitFor(t, "imported with XOAUTH2", 10*time.Second, func() bool { return statusOf(m, "oauth").Imported == 3 })
	if _, n := srv.stats(); n < 1 {
		t.Fatalf("%d XOAUTH2 logins", n)
	}
	waitFor(t, "bad token retried", 10*time.Second, func() bool {
		return testutil.ToFloat64(m.met.polls.WithLabelValues("oauth-bad", "error")) >= 2 && statusOf(m, "oauth-bad").State == "error"
	})
	st := statusOf(m, "oauth-bad")
	if !strings.Contains(st.LastError, "imap authentication as journal (xoauth2) failed") || !strings.Contains(st.LastError, `\"status\":\"401\"`) {
		t.Errorf("last_error = %q", st.LastError)
	}
	if strings.Contains(st.LastError, badToken) {
		t.Errorf("last_error leaks the token: %q", st.LastError)
	}
	if st.Imported != 0 {
		t.Errorf("bad token imported %d", st.Imported)
	}
}

// A server that never delivers one UID in FETCH: the message is retried on
// the next polls, skipped after maxServerFailures, and never deleted.
func TestIMAPFetchOmitsUID(t *testing.T) {
	t.Parallel()
	srv := startHookIMAP(t)
	for i := range 8 {
		srv.append(t, testMsg(i))
	}
	srv.mu.Lock()
	srv.omit = 4
	srv.mu.Unlock()
	arc, st := newFakeArchive(), newMemState()
	src := imapSource(t, "j", srv.addr, "secret")
	src.Mode = "delete"
	m, _, _ := startManager(t, []config.Source{src}, arc, st, testOptions())
	waitFor(t, "the others archived and deleted", 10*time.Second, func() bool {
		return arc.count() == 7 && srv.count(t) == 1
	})
	if arc.has(testMsg(3)) {
		t.Fatal("the omitted message was archived")
	}
	// The first poll was attempt 1; four more reach maxServerFailures.
	for i := 2; i <= maxServerFailures; i++ {
		pollOnce(t, m, "j")
		if skipped := st.get("j", keyIMAPSkip+"INBOX") == "4"; skipped != (i == maxServerFailures) {
			t.Fatalf("after attempt %d: skipped = %v", i, skipped)
		}
	}
	if asked, _ := srv.stats(); asked != maxServerFailures {
		t.Errorf("UID 4 asked for %d times, want %d", asked, maxServerFailures)
	}
	s := statusOf(m, "j")
	if s.Failed != 1 || !strings.Contains(s.LastError, "INBOX UID 4 skipped: the server did not deliver it (5 attempts)") {
		t.Errorf("status = %+v", s)
	}
	// Later polls neither ask for it again nor delete it.
	pollOnce(t, m, "j")
	if asked, _ := srv.stats(); asked != maxServerFailures {
		t.Errorf("a skipped UID was fetched again (%d)", asked)
	}
	if srv.count(t) != 1 {
		t.Errorf("the undelivered message was deleted")
	}
	if cur := st.get("j", keyIMAPCursor+"INBOX"); !strings.HasSuffix(cur, ":8") {
		t.Errorf("cursor = %q, want past the skipped UID", cur)
	}
}

// silentIMAP greets, accepts any login, then never answers again (after
// LOGIN when silentAfterLogin, else right after the greeting).
func silentIMAP(t *testing.T, silentAfterLogin bool) (*net.TCPAddr, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sessions atomic.Int32
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			sessions.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-done; c.Close() }()
				fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] silent test server\r\n")
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, rest, _ := strings.Cut(line, " ")
					cmd := strings.ToUpper(strings.Fields(rest + " x")[0])
					if silentAfterLogin && (cmd == "AUTHENTICATE" || cmd == "LOGIN") {
						fmt.Fprintf(c, "%s OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] logged in\r\n", tag)
					}
					// Anything else: silence.
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr), &sessions
}

// A server that stops answering fails the poll after CommandTimeout (the
// source does not stay "polling"), and the source keeps retrying.
func TestIMAPServerStopsAnswering(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		afterLogin bool
	}{{"after-login", true}, {"after-greeting", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, sessions := silentIMAP(t, tc.afterLogin)
			opt := testOptions()
			opt.CommandTimeout = 200 * time.Millisecond
			m, _, _ := startManager(t, []config.Source{imapSource(t, "j", addr, "secret")}, newFakeArchive(), newMemState(), opt)
			waitFor(t, "failed polls, retried", 10*time.Second, func() bool {
				return testutil.ToFloat64(m.met.polls.WithLabelValues("j", "error")) >= 2 && statusOf(m, "j").State == "error"
			})
			s := statusOf(m, "j")
			if !strings.Contains(s.LastError, "the server stopped answering: no answer within 200ms") {
				t.Errorf("last_error = %q", s.LastError)
			}
			if sessions.Load() < 2 {
				t.Errorf("%d sessions, want a reconnect per retry", sessions.Load())
			}
		})
	}
}

// The command timeout does not apply while the session IDLEs or archives:
// a quiet IDLE and a slow archive longer than the timeout are no failure.
func TestIMAPCommandTimeoutSparesIdleAndArchiving(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil) // IDLE
	srv.append(t, "INBOX", testMsg(1))
	// A second: the session must also survive a dozen round trips to the
	// in-process server, each within the timeout, on a loaded machine.
	const timeout = time.Second
	arc := newFakeArchive()
	var slow atomic.Bool
	slow.Store(true)
	arc.setFail(func([]byte) error {
		if slow.Swap(false) {
			<-time.After(3 * timeout) // a slow disk, not synchronisation
		}
		return nil
	})
	opt := testOptions()
	opt.CommandTimeout = timeout
	m, _, _ := startManager(t, []config.Source{imapSource(t, "j", srv.addr, "secret")}, arc, newMemState(), opt)
	waitFor(t, "slow message archived", 10*time.Second, func() bool { return arc.has(testMsg(1)) })
	waitFor(t, "idle", 5*time.Second, func() bool { return statusOf(m, "j").State == "idle" })
	idleSince := time.Now()
	// Let the IDLE stay quiet for several timeouts, failing at once on an
	// error poll.
	waitFor(t, "a quiet IDLE of 4 command timeouts", 30*time.Second, func() bool {
		if n := testutil.ToFloat64(m.met.polls.WithLabelValues("j", "error")); n != 0 {
			t.Fatalf("IDLE failed: %s", statusOf(m, "j").LastError)
		}
		return time.Since(idleSince) > 4*timeout
	})
	srv.append(t, "INBOX", testMsg(2))
	waitFor(t, "IDLE pickup", 10*time.Second, func() bool { return arc.has(testMsg(2)) })
	if n := testutil.ToFloat64(m.met.polls.WithLabelValues("j", "error")); n != 0 {
		t.Errorf("%v failed polls: %s", n, statusOf(m, "j").LastError)
	}
}
