package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailarc/mailarc/internal/testutil"
)

const (
	mirrorSecret = "e2e-shared-secret-0123456789abcdef"
	otherSecret  = "e2e-wrong-secret-fedcba9876543210"
)

// peerSt is one peers[] entry of /api/v1/status.
type peerSt struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Queued    int64  `json:"queued"`
	LastError string `json:"last_error"`
}

type nodeSt struct {
	Counts struct{ Archived, Indexed int64 }
	Peers  []peerSt
}

func (p *proc) status() (nodeSt, bool) {
	var st nodeSt
	code, body, err := p.do("GET", "/api/v1/status", nil)
	if err != nil || code != 200 {
		return st, false
	}
	return st, json.Unmarshal(body, &st) == nil
}

func (p *proc) peer(name string) (peerSt, nodeSt, bool) {
	st, ok := p.status()
	if !ok {
		return peerSt{}, st, false
	}
	for _, pr := range st.Peers {
		if pr.Name == name {
			return pr, st, true
		}
	}
	return peerSt{}, st, false
}

// mirrorPair prepares arc-a and arc-b peering each other (not started).
func mirrorPair(t *testing.T) (a, b *proc) {
	t.Helper()
	a = newMirrorProc(t, t.TempDir(), "arc-a", mirrorSecret)
	b = newMirrorProc(t, t.TempDir(), "arc-b", mirrorSecret)
	a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-b", b.mirrorPort})
	b.writeMirrorConfig("arc-b", mirrorSecret, mirrorPeer{"arc-a", a.mirrorPort})
	return a, b
}

// mirrorMsg is a test message with a searchable token tok<tag><i> and a
// body of pseudo-random hex (so it does not compress to nothing on the wire).
func mirrorMsg(tag string, i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), uint64(len(tag))+uint64(tag[0])))
	var body strings.Builder
	for l := 0; l < 10+i%60; l++ {
		fmt.Fprintf(&body, "%016x%016x%016x%016x\r\n", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
	}
	return []byte(fmt.Sprintf("From: %s%d@example.com\r\nTo: archive@example.com\r\nSubject: tok%s%d mirrored\r\nMessage-ID: <%s.%d@e2e>\r\n\r\n%s",
		tag, i, tag, i, tag, i, body.String()))
}

// ingest posts n messages tagged tag with c concurrent clients and
// returns id -> raw of every acknowledged one.
func ingest(t *testing.T, p *proc, tag string, from, n, c int) map[string][]byte {
	t.Helper()
	return ingestVia(t, p, tag, from, n, c, 0)
}

