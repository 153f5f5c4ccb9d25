package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// servers that must be told their port before they start (mailarc nodes
// that name each other, Dovecot, slapd, PostgreSQL).
//
// A port the kernel hands out for "127.0.0.1:0" lies in its ephemeral range,
// where it can be taken again before the server binds it: as the local end
// of any outgoing connection, or by another port-0 listener (CI once saw a
// mirror listener fail with "address already in use"). So FreePort picks
// below that range, where only explicit binds land, in sequence from a
// random start so that one test binary never hands out a port twice.
// Another process may still take it: callers that can tell "address in
// use" apart retry with a new one.
func FreePort() (int, error) {
	lo, hi := fixedPorts()
	if hi-lo >= 1000 {
		for range 200 {
			p := lo + int(nextPort.Add(1)%int64(hi-lo))
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				continue
			}
			ln.Close()
			return p, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// nextPort is FreePort's sequence (test helper state: one per test binary).
var nextPort = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(rand.Int64N(1 << 20))
	return &n
}()

// fixedPorts returns the range FreePort picks from: 10000 up to the start
// of the kernel's ephemeral range (Linux: ip_local_port_range), or an empty
// range where that is unknown.
func fixedPorts() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start <= 10000 {
		return 0, 0
	}
	return 10000, start
}
