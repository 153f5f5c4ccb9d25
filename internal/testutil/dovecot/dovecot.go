// Package dovecot starts a private, real Dovecot IMAP/POP3 server for tests
// (journal-mailbox pull, and end-to-end tests of mailarc serve).
package dovecot

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/testcert"
)

const dovecotBin = "/usr/sbin/dovecot"

// Server is a private Dovecot started by Start.
type Server struct {
	// Dir holds its config, state, log and maildirs (Dir/mail/USER).
	Dir string
	// IMAPPort and POP3Port listen on 127.0.0.1 in plaintext, offering
	// STARTTLS and STLS.
	IMAPPort, POP3Port int
	// IMAPSPort and POP3SPort listen on 127.0.0.1 with implicit TLS.
	IMAPSPort, POP3SPort int
	// CAFile is the PEM certificate of the test CA that signed the
	// server's certificate, which is valid for 127.0.0.1 and dovecot.test
	// only (so "localhost" is a wrong host name for it).
	CAFile string
	// OAuthUser logs in with XOAUTH2 and the access token OAuthToken
	// (Dovecot checks the token against the passwd-file like a
	// password), as well as with PLAIN and that token.
	OAuthUser, OAuthToken string

	uid, gid  int          // the mail user
	delivered atomic.Int64 // files written by Deliver
}

func freePort(t testing.TB) int {
	t.Helper()
	p, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Start runs a private Dovecot (as root; login processes as dovenull, mail
// as the dovecot user) with users j1..j9, password "secret", and
// OAuthUser, stopped when the test ends. It listens for IMAP and POP3 in
// plaintext (with STARTTLS/STLS) and with implicit TLS (see Server). Without /usr/sbin/dovecot or root it skips the test (fails
// under MAILARC_INTEGRATION=1).
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(dovecotBin); err != nil {
		testutil.Require(t, false, dovecotBin+" not found (apt-get install dovecot-imapd dovecot-pop3d)")
	}
	if os.Geteuid() != 0 {
		testutil.Require(t, false, "the Dovecot test starts its own dovecot and must run as root")
	}
	mu, err := user.Lookup("dovecot")
	if err != nil {
		t.Fatalf("dovecot system user: %v", err)
	}
	if _, err := user.Lookup("dovenull"); err != nil {
		t.Fatalf("dovenull system user: %v", err)
	}
	// Not t.TempDir: its parent is 0700 and dovecot's unprivileged
	// processes must reach the config, passwd file and maildirs.
	dir, err := os.MkdirTemp("", "mailarc-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &Server{Dir: dir, IMAPPort: freePort(t), POP3Port: freePort(t), IMAPSPort: freePort(t), POP3SPort: freePort(t),
		OAuthUser: "oauth", OAuthToken: "ya29.dovecot-test-token"}
	if err := os.Chmod(d.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The certificate's names: 127.0.0.1 and dovecot.test, not localhost.
	certs, err := testcert.Write(d.Dir, "mailarc dovecot test CA", "127.0.0.1", "dovecot.test")
	if err != nil {
		t.Fatalf("dovecot certificates: %v", err)
	}
	d.CAFile = certs.CA
	mail := filepath.Join(d.Dir, "mail")
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.Mkdir(filepath.Join(d.Dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var uid, gid int
	fmt.Sscan(mu.Uid, &uid)
	fmt.Sscan(mu.Gid, &gid)
	d.uid, d.gid = uid, gid
	if err := os.Chown(mail, uid, gid); err != nil {
		t.Fatal(err)
	}
	var pw strings.Builder
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&pw, "j%d:{PLAIN}secret:%d:%d::%s/j%d\n", i, uid, gid, mail, i)
	}
	fmt.Fprintf(&pw, "%s:{PLAIN}%s:%d:%d::%s/%s\n", d.OAuthUser, d.OAuthToken, uid, gid, mail, d.OAuthUser)
	if err := os.WriteFile(filepath.Join(d.Dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`protocols = imap pop3
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = mailarc-test-%[2]d
log_path = %[1]s/dovecot.log
ssl = yes
ssl_cert = <%[1]s/server.pem
ssl_key = <%[1]s/server.key
disable_plaintext_auth = no
# xoauth2 verifies the bearer token through the passdb like a password.
auth_mechanisms = plain login xoauth2
# No auth penalty between the many test logins from 127.0.0.1.
login_trusted_networks = 127.0.0.1/32
auth_failure_delay = 0
# Throwaway maildirs: the tests kill mailarc, never Dovecot.
mail_fsync = never
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = %[5]d
mail_location = maildir:%[1]s/mail/%%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = %[1]s/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[3]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[6]d
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[4]d
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = %[7]d
    ssl = yes
  }
}
`, d.Dir, d.IMAPPort, d.IMAPPort, d.POP3Port, uid, d.IMAPSPort, d.POP3SPort)
	cfg := filepath.Join(d.Dir, "dovecot.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(dovecotBin, "-F", "-c", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.log"))
			t.Logf("dovecot output:\n%s\n%s", out.String(), log)
		}
	})
	testutil.Eventually(t, 15*time.Second, "dovecot listening", func() bool {
		for _, p := range []int{d.IMAPPort, d.POP3Port, d.IMAPSPort, d.POP3SPort} {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
	return d
}

// Client logs in as userName over plaintext IMAP; closed when the test ends.
func (d *Server) Client(t testing.TB, userName string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(fmt.Sprintf("127.0.0.1:%d", d.IMAPPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(userName, "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Append appends msgs to folder, in that order (UIDs ascending). The
// APPENDs are pipelined (Dovecot offers LITERAL+), 64 at a time.
func Append(t testing.TB, c *imapclient.Client, folder string, msgs [][]byte) {
	t.Helper()
	for len(msgs) > 0 {
		n := min(len(msgs), 64)
		cmds := make([]*imapclient.AppendCommand, 0, n)
		for _, m := range msgs[:n] {
			cmd := c.Append(folder, int64(len(m)), nil)
			if _, err := cmd.Write(m); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Close(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		for _, cmd := range cmds {
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		msgs = msgs[n:]
	}
}

// Deliver drops msgs into folder ("INBOX" or a folder created before) of
// userName's maildir the way a local delivery agent does (tmp/, then a
// rename into new/), much faster than APPENDing them one by one. Dovecot
// picks them up, in this order, at its next look at the folder.
func (d *Server) Deliver(t testing.TB, userName, folder string, msgs [][]byte) {
	t.Helper()
	root := filepath.Join(d.Dir, "mail", userName)
	if folder != "INBOX" {
		root = filepath.Join(root, "."+folder)
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		p := filepath.Join(root, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range msgs {
		// Dovecot orders new files by the time in their names.
		n := d.delivered.Add(1)
		name := fmt.Sprintf("%d.M0P%d.mailarc-test", 1_000_000_000+n, n)
		tmp := filepath.Join(root, "tmp", name)
		if err := os.WriteFile(tmp, m, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(tmp, d.uid, d.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, "new", name)); err != nil {
			t.Fatal(err)
		}
	}
}

// Count returns the number of messages in folder.
func Count(t testing.TB, c *imapclient.Client, folder string) uint32 {
	t.Helper()
	sd, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return *sd.NumMessages
}
