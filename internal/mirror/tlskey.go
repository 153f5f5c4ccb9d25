package mirror

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/mailarc/mailarc/internal/certs"
)

// File names of the node's mirror key pair inside the TLS directory.
const (
	CertFile = "mirror-cert.pem"
	KeyFile  = "mirror-key.pem"
)

// LoadOrCreateKeyPair returns the node's mirror certificate from dir,
// generating an ECDSA P-256 self-signed one (valid 20 years, server and
// client use) on first use. The key is written with mode 0600, atomically,
// before the certificate.
func LoadOrCreateKeyPair(dir, nodeName string) (tls.Certificate, error) {
	c, err := certs.LoadOrCreate(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), certs.Spec{
		CommonName: nodeName, Organization: "mailarc mirror", Years: 20, ClientAuth: true,
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("mirror tls: %w", err)
	}
	return c, nil
}

// Fingerprint is the lowercase hex SHA-256 of a certificate's DER bytes.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}
