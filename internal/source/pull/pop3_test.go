package pull

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/config"
)

// fakePOP3 is a small RFC 1939 server: CAPA, USER/PASS, AUTH PLAIN and
// XOAUTH2, STAT, UIDL, LIST, RETR, DELE (committed at QUIT), QUIT.
type fakePOP3 struct {
	mu    sync.Mutex
	msgs  []fakePOP3Msg
	next  int
	user  string
	pass  string
	token string
	addr  *net.TCPAddr
	// refuse lists UIDLs whose RETR fails with -ERR; retrs counts RETRs
	// per UIDL.
	refuse map[string]bool
	retrs  map[string]int
}

type fakePOP3Msg struct {
	uidl string
	body []byte
}

func startFakePOP3(t *testing.T) *fakePOP3 {
	t.Helper()
	s := &fakePOP3{user: "journal", pass: "secret", token: "tok-123", refuse: map[string]bool{}, retrs: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().(*net.TCPAddr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *fakePOP3) add(body []byte) {
	s.mu.Lock()
	s.next++
	s.msgs = append(s.msgs, fakePOP3Msg{uidl: fmt.Sprintf("uid-%06d", s.next), body: body})
	s.mu.Unlock()
}

func (s *fakePOP3) has(uidl string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if m.uidl == uidl {
			return true
		}
	}
	return false
}

func (s *fakePOP3) retrCount(uidl string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retrs[uidl]
}

func (s *fakePOP3) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *fakePOP3) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(f string, a ...any) { fmt.Fprintf(w, f+"\r\n", a...); w.Flush() }
	say("+OK fake POP3 ready")
	authed := false
	var snap []fakePOP3Msg
	deleted := map[int]bool{}
	user := ""
	login := func(ok bool) {
		if !ok {
			say("-ERR [AUTH] Authentication failed.")
			return
		}
		authed = true
		s.mu.Lock()
		snap = append([]fakePOP3Msg(nil), s.msgs...)
		s.mu.Unlock()
		say("+OK logged in")
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(strings.TrimRight(line, "\r\n"))
		if len(f) == 0 {
			say("-ERR empty")
			continue
		}
		num := func() (int, bool) {
			if len(f) < 2 {
				return 0, false
			}
			n, err := strconv.Atoi(f[1])
			return n, err == nil && n >= 1 && n <= len(snap) && !deleted[n]
		}
		switch strings.ToUpper(f[0]) {
		case "CAPA":
			say("+OK\r\nUSER\r\nUIDL\r\nSASL PLAIN XOAUTH2\r\n.")
		case "USER":
			user = f[1]
			say("+OK")
		case "PASS":
			login(user == s.user && len(f) > 1 && f[1] == s.pass)
		case "AUTH":
			ir, _ := base64.StdEncoding.DecodeString(f[2])
			switch f[1] {
			case "PLAIN":
				login(string(ir) == "\x00"+s.user+"\x00"+s.pass)
			case "XOAUTH2":
				if string(ir) != string(xoauth2String(s.user, s.token)) {
					say("+ eyJzdGF0dXMiOiI0MDEifQ==")
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					login(false)
				} else {
					login(true)
				}
			}
		case "STAT", "UIDL", "LIST", "RETR", "DELE":
			if !authed {
				say("-ERR not authenticated")
				continue
			}
			switch strings.ToUpper(f[0]) {
			case "STAT":
				say("+OK %d 0", len(snap))
			case "UIDL", "LIST":
				var b strings.Builder
				for i, m := range snap {
					if deleted[i+1] {
						continue
					}
					v := m.uidl
					if f[0] == "LIST" {
						v = strconv.Itoa(len(m.body))
					}
					fmt.Fprintf(&b, "%d %s\r\n", i+1, v)
				}
				say("+OK\r\n%s.", b.String())
			case "RETR":
				n, ok := num()
				if !ok {
					say("-ERR no such message")
					continue
				}
				s.mu.Lock()
				s.retrs[snap[n-1].uidl]++
				refused := s.refuse[snap[n-1].uidl]
				s.mu.Unlock()
				if refused {
					say("-ERR [SYS/TEMP] cannot read the message file")
					continue
				}
				var b bytes.Buffer
				for _, l := range strings.SplitAfter(string(snap[n-1].body), "\n") {
					if strings.HasPrefix(l, ".") {
						b.WriteString(".")
					}
					b.WriteString(l)
				}
				say("+OK\r\n%s.", b.String())
			case "DELE":
				n, ok := num()
				if !ok {
					say("-ERR no such message")
					continue
				}
				deleted[n] = true
				say("+OK")
			}
		case "QUIT":
			s.mu.Lock()
			gone := map[string]bool{}
			for n := range deleted {
				gone[snap[n-1].uidl] = true
			}
			var keep []fakePOP3Msg
			for _, m := range s.msgs {
				if !gone[m.uidl] {
					keep = append(keep, m)
				}
			}
			s.msgs = keep
			s.mu.Unlock()
			say("+OK bye")
			return
		default:
			say("-ERR unknown command")
		}
	}
}

