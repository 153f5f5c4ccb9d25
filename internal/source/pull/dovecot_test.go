package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/archive/archivetest"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/certs"
	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
	dovecottest "github.com/mailarc/mailarc/internal/testutil/dovecot"
)

type dovecot = dovecottest.Server

func startDovecot(t *testing.T) *dovecot { return dovecottest.Start(t) }

func appendAll(t *testing.T, c *imapclient.Client, msgs [][]byte) {
	t.Helper()
	dovecottest.Append(t, c, "INBOX", msgs)
}

func appendTo(t *testing.T, c *imapclient.Client, folder string, msgs [][]byte) {
	t.Helper()
	dovecottest.Append(t, c, folder, msgs)
}

func inboxCount(t *testing.T, c *imapclient.Client) uint32 {
	t.Helper()
	return dovecottest.Count(t, c, "INBOX")
}

func folderCount(t *testing.T, c *imapclient.Client, folder string) uint32 {
	t.Helper()
	return dovecottest.Count(t, c, folder)
}

// corpusMessages returns up to n real messages from the usrp corpus.
func corpusMessages(t *testing.T, n int) [][]byte {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatal("go.mod not found")
		}
		root = parent
	}
	dir := filepath.Join(root, "..", "shared", "corpus", "real", "usrp")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.eml"))
	if len(files) == 0 {
		testutil.Require(t, false, "corpus not found at "+dir)
	}
	var out [][]byte
	for _, f := range files {
		if len(out) == n {
			break
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 2<<20 { // keep the test quick
			continue
		}
		// Dovecot stores what we APPEND; send CRLF like a real MTA would.
		out = append(out, bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")))
	}
	return out
}

// countingArchive wraps a real archive and counts calls and new vs
// duplicate ids.
type countingArchive struct {
	a     *archive.Archive
	mu    sync.Mutex
	news  map[string]int
	dups  int
	calls int
}

func (c *countingArchive) Ingest(ctx context.Context, raw []byte, o archive.Origin) (archive.Result, error) {
	res, err := c.a.Ingest(ctx, raw, o)
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	if err == nil {
		c.mu.Lock()
		if res.Duplicate {
			c.dups++
		} else {
			c.news[res.ID]++
		}
		c.mu.Unlock()
	}
	return res, err
}

func (c *countingArchive) callCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func (c *countingArchive) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, n := range c.news {
		if n != 1 {
			panic(fmt.Sprintf("%s stored as new %d times", id, n))
		}
	}
	return len(c.news), c.dups
}

func openRealArchive(t *testing.T) (*countingArchive, *catalog.Catalog) {
	t.Helper()
	env := archivetest.Open(t, archive.Options{}, store.LocalOptions{})
	return &countingArchive{a: env.Archive, news: map[string]int{}}, env.Catalog
}

func dovecotSource(t *testing.T, d *dovecot, typ, userName, mode string) config.Source {
	port := d.IMAPPort
	if typ == "pop3" {
		port = d.POP3Port
	}
	return config.Source{
		Name: typ + "-" + userName, Type: typ, Host: "127.0.0.1", Port: port, TLS: "none",
		User: userName, PasswordFile: writeSecret(t, "secret"), Mode: mode, Poll: config.Duration(time.Hour),
	}
}

