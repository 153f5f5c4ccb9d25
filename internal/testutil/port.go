package testutil

import (
	"fmt"
	"net"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// servers that must be told their port before they start (Dovecot, slapd,
// PostgreSQL). Another process may take it meanwhile: callers that can
// tell "address in use" apart retry with a new one.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
