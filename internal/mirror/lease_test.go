package mirror

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/archive/archivetest"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

// fakeLeases records heartbeats received per peer.
type fakeLeases struct {
	node string
	mu   sync.Mutex
	got  map[string][]string
}

func (f *fakeLeases) Heartbeat(_ context.Context, peer string) ([]byte, error) {
	return []byte(f.node + "->" + peer), nil
}

func (f *fakeLeases) ReceiveHeartbeat(_ context.Context, peer string, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got[peer] = append(f.got[peer], string(p))
	return nil
}

func (f *fakeLeases) received(peer string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got[peer]...)
}

// openLeaseNode is a mirror node exchanging heartbeats (leases nil: none).
func openLeaseNode(t *testing.T, name string, port int, peer string, peerPort int, leases SourceLeases) {
	t.Helper()
	ctx := context.Background()
	env := archivetest.Open(t, archive.Options{}, store.LocalOptions{})
	arch := env.Archive
	cert, err := LoadOrCreateKeyPair(filepath.Join(env.Dir, "tls"), name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(ctx, Config{NodeName: name, Instance: "inst-" + name, Version: "1.0.0",
		Listen: fmt.Sprintf("127.0.0.1:%d", port), Secrets: [][]byte{[]byte(secretA)},
		Peers:       []PeerConfig{{Name: peer, URL: fmt.Sprintf("https://127.0.0.1:%d", peerPort)}},
		Certificate: cert, RetryBase: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		SlowRetry: 200 * time.Millisecond, Leases: leases, LeaseInterval: 50 * time.Millisecond}, arch)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(ctx); err != nil {
			t.Error(err)
		}
	})
}

// TestLeaseHeartbeats: both nodes' heartbeats reach the other side over
// the src lane, in both directions (S and its s answer), named by the
// authenticated peer; a peer without failover answers nothing.
func TestLeaseHeartbeats(t *testing.T) {
	t.Parallel()
	pa, pb := freePort(t), freePort(t)
	la := &fakeLeases{node: "a", got: map[string][]string{}}
	lb := &fakeLeases{node: "b", got: map[string][]string{}}
	openLeaseNode(t, "a", pa, "b", pb, la)
	openLeaseNode(t, "b", pb, "a", pa, lb)
	testutil.Eventually(t, 20*time.Second, "heartbeats both ways", func() bool {
		return len(la.received("b")) >= 3 && len(lb.received("a")) >= 3
	})
	for _, p := range la.received("b") {
		if p != "b->a" {
			t.Fatalf("a received %q from b", p)
		}
	}
	for _, p := range lb.received("a") {
		if p != "a->b" {
			t.Fatalf("b received %q from a", p)
		}
	}

	// A peer without failover sources answers empty heartbeats.
	pc, pd := freePort(t), freePort(t)
	lc := &fakeLeases{node: "c", got: map[string][]string{}}
	openLeaseNode(t, "c", pc, "d", pd, lc)
	openLeaseNode(t, "d", pd, "c", pc, nil)
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := lc.received("d"); len(got) > 0 {
			t.Fatalf("c received %q from a node without failover", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