func pop3Source(t *testing.T, s *fakePOP3, pw string) config.Source {
	return config.Source{
		Name: "p", Type: "pop3", Host: "127.0.0.1", Port: s.addr.Port, TLS: "none",
		User: "journal", PasswordFile: writeSecret(t, pw), Poll: config.Duration(time.Hour),
	}
}

func TestPOP3KeepMode(t *testing.T) {
	t.Parallel()
	srv := startFakePOP3(t)
	for i := range 15 {
		srv.add(testMsg(i))
	}
	// Dot-stuffing round trip.
	dotted := []byte("Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n")
	srv.add(dotted)
	arc, st := newFakeArchive(), newMemState()
	m, _, _ := startManager(t, []config.Source{pop3Source(t, srv, "secret")}, arc, st, testOptions())
	waitFor(t, "16 imported", 10*time.Second, func() bool { return statusOf(m, "p").Imported == 16 })
	if !arc.has(dotted) {
		t.Fatal("dot-unstuffing changed the message")
	}
	calls := arc.callCount()
	srv.add(testMsg(100))
	if err := m.PollNow("p"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new message", 5*time.Second, func() bool { return arc.has(testMsg(100)) })
	if arc.callCount() != calls+1 {
		t.Errorf("second poll ingested %d messages, want 1", arc.callCount()-calls)
	}
	if srv.count() != 17 {
		t.Errorf("keep mode removed messages: %d left", srv.count())
	}
	waitFor(t, "UIDL set saved", 5*time.Second, func() bool {
		set, err := decodeUIDLs(st.get("p", keyPOP3UIDLs))
		return err == nil && len(set) == 17
	})
	if v := testutil.ToFloat64(m.met.uidls.WithLabelValues("p")); v != 17 {
		t.Errorf("mailarc_pull_archived_uidls = %v, want 17", v)
	}
}

// A message whose RETR the server refuses is retried at the next polls,
// skipped after maxServerFailures and never DELE'd; the others are
// archived and deleted meanwhile.
func TestPOP3RetrRefused(t *testing.T) {
	t.Parallel()
	srv := startFakePOP3(t)
	for i := range 6 {
		srv.add(testMsg(i))
	}
	const bad = "uid-000003"
	srv.mu.Lock()
	srv.refuse[bad] = true
	srv.mu.Unlock()
	arc, st := newFakeArchive(), newMemState()
	src := pop3Source(t, srv, "secret")
	src.Mode = "delete"
	m, _, _ := startManager(t, []config.Source{src}, arc, st, testOptions())
	waitFor(t, "the others archived and deleted", 10*time.Second, func() bool {
		return arc.count() == 5 && srv.count() == 1 && srv.has(bad)
	})
	if s := statusOf(m, "p"); !strings.Contains(s.LastError, "server replied -ERR [SYS/TEMP] cannot read the message file") || s.Failed != 0 {
		t.Errorf("after the first poll: %+v", s)
	}
	// The first poll was attempt 1; four more reach maxServerFailures.
	for i := 2; i <= maxServerFailures; i++ {
		pollOnce(t, m, "p")
		set, _ := decodeUIDLs(st.get("p", keyPOP3Skip))
		if _, ok := set[bad]; ok != (i == maxServerFailures) {
			t.Fatalf("after attempt %d: skipped = %v", i, ok)
		}
	}
	if n := srv.retrCount(bad); n != maxServerFailures {
		t.Errorf("RETR of the refused message %d times, want %d", n, maxServerFailures)
	}
	s := statusOf(m, "p")
	if s.Failed != 1 || !strings.Contains(s.LastError, "(UIDL "+bad+") skipped: the server did not deliver it (5 attempts): pop3 RETR: server replied -ERR") {
		t.Errorf("status = %+v", s)
	}
	// Later polls neither fetch nor delete it.
	pollOnce(t, m, "p")
	if n := srv.retrCount(bad); n != maxServerFailures {
		t.Errorf("a skipped message was fetched again (%d RETRs)", n)
	}
	if !srv.has(bad) || srv.count() != 1 {
		t.Error("the undelivered message was deleted")
	}
	if s := statusOf(m, "p"); s.State != "idle" || s.Failed != 1 || s.Cursor != "uidls=0 skipped=1" {
		t.Errorf("status after the skip = %+v", s)
	}
	if testutil.ToFloat64(m.met.messages.WithLabelValues("p", "failed")) != 1 {
		t.Error("failed messages metric")
	}
}

// crashState persists nothing once crashed: a process killed at that
// point writes no more state.
type crashState struct {
	*memState
	crashed atomic.Bool
}

func (s *crashState) SetSourceState(ctx context.Context, src string, kv map[string]string) error {
	if s.crashed.Load() {
		return errors.New("crashed")
	}
	return s.memState.SetSourceState(ctx, src, kv)
}

// A crash mid-import (after 23 messages; state saved every 10; the session
// dropped without QUIT, so no DELE is committed) and a restart with the
// state as persisted archive every message exactly once, refetch at most
// one batch, and in delete mode empty the maildrop.
func TestPOP3CrashRestart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"keep", "delete"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := startFakePOP3(t)
			const n = 57
			for i := range n {
				srv.add(testMsg(i))
			}
			arc, mem := newFakeArchive(), newMemState()
			st := &crashState{memState: mem}
			src := pop3Source(t, srv, "secret")
			src.Mode = mode
			crashed := make(chan struct{})
			var stored atomic.Int32
			arc.setFail(func([]byte) error {
				if stored.Add(1) > 23 {
					if !st.crashed.Swap(true) {
						close(crashed)
					}
					return errors.New("crash")
				}
				return nil
			})
			m1, _, stop := startManager(t, []config.Source{src}, arc, st, testOptions())
			<-crashed
			waitFor(t, "the crashed poll to end", 10*time.Second, func() bool { return statusOf(m1, "p").State == "error" })
			stop()
			if arc.count() != 23 {
				t.Fatalf("before restart: %d archived", arc.count())
			}
			if srv.count() != n {
				t.Fatalf("the crashed session deleted %d messages", n-srv.count())
			}
			if set, err := decodeUIDLs(mem.get("p", keyPOP3UIDLs)); err != nil || len(set) != 20 {
				t.Fatalf("persisted UIDL set before restart: %d, %v (want the 2 saved batches)", len(set), err)
			}
			arc.setFail(nil)
			m2, _, _ := startManager(t, []config.Source{src}, arc, mem, testOptions())
			waitFor(t, "all archived", 10*time.Second, func() bool { return arc.count() == n })
			waitFor(t, "idle", 5*time.Second, func() bool { return statusOf(m2, "p").State == "idle" })
			arc.mu.Lock()
			for id, c := range arc.ids {
				if c != 1 {
					t.Errorf("%s stored %d times", id, c)
				}
			}
			arc.mu.Unlock()
			// The 3 archived after the last save are fetched again.
			if d := arc.dupCount(); d == 0 || d > testOptions().BatchSize {
				t.Errorf("%d duplicates after restart, want 1..%d", d, testOptions().BatchSize)
			}
			want := n
			if mode == "delete" {
				want = 0
			}
			waitFor(t, "maildrop state", 5*time.Second, func() bool { return srv.count() == want })
		})
	}
}