func TestDovecotIntegration(t *testing.T) {
	d := startDovecot(t)
	real := corpusMessages(t, 300)
	msgs := append([][]byte(nil), real...)
	for i := len(msgs); i < 1000; i++ {
		msgs = append(msgs, testMsg(i))
	}
	opt := Options{BatchSize: 100, BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second}

	t.Run("imap-keep", func(t *testing.T) {
		t.Parallel()
		// A folder other than INBOX, so the test can delete and recreate
		// it: Dovecot then assigns a new UIDVALIDITY.
		c := d.Client(t, "j1")
		if err := c.Create("Journal", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		d.Deliver(t, "j1", "Journal", msgs)
		arc, cat := openRealArchive(t)
		src := dovecotSource(t, d, "imap", "j1", "keep")
		src.Folders = []string{"Journal"}
		m, _, _ := startManager(t, []config.Source{src}, arc, cat, opt)
		waitFor(t, "1000 imported", 120*time.Second, func() bool { n, _ := arc.counts(); return n == 1000 })
		// Appended during the run: IDLE picks it up, no PollNow.
		appendTo(t, c, "Journal", [][]byte{testMsg(5000)})
		waitFor(t, "late message", 30*time.Second, func() bool { n, _ := arc.counts(); return n == 1001 })
		if got := folderCount(t, c, "Journal"); got != 1001 {
			t.Errorf("keep mode left %d messages, want 1001", got)
		}
		if _, dups := arc.counts(); dups != 0 {
			t.Errorf("%d duplicates in keep mode", dups)
		}
		waitFor(t, "cursor", 10*time.Second, func() bool { return strings.HasSuffix(statusOf(m, src.Name).Cursor, ":1001") })
		before := statusOf(m, src.Name).Cursor
		// UIDVALIDITY reset: move the folder away and recreate it with the
		// same messages plus one.
		if err := c.Rename("Journal", "Old", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Create("Journal", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		d.Deliver(t, "j1", "Journal", append(append([][]byte(nil), msgs...), testMsg(5000), testMsg(5001)))
		waitFor(t, "rescan after UIDVALIDITY change", 120*time.Second, func() bool {
			_ = m.PollNow(src.Name)
			n, dups := arc.counts()
			return n == 1002 && dups == 1001
		})
		// The status cursor is updated at the end of the poll.
		waitFor(t, "new cursor", 30*time.Second, func() bool {
			after := statusOf(m, src.Name).Cursor
			return after != before && strings.HasSuffix(after, ":1002")
		})
	})

	t.Run("imap-delete", func(t *testing.T) {
		t.Parallel()
		c := d.Client(t, "j2")
		d.Deliver(t, "j2", "INBOX", msgs)
		arc, cat := openRealArchive(t)
		src := dovecotSource(t, d, "imap", "j2", "delete")
		startManager(t, []config.Source{src}, arc, cat, opt)
		waitFor(t, "1000 imported", 120*time.Second, func() bool { n, _ := arc.counts(); return n == 1000 })
		appendAll(t, c, [][]byte{testMsg(6000)})
		waitFor(t, "all archived and expunged", 60*time.Second, func() bool {
			n, _ := arc.counts()
			return n == 1001 && inboxCount(t, c) == 0
		})
	})

	t.Run("pop3-delete", func(t *testing.T) {
		t.Parallel()
		c := d.Client(t, "j3")
		d.Deliver(t, "j3", "INBOX", msgs)
		arc, cat := openRealArchive(t)
		src := dovecotSource(t, d, "pop3", "j3", "delete")
		m, _, _ := startManager(t, []config.Source{src}, arc, cat, opt)
		waitFor(t, "1000 imported", 120*time.Second, func() bool { n, _ := arc.counts(); return n == 1000 })
		appendAll(t, c, [][]byte{testMsg(7000)})
		waitFor(t, "all archived and deleted", 60*time.Second, func() bool {
			_ = m.PollNow(src.Name)
			n, _ := arc.counts()
			return n == 1001 && inboxCount(t, c) == 0
		})
		if _, dups := arc.counts(); dups != 0 {
			t.Errorf("%d duplicates", dups)
		}
	})

	t.Run("pop3-keep", func(t *testing.T) {
		t.Parallel()
		c := d.Client(t, "j5")
		d.Deliver(t, "j5", "INBOX", msgs)
		arc, cat := openRealArchive(t)
		src := dovecotSource(t, d, "pop3", "j5", "keep")
		m, _, _ := startManager(t, []config.Source{src}, arc, cat, opt)
		waitFor(t, "1000 imported", 120*time.Second, func() bool { n, _ := arc.counts(); return n == 1000 })
		waitFor(t, "UIDL set saved", 10*time.Second, func() bool {
			return promtest.ToFloat64(m.met.uidls.WithLabelValues(src.Name)) == 1000 && statusOf(m, src.Name).State == "idle"
		})
		// A second poll fetches nothing and leaves the mailbox alone.
		calls := arc.callCount()
		polls := promtest.ToFloat64(m.met.polls.WithLabelValues(src.Name, "ok"))
		if err := m.PollNow(src.Name); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "second poll", 30*time.Second, func() bool {
			return promtest.ToFloat64(m.met.polls.WithLabelValues(src.Name, "ok")) > polls
		})
		if got := arc.callCount(); got != calls {
			t.Errorf("second poll fetched %d messages again", got-calls)
		}
		if got := inboxCount(t, c); got != 1000 {
			t.Errorf("keep mode left %d messages, want 1000", got)
		}
		if _, dups := arc.counts(); dups != 0 {
			t.Errorf("%d duplicates in keep mode", dups)
		}
		if s := statusOf(m, src.Name); s.Imported != 1000 || s.Cursor != "uidls=1000 skipped=0" {
			t.Errorf("status = %+v", s)
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		const badPW = "wrong-pw-7731"
		for _, typ := range []string{"imap", "pop3"} {
			src := dovecotSource(t, d, typ, "j4", "keep")
			src.PasswordFile = writeSecret(t, badPW)
			_, err := Test(context.Background(), src)
			if err == nil || !strings.Contains(err.Error(), "authentication as j4") {
				t.Errorf("%s: err = %v", typ, err)
			}
			if errors.Is(err, ErrInsecure) {
				t.Errorf("%s: loopback refused as insecure", typ)
			}
		}
		src := dovecotSource(t, d, "imap", "j4", "keep")
		rep, err := Test(context.Background(), src)
		if err != nil || len(rep.Folders) == 0 {
			t.Fatalf("Test: %+v, %v", rep, err)
		}

		// A running source with a wrong password: error state with a
		// clear last_error, retries with backoff, no crash; once the
		// file holds the right password it recovers on its own.
		c := d.Client(t, "j4")
		appendAll(t, c, msgs[:5])
		arc, cat := openRealArchive(t)
		var srcs []config.Source
		for _, typ := range []string{"imap", "pop3"} {
			s := dovecotSource(t, d, typ, "j4", "keep")
			s.PasswordFile = writeSecret(t, badPW)
			srcs = append(srcs, s)
		}
		fast := opt
		fast.BackoffMin, fast.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
		m, _, _ := startManager(t, srcs, arc, cat, fast)
		for _, s := range srcs {
			waitFor(t, s.Name+" retrying", 60*time.Second, func() bool {
				return promtest.ToFloat64(m.met.polls.WithLabelValues(s.Name, "error")) >= 2 && statusOf(m, s.Name).State == "error"
			})
			st := statusOf(m, s.Name)
			if !strings.Contains(st.LastError, "authentication as j4 (plain) failed") {
				t.Errorf("%s: status = %+v", s.Name, st)
			}
			if strings.Contains(st.LastError, badPW) {
				t.Errorf("%s: last_error leaks the password: %q", s.Name, st.LastError)
			}
			if st.Imported != 0 {
				t.Errorf("%s imported %d with a wrong password", s.Name, st.Imported)
			}
			if v := promtest.ToFloat64(m.met.state.WithLabelValues(s.Name, "error")) +
				promtest.ToFloat64(m.met.state.WithLabelValues(s.Name, "polling")); v != 1 {
				t.Errorf("%s: state gauge error+polling = %v", s.Name, v)
			}
		}
		for _, s := range srcs {
			if err := os.WriteFile(s.PasswordFile, []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range srcs {
			waitFor(t, s.Name+" recovered", 60*time.Second, func() bool {
				st := statusOf(m, s.Name)
				return st.State == "idle" && st.LastError == "" && st.Imported+st.Duplicates == 5
			})
		}
		if n, _ := arc.counts(); n != 5 {
			t.Errorf("archived %d, want 5", n)
		}
	})

	t.Run("tls", func(t *testing.T) {
		t.Parallel()
		testDovecotTLS(t, d, msgs[:20])
	})

	t.Run("xoauth2", func(t *testing.T) {
		t.Parallel()
		testDovecotXOAUTH2(t, d)
	})
}

// testDovecotTLS polls Dovecot over implicit TLS and STARTTLS/STLS with
// the test CA given as ca_file, and checks that a certificate from
// another CA or for another host name fails with a clear last_error.
func testDovecotTLS(t *testing.T, d *dovecot, msgs [][]byte) {
	c := d.Client(t, "j6")
	d.Deliver(t, "j6", "INBOX", msgs)
	cases := []struct {
		typ, tls string
		port     int
	}{
		{"imap", "implicit", d.IMAPSPort},
		{"imap", "starttls", d.IMAPPort},
		{"pop3", "implicit", d.POP3SPort},
		{"pop3", "starttls", d.POP3Port},
	}
	for _, tc := range cases {
		t.Run(tc.typ+"-"+tc.tls, func(t *testing.T) {
			src := dovecotSource(t, d, tc.typ, "j6", "keep")
			src.Name += "-" + tc.tls
			src.TLS, src.Port, src.CAFile = tc.tls, tc.port, d.CAFile
			rep, err := Test(context.Background(), src)
			if err != nil {
				t.Fatalf("Test: %v", err)
			}
			if len(rep.Folders) == 0 || rep.Folders[0].Name != "INBOX" || rep.Folders[0].Messages != uint32(len(msgs)) {
				t.Fatalf("report = %+v", rep)
			}
			if rep.TLS != tc.tls || !slices.Contains(rep.Capabilities, map[string]string{"imap": "IDLE", "pop3": "UIDL"}[tc.typ]) {
				t.Errorf("report = %+v", rep)
			}
			arc, cat := openRealArchive(t)
			m, _, _ := startManager(t, []config.Source{src}, arc, cat, Options{BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
			waitFor(t, "imported over TLS", 60*time.Second, func() bool {
				n, _ := arc.counts()
				return n == len(msgs)
			})
			if s := statusOf(m, src.Name); s.LastError != "" || s.Failed != 0 {
				t.Errorf("status = %+v", s)
			}
		})
	}

	// Another CA, or the right CA but a host name the certificate does
	// not name: the source fails with the reason in last_error, retries,
	// and imports nothing.
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	if _, err := certs.LoadOrCreate(otherCA, otherCA+".key", certs.Spec{CommonName: "some other CA", Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, typ, tls, host, ca, want string
		port                           int
	}{
		{"imap-other-ca", "imap", "implicit", "127.0.0.1", otherCA, "certificate signed by unknown authority", d.IMAPSPort},
		{"pop3-other-ca", "pop3", "starttls", "127.0.0.1", otherCA, "certificate signed by unknown authority", d.POP3Port},
		{"imap-wrong-host", "imap", "starttls", "localhost", d.CAFile, "certificate is valid for dovecot.test, not localhost", d.IMAPPort},
		{"pop3-wrong-host", "pop3", "implicit", "localhost", d.CAFile, "certificate is valid for dovecot.test, not localhost", d.POP3SPort},
	}
	var srcs []config.Source
	for _, b := range bad {
		src := dovecotSource(t, d, b.typ, "j6", "delete")
		src.Name, src.TLS, src.Host, src.Port, src.CAFile = b.name, b.tls, b.host, b.port, b.ca
		srcs = append(srcs, src)
		if _, err := Test(context.Background(), src); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: Test err = %v, want %q", b.name, err, b.want)
		}
	}
	arc, cat := openRealArchive(t)
	m, _, _ := startManager(t, srcs, arc, cat, Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	for _, b := range bad {
		waitFor(t, b.name+" retrying", 30*time.Second, func() bool {
			return promtest.ToFloat64(m.met.polls.WithLabelValues(b.name, "error")) >= 2 && statusOf(m, b.name).State == "error"
		})
		st := statusOf(m, b.name)
		if !strings.Contains(st.LastError, b.want) || !strings.Contains(st.LastError, `server name "`+b.host+`"`) {
			t.Errorf("%s: last_error %q (want %q and the server name)", b.name, st.LastError, b.want)
		}
	}
	if n := arc.callCount(); n != 0 {
		t.Errorf("%d messages fetched over an untrusted connection", n)
	}
	if got := inboxCount(t, c); got != uint32(len(msgs)) {
		t.Errorf("mailbox holds %d messages, want %d (nothing deleted)", got, len(msgs))
	}
}

// testDovecotXOAUTH2 logs in to Dovecot with AUTHENTICATE XOAUTH2 (IMAP,
// implicit TLS) and AUTH XOAUTH2 (POP3, STLS), and sees a wrong token
// refused without the token in last_error.
func testDovecotXOAUTH2(t *testing.T, d *dovecot) {
	c, err := imapclient.DialInsecure(fmt.Sprintf("127.0.0.1:%d", d.IMAPPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(d.OAuthUser, d.OAuthToken).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{testMsg(9001), testMsg(9002), testMsg(9003)}
	appendAll(t, c, msgs)
	mk := func(typ, tls string, port int, token string) config.Source {
		return config.Source{
			Name: typ + "-xoauth2", Type: typ, Host: "127.0.0.1", Port: port, TLS: tls, CAFile: d.CAFile,
			User: d.OAuthUser, Auth: "xoauth2", TokenFile: writeSecret(t, token), Poll: config.Duration(time.Hour),
		}
	}
	good := []config.Source{mk("imap", "implicit", d.IMAPSPort, d.OAuthToken), mk("pop3", "starttls", d.POP3Port, d.OAuthToken)}
	for _, src := range good {
		rep, err := Test(context.Background(), src)
		if err != nil || len(rep.Folders) == 0 || rep.Folders[0].Messages != 3 {
			t.Fatalf("%s: Test: %+v, %v", src.Name, rep, err)
		}
	}
	arc, cat := openRealArchive(t)
	m, _, _ := startManager(t, good, arc, cat, Options{BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
	for _, src := range good {
		waitFor(t, src.Name+" imported", 30*time.Second, func() bool {
			st := statusOf(m, src.Name)
			return st.Imported+st.Duplicates == 3 && st.State == "idle"
		})
	}
	const badToken = "ya29.expired-token-5150"
	for _, src := range []config.Source{mk("imap", "implicit", d.IMAPSPort, badToken), mk("pop3", "starttls", d.POP3Port, badToken)} {
		_, err := Test(context.Background(), src)
		if err == nil || !strings.Contains(err.Error(), "authentication as oauth (xoauth2) failed") || strings.Contains(err.Error(), badToken) {
			t.Errorf("%s with a bad token: %v", src.Name, err)
		}
	}
}