// ingestVia is ingest with every smtpEvery-th message (smtpEvery > 0) sent
// over SMTP (one session per client) instead of the API; the archive id in
// the SMTP reply must be the SHA-256 of the bytes sent.
func ingestVia(t *testing.T, p *proc, tag string, from, n, c, smtpEvery int) map[string][]byte {
	t.Helper()
	var mu sync.Mutex
	out := map[string][]byte{}
	var wg sync.WaitGroup
	var next atomic.Int64
	next.Store(int64(from))
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc *gosmtp.Client
			defer func() {
				if sc != nil {
					_ = sc.Quit()
				}
			}()
			for {
				i := int(next.Add(1) - 1)
				if i >= from+n {
					return
				}
				raw := mirrorMsg(tag, i)
				if smtpEvery > 0 && i%smtpEvery == 0 {
					var err error
					if sc == nil {
						if sc, err = dialSMTP(p.smtpAddr); err != nil {
							t.Errorf("ingest %s %d over SMTP: %v", tag, i, err)
							return
						}
					}
					id, err := sendOn(sc, "sender@example.com", []string{"archive@example.com"}, raw)
					if err != nil || id != sha(raw) {
						t.Errorf("ingest %s %d over SMTP: id %s, want %s: %v", tag, i, id, sha(raw), err)
						return
					}
				} else {
					code, body, err := p.do("POST", "/api/v1/messages", raw)
					if err != nil || (code != 201 && code != 200) {
						t.Errorf("ingest %s %d: %d %v %s", tag, i, code, err, body)
						return
					}
				}
				mu.Lock()
				out[sha(raw)] = raw
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

func merge(ms ...map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// converged waits until p holds exactly the messages of want (by count)
// and then checks every one byte for byte.
func converged(t *testing.T, p *proc, want map[string][]byte, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, fmt.Sprintf("%s to hold %d messages", p.httpAddr, len(want)), func() bool {
		st, ok := p.status()
		return ok && st.Counts.Archived >= int64(len(want))
	})
	st, _ := p.status()
	if st.Counts.Archived != int64(len(want)) {
		t.Fatalf("%s holds %d messages, want exactly %d (duplicates or strays)", p.httpAddr, st.Counts.Archived, len(want))
	}
	for id, raw := range want {
		code, got, err := p.do("GET", "/api/v1/messages/"+id+"/raw", nil)
		if err != nil || code != 200 || string(got) != string(raw) {
			t.Fatalf("%s: message %s: %d %v (missing or not byte-identical)", p.httpAddr, id, code, err)
		}
	}
}

func drained(t *testing.T, p *proc, peer string, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, "queue for "+peer+" to drain", func() bool {
		pr, _, ok := p.peer(peer)
		return ok && pr.Queued == 0 && pr.State == "online"
	})
}

// searchCount waits until an exact-count search for word on p finds want
// messages (every message of these tests has the word "mirrored").
func searchCount(t *testing.T, p *proc, word string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := soakSearchTotal(t, p, word)
		switch {
		case got == int64(want):
			return
		case got > int64(want):
			t.Fatalf("a search for %q on %s counts %d, want %d (duplicates?)", word, p.httpAddr, got, want)
		case time.Now().After(deadline):
			t.Fatalf("a search for %q on %s counts %d after %s, want %d", word, p.httpAddr, got, timeout, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func verifyOK(t *testing.T, p *proc) {
	t.Helper()
	out, code := cli(t, nil, "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, " 0 problems,") {
		t.Fatalf("verify %s: exit %d\n%s", p.config, code, out)
	}
}

// TestMirrorTwoWayKillRestart: both nodes ingest at once, over the API and
// SMTP, and converge, byte-identical and fully searchable; then B is killed
// while A ingests 2,000 more, A is restarted while B is down, and B returns
// and gets everything exactly once with A's queue drained.
func TestMirrorTwoWayKillRestart(t *testing.T) {
	t0 := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(t0).Seconds(), what) }
	a, b := mirrorPair(t)
	a.start()
	b.start()
	const n = 2000
	var ma, mb map[string][]byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ma = ingestVia(t, a, "a", 0, n, 6, 3) }()
	go func() { defer wg.Done(); mb = ingestVia(t, b, "b", 0, n, 6, 3) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	step("4,000 ingested (a third over SMTP)")
	all := merge(ma, mb)
	converged(t, a, all, 120*time.Second)
	converged(t, b, all, 120*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	drained(t, b, "arc-a", 120*time.Second)
	step("converged")
	searchCount(t, a, "mirrored", len(all), 180*time.Second)
	searchCount(t, b, "mirrored", len(all), 180*time.Second)
	step("searchable")
	out, code := cli(t, nil, "peers", "--server", "http://"+a.httpAddr)
	if code != 0 || !strings.Contains(out, "arc-b") || !strings.Contains(out, "online") {
		t.Fatalf("mailarc peers: %d\n%s", code, out)
	}

	// B dies while A is ingesting (some of the batch reached it already).
	base := len(all)
	var more map[string][]byte
	wg.Add(1)
	go func() { defer wg.Done(); more = ingestVia(t, a, "a", n, n, 4, 3) }()
	testutil.Eventually(t, 120*time.Second, "arc-b to receive part of the new batch", func() bool {
		st, ok := b.status()
		return ok && st.Counts.Archived >= int64(base+100)
	})
	b.kill()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	step("B killed during 2,000 more on A")
	var queued int64
	testutil.Eventually(t, 120*time.Second, "arc-b to show offline with a queue", func() bool {
		pr, _, ok := a.peer("arc-b")
		queued = pr.Queued
		return ok && pr.State == "offline" && pr.Queued > 0 && pr.LastError != ""
	})
	a.stop()
	a.start()
	if pr, _, _ := a.peer("arc-b"); pr.Queued != queued {
		t.Fatalf("after restart arc-a owes arc-b %d, want %d as before", pr.Queued, queued)
	}
	t.Logf("arc-a owed arc-b %d of the 2,000 when restarted", queued)
	b.start()
	all = merge(all, more)
	converged(t, b, all, 120*time.Second)
	drained(t, a, "arc-b", 180*time.Second)
	converged(t, a, all, 10*time.Second)
	searchCount(t, a, "mirrored", len(all), 180*time.Second)
	searchCount(t, b, "mirrored", len(all), 180*time.Second)
	step("B back: converged and searchable")
	noMirrorTrouble(t, a, b)
	a.stop()
	b.stop()
	verifyOK(t, a)
	verifyOK(t, b)

	// Offline listing from the data directory.
	out, code = cli(t, nil, "peers", "--config", a.config)
	if code != 0 || !strings.Contains(out, "arc-b") || !strings.Contains(out, "not running") {
		t.Fatalf("mailarc peers --config (stopped node): %d\n%s", code, out)
	}
	// arc-b rebuilt its key pair: arc-a refuses it until repaired.
	for _, f := range []string{"mirror-cert.pem", "mirror-key.pem"} {
		if err := os.Remove(filepath.Join(b.dir, "data", "tls", f)); err != nil {
			t.Fatal(err)
		}
	}
	a.start()
	b.start()
	testutil.Eventually(t, 120*time.Second, "arc-a to refuse arc-b's new certificate", func() bool {
		pr, _, ok := a.peer("arc-b")
		return ok && pr.State == "refused" && strings.Contains(pr.LastError, "certificate of peer arc-b changed") &&
			strings.Contains(pr.LastError, "mailarc peers repair arc-b")
	})
	late := ingest(t, a, "late", 0, 3, 1)
	a.stop()
	out, code = cli(t, nil, "peers", "repair", "--config", a.config, "arc-b")
	if code != 0 || !strings.Contains(out, "forgot the pinned certificate of arc-b") {
		t.Fatalf("peers repair: %d\n%s", code, out)
	}
	a.start()
	converged(t, b, merge(all, late), 180*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	step("certificate repair")
}

// noMirrorTrouble fails when a node logged a parked message or a protocol error.
func noMirrorTrouble(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		for _, bad := range []string{"parked", "protocol error", "do not match its id"} {
			if strings.Contains(p.log.String(), bad) {
				t.Errorf("%s logged %q:\n%s", p.httpAddr, bad, p.log.String())
			}
		}
	}
}

// TestMirrorFailpoints: a crash after the ack but before the push, and a
// crash after the peer stored but before the cursor was persisted, both
// end with exactly one copy on the peer and an empty queue.
func TestMirrorFailpoints(t *testing.T) {
	a, b := mirrorPair(t)
	b.start()
	want := map[string][]byte{}
	for i, fp := range []string{"mirror-before-push", "mirror-after-push-before-cursor"} {
		a.env = []string{"MAILARC_FAILPOINT=" + fp}
		a.start()
		testutil.Eventually(t, 120*time.Second, "arc-a online", func() bool {
			pr, _, ok := a.peer("arc-b")
			return ok && pr.State == "online"
		})
		raw := mirrorMsg("fp", i)
		// The pusher may reach the failpoint (and exit) before the API
		// answer is written: the commit precedes both, so the message is
		// durable either way and must reach arc-b exactly once.
		if code, _, err := a.do("POST", "/api/v1/messages", raw); err == nil && code != 201 {
			t.Fatalf("%s: ingest: %d", fp, code)
		}
		want[sha(raw)] = raw
		if c := a.waitExit(30 * time.Second); c != 137 {
			t.Fatalf("%s: exit code %d, want 137\n%s", fp, c, a.log.String())
		}
		a.env = nil
		a.start()
		converged(t, b, want, 180*time.Second)
		drained(t, a, "arc-b", 120*time.Second)
		a.stop()
	}
	// The receiver crashing after it stored but before it answered.
	b.stop()
	b.env = []string{"MAILARC_FAILPOINT=mirror-after-store-before-answer"}
	b.start()
	a.start()
	raw := mirrorMsg("fp", 9)
	if code, _, err := a.do("POST", "/api/v1/messages", raw); err != nil || code != 201 {
		t.Fatalf("ingest: %d %v", code, err)
	}
	want[sha(raw)] = raw
	if c := b.waitExit(30 * time.Second); c != 137 {
		t.Fatalf("receiver failpoint: exit %d", c)
	}
	b.env = nil
	b.start()
	converged(t, b, want, 180*time.Second)
	drained(t, a, "arc-b", 180*time.Second)
}

// faultProxy relays TCP to target, injecting latency, resets, truncation
// and flipped bytes while faulty is set.
type faultProxy struct {
	ln     net.Listener
	target string
	faulty atomic.Bool
	faults atomic.Int64
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &faultProxy{ln: ln, target: target}
	fp.faulty.Store(true)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fp.relay(c)
		}
	}()
	return fp
}

func (fp *faultProxy) port() int { return fp.ln.Addr().(*net.TCPAddr).Port }

func (fp *faultProxy) relay(in net.Conn) {
	defer in.Close()
	out, err := net.Dial("tcp", fp.target)
	if err != nil {
		return
	}
	defer out.Close()
	// Each connection gets a fate when faults are on: a budget of bytes
	// after which it is reset, truncated or corrupted.
	budget := int64(-1)
	mode := 0
	if fp.faulty.Load() {
		budget, mode = int64(rand.IntN(96<<10)), rand.IntN(3)
	}
	done := make(chan struct{}, 2)
	var mu sync.Mutex // guards budget between the two directions
	pipe := func(dst, src net.Conn, faulty bool) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 16<<10)
		var n int64
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if fp.faulty.Load() {
					time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
				}
				mu.Lock()
				hit := faulty && budget >= 0 && n+int64(k) > budget && fp.faulty.Load()
				if hit && mode == 2 {
					budget = -1
				}
				mu.Unlock()
				if hit {
					fp.faults.Add(1)
					switch mode {
					case 0: // reset mid-stream
						if tc, ok := dst.(*net.TCPConn); ok {
							_ = tc.SetLinger(0)
						}
						return
					case 1: // truncate: forward part, then close
						_, _ = dst.Write(buf[:k/2])
						return
					default: // corrupt one byte and carry on
						buf[rand.IntN(k)] ^= 0x40
					}
				}
				if _, err := dst.Write(buf[:k]); err != nil {
					return
				}
				n += int64(k)
			}
			if err != nil {
				return
			}
		}
	}
	go pipe(out, in, true)
	go pipe(in, out, true)
	<-done
}