func TestPOP3DeleteModeKeepsFailed(t *testing.T) {
	t.Parallel()
	srv := startFakePOP3(t)
	for i := range 8 {
		srv.add(testMsg(i))
	}
	arc, st := newFakeArchive(), newMemState()
	var failing atomic.Bool
	failing.Store(true)
	arc.setFail(func(raw []byte) error {
		if failing.Load() && bytes.Equal(raw, testMsg(5)) {
			return archive.ErrUnavailable
		}
		return nil
	})
	src := pop3Source(t, srv, "secret")
	src.Mode = "delete"
	m, _, _ := startManager(t, []config.Source{src}, arc, st, testOptions())
	waitFor(t, "prefix deleted", 10*time.Second, func() bool { return srv.count() == 3 && arc.count() == 5 })
	// The poll fails after its QUIT: wait for the failure to be recorded.
	waitFor(t, "error state", 10*time.Second, func() bool {
		s := statusOf(m, "p")
		return s.State == "error" && strings.Contains(s.LastError, "unavailable")
	})
	failing.Store(false)
	waitFor(t, "all archived and deleted", 10*time.Second, func() bool { return srv.count() == 0 && arc.count() == 8 })
	// A temporary archive error is retried, not a failed message.
	if s := statusOf(m, "p"); s.Failed != 0 || s.Imported != 8 {
		t.Errorf("status = %+v, want 8 imported and none failed", s)
	}
	// The next poll forgets UIDLs no longer on the server.
	waitFor(t, "UIDL set pruned", 5*time.Second, func() bool {
		_ = m.PollNow("p")
		return st.get("p", keyPOP3UIDLs) == ""
	})
}

