package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
	dovecottest "github.com/mailarc/mailarc/internal/testutil/dovecot"
)

// TestPullKill9AgainstDovecot: `mailarc serve` polls a real Dovecot journal
// mailbox in delete mode and is killed -9 in the middle of the import. After
// the restart every message is archived exactly once, only archived
// messages left the mailbox, and one appended during the run is not lost.
func TestPullKill9AgainstDovecot(t *testing.T) {
	d := dovecottest.Start(t)
	c := d.Client(t, "j1")
	const n = 600
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf("From: s%d@corp.example\r\nTo: journal@corp.example\r\nSubject: pulled %d\r\nMessage-ID: <%d@pull>\r\n\r\n%s\r\n",
			i, i, i, strings.Repeat("journal body ", 50+i%200)))
	}
	dovecottest.Append(t, c, "INBOX", msgs)

	dir := t.TempDir()
	pw := filepath.Join(dir, "journal.pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("\n[[sources]]\nname = \"journal\"\ntype = \"imap\"\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nuser = \"j1\"\npassword_file = %q\nmode = \"delete\"\npoll = \"1s\"\n",
		d.IMAPPort, pw)
	p := newProc(t, dir, "")
	// [[sources]] must come after the other tables of the generated config.
	f, err := os.OpenFile(p.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(src); err != nil {
		t.Fatal(err)
	}
	f.Close()

	type status struct {
		Counts  struct{ Archived int64 }
		Sources []struct {
			Name      string
			State     string
			LastError string `json:"last_error"`
			Imported  int64
		}
	}
	get := func() status {
		var st status
		_, b, err := p.do("GET", "/api/v1/status", nil)
		if err == nil {
			_ = json.Unmarshal(b, &st)
		}
		return st
	}
	p.start()
	testutil.Eventually(t, 60*time.Second, "the import to be under way", func() bool { return get().Counts.Archived >= 50 })
	p.kill()
	// One more message arrives while mailarc is down.
	late := []byte("From: late@corp.example\r\nSubject: arrived during the outage\r\nMessage-ID: <late@pull>\r\n\r\nlate\r\n")
	dovecottest.Append(t, c, "INBOX", [][]byte{late})

	p.start()
	testutil.Eventually(t, 120*time.Second, "every message to be archived and the mailbox emptied", func() bool {
		return get().Counts.Archived == n+1 && dovecottest.Count(t, c, "INBOX") == 0
	})
	st := get()
	if len(st.Sources) != 1 || st.Sources[0].Name != "journal" {
		t.Fatalf("sources status: %+v", st.Sources)
	}
	for i, m := range append(msgs, late) {
		code, got, err := p.do("GET", "/api/v1/messages/"+sha(m)+"/raw", nil)
		if err != nil || code != 200 || string(got) != string(m) {
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
