package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	cfg  Config
	port int
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// nodeOpts adjust a test node: config changes, archive options, mail to
// ingest before the mirror starts, and test hooks.
type nodeOpts struct {
	cfg    func(*Config)
	arch   archive.Options
	before func(n *testNode)
	hooks  hooks
}

func openNode(t *testing.T, name string, port int, peers map[string]int) *testNode {
	t.Helper()
	return openNodeOpts(t, name, port, peers, nodeOpts{})
}

func openNodeOpts(t *testing.T, name string, port int, peers map[string]int, o nodeOpts) *testNode {
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
	n := &testNode{name: name, cat: cat, arch: archive.New(cat, st, o.arch), port: port}
	cert, err := LoadOrCreateKeyPair(filepath.Join(dir, "tls"), name)
	if err != nil {
		t.Fatal(err)
	}
	var pc []PeerConfig
	for pn, pp := range peers {
		pc = append(pc, PeerConfig{Name: pn, URL: fmt.Sprintf("https://127.0.0.1:%d", pp)})
	}
	n.cfg = Config{NodeName: name, Instance: "inst-" + name, Version: "1.0.0",
		Listen: fmt.Sprintf("127.0.0.1:%d", port), Secrets: [][]byte{[]byte(secretA)}, Peers: pc,
		Certificate: cert, BatchSize: 7, RetryBase: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		SlowRetry: 200 * time.Millisecond, PingInterval: time.Second}
	if o.cfg != nil {
		o.cfg(&n.cfg)
	}
	if o.before != nil {
		o.before(n)
	}
	n.startMirror(t, o.hooks)
	t.Cleanup(func() {
		ctx := context.Background()
		if n.m != nil {
			if err := n.m.Close(ctx); err != nil {
				t.Error(err)
			}
		}
		if err := n.arch.Close(ctx); err != nil {
			t.Error(err)
		}
		_ = st.Close()
		_ = cat.Close()
	})
	return n
}

// startMirror creates and starts the node's mirror over its archive (a
// restart of the mirror when one ran before: stopMirror first).
func (n *testNode) startMirror(t *testing.T, h hooks) {
	t.Helper()
	ctx := context.Background()
	m, err := New(ctx, n.cfg, n.arch)
	if err != nil {
		t.Fatal(err)
	}
	m.hooks = h
	n.arch.OnCommit(m.Notify)
	n.m = m // before Start: hooks running in the mirror's goroutines may use it
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// stopMirror closes the node's mirror (the archive stays open).
func (n *testNode) stopMirror(t *testing.T) {
	t.Helper()
	if err := n.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.m = nil
}

func testMsg(node string, i int) []byte {
	return []byte(fmt.Sprintf("From: %s-%d@example.com\r\nTo: x@example.com\r\nSubject: mirror %s %d\r\n\r\n%s\r\n",
		node, i, node, i, strings.Repeat("body text ", 50+i)))
}

func TestPushReceive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa, pb := freePort(t), freePort(t)
	var logA, logB *testutil.SyncBuffer
	a := openNodeOpts(t, "arc-a", pa, map[string]int{"arc-b": pb}, nodeOpts{cfg: func(c *Config) { logA = captureLog(c) }})
	b := openNodeOpts(t, "arc-b", pb, map[string]int{"arc-a": pa}, nodeOpts{cfg: func(c *Config) { logB = captureLog(c) }})

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
	// Hellos of lanes connecting while mail flows carry heads built at
	// different moments: none may pass for a peer restored from a backup.
	for _, l := range []*testutil.SyncBuffer{logA, logB} {
		if strings.Contains(l.String(), "lost history") {
			t.Fatalf("a peer was taken for restored while both ingested:\n%s", l.String())
		}
	}
}

