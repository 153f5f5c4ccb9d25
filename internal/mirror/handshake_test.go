package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// hsNode is one side of a handshake test.
type hsNode struct {
	cert    tls.Certificate
	hello   Hello
	secrets [][]byte
	peers   []string
	mu      sync.Mutex
	pins    map[string]string
}

func newHSNode(t *testing.T, name, version, instance string, secrets ...string) *hsNode {
	t.Helper()
	cert, err := LoadOrCreateKeyPair(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	n := &hsNode{cert: cert, pins: map[string]string{},
		hello: Hello{ProtoMin: protoMin, ProtoMax: protoMax, Version: version, Node: name, Instance: instance}}
	for _, s := range secrets {
		n.secrets = append(n.secrets, []byte(s))
	}
	n.hello.Cluster = ClusterID(n.secrets[0])
	return n
}

func (n *hsNode) params(role, expect string) *handshakeParams {
	p := &handshakeParams{role: role, ownFP: Fingerprint(n.cert.Certificate[0]), local: n.hello, secrets: n.secrets, expect: expect,
		pinned: func(_ context.Context, name string) (string, error) {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.pins[name], nil
		},
		pin: func(_ context.Context, name, fp string) error {
			n.mu.Lock()
			defer n.mu.Unlock()
			if n.pins[name] == "" {
				n.pins[name] = fp
			}
			return nil
		}}
	if role == "server" {
		p.known = func(name string) bool {
			for _, k := range n.peers {
				if k == name {
					return true
				}
			}
			return false
		}
	}
	return p
}

// runHS connects client to server over real TLS on loopback and returns
// both sides' handshake errors.
func runHS(t *testing.T, client, server *hsNode, expect string) (cerr, serr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{server.cert},
		ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = handshake(ctx, c.(*tls.Conn), server.params("server", ""))
		done <- err
	}()
	d := tls.Dialer{Config: &tls.Config{Certificates: []tls.Certificate{client.cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, cerr = handshake(ctx, c.(*tls.Conn), client.params("client", expect))
	c.Close()
	serr = <-done
	return cerr, serr
}

func wantState(t *testing.T, side string, err error, state, substr string) {
	t.Helper()
	var he *HandshakeError
	if !errors.As(err, &he) {
		t.Fatalf("%s: want %s refusal, got %v", side, state, err)
	}
	if he.State != state || !strings.Contains(err.Error(), substr) {
		t.Fatalf("%s: want state %s containing %q, got %s: %v", side, state, substr, he.State, err)
	}
}

const (
	secretA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	secretB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestHandshakeMatrix(t *testing.T) {
	t.Parallel()
	a := newHSNode(t, "arc-a", "1.0.0", "inst-a", secretA)
	b := newHSNode(t, "arc-b", "1.0.0", "inst-b", secretA)
	a.peers, b.peers = []string{"arc-b"}, []string{"arc-a"}

	t.Run("good", func(t *testing.T) {
		cerr, serr := runHS(t, a, b, "arc-b")
		if cerr != nil || serr != nil {
			t.Fatalf("good secret: client %v, server %v", cerr, serr)
		}
		if a.pins["arc-b"] != Fingerprint(b.cert.Certificate[0]) || b.pins["arc-a"] != Fingerprint(a.cert.Certificate[0]) {
			t.Fatalf("fingerprints not pinned after auth: %v %v", a.pins, b.pins)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		w := newHSNode(t, "arc-a", "1.0.0", "inst-a", secretB)
		cerr, serr := runHS(t, w, newHSNodeLike(t, b), "arc-b")
		wantState(t, "client", cerr, StateUnauthorized, "unauthorized")
		wantState(t, "server", serr, StateUnauthorized, "unauthorized")
	})
	t.Run("rotated", func(t *testing.T) {
		// The client already proves with the new secret; the server still
		// uses the old one first but accepts the new one, and vice versa.
		c := newHSNode(t, "arc-a", "1.0.0", "inst-a", secretB, secretA)
		s := newHSNode(t, "arc-b", "1.0.0", "inst-b", secretA, secretB)
		s.peers = []string{"arc-a"}
		if cerr, serr := runHS(t, c, s, "arc-b"); cerr != nil || serr != nil {
			t.Fatalf("rotation: client %v, server %v", cerr, serr)
		}
	})
	t.Run("version mismatch", func(t *testing.T) {
		c := newHSNode(t, "arc-a", "9.9.9", "inst-a", secretA)
		cerr, serr := runHS(t, c, newHSNodeLike(t, b), "arc-b")
		wantState(t, "client", cerr, StateVersionMismatch, "version_mismatch (local 9.9.9, peer 1.0.0)")
		wantState(t, "server", serr, StateVersionMismatch, "version_mismatch (local 1.0.0, peer 9.9.9)")
	})
	t.Run("self", func(t *testing.T) {
		s := newHSNodeLike(t, a)
		s.peers = []string{"arc-a"}
		cerr, serr := runHS(t, a, s, "arc-a")
		wantState(t, "client", cerr, StateRefused, "itself")
		wantState(t, "server", serr, StateRefused, "itself")
	})
	t.Run("duplicate name", func(t *testing.T) {
		s := newHSNode(t, "arc-a", "1.0.0", "inst-other", secretA)
		s.peers = []string{"arc-a"}
		cerr, serr := runHS(t, a, s, "arc-a")
		wantState(t, "client", cerr, StateRefused, "duplicate node name")
		wantState(t, "server", serr, StateRefused, "duplicate node name")
	})
	t.Run("unknown peer", func(t *testing.T) {
		c := newHSNode(t, "arc-x", "1.0.0", "inst-x", secretA)
		cerr, serr := runHS(t, c, newHSNodeLike(t, b), "arc-b")
		wantState(t, "server", serr, StateRefused, `unknown peer "arc-x"`)
		wantState(t, "client", cerr, StateRefused, `unknown peer "arc-x"`)
		if !cerr.(*HandshakeError).Remote {
			t.Fatal("client should report the server's refusal as remote")
		}
	})
	t.Run("dialled name differs", func(t *testing.T) {
		cerr, _ := runHS(t, a, newHSNodeLike(t, b), "arc-c")
		wantState(t, "client", cerr, StateRefused, "configured as \"arc-c\"")
	})
	t.Run("pinned certificate changed", func(t *testing.T) {
		// arc-b rebuilt with a new key pair: same secret, other certificate.
		nb := newHSNode(t, "arc-b", "1.0.0", "inst-b2", secretA)
		nb.peers = []string{"arc-a"}
		nb.pins["arc-a"] = a.pins["arc-a"]
		cerr, serr := runHS(t, a, nb, "arc-b")
		wantState(t, "client", cerr, StateRefused, "mailarc peers repair arc-b")
		wantState(t, "server", serr, StateRefused, "certificate of peer arc-b changed")
		// After repair (pin forgotten) it pins the new certificate.
		a.mu.Lock()
		delete(a.pins, "arc-b")
		a.mu.Unlock()
		if cerr, serr := runHS(t, a, nb, "arc-b"); cerr != nil || serr != nil {
			t.Fatalf("after repair: client %v, server %v", cerr, serr)
		}
	})
}

// newHSNodeLike copies n's identity (certificate, hello, secrets, peers)
// with fresh pins.
func newHSNodeLike(t *testing.T, n *hsNode) *hsNode {
	t.Helper()
	return &hsNode{cert: n.cert, hello: n.hello, secrets: n.secrets, peers: n.peers, pins: map[string]string{}}
}

// TestMITMFails: a proxy terminating TLS with its own certificate and
// relaying the frames cannot complete authentication, even relaying
// perfectly, because exporters and fingerprints differ per session.
func TestMITMFails(t *testing.T) {
	t.Parallel()
	a := newHSNode(t, "arc-a", "1.0.0", "inst-a", secretA)
	b := newHSNode(t, "arc-b", "1.0.0", "inst-b", secretA)
	a.peers, b.peers = []string{"arc-b"}, []string{"arc-a"}
	mitm := newHSNode(t, "mitm", "1.0.0", "inst-m", secretB)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	real, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{b.cert}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	front, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{mitm.cert}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	serr := make(chan error, 1)
	go func() {
		c, err := real.Accept()
		if err != nil {
			serr <- err
			return
		}
		defer c.Close()
		_, err = handshake(ctx, c.(*tls.Conn), b.params("server", ""))
		serr <- err
	}()
	go func() {
		in, err := front.Accept()
		if err != nil {
			return
		}
		defer in.Close()
		out, err := tls.Dial("tcp", real.Addr().String(), &tls.Config{Certificates: []tls.Certificate{mitm.cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			return
		}
		defer out.Close()
		go func() { _, _ = ioCopy(out, in) }()
		_, _ = ioCopy(in, out)
	}()
	d := tls.Dialer{Config: &tls.Config{Certificates: []tls.Certificate{a.cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}}
	c, err := d.DialContext(ctx, "tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, cerr := handshake(ctx, c.(*tls.Conn), a.params("client", "arc-b"))
	wantState(t, "client", cerr, StateUnauthorized, "unauthorized")
	wantState(t, "server", <-serr, StateUnauthorized, "unauthorized")
}

func ioCopy(dst, src net.Conn) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}
