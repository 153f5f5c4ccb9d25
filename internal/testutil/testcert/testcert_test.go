package testcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/mailarc/mailarc/internal/testutil/testcert"
)

// TestWrite checks that the server certificate verifies against the CA for
// each of its names and no other, and that the key file is private.
func TestWrite(t *testing.T) {
	t.Parallel()
	f, err := testcert.Write(t.TempDir(), "testcert CA", "127.0.0.1", "mail.test")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in ca.pem")
	}
	for name, want := range map[string]bool{"127.0.0.1": true, "mail.test": true, "localhost": false} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name})
		if (err == nil) != want {
			t.Errorf("verify for %s: %v, want ok=%v", name, err, want)
		}
	}
	if fi, err := os.Stat(f.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server.key: %v %v, want mode 0600", fi, err)
	}
	if _, err := testcert.Write(t.TempDir(), "CA"); err == nil {
		t.Error("Write without host names: no error")
	}
}
