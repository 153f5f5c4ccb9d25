package certs

import (
	"crypto/x509"
	"fmt"
	"os"
)

// LoadPool returns a pool of the PEM certificates in path: a ca_file
// trusted instead of the system roots (pull sources, the LDAP directory).
// A file without any certificate is an error, so that a wrong file does not
// silently trust nothing. Errors name the file but no configuration key;
// callers add theirs.
func LoadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err // a *fs.PathError: names the operation and the file
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
