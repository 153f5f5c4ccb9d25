package smtp

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// requireTool returns the path of an external client, skipping the test
// when it is missing (failing instead under MAILARC_INTEGRATION=1).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if integration() {
			t.Fatalf("%s not found but MAILARC_INTEGRATION=1: %v", name, err)
		}
		t.Skipf("%s not found; install it (or set MAILARC_INTEGRATION=1 to make this a failure)", name)
	}
	return p
}

// requireSwaksTLS checks that swaks can do STARTTLS (it needs the Perl
// module Net::SSLeay), so that a missing module is reported as such rather
// than as a TLS failure of the server.
func requireSwaksTLS(t *testing.T, swaks string) {
	t.Helper()
	out, err := exec.Command(swaks, "--support").CombinedOutput()
	if err == nil && strings.Contains(string(out), "TLS supported") {
		return
	}
	msg := fmt.Sprintf("swaks cannot do STARTTLS (install Net::SSLeay: apt-get install libnet-ssleay-perl); `swaks --support`: %v\n%s", err, out)
	if integration() {
		t.Fatalf("%s (MAILARC_INTEGRATION=1)", msg)
	}
	t.Skip(msg)
}

const pythonClient = `
import smtplib, ssl, sys
host, port, cafile, user, pw, msgdir = sys.argv[1:7]
for mode in sys.argv[7:]:
    msg = open(msgdir + '/' + mode + '.eml', 'rb').read()
    s = smtplib.SMTP(host, int(port), local_hostname='py.test', timeout=30)
    s.ehlo('py.test')
    if mode != 'plain':
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False
        s.starttls(context=ctx)
        s.ehlo('py.test')
    if mode == 'auth-plain':
        s.login(user, pw)
    elif mode == 'auth-login':
        s.user, s.password = user, pw
        s.auth('LOGIN', s.auth_login, initial_response_ok=False)
    elif mode == 'bad-auth':
        try:
            s.login(user, pw + 'x')
            sys.exit('bad password accepted')
        except smtplib.SMTPAuthenticationError as e:
            print('refused', e.smtp_code)
            s.quit()
            continue
    refused = s.sendmail('py@example.com', ['journal@archive.test', 'copy@archive.test'], msg)
    if refused:
        sys.exit('refused: %r' % refused)
    s.quit()
    print('sent', mode)
`

func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	py := requireTool(t, "python3")
	certDir := t.TempDir()
	srvTLS, err := SelfSignedTLS(certDir, "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{TLSConfig: srvTLS, Auth: map[string]string{testUser: testPassword}})
	host, port, _ := net.SplitHostPort(ts.addr)
	dir := t.TempDir()
	script := filepath.Join(dir, "client.py")
	if err := os.WriteFile(script, []byte(pythonClient), 0o600); err != nil {
		t.Fatal(err)
	}
	modes := []string{"plain", "starttls", "auth-plain", "auth-login", "bad-auth"}
	bodies := map[string]string{}
	for _, mode := range modes {
		body := "From: py@example.com\r\nTo: journal@archive.test\r\nSubject: python " + mode +
			"\r\n\r\n.leading dot line\r\nbody of " + mode + "\r\n"
		bodies[mode] = body
		if err := os.WriteFile(filepath.Join(dir, mode+".eml"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	args := append([]string{script, host, port, filepath.Join(certDir, CertFile), testUser, testPassword, dir}, modes...)
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "refused 535") {
		t.Fatalf("bad password not refused with 535:\n%s", out)
	}
	calls := ts.ing.snapshot()
	if len(calls) != len(modes)-1 {
		t.Fatalf("ingested %d, want %d\n%s", len(calls), len(modes)-1, out)
	}
	for i, mode := range modes[:len(modes)-1] {
		got := calls[i]
		if string(got.raw) != bodies[mode] || got.origin.MailFrom != "py@example.com" || len(got.origin.RcptTo) != 2 {
			t.Fatalf("%s: stored %q origin %+v", mode, got.raw, got.origin)
		}
	}
	if strings.Contains(ts.logs.String(), testPassword) {
		t.Fatal("password appears in the log")
	}
}

func TestSwaks(t *testing.T) {
	t.Parallel()
	swaks := requireTool(t, "swaks")
	requireSwaksTLS(t, swaks)
	srvTLS, err := SelfSignedTLS(t.TempDir(), "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{TLSConfig: srvTLS, Auth: map[string]string{testUser: testPassword},
		Recipients: []string{"@archive.test"}})
	host, port, _ := net.SplitHostPort(ts.addr)
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		ok   bool
	}{
		{"plain", nil, true},
		{"pipeline", []string{"--pipeline"}, true},
		{"starttls", []string{"-tls"}, true},
		{"auth plain", []string{"-tls", "--auth", "PLAIN", "--auth-user", testUser, "--auth-password", testPassword}, true},
		{"auth login", []string{"-tls", "--auth", "LOGIN", "--auth-user", testUser, "--auth-password", testPassword}, true},
		{"bad password", []string{"-tls", "--auth", "PLAIN", "--auth-user", testUser, "--auth-password", "nope"}, false},
		{"bad recipient", []string{"--to", "someone@elsewhere.example"}, false},
	}
	t.Run("clients", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				body := "From: swaks@example.com\r\nSubject: swaks " + tc.name + "\r\n\r\nline one\r\n..two dots\r\n"
				msgFile := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".eml")
				if err := os.WriteFile(msgFile, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				args := []string{"--server", host, "--port", port, "--helo", "swaks.test",
					"--from", "swaks@example.com", "--to", "journal@archive.test", "--data", "@" + msgFile,
					"--timeout", "30"}
				args = append(args, tc.args...)
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				out, err := exec.CommandContext(ctx, swaks, args...).CombinedOutput()
				if tc.ok != (err == nil) {
					t.Fatalf("swaks %s: err=%v\n%s", tc.name, err, out)
				}
				found := 0
				for _, c := range ts.ing.snapshot() {
					// swaks ends DATA with "\r\n.\r\n" even after a final CRLF.
					if got := string(c.raw); got == body || got == body+"\r\n" {
						found++
					}
				}
				if want := map[bool]int{true: 1, false: 0}[tc.ok]; found != want {
					t.Fatalf("%s: found %d stored copies, want %d\n%s", tc.name, found, want, out)
				}
			})
		}
	})
	if n, want := ts.ing.n(), 5; n != want {
		t.Fatalf("ingested %d, want %d", n, want)
	}
	if strings.Contains(ts.logs.String(), testPassword) {
		t.Fatal("password appears in the log")
	}
}