func TestPOP3XOAUTH2AndWrongPassword(t *testing.T) {
	t.Parallel()
	srv := startFakePOP3(t)
	srv.add(testMsg(1))
	src := pop3Source(t, srv, "")
	src.Auth, src.PasswordFile, src.TokenFile = "xoauth2", "", writeSecret(t, "tok-123")
	rep, err := Test(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Folders) != 1 || rep.Folders[0].Messages != 1 {
		t.Fatalf("report = %+v", rep)
	}
	src.TokenFile = writeSecret(t, "expired")
	if _, err := Test(context.Background(), src); err == nil || !strings.Contains(err.Error(), "pop3 authentication as journal (xoauth2) failed") {
		t.Fatalf("bad token: %v", err)
	}
	bad := pop3Source(t, srv, "wrong")
	bad.Auth = "login"
	if _, err := Test(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("bad password: %v", err)
	}
}

func TestUIDLSetEncoding(t *testing.T) {
	t.Parallel()
	set := map[string]struct{}{}
	for i := range 5000 {
		set[fmt.Sprintf("%08x%08x", i, 1700000000)] = struct{}{}
	}
	enc := encodeUIDLs(set)
	if len(enc) > 20000 {
		t.Errorf("5000 UIDLs encode to %d bytes", len(enc))
	}
	dec, err := decodeUIDLs(enc)
	if err != nil || len(dec) != len(set) {
		t.Fatalf("round trip: %d, %v", len(dec), err)
	}
	if _, err := decodeUIDLs("garbage"); err == nil {
		t.Error("garbage decoded")
	}
}
