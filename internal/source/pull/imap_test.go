package pull

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/config"
)

func TestIMAPKeepMode(t *testing.T) {
	t.Parallel()
	// IMAP4rev1 without IDLE: polling, woken by PollNow.
	srv := startMemIMAP(t, imap.CapSet{imap.CapIMAP4rev1: {}})
	for i := range 25 {
		srv.append(t, "INBOX", testMsg(i))
	}
	arc, st := newFakeArchive(), newMemState()
	m, reg, _ := startManager(t, []config.Source{imapSource(t, "j", srv.addr, "secret")}, arc, st, testOptions())
	waitFor(t, "25 imported", 10*time.Second, func() bool { return statusOf(m, "j").Imported == 25 })
	waitFor(t, "idle state", 5*time.Second, func() bool { return statusOf(m, "j").State == "idle" })
	if got := srv.count(t, "INBOX"); got != 25 {
		t.Fatalf("keep mode changed the mailbox: %d messages", got)
	}
	arc.mu.Lock()
	origin := arc.origin
	arc.mu.Unlock()
	if origin != "imap:j" {
		t.Errorf("origin = %q", origin)
	}
	cur := st.get("j", keyIMAPCursor+"INBOX")
	if !strings.HasSuffix(cur, ":25") {
		t.Errorf("cursor = %q, want UIDVALIDITY:25", cur)
	}
	// A second poll fetches nothing.
	calls := arc.callCount()
	polls := testutil.ToFloat64(m.met.polls.WithLabelValues("j", "ok"))
	if err := m.PollNow("j"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second poll", 5*time.Second, func() bool { return testutil.ToFloat64(m.met.polls.WithLabelValues("j", "ok")) > polls })
	if arc.callCount() != calls {
		t.Errorf("second poll ingested %d messages again", arc.callCount()-calls)
	}
	// A new message is picked up.
	srv.append(t, "INBOX", testMsg(100))
	if err := m.PollNow("j"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new message", 5*time.Second, func() bool { return arc.has(testMsg(100)) })
	s := statusOf(m, "j")
	if s.Imported != 26 || s.Duplicates != 0 || s.LastSuccess.IsZero() || s.Type != "imap" {
		t.Errorf("status = %+v", s)
	}
	if v := testutil.ToFloat64(m.met.messages.WithLabelValues("j", "imported")); v != 26 {
		t.Errorf("imported metric = %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "mailarc_pull_last_success_timestamp_seconds"); err != nil || n != 1 {
		t.Errorf("last success metric: %d, %v", n, err)
	}
	// State (one-hot), last poll and cursor gauges.
	waitFor(t, "idle again", 5*time.Second, func() bool { return statusOf(m, "j").State == "idle" })
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP mailarc_pull_source_state 1 for the state a source is in, 0 for the others (state: idle, polling, error, disabled, not_owner, standby).
# TYPE mailarc_pull_source_state gauge
mailarc_pull_source_state{source="j",state="disabled"} 0
mailarc_pull_source_state{source="j",state="error"} 0
mailarc_pull_source_state{source="j",state="idle"} 1
mailarc_pull_source_state{source="j",state="not_owner"} 0
mailarc_pull_source_state{source="j",state="polling"} 0
mailarc_pull_source_state{source="j",state="standby"} 0
# HELP mailarc_pull_cursor_uid IMAP: highest UID of a folder up to which every message is archived or skipped (the cursor), set at every poll.
# TYPE mailarc_pull_cursor_uid gauge
mailarc_pull_cursor_uid{folder="INBOX",source="j"} 26
`), "mailarc_pull_source_state", "mailarc_pull_cursor_uid"); err != nil {
		t.Error(err)
	}
	lastPoll := testutil.ToFloat64(m.met.lastPoll.WithLabelValues("j"))
	if want := float64(statusOf(m, "j").LastPoll.UnixNano()) / 1e9; lastPoll < want-1 || lastPoll > want+1 {
		t.Errorf("last poll metric %v, status %v", lastPoll, want)
	}
}

func TestIMAPIdlePickup(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil) // IMAP4rev2 implies IDLE
	srv.append(t, "INBOX", testMsg(1))
	arc := newFakeArchive()
	m, _, _ := startManager(t, []config.Source{imapSource(t, "j", srv.addr, "secret")}, arc, newMemState(), testOptions())
	waitFor(t, "first message", 10*time.Second, func() bool { return arc.has(testMsg(1)) })
	waitFor(t, "idle", 5*time.Second, func() bool { return statusOf(m, "j").State == "idle" })
	// No PollNow: the poll interval is an hour, IDLE must notice.
	srv.append(t, "INBOX", testMsg(2))
	waitFor(t, "IDLE pickup", 10*time.Second, func() bool { return arc.has(testMsg(2)) })
}

func TestIMAPDeleteModeKeepsFailed(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	for i := range 10 {
		srv.append(t, "INBOX", testMsg(i))
	}
	arc := newFakeArchive()
	poison := string(testMsg(3))
	var failing atomic.Bool
	failing.Store(true)
	arc.setFail(func(raw []byte) error {
		if failing.Load() && string(raw) == poison {
			return archive.ErrUnavailable
		}
		return nil
	})
	src := imapSource(t, "j", srv.addr, "secret")
	src.Mode = "delete"
	m, _, _ := startManager(t, []config.Source{src}, arc, newMemState(), testOptions())
	waitFor(t, "error state", 10*time.Second, func() bool {
		s := statusOf(m, "j")
		return s.State == "error" && strings.Contains(s.LastError, "unavailable")
	})
	// Messages 0-2 archived and deleted, 3 (failing) and the rest stay.
	waitFor(t, "archived prefix deleted", 5*time.Second, func() bool { return srv.count(t, "INBOX") == 7 })
	if arc.count() != 3 || arc.has(testMsg(3)) {
		t.Fatalf("archived %d messages (has poison: %v)", arc.count(), arc.has(testMsg(3)))
	}
	failing.Store(false)
	waitFor(t, "all archived and deleted", 10*time.Second, func() bool {
		return arc.count() == 10 && srv.count(t, "INBOX") == 0
	})
	waitFor(t, "recovered", 5*time.Second, func() bool { return statusOf(m, "j").LastError == "" })
	// A temporary archive error is retried, not a failed message.
	if s := statusOf(m, "j"); s.Failed != 0 || s.Imported != 10 {
		t.Errorf("status = %+v, want 10 imported and none failed", s)
	}
}

func TestIMAPMoveTo(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	if err := srv.user.Create("Archived", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		srv.append(t, "INBOX", testMsg(i))
	}
	arc := newFakeArchive()
	src := imapSource(t, "j", srv.addr, "secret")
	src.Mode, src.MoveTo, src.Folders = "delete", "Archived", []string{"*"}
	startManager(t, []config.Source{src}, arc, newMemState(), testOptions())
	waitFor(t, "moved", 10*time.Second, func() bool {
		return arc.count() == 5 && srv.count(t, "INBOX") == 0 && srv.count(t, "Archived") == 5
	})
}

func TestIMAPUIDValidityRescan(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	for i := range 5 {
		srv.append(t, "INBOX", testMsg(i))
	}
	arc, st := newFakeArchive(), newMemState()
	m, _, _ := startManager(t, []config.Source{imapSource(t, "j", srv.addr, "secret")}, arc, st, testOptions())
	waitFor(t, "5 imported", 10*time.Second, func() bool { return statusOf(m, "j").Imported == 5 })
	before := statusOf(m, "j").Cursor
	// Recreate the mailbox: new UIDVALIDITY, UIDs restart at 1.
	if err := srv.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := srv.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		srv.append(t, "INBOX", testMsg(i))
	}
	if err := m.PollNow("j"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rescan", 10*time.Second, func() bool {
		s := statusOf(m, "j")
		return s.Imported == 6 && s.Duplicates == 5
	})
	if after := statusOf(m, "j").Cursor; after == before || !strings.HasSuffix(after, ":6") {
		t.Errorf("cursor %q -> %q", before, after)
	}
	if arc.count() != 6 {
		t.Errorf("archive holds %d, want 6", arc.count())
	}
}

// A crash mid-import (the ingester kills the manager after some messages)
// followed by a restart with the same state archives every message exactly
// once and deletes all of them.
func TestIMAPCrashRestart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"keep", "delete"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := startMemIMAP(t, nil)
			const n = 57
			for i := range n {
				srv.append(t, "INBOX", testMsg(i))
			}
			arc, st := newFakeArchive(), newMemState()
			src := imapSource(t, "j", srv.addr, "secret")
			src.Mode = mode
			crashed := make(chan struct{})
			var stored atomic.Int32
			arc.setFail(func([]byte) error {
				if stored.Add(1) > 23 {
					select {
					case <-crashed:
					default:
						close(crashed)
					}
					return errors.New("crash")
				}
				return nil
			})
			_, _, stop := startManager(t, []config.Source{src}, arc, st, testOptions())
			<-crashed
			stop()
			if arc.count() != 23 {
				t.Fatalf("before restart: %d archived", arc.count())
			}
			arc.setFail(nil)
			m2, _, _ := startManager(t, []config.Source{src}, arc, st, testOptions())
			waitFor(t, "all archived", 10*time.Second, func() bool { return arc.count() == n })
			waitFor(t, "idle", 5*time.Second, func() bool { return statusOf(m2, "j").State == "idle" })
			arc.mu.Lock()
			for id, c := range arc.ids {
				if c != 1 {
					t.Errorf("%s stored %d times", id, c)
				}
			}
			arc.mu.Unlock()
			// At most one batch is fetched again.
			if arc.dupCount() > testOptions().BatchSize {
				t.Errorf("%d duplicates after restart", arc.dupCount())
			}
			want := uint32(n)
			if mode == "delete" {
				want = 0
			}
			waitFor(t, "mailbox state", 5*time.Second, func() bool { return srv.count(t, "INBOX") == want })
		})
	}
}

func TestIMAPWrongPasswordIsolated(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	for i := range 3 {
		srv.append(t, "INBOX", testMsg(i))
	}
	arc := newFakeArchive()
	bad := imapSource(t, "bad", srv.addr, "wrong")
	good := imapSource(t, "good", srv.addr, "secret")
	m, _, _ := startManager(t, []config.Source{bad, good}, arc, newMemState(), testOptions())
	waitFor(t, "good imports", 10*time.Second, func() bool { return statusOf(m, "good").Imported == 3 })
	waitFor(t, "retries with backoff", 10*time.Second, func() bool {
		return testutil.ToFloat64(m.met.polls.WithLabelValues("bad", "error")) >= 3
	})
	s := statusOf(m, "bad")
	if s.State != "error" || !strings.Contains(s.LastError, "authentication as journal (plain) failed") {
		t.Fatalf("bad status = %+v", s)
	}
	if strings.Contains(s.LastError, "wrong") {
		t.Fatal("last_error leaks the password")
	}
}

func TestIMAPOversizeSkipped(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	big := append(testMsg(99), []byte(strings.Repeat("x", 4000))...)
	srv.append(t, "INBOX", testMsg(1))
	srv.append(t, "INBOX", big)
	srv.append(t, "INBOX", testMsg(2))
	arc, st := newFakeArchive(), newMemState()
	src := imapSource(t, "j", srv.addr, "secret")
	src.Mode = "delete"
	opt := testOptions()
	opt.MaxMessageSize = 1000
	m, _, _ := startManager(t, []config.Source{src}, arc, st, opt)
	waitFor(t, "others archived and deleted", 10*time.Second, func() bool {
		return arc.count() == 2 && srv.count(t, "INBOX") == 1
	})
	s := statusOf(m, "j")
	if s.Failed != 1 || !strings.Contains(s.LastError, "exceeds") {
		t.Errorf("status = %+v", s)
	}
	if st.get("j", keyIMAPSkip+"INBOX") != "2" {
		t.Errorf("skip set = %q", st.get("j", keyIMAPSkip+"INBOX"))
	}
}

func TestManagerOwnershipAndValidation(t *testing.T) {
	t.Parallel()
	pw := writeSecret(t, "x")
	base := config.Source{Name: "a", Type: "imap", Host: "mail.example.com", User: "u", PasswordFile: pw}
	other := base
	other.Name, other.Owner = "b", "node-b"
	off := base
	off.Name = "c"
	f := false
	off.Enabled = &f
	m, err := NewManager("node-a", []config.Source{base, other, off}, newFakeArchive(), newMemState(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Status()
	if len(st) != 3 || st[1].State != "not_owner" || st[1].Owner != "node-b" || st[2].State != "disabled" {
		t.Fatalf("status = %+v", st)
	}
	for name, state := range map[string]string{"a": "idle", "b": "not_owner", "c": "disabled"} {
		for _, s := range sourceStates {
			want := 0.0
			if s == state {
				want = 1
			}
			if got := testutil.ToFloat64(m.met.state.WithLabelValues(name, s)); got != want {
				t.Errorf("state gauge %s/%s = %v, want %v", name, s, got, want)
			}
		}
	}
	if err := m.PollNow("b"); err == nil {
		t.Error("PollNow on a source owned elsewhere succeeded")
	}
	if err := m.PollNow("nope"); err == nil {
		t.Error("PollNow on an unknown source succeeded")
	}

	plain := base
	plain.TLS = "none"
	_, err = NewManager("node-a", []config.Source{plain}, newFakeArchive(), newMemState(), nil, nil)
	if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "mail.example.com") {
		t.Fatalf("plain auth to a remote host: err = %v", err)
	}
	plain.AllowInsecure = true
	if _, err := NewManager("node-a", []config.Source{plain}, newFakeArchive(), newMemState(), nil, nil); err != nil {
		t.Fatalf("allow_insecure: %v", err)
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost"} {
		lo := base
		lo.TLS, lo.Host = "none", h
		if _, err := NewManager("node-a", []config.Source{lo}, newFakeArchive(), newMemState(), nil, nil); err != nil {
			t.Errorf("loopback %s: %v", h, err)
		}
	}
	mv := base
	mv.MoveTo = "Archive"
	if _, err := NewManager("node-a", []config.Source{mv}, newFakeArchive(), newMemState(), nil, nil); err == nil {
		t.Error("move_to in keep mode accepted")
	}
	// Test() refuses too, before dialling.
	if _, err := Test(context.Background(), normalize(config.Source{Name: "p", Type: "pop3", Host: "pop.example.com", TLS: "none", User: "u", PasswordFile: pw})); !errors.Is(err, ErrInsecure) {
		t.Errorf("Test: err = %v", err)
	}
}

func TestXOAUTH2String(t *testing.T) {
	t.Parallel()
	got := xoauth2String("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
	want := "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
	if string(got) != want {
		t.Fatalf("got %q", got)
	}
}

func TestTestReportIMAP(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	if err := srv.user.Create("Sent", nil); err != nil {
		t.Fatal(err)
	}
	srv.append(t, "INBOX", testMsg(1))
	srv.append(t, "INBOX", testMsg(2))
	rep, err := Test(context.Background(), imapSource(t, "j", srv.addr, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Folders) != 2 || rep.Folders[0].Name != "INBOX" || rep.Folders[0].Messages != 2 || !rep.Folders[0].Polled || rep.Folders[1].Polled {
		t.Fatalf("report = %+v", rep)
	}
	if _, err := Test(context.Background(), imapSource(t, "j", srv.addr, "bad")); err == nil || !strings.Contains(err.Error(), "authentication") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for n := 1; n < 40; n++ {
		d := backoff(n, time.Second, 5*time.Minute)
		if d < 500*time.Millisecond || d > 5*time.Minute {
			t.Fatalf("backoff(%d) = %v", n, d)
		}
	}
	if d := backoff(30, time.Second, 5*time.Minute); d < 150*time.Second {
		t.Fatalf("backoff did not grow: %v", d)
	}
}