// TestPeerLostAckedMessage: arc-b loses messages it had acknowledged (as
// when restored from a backup) while archiving more, so its feed head never
// goes backwards. When arc-a's backlog lane reconnects it finds arc-b lacks
// the newest message it acknowledged, re-offers everything and arc-b gets
// the lost messages back.
func TestPeerLostAckedMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa, pb := freePort(t), freePort(t)
	var logA *testutil.SyncBuffer
	a := openNodeOpts(t, "arc-a", pa, map[string]int{"arc-b": pb}, nodeOpts{cfg: func(c *Config) { logA = captureLog(c) }})
	b := openNode(t, "arc-b", pb, map[string]int{"arc-a": pa})
	var ids []string
	for i := 0; i < 12; i++ {
		r, err := a.arch.Ingest(ctx, testMsg("a", i), archive.Origin{Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	testutil.Eventually(t, 30*time.Second, "arc-b to acknowledge everything", func() bool {
		st, err := a.m.Status(ctx)
		s, _ := b.cat.Stats(ctx)
		return err == nil && st[0].Queued == 0 && s.Messages == 12
	})
	a.stopMirror(t)
	headBefore, err := b.cat.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := b.cat.DB()
	lost := ids[8:]
	for _, id := range lost {
		if _, err := w.ExecContext(ctx, `DELETE FROM messages WHERE id=?`, id); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		if _, err := b.arch.Ingest(ctx, testMsg("b", i), archive.Origin{Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := b.cat.Head(ctx); h <= headBefore {
		t.Fatalf("arc-b's head %d did not grow past %d", h, headBefore)
	}
	a.startMirror(t, hooks{})
	testutil.Eventually(t, 30*time.Second, "arc-b to get the lost messages back", func() bool {
		have, err := b.cat.Exists(ctx, lost)
		st, _ := a.m.Status(ctx)
		return err == nil && len(have) == len(lost) && len(st) == 1 && st[0].Queued == 0
	})
	if l := logA.String(); !strings.Contains(l, "arc-b no longer holds message "+lost[len(lost)-1]) || strings.Contains(l, "went backwards") {
		t.Fatalf("arc-a did not name the lost acknowledged message (or blamed the head):\n%s", l)
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

// captureLog points cfg's logger at a buffer the test can read.
func captureLog(cfg *Config) *testutil.SyncBuffer {
	buf := &testutil.SyncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(buf, nil))
	return buf
}

// bigMsg is a message of about size bytes of pseudo-random hex (it does
// not compress below the limits used here).
func bigMsg(tag string, size int) []byte {
	r := rand.New(rand.NewPCG(uint64(size), uint64(len(tag))))
	var b strings.Builder
	fmt.Fprintf(&b, "From: big@example.com\r\nTo: x@example.com\r\nSubject: big %s\r\n\r\n", tag)
	for b.Len() < size {
		fmt.Fprintf(&b, "%016x%016x%016x%016x\r\n", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
	}
	return []byte(b.String())
}

// TestParkTooLarge: arc-b accepts smaller messages than arc-a. The one
// message above arc-b's max_message_size is parked for arc-b (logged,
// counted in status) instead of blocking the queue: the cursor passes it
// and everything else arrives, also mail archived after it.
func TestParkTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const limit = 4096
	pa, pb := freePort(t), freePort(t)
	var logA *testutil.SyncBuffer
	a := openNodeOpts(t, "arc-a", pa, map[string]int{"arc-b": pb}, nodeOpts{cfg: func(c *Config) { logA = captureLog(c) }})
	b := openNodeOpts(t, "arc-b", pb, map[string]int{"arc-a": pa}, nodeOpts{
		cfg:  func(c *Config) { c.MaxMessageSize = limit },
		arch: archive.Options{MaxMessageSize: limit},
	})
	big := bigMsg("a", 40<<10)
	var bigID string
	small := 0
	for i := 0; i < 21; i++ {
		raw := testMsg("a", i)
		if i == 10 {
			raw = big
		} else {
			small++
		}
		r, err := a.arch.Ingest(ctx, raw, archive.Origin{Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			bigID = r.ID
		}
	}
	testutil.Eventually(t, 30*time.Second, "the queue to drain past the parked message", func() bool {
		st, err := a.m.Status(ctx)
		s, _ := b.cat.Stats(ctx)
		return err == nil && st[0].Queued == 0 && st[0].Parked == 1 && s.Messages == int64(small)
	})
	head, err := a.cat.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := a.m.Status(ctx); st[0].Cursor != head {
		t.Fatalf("cursor %d, want the feed head %d (past the parked message)", st[0].Cursor, head)
	}
	if parked, err := a.m.tab.isParked(ctx, "arc-b", bigID); err != nil || !parked {
		t.Fatalf("the big message is not the parked one: %v %v", parked, err)
	}
	if have, _ := b.cat.Exists(ctx, []string{bigID}); have[bigID] {
		t.Fatal("arc-b stored a message above its max_message_size")
	}
	if l := logA.String(); !strings.Contains(l, "cannot push a message; parked") || !strings.Contains(l, "too large for arc-b") || !strings.Contains(l, bigID) {
		t.Fatalf("no log line names the parked message and why:\n%s", l)
	}
	// Mail after the parked message still flows.
	r, err := a.arch.Ingest(ctx, testMsg("a", 99), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "a later message to reach arc-b", func() bool {
		have, err := b.cat.Exists(ctx, []string{r.ID})
		return err == nil && have[r.ID]
	})
	// A sender that did not know the limit: arc-b rejects the put itself
	// (permanently: the sender parks it) without storing anything.
	sum := sha256.Sum256(big)
	id, res, reason := b.m.receive(ctx, "arc-a", encodePut(sum, []byte(`{}`), a.m.enc.EncodeAll(big, nil)))
	if id != sum || res != resRejected || !strings.Contains(reason, "exceeds the size limit") {
		t.Fatalf("receive of a too large message: %q %q", res, reason)
	}
	if have, _ := b.cat.Exists(ctx, []string{bigID}); have[bigID] {
		t.Fatal("arc-b stored a message above its max_message_size")
	}
	testutil.Eventually(t, 30*time.Second, "the queue to drain again with one message parked", func() bool {
		st, err := a.m.Status(ctx)
		return err == nil && st[0].Parked == 1 && st[0].Queued == 0
	})
}

// TestBackoffBounds: the full-jitter backoff never exceeds RetryMax, grows
// with the attempt until it reaches the cap, and stays capped (no shift
// overflow) however many attempts fail.
func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ base, max time.Duration }{
		{250 * time.Millisecond, 60 * time.Second},
		{10 * time.Millisecond, 200 * time.Millisecond},
		{time.Hour, time.Minute}, // base above the cap
	} {
		m := &Mirror{cfg: Config{RetryBase: c.base, RetryMax: c.max}}
		attempt := 0
		var top time.Duration
		for i := 0; i < 5000; i++ {
			ceiling := c.max
			if i < 20 && c.base<<i < c.max {
				ceiling = c.base << i
			}
			d := m.backoff(&attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("base %s max %s attempt %d: backoff %s outside [0, %s]", c.base, c.max, i, d, ceiling)
			}
			if attempt != i+1 {
				t.Fatalf("attempt counter %d after %d calls", attempt, i+1)
			}
			if i >= 1000 {
				top = max(top, d)
			}
		}
		// 4000 uniform draws in [0, max]: the cap is reached (within 1%).
		if top < c.max*99/100 {
			t.Fatalf("base %s max %s: largest late backoff %s never came near the cap", c.base, c.max, top)
		}
	}
}

// TestMirrorMetrics: the per-peer gauges follow the peer's state: queued
// and oldest queued age while it is down, purges held back, then last
// success, an empty queue and anti-entropy buckets verified once it is up.
func TestMirrorMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa, pb := freePort(t), freePort(t)
	reg := prometheus.NewRegistry()
	a := openNodeOpts(t, "arc-a", pa, map[string]int{"arc-b": pb}, nodeOpts{cfg: func(c *Config) { c.Registerer = reg }})
	var ids []string
	for i := 0; i < 5; i++ {
		r, err := a.arch.Ingest(ctx, testMsg("a", i), archive.Origin{Source: "api", Arrival: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, mm := range mf.GetMetric() {
				for _, l := range mm.GetLabel() {
					if l.GetName() == "peer" && l.GetValue() == "arc-b" {
						return mm.GetGauge().GetValue()
					}
				}
			}
		}
		t.Fatalf("metric %s{peer=\"arc-b\"} not exported", name)
		return 0
	}
	if _, err := a.m.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if q, age, last := gauge("mailarc_mirror_queued"), gauge("mailarc_mirror_oldest_queued_age_seconds"), gauge("mailarc_mirror_last_success_timestamp_seconds"); q != 5 || age < 3500 || age > 4000 || last != 0 {
		t.Fatalf("peer down: queued %v, oldest age %v, last success %v; want 5, about 3600, 0", q, age, last)
	}
	if _, back, err := a.m.PeersHave(ctx, ids); err != nil || len(back) != 1 {
		t.Fatalf("PeersHave: %v %v", back, err)
	}
	if n := gauge("mailarc_mirror_purges_held_back"); n != 5 {
		t.Fatalf("purges held back %v, want 5", n)
	}
	before := time.Now().Add(-time.Second).Unix()
	b := openNode(t, "arc-b", pb, map[string]int{"arc-a": pa})
	waitPass(t, a, 1)
	waitPass(t, b, 1)
	// The first-contact passes may have moved the queue already; a new
	// message is surely pushed (and stored: a push success).
	if _, err := a.arch.Ingest(ctx, testMsg("a", 5), archive.Origin{Source: "api"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "arc-b to hold everything", func() bool {
		s, err := b.cat.Stats(ctx)
		return err == nil && s.Messages == 6
	})
	testutil.Eventually(t, 30*time.Second, "the gauges to show the drained queue", func() bool {
		if _, err := a.m.Status(ctx); err != nil {
			return false
		}
		return gauge("mailarc_mirror_queued") == 0 && gauge("mailarc_mirror_oldest_queued_age_seconds") == 0
	})
	if last := gauge("mailarc_mirror_last_success_timestamp_seconds"); last < float64(before) || last > float64(time.Now().Unix()+1) {
		t.Fatalf("last success %v, want about now (%d)", last, time.Now().Unix())
	}
	if v, tot := gauge("mailarc_mirror_ae_buckets_verified"), gauge("mailarc_mirror_ae_buckets_total"); tot == 0 || v != tot {
		t.Fatalf("anti-entropy buckets verified %v of %v after a completed pass", v, tot)
	}
	if _, back, err := a.m.PeersHave(ctx, ids); err != nil || len(back) != 0 {
		t.Fatalf("PeersHave after the drain: %v %v", back, err)
	}
	if n := gauge("mailarc_mirror_purges_held_back"); n != 0 {
		t.Fatalf("purges held back %v after the drain, want 0", n)
	}
}

// TestDraining: Draining reports a backlog being sent (a full batch on its
// way to the peer, so the server's indexer yields to it) and stops when
// the peer has caught up and only fresh mail trickles.
func TestDraining(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pa, pb := freePort(t), freePort(t)
	release := make(chan struct{})
	var once sync.Once
	seen := make(chan bool, 1) // Draining as the first backlog batch left
	var a *testNode
	a = openNodeOpts(t, "arc-a", pa, map[string]int{"arc-b": pb}, nodeOpts{hooks: hooks{backlogBatch: func(peer string, n int) {
		once.Do(func() {
			seen <- a.m.Draining()
			<-release
		})
	}}})
	if a.m.Draining() {
		t.Fatal("draining before any mail")
	}
	for i := 0; i < 25; i++ { // batches of 7: 7, 7, 7, 4
		if _, err := a.arch.Ingest(ctx, testMsg("d", i), archive.Origin{Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	b := openNode(t, "arc-b", pb, map[string]int{"arc-a": pa})
	select {
	case d := <-seen:
		if !d {
			t.Error("not draining while a full backlog batch is pushed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no backlog batch pushed within 30 s")
	}
	close(release)
	testutil.Eventually(t, 30*time.Second, "arc-b to hold the backlog and draining to stop", func() bool {
		s, _ := b.cat.Stats(ctx)
		return s.Messages == 25 && !a.m.Draining()
	})
	// Fresh mail one message at a time is not a backlog.
	if _, err := a.arch.Ingest(ctx, testMsg("d", 99), archive.Origin{Source: "api"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the fresh message on arc-b", func() bool {
		s, _ := b.cat.Stats(ctx)
		return s.Messages == 26
	})
	if a.m.Draining() {
		t.Error("draining after a single fresh message")
	}
}
