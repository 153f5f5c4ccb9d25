package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

// testNode is an in-process archive with a mirror.
type testNode struct {
	name string
	cat  *catalog.Catalog
	arch *archive.Archive
	m    *Mirror
	port int
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func openNode(t *testing.T, name string, port int, peers map[string]int) *testNode {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenLocal(filepath.Join(dir, "store"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{name: name, cat: cat, arch: archive.New(cat, st, archive.Options{}), port: port}
	cert, err := LoadOrCreateKeyPair(filepath.Join(dir, "tls"), name)
	if err != nil {
		t.Fatal(err)
	}
	var pc []PeerConfig
	for pn, pp := range peers {
		pc = append(pc, PeerConfig{Name: pn, URL: fmt.Sprintf("https://127.0.0.1:%d", pp)})
	}
	n.m, err = New(ctx, Config{NodeName: name, Instance: "inst-" + name, Version: "1.0.0",
		Listen: fmt.Sprintf("127.0.0.1:%d", port), Secrets: [][]byte{[]byte(secretA)}, Peers: pc,
		Certificate: cert, BatchSize: 7, RetryBase: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		SlowRetry: 200 * time.Millisecond, PingInterval: time.Second}, n.arch)
	if err != nil {
		t.Fatal(err)
	}
	n.arch.OnCommit(n.m.Notify)
	if err := n.m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if err := n.m.Close(ctx); err != nil {
			t.Error(err)
		}
		if err := n.arch.Close(ctx); err != nil {
			t.Error(err)
		}
		_ = st.Close()
		_ = cat.Close()
	})
	return n
}

func testMsg(node string, i int) []byte {
	return []byte(fmt.Sprintf("From: %s-%d@example.com\r\nTo: x@example.com\r\nSubject: mirror %s %d\r\n\r\n%s\r\n",
		node, i, node, i, strings.Repeat("body text ", 50+i)))
}

func TestPushReceive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa, pb := freePort(t), freePort(t)
	a := openNode(t, "arc-a", pa, map[string]int{"arc-b": pb})
	b := openNode(t, "arc-b", pb, map[string]int{"arc-a": pa})

	want := map[string][]byte{}
	for i := 0; i < 40; i++ {
		for _, n := range []*testNode{a, b} {
			raw := testMsg(n.name, i)
			r, err := n.arch.Ingest(ctx, raw, archive.Origin{Source: "api", MailFrom: "sender@example.com", RcptTo: []string{"hidden@example.com"}})
			if err != nil {
				t.Fatal(err)
			}
			want[r.ID] = raw
		}
	}
	for _, n := range []*testNode{a, b} {
		testutil.Eventually(t, 30*time.Second, n.name+" to hold every message", func() bool {
			s, err := n.cat.Stats(ctx)
			return err == nil && s.Messages == int64(len(want))
		})
	}
	for id, raw := range want {
		for _, n := range []*testNode{a, b} {
			got, err := n.arch.Raw(ctx, id)
			if err != nil || string(got) != string(raw) {
				t.Fatalf("%s: %s differs or missing: %v", n.name, id, err)
			}
		}
		mb, err := b.arch.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "arc-a-") {
			if fmt.Sprint(mb.Origins) != "[peer:arc-a]" || fmt.Sprint(mb.RcptTo) != "[hidden@example.com]" || fmt.Sprint(mb.MailFrom) != "[sender@example.com]" {
				t.Fatalf("copy on arc-b lacks metadata: origins %v rcpt %v from %v", mb.Origins, mb.RcptTo, mb.MailFrom)
			}
		}
	}
	for _, n := range []*testNode{a, b} {
		testutil.Eventually(t, 30*time.Second, n.name+" queue to drain", func() bool {
			st, err := n.m.Status(ctx)
			return err == nil && len(st) == 1 && st[0].Queued == 0 && st[0].State == StateOnline
		})
	}
	// Mail that came from a peer is not pushed back: nothing was stored
	// twice and no "stored" result came back for a peer copy.
	st, _ := a.m.Status(ctx)
	if st[0].Fingerprint == "" || st[0].LastSuccess == nil {
		t.Fatalf("status: %+v", st[0])
	}
}

// TestCorruptPutRejected: a put whose bytes do not hash to its id is
// rejected and nothing is stored; a good one after it is stored.
func TestCorruptPutRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa, pb := freePort(t), freePort(t)
	a := openNode(t, "arc-a", pa, map[string]int{"arc-b": pb})
	b := openNode(t, "arc-b", pb, map[string]int{"arc-a": pa})
	s, closeConn, err := a.m.dial(ctx, a.m.peers["arc-b"], "test")
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()

	good := testMsg("x", 1)
	id := sha256.Sum256(good)
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 1
	truncated := good[:len(good)/2]
	send := func(data []byte, zdata []byte) (byte, string) {
		if zdata == nil {
			zdata = a.m.enc.EncodeAll(data, nil)
		}
		if err := writeFrame(s.conn, framePut, encodePut(id, []byte(`{}`), zdata)); err != nil {
			t.Fatal(err)
		}
		f, err := readFrame(s.r, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		_, res, reason, err := decodeResult(f.payload)
		if err != nil {
			t.Fatal(err)
		}
		return res, reason
	}
	for name, c := range map[string]struct{ data, z []byte }{
		"flipped":        {bad, nil},
		"truncated":      {truncated, nil},
		"broken zstd":    {nil, a.m.enc.EncodeAll(good, nil)[:20]},
		"not compressed": {nil, good},
	} {
		if res, reason := send(c.data, c.z); res != resRejected {
			t.Fatalf("%s: got %q (%s), want rejected", name, res, reason)
		}
		if have, _ := b.cat.Exists(ctx, []string{hex.EncodeToString(id[:])}); len(have) != 0 {
			t.Fatalf("%s: a wrong blob was stored", name)
		}
	}
	if s, _ := b.cat.Stats(ctx); s.Messages != 0 {
		t.Fatalf("%d messages stored from corrupt puts", s.Messages)
	}
	if res, reason := send(good, nil); res != resStored {
		t.Fatalf("good put: %q %s", res, reason)
	}
	if res, _ := send(good, nil); res != resHave {
		t.Fatalf("second good put: %q, want have", res)
	}
	got, err := b.arch.Raw(ctx, hex.EncodeToString(id[:]))
	if err != nil || string(got) != string(good) {
		t.Fatalf("stored copy: %v", err)
	}
}

// TestPeerDownThenBack: while the peer is down the queue is kept and
// shown with an error; once the peer is up it drains by itself.
func TestPeerDownThenBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa, pb := freePort(t), freePort(t)
	a := openNode(t, "arc-a", pa, map[string]int{"arc-b": pb})
	for i := 0; i < 25; i++ {
		if _, err := a.arch.Ingest(ctx, testMsg("a", i), archive.Origin{Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "arc-b to show offline with a queue", func() bool {
		st, err := a.m.Status(ctx)
		return err == nil && st[0].State == StateOffline && st[0].Queued == 25 && st[0].LastError != ""
	})
	b := openNode(t, "arc-b", pb, map[string]int{"arc-a": pa})
	testutil.Eventually(t, 30*time.Second, "queue to drain once arc-b is up", func() bool {
		st, err := a.m.Status(ctx)
		s, _ := b.cat.Stats(ctx)
		return err == nil && st[0].Queued == 0 && s.Messages == 25
	})
}
