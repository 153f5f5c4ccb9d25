package pull

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/certs"
	"github.com/mailarc/mailarc/internal/config"
)

func TestCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if _, err := certs.LoadOrCreate(ca, filepath.Join(dir, "ca.key"), certs.Spec{CommonName: "test CA"}); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Manager{}
	src := config.Source{Name: "s", Type: "imap", Host: "mail.example.com", TLS: "implicit", CAFile: ca}
	tc, err := m.tlsConfig(src)
	if err != nil || tc.RootCAs == nil || tc.ServerName != "mail.example.com" {
		t.Fatalf("tlsConfig: %+v, %v", tc, err)
	}
	src.CAFile = ""
	if tc, err := m.tlsConfig(src); err != nil || tc.RootCAs != nil {
		t.Fatalf("without ca_file the system roots are used: %v, %v", tc.RootCAs, err)
	}
	src.CAFile = garbage
	if _, err := m.tlsConfig(src); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatalf("garbage ca_file: %v", err)
	}
	src.CAFile = filepath.Join(dir, "missing.pem")
	if _, err := m.tlsConfig(src); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "ca_file: ") {
		t.Fatalf("missing ca_file: %v", err)
	}
	// A missing file is an error of the source at connect time (status),
	// a ca_file with tls = "none" a configuration error.
	_, err = Test(context.Background(), config.Source{Name: "s", Type: "pop3", Host: "127.0.0.1", Port: 1, TLS: "starttls",
		CAFile: src.CAFile, User: "u", PasswordFile: writeSecret(t, "x")})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "ca_file: ") {
		t.Fatalf("Test with a missing ca_file: %v", err)
	}
	_, err = NewManager("n", []config.Source{{Name: "s", Type: "imap", Host: "127.0.0.1", TLS: "none", CAFile: ca, User: "u", PasswordFile: garbage}},
		newFakeArchive(), newMemState(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), `ca_file is set but tls = "none"`) {
		t.Fatalf("ca_file with tls none: %v", err)
	}
}
