package smtp

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

const (
	testUser     = "journal"
	testPassword = "s3cret-Pa55word"
)

// testTLS returns a server TLS config plus a client config trusting it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	server, err := SelfSignedTLS(dir, "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("bad certificate PEM")
	}
	return server, &tls.Config{RootCAs: pool, ServerName: "mx.test"}
}

func TestSelfSignedTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := SelfSignedTLS(dir, "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", fi.Mode().Perm())
	}
	second, err := SelfSignedTLS(dir, "other-name")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Certificates[0].Certificate[0], second.Certificates[0].Certificate[0]) {
		t.Fatal("certificate regenerated on second start")
	}
	leaf, err := x509.ParseCertificate(first.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("mx.test"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, CertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := SelfSignedTLS(dir, "mx.test"); err == nil {
		t.Fatal("lone key silently replaced")
	}
	ipDir := t.TempDir()
	cfg, err := SelfSignedTLS(ipDir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

func TestStartTLS(t *testing.T) {
	t.Parallel()
	srvTLS, cliTLS := testTLS(t)
	ts := startServer(t, Config{TLSConfig: srvTLS})
	c, err := gosmtp.DialStartTLS(ts.addr, cliTLS)
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer func() { _ = c.Close() }()
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("not TLS after STARTTLS")
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS offered again inside TLS")
	}
	body := msg("tls", "secret")
	if _, err := send(c, "a@example.com", []string{"j@archive.test"}, body); err != nil {
		t.Fatal(err)
	}
	if calls := ts.ing.snapshot(); len(calls) != 1 || string(calls[0].raw) != body {
		t.Fatalf("ingested %+v", calls)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	srvTLS, cliTLS := testTLS(t)
	users := map[string]string{testUser: testPassword}

	t.Run("plain and login", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, Config{Auth: users, AuthRequired: true})
		cases := []struct {
			name   string
			client sasl.Client
			ok     bool
		}{
			{"plain good", sasl.NewPlainClient("", testUser, testPassword), true},
			{"plain good with identity", sasl.NewPlainClient(testUser, testUser, testPassword), true},
			{"plain bad password", sasl.NewPlainClient("", testUser, "wrong"), false},
			{"plain unknown user", sasl.NewPlainClient("", "nobody", testPassword), false},
			{"plain other identity", sasl.NewPlainClient("admin", testUser, testPassword), false},
			{"login good", sasl.NewLoginClient(testUser, testPassword), true},
			{"login bad password", sasl.NewLoginClient(testUser, testPassword+"x"), false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c := dial(t, ts.addr)
				// auth_required: MAIL before AUTH is refused.
				wantCode(t, c.Mail("a@example.com", nil), 530, gosmtp.EnhancedCode{5, 7, 0})
				err := c.Auth(tc.client)
				if !tc.ok {
					wantCode(t, err, 535, gosmtp.EnhancedCode{5, 7, 8})
					wantCode(t, c.Mail("a@example.com", nil), 530, gosmtp.EnhancedCode{5, 7, 0})
					return
				}
				if err != nil {
					t.Fatalf("AUTH: %v", err)
				}
				if _, err := send(c, "a@example.com", []string{"j@archive.test"}, msg(tc.name, "x")); err != nil {
					t.Fatalf("send after AUTH: %v", err)
				}
			})
		}
		if n := ts.ing.n(); n != 3 {
			t.Fatalf("ingested %d, want 3", n)
		}
		if logs := ts.logs.String(); strings.Contains(logs, testPassword) {
			t.Fatal("password appears in the log")
		}
	})

	t.Run("login without initial response", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, Config{Auth: users})
		r := dialRaw(t, "tcp", ts.addr)
		r.expect(220, "")
		r.cmd("EHLO client.test", 250, "AUTH PLAIN LOGIN")
		b64 := base64.StdEncoding.EncodeToString
		if m := r.cmd("AUTH LOGIN", 334, ""); m != b64([]byte("Username:")) {
			t.Fatalf("challenge %q", m)
		}
		if m := r.cmd(b64([]byte(testUser)), 334, ""); m != b64([]byte("Password:")) {
			t.Fatalf("challenge %q", m)
		}
		r.cmd(b64([]byte(testPassword)), 235, "2.0.0")
		r.cmd("AUTH PLAIN", 503, "") // already authenticated
		// Cancelled exchange.
		r2 := dialRaw(t, "tcp", ts.addr)
		r2.expect(220, "")
		r2.cmd("EHLO client.test", 250, "")
		r2.cmd("AUTH LOGIN", 334, "")
		r2.cmd("*", 501, "")
		r2.cmd("AUTH CRAM-MD5", 504, "")
	})

	t.Run("require_tls", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, Config{Auth: users, AuthRequired: true, RequireTLS: true, TLSConfig: srvTLS})
		c := dial(t, ts.addr)
		if ok, _ := c.Extension("AUTH"); ok {
			t.Fatal("AUTH offered before STARTTLS")
		}
		err := c.Auth(sasl.NewPlainClient("", testUser, testPassword))
		if code := smtpCode(err); code != 523 && code != 538 {
			t.Fatalf("AUTH before STARTTLS: %v", err)
		}
		wantCode(t, c.Mail("a@example.com", nil), 530, gosmtp.EnhancedCode{5, 7, 0})

		tc, err := gosmtp.DialStartTLS(ts.addr, cliTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tc.Close() }()
		if !tc.SupportsAuth("PLAIN") {
			t.Fatal("AUTH not offered after STARTTLS")
		}
		if err := tc.Auth(sasl.NewPlainClient("", testUser, testPassword)); err != nil {
			t.Fatalf("AUTH after STARTTLS: %v", err)
		}
		if _, err := send(tc, "a@example.com", []string{"j@archive.test"}, msg("tls auth", "x")); err != nil {
			t.Fatal(err)
		}
		if n := ts.ing.n(); n != 1 {
			t.Fatalf("ingested %d", n)
		}
	})

	t.Run("no users, no AUTH", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, Config{})
		c := dial(t, ts.addr)
		if ok, _ := c.Extension("AUTH"); ok {
			t.Fatal("AUTH offered without users")
		}
		if err := c.Auth(sasl.NewPlainClient("", testUser, testPassword)); err == nil {
			t.Fatal("AUTH succeeded without users")
		}
	})
}
