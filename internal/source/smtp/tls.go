package smtp

import (
	"crypto/tls"
	"fmt"
	"path/filepath"

	"github.com/mailarc/mailarc/internal/certs"
)

// File names used by SelfSignedTLS inside its directory.
const (
	CertFile = "smtp-cert.pem"
	KeyFile  = "smtp-key.pem"
)

// SelfSignedTLS returns a TLS configuration for STARTTLS using
// dir/smtp-cert.pem and dir/smtp-key.pem. When neither file exists it
// generates an ECDSA P-256 self-signed certificate for hostname (valid ten
// years) and persists it atomically, the key with mode 0600. If only one of
// the two files exists it fails rather than overwrite anything.
func SelfSignedTLS(dir, hostname string) (*tls.Config, error) {
	if hostname == "" {
		hostname = "localhost"
	}
	cert, err := certs.LoadOrCreate(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), certs.Spec{
		CommonName: hostname, Organization: "mailarc", Hosts: []string{hostname}, Years: 10,
	})
	if err != nil {
		return nil, fmt.Errorf("smtp tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
