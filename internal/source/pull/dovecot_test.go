package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
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

// countingArchive wraps a real archive and counts new vs duplicate ids.
type countingArchive struct {
	a    *archive.Archive
	mu   sync.Mutex
	news map[string]int
	dups int
}

func (c *countingArchive) Ingest(ctx context.Context, raw []byte, o archive.Origin) (archive.Result, error) {
	res, err := c.a.Ingest(ctx, raw, o)
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
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenLocal(filepath.Join(dir, "store"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := archive.New(cat, st, archive.Options{})
	t.Cleanup(func() {
		if err := a.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if err := cat.Close(); err != nil {
			t.Error(err)
		}
	})
	return &countingArchive{a: a, news: map[string]int{}}, cat
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
		appendTo(t, c, "Journal", msgs)
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
		appendTo(t, c, "Journal", append(msgs, testMsg(5000), testMsg(5001)))
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
		appendAll(t, c, msgs)
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
		appendAll(t, c, msgs)
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

	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		for _, typ := range []string{"imap", "pop3"} {
			src := dovecotSource(t, d, typ, "j4", "keep")
			src.PasswordFile = writeSecret(t, "nope")
			_, err := Test(context.Background(), src)
			if err == nil || !strings.Contains(err.Error(), "authentication as j4") {
				t.Errorf("%s: err = %v", typ, err)
			}
			var insecure = errors.Is(err, ErrInsecure)
			if insecure {
				t.Errorf("%s: loopback refused as insecure", typ)
			}
		}
		src := dovecotSource(t, d, "imap", "j4", "keep")
		rep, err := Test(context.Background(), src)
		if err != nil || len(rep.Folders) == 0 {
			t.Fatalf("Test: %+v, %v", rep, err)
		}
	})
}
