package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cp, kp := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	spec := Spec{CommonName: "arc-a", Organization: "test", Hosts: []string{"arc-a.example", "127.0.0.1"}, ClientAuth: true}
	c1, err := LoadOrCreate(cp, kp, spec)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c1.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "arc-a" || len(leaf.DNSNames) != 1 || len(leaf.IPAddresses) != 1 || len(leaf.ExtKeyUsage) != 2 {
		t.Fatalf("certificate %+v", leaf)
	}
	if fi, err := os.Stat(kp); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", fi.Mode(), err)
	}
	c2, err := LoadOrCreate(cp, kp, spec)
	if err != nil || string(c2.Certificate[0]) != string(c1.Certificate[0]) {
		t.Fatalf("second load generated a new certificate: %v", err)
	}
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(cp, kp, spec); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("a lone key must be refused, got %v", err)
	}
}
