package testutil

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePort: ports are bindable, never repeat within a test binary and,
// where the kernel says where its ephemeral range starts, lie below it.
func TestFreePort(t *testing.T) {
	lo, hi := fixedPorts()
	seen := map[int]bool{}
	for range 100 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if hi-lo >= 1000 && (p < lo || p >= hi) {
			t.Errorf("port %d outside [%d, %d), below the ephemeral range", p, lo, hi)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		ln.Close()
	}
}