// TestMirrorFaultProxy: both links go through a proxy that delays, resets,
// truncates and corrupts; no wrong blob is ever stored and both converge.
func TestMirrorFaultProxy(t *testing.T) {
	a := newMirrorProc(t, t.TempDir(), "arc-a", mirrorSecret)
	b := newMirrorProc(t, t.TempDir(), "arc-b", mirrorSecret)
	toA := newFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", a.mirrorPort))
	toB := newFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", b.mirrorPort))
	a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-b", toB.port()})
	b.writeMirrorConfig("arc-b", mirrorSecret, mirrorPeer{"arc-a", toA.port()})
	a.start()
	b.start()
	var ma, mb map[string][]byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ma = ingest(t, a, "pa", 0, 500, 4) }()
	go func() { defer wg.Done(); mb = ingest(t, b, "pb", 0, 500, 4) }()
	wg.Wait()
	// Let the faults bite for a while, then heal the links.
	testutil.Eventually(t, 120*time.Second, "faults to be injected", func() bool { return toA.faults.Load()+toB.faults.Load() >= 4 })
	toA.faulty.Store(false)
	toB.faulty.Store(false)
	all := merge(ma, mb)
	converged(t, a, all, 150*time.Second)
	converged(t, b, all, 150*time.Second)
	drained(t, a, "arc-b", 180*time.Second)
	drained(t, b, "arc-a", 180*time.Second)
	noMirrorTrouble(t, a, b)
	t.Logf("faults injected: %d towards arc-a, %d towards arc-b", toA.faults.Load(), toB.faults.Load())
	a.stop()
	b.stop()
	verifyOK(t, a)
	verifyOK(t, b)
}

