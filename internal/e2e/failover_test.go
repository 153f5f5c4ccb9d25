package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
	dovecottest "github.com/mailarc/mailarc/internal/testutil/dovecot"
)

// srcSt is one sources[] entry of /api/v1/status.
type srcSt struct {
	Name          string    `json:"name"`
	Owner         string    `json:"owner"`
	State         string    `json:"state"`
	Poller        string    `json:"poller"`
	LeaseEpoch    uint64    `json:"lease_epoch"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	Imported      int64     `json:"imported"`
	Duplicates    int64     `json:"duplicates"`
	LastError     string    `json:"last_error"`
}

// source returns the named sources[] entry of p's status.
func (p *proc) source(name string) (srcSt, int64, bool) {
	var st struct {
		Counts  struct{ Archived int64 }
		Sources []srcSt
	}
	code, body, err := p.do("GET", "/api/v1/status", nil)
	if err != nil || code != 200 || json.Unmarshal(body, &st) != nil {
		return srcSt{}, 0, false
	}
	for _, s := range st.Sources {
		if s.Name == name {
			return s, st.Counts.Archived, true
		}
	}
	return srcSt{}, st.Counts.Archived, false
}

// appendSource adds a [[sources]] table to p's config.
func (p *proc) appendSource(toml string) {
	p.t.Helper()
	f, err := os.OpenFile(p.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(toml); err != nil {
		p.t.Fatal(err)
	}
}

func failoverMsgs(tag string, from, n int) ([][]byte, map[string][]byte) {
	var list [][]byte
	byID := map[string][]byte{}
	for i := from; i < from+n; i++ {
		m := []byte(fmt.Sprintf("From: s%d@corp.example\r\nTo: journal@corp.example\r\nSubject: failover %s %d\r\nMessage-ID: <%s.%d@failover>\r\n\r\njournal body %s %d\r\n",
			i, tag, i, tag, i, tag, i))
		list = append(list, m)
		byID[sha(m)] = m
	}
	return list, byID
}

// journalSource is the [[sources]] table of the failover tests.
func journalSource(t *testing.T, dir string, port int, user, extra string) string {
	pw := filepath.Join(dir, "journal.pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[[sources]]\nname = \"journal\"\ntype = \"imap\"\nhost = \"127.0.0.1\"\nport = %d\ntls = \"none\"\nuser = %q\npassword_file = %q\nmode = \"delete\"\npoll = \"500ms\"\nowner = \"arc-a\"\n%s",
		port, user, pw, extra)
}

// TestSourceFailover: arc-a owns a Dovecot journal mailbox in delete mode,
// arc-b is its standby. A imports; A is killed -9; B takes over after
// takeover_after under lease epoch 1 and imports what arrived meanwhile;
// A restarts, and once it is healthy the source goes back to it (epoch 2).
// In the end every message is archived exactly once on both nodes and the
// mailbox is empty.
func TestSourceFailover(t *testing.T) {
	d := dovecottest.Start(t)
	c := d.Client(t, "j2")
	a, b := mirrorPair(t)
	a.appendSource(journalSource(t, a.dir, d.IMAPPort, "j2", "standby = [\"arc-b\"]\ntakeover_after = \"3s\"\n"))
	b.appendSource(journalSource(t, b.dir, d.IMAPPort, "j2", "standby = [\"arc-b\"]\ntakeover_after = \"3s\"\n"))

	batch1, want1 := failoverMsgs("one", 0, 20)
	dovecottest.Append(t, c, "INBOX", batch1)
	a.start()
	b.start()
	testutil.Eventually(t, 30*time.Second, "arc-a to import and empty the mailbox", func() bool {
		s, n, ok := a.source("journal")
		return ok && n == 20 && s.Poller == "arc-a" && dovecottest.Count(t, c, "INBOX") == 0
	})
	testutil.Eventually(t, 30*time.Second, "arc-b to see arc-a's heartbeats", func() bool {
		s, _, ok := b.source("journal")
		return ok && s.State == "standby" && s.Poller == "arc-a" && !s.LastHeartbeat.IsZero()
	})
	converged(t, b, want1, 30*time.Second)

	// The owner dies; mail keeps arriving.
	a.kill()
	batch2, want2 := failoverMsgs("two", 20, 20)
	dovecottest.Append(t, c, "INBOX", batch2)
	var took srcSt
	var seen time.Time
	testutil.Eventually(t, 30*time.Second, "arc-b to take over and import", func() bool {
		s, n, ok := b.source("journal")
		took, seen = s, time.Now()
		return ok && s.Poller == "arc-b" && s.LeaseEpoch == 1 && n == 40 && dovecottest.Count(t, c, "INBOX") == 0
	})
	// arc-b's rule is takeover_after of silence since the last heartbeat it
	// heard, which can be up to a heartbeat (or, on a loaded machine, more)
	// before the kill; so the wait is measured from that heartbeat, as
	// arc-b reports it.
	if since := seen.Sub(took.LastHeartbeat); since < 3*time.Second {
		t.Fatalf("arc-b took over %v after the last heartbeat it heard from arc-a, before takeover_after", since)
	} else {
		t.Logf("arc-b took over and imported %v after the last heartbeat it heard from arc-a", since)
	}

	// The owner comes back and gets the source back once healthy.
	a.start()
	testutil.Eventually(t, 30*time.Second, "the source to go back to arc-a", func() bool {
		sa, _, okA := a.source("journal")
		sb, _, okB := b.source("journal")
		return okA && okB && sa.Poller == "arc-a" && sa.LeaseEpoch == 2 && sb.Poller == "arc-a" && sb.LeaseEpoch == 2 && sb.State == "standby"
	})
	batch3, want3 := failoverMsgs("three", 40, 20)
	dovecottest.Append(t, c, "INBOX", batch3)
	testutil.Eventually(t, 30*time.Second, "arc-a to import again", func() bool {
		_, n, ok := a.source("journal")
		return ok && n == 60 && dovecottest.Count(t, c, "INBOX") == 0
	})
	all := merge(want1, want2, want3)
	converged(t, a, all, 60*time.Second)
	converged(t, b, all, 60*time.Second)
	if s, _, _ := b.source("journal"); s.Imported != 20 {
		t.Fatalf("arc-b imported %d messages from the mailbox, want exactly the 20 of its takeover", s.Imported)
	}
	if dovecottest.Count(t, c, "INBOX") != 0 {
		t.Fatal("mailbox not empty")
	}
	a.stop()
	b.stop()
	verifyOK(t, a)
	verifyOK(t, b)
}

// TestSourceNoStandbyNeverPolls: without standby nodes a peer never polls
// a source owned by a node that is down.
func TestSourceNoStandbyNeverPolls(t *testing.T) {
	d := dovecottest.Start(t)
	c := d.Client(t, "j3")
	msgs, _ := failoverMsgs("nostandby", 0, 5)
	dovecottest.Append(t, c, "INBOX", msgs)
	_, b := mirrorPair(t)
	src := journalSource(t, b.dir, d.IMAPPort, "j3", "takeover_after = \"1s\"\n")
	b.appendSource(src)
	b.start()
	// arc-a never starts: watch arc-b for several takeover periods.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s, n, ok := b.source("journal")
		if !ok || s.State != "not_owner" || s.Poller != "arc-a" || n != 0 || s.LeaseEpoch != 0 {
			t.Fatalf("arc-b polled a source it does not own: %+v, archived %d", s, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := dovecottest.Count(t, c, "INBOX"); got != 5 {
		t.Fatalf("mailbox holds %d messages, want the 5 untouched", got)
	}
}
