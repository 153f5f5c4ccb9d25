package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
	dovecottest "github.com/mailarc/mailarc/internal/testutil/dovecot"
)

// pullCorpusMessages returns up to n distinct real messages of the corpus,
// as an MTA would journal them: CRLF line endings, ending in CRLF, no NUL
// or bare CR (which Dovecot would not store byte for byte), at most 256 kB.
func pullCorpusMessages(t *testing.T, n int) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testutil.Corpus(t), "real", "usrp", "*", "*.eml"))
	if err != nil || len(files) == 0 {
		testutil.Require(t, false, fmt.Sprintf("no corpus messages under real/usrp (%v)", err))
	}
	sort.Strings(files)
	seen := map[string]bool{}
	var out [][]byte
	for _, f := range files {
		if len(out) == n {
			break
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || len(b) > 256<<10 || bytes.IndexByte(b, 0) >= 0 {
			continue
		}
		b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
		if bytes.Count(b, []byte("\r")) != bytes.Count(b, []byte("\r\n")) {
			continue
		}
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			b = append(b, '\r', '\n')
		}
		if id := sha(b); !seen[id] {
			seen[id] = true
			out = append(out, b)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d usable corpus messages, want %d", len(out), n)
	}
	return out
}

// pullMessages is the journal of the kill -9 tests: 1,000 messages, the
// first 150 real ones from the corpus.
func pullMessages(t *testing.T) [][]byte {
	const n, real = 1000, 150
	msgs := pullCorpusMessages(t, real)
	for i := len(msgs); i < n; i++ {
		msgs = append(msgs, fmt.Appendf(nil, "From: s%d@corp.example\r\nTo: journal@corp.example\r\nSubject: pulled %d\r\nMessage-ID: <%d@pull>\r\n\r\n%s\r\n",
			i, i, i, strings.Repeat("journal body ", 50+i%200)))
	}
	return msgs
}

// offlineArchived is the number of archived messages of a stopped node,
// read from its catalog by `mailarc status`.
func offlineArchived(t *testing.T, p *proc) int64 {
	t.Helper()
	out, code := cli(t, nil, "status", "--config", p.config)
	var st struct {
		Counts struct {
			Archived int64 `json:"archived"`
		} `json:"counts"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("offline status: %d %s", code, out)
	}
	return st.Counts.Archived
}

// TestPullKill9AgainstDovecot: `mailarc serve` polls a real Dovecot journal
// mailbox of 1,000 messages (real corpus messages among them) and is
// killed -9 in the middle of the import, for IMAP and POP3 in keep and
// delete mode. At the kill, the archive holds fewer than all messages and
// (delete mode) only archived messages have left the mailbox. After the
// restart every message, and one appended during the outage, is archived
// exactly once: the restarted node imports exactly the rest, refetches at
// most one batch, and the mailbox ends empty (delete) or untouched (keep).
func TestPullKill9AgainstDovecot(t *testing.T) {
	d := dovecottest.Start(t)
	msgs := pullMessages(t)
	for _, tc := range []struct {
		name, typ, mode, user string
	}{
		{"imap-keep", "imap", "keep", "j1"},
		{"imap-delete", "imap", "delete", "j2"},
		{"pop3-keep", "pop3", "keep", "j3"},
		{"pop3-delete", "pop3", "delete", "j4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pullKill9(t, d, tc.typ, tc.mode, tc.user, msgs)
		})
	}
}

func pullKill9(t *testing.T, d *dovecottest.Server, typ, mode, user string, msgs [][]byte) {
	n := int64(len(msgs))
	d.Deliver(t, user, "INBOX", msgs)
	c := d.Client(t, user)

	dir := t.TempDir()
	pw := filepath.Join(dir, "journal.pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := d.IMAPPort
	if typ == "pop3" {
		port = d.POP3Port
	}
	p := newProc(t, dir, "")
	// [[sources]] must come after the other tables of the generated config.
	p.appendSource(fmt.Sprintf("\n[[sources]]\nname = \"journal\"\ntype = %q\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nuser = %q\npassword_file = %q\nmode = %q\npoll = \"1s\"\n",
		typ, port, user, pw, mode))

	p.start()
	var seen int64
	testutil.Eventually(t, 60*time.Second, "the import to be under way", func() bool {
		_, seen, _ = p.source("journal")
		return seen >= 150 // within the second batch of 100
	})
	p.kill()
	atKill := offlineArchived(t, p)
	inbox := int64(dovecottest.Count(t, c, "INBOX"))
	t.Logf("%s %s: killed at %d archived (status said %d), %d in the mailbox", typ, mode, atKill, seen, inbox)
	if atKill < seen || atKill >= n {
		t.Fatalf("archived at the kill: %d (status said %d), want in [%d, %d): the kill was not mid-import", atKill, seen, seen, n)
	}
	switch {
	case mode == "keep" && inbox != n:
		t.Fatalf("keep mode: %d messages in the mailbox, want %d", inbox, n)
	case mode == "delete" && (inbox == 0 || n-inbox > atKill):
		t.Fatalf("delete mode: %d of %d messages left the mailbox, only %d archived", n-inbox, n, atKill)
	}

	// One more message arrives while mailarc is down.
	late := []byte(fmt.Sprintf("From: late@corp.example\r\nSubject: arrived during the outage (%s %s)\r\nMessage-ID: <late.%s@pull>\r\n\r\nlate\r\n", typ, mode, user))
	dovecottest.Append(t, c, "INBOX", [][]byte{late})

	p.start()
	wantInbox := n + 1
	if mode == "delete" {
		wantInbox = 0
	}
	var src srcSt
	testutil.Eventually(t, 120*time.Second, "every message archived, the mailbox settled", func() bool {
		var archived int64
		src, archived, _ = p.source("journal")
		return archived == n+1 && src.State == "idle" && int64(dovecottest.Count(t, c, "INBOX")) == wantInbox
	})
	// Exactly once: the restarted node stored exactly what was missing
	// and refetched at most one batch (100) of what it had archived.
	if src.Imported != n+1-atKill || src.Duplicates > 100 || src.LastError != "" {
		t.Errorf("after the restart: imported %d (want %d), duplicates %d (want <= 100), last_error %q",
			src.Imported, n+1-atKill, src.Duplicates, src.LastError)
	}
	for i, m := range append(msgs[:len(msgs):len(msgs)], late) { // msgs is shared by the parallel modes
		code, got, err := p.do("GET", "/api/v1/messages/"+sha(m)+"/raw", nil)
		if err != nil || code != 200 || !bytes.Equal(got, m) {
			t.Fatalf("message %d: %d %v (lost or changed)", i, code, err)
		}
	}
	p.stop()
	out, code := cli(t, nil, "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("and %d catalog messages: 0 problems", n+1)) {
		t.Fatalf("verify: %d %s", code, out)
	}
	out, code = cli(t, nil, "source", "test", "--config", p.config, "journal")
	if code != 0 || !strings.Contains(out, "INBOX") {
		t.Fatalf("source test: %d %s", code, out)
	}
}