// TestMirrorRefusals: wrong secret, another release, a node peering with
// itself and a duplicate node name are refused with the named state, logged
// with the reason on both nodes where both refuse; nothing crosses, the
// queue is kept, and mirroring resumes by itself once the broken node's
// configuration is fixed and only that node restarted.
func TestMirrorRefusals(t *testing.T) {
	otherBin := filepath.Join(t.TempDir(), "mailarc-9.9.9")
	build := exec.Command("go", "build", "-tags", "sqlite_fts5", "-ldflags", "-X github.com/mailarc/mailarc/internal/version.Version=9.9.9",
		"-o", otherBin, "github.com/mailarc/mailarc/cmd/mailarc")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a 9.9.9 binary: %v\n%s", err, out)
	}
	cases := []struct {
		name      string
		state     string
		msg       string
		bothSides bool
		// bLog is the reason arc-b logs ("" when arc-b takes no part).
		bLog    string
		breakIt func(a, b *proc)
		// fixIt repairs the configuration and returns the node to restart.
		fixIt func(a, b *proc) *proc
	}{
		{"wrong secret", "unauthorized", "unauthorized", true, "unauthorized: arc-a did not prove the shared secret",
			func(a, b *proc) { b.writeMirrorConfig("arc-b", otherSecret, mirrorPeer{"arc-a", a.mirrorPort}) },
			func(a, b *proc) *proc {
				b.writeMirrorConfig("arc-b", mirrorSecret, mirrorPeer{"arc-a", a.mirrorPort})
				return b
			}},
		{"version", "version_mismatch", "version_mismatch (local 0.1.0-dev, peer 9.9.9)", true, "version_mismatch (local 9.9.9, peer 0.1.0-dev)",
			func(a, b *proc) { b.bin = otherBin },
			func(a, b *proc) *proc { b.bin = ""; return b }},
		{"self", "refused", "itself", false, "",
			func(a, b *proc) { a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-b", a.mirrorPort}) },
			func(a, b *proc) *proc {
				a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-b", b.mirrorPort})
				return a
			}},
		{"duplicate name", "refused", "duplicate node name", false, "duplicate node name",
			func(a, b *proc) { b.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-a", a.mirrorPort}) },
			func(a, b *proc) *proc {
				b.writeMirrorConfig("arc-b", mirrorSecret, mirrorPeer{"arc-a", a.mirrorPort})
				return b
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mirrorPair(t)
			tc.breakIt(a, b)
			a.start()
			b.start()
			sent := ingest(t, a, "r", 0, 5, 2)
			testutil.Eventually(t, 120*time.Second, "arc-a to show "+tc.state, func() bool {
				pr, _, ok := a.peer("arc-b")
				return ok && pr.State == tc.state && strings.Contains(pr.LastError, tc.msg) && pr.Queued == 5
			})
			if tc.bothSides {
				testutil.Eventually(t, 120*time.Second, "arc-b to show "+tc.state, func() bool {
					pr, _, ok := b.peer("arc-a")
					return ok && pr.State == tc.state
				})
			}
			if !strings.Contains(a.log.String(), tc.msg) {
				t.Errorf("arc-a's log does not name the reason %q:\n%s", tc.msg, a.log.String())
			}
			if tc.bLog != "" {
				testutil.Eventually(t, 60*time.Second, "arc-b to log the reason", func() bool {
					return strings.Contains(b.log.String(), tc.bLog)
				})
			}
			if st, _ := b.status(); st.Counts.Archived != 0 {
				t.Fatalf("%d messages crossed a refused link", st.Counts.Archived)
			}
			fixed := tc.fixIt(a, b)
			fixed.stop()
			fixed.start()
			converged(t, b, sent, 180*time.Second)
			drained(t, a, "arc-b", 180*time.Second)
			a.stop()
			b.stop()
		})
	}
}
