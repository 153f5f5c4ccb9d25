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
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailarc/mailarc/internal/testutil"
)

const dovecotBin = "/usr/sbin/dovecot"

// Server is a private Dovecot started by Start.
type Server struct {
	// Dir holds its config, state, log and maildirs (Dir/mail/USER).
	Dir string
	// IMAPPort and POP3Port listen on 127.0.0.1, plaintext.
	IMAPPort, POP3Port int
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs a private Dovecot (as root; login processes as dovenull, mail
// as the dovecot user) with users j1..j9, password "secret", stopped when
// the test ends. Without /usr/sbin/dovecot or root it skips the test (fails
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
	d := &Server{Dir: dir, IMAPPort: freePort(t), POP3Port: freePort(t)}
	if err := os.Chmod(d.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mail := filepath.Join(d.Dir, "mail")
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.Mkdir(filepath.Join(d.Dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var uid, gid int
	fmt.Sscan(mu.Uid, &uid)
	fmt.Sscan(mu.Gid, &gid)
	if err := os.Chown(mail, uid, gid); err != nil {
		t.Fatal(err)
	}
	var pw strings.Builder
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&pw, "j%d:{PLAIN}secret:%d:%d::%s/j%d\n", i, uid, gid, mail, i)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`protocols = imap pop3
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = mailarc-test-%[2]d
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
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
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[4]d
  }
  inet_listener pop3s {
    port = 0
  }
}
`, d.Dir, d.IMAPPort, d.IMAPPort, d.POP3Port, uid)
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
		for _, p := range []int{d.IMAPPort, d.POP3Port} {
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

// Append appends msgs to folder.
func Append(t testing.TB, c *imapclient.Client, folder string, msgs [][]byte) {
	t.Helper()
	for _, m := range msgs {
		cmd := c.Append(folder, int64(len(m)), nil)
		if _, err := cmd.Write(m); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
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
