package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
)

// The mirroring soak (DESIGN §7, tier 3): three real nodes, every link
// through a proxy the test controls, concurrent API clients, and a seeded
// chaos schedule of kill -9, SIGSTOP/SIGCONT, link cuts, flaky links and
// graceful restarts (one fault at a time, plus a link cut with a crash of
// one end inside it). Afterwards every invariant of §7 is checked. A failure
// prints the seed; rerun with MAILARC_SOAK_SEED=<seed> to replay the same
// schedule (process timing still varies). A long soak needs a larger
// go test -timeout (duration plus about five minutes).

// seededTB prefixes every failure with the soak seed.
type seededTB struct {
	testing.TB
	seed uint64
}

func (s seededTB) Fatalf(format string, args ...any) {
	s.TB.Helper()
	s.TB.Fatalf("[seed %d] "+format, append([]any{s.seed}, args...)...)
}

func (s seededTB) Errorf(format string, args ...any) {
	s.TB.Helper()
	s.TB.Errorf("[seed %d] "+format, append([]any{s.seed}, args...)...)
}

func (s seededTB) Fatal(args ...any) {
	s.TB.Helper()
	s.TB.Fatal(append([]any{fmt.Sprintf("[seed %d]", s.seed)}, args...)...)
}

// linkProxy relays one direction of a mirror link (connections from one
// node to another node's mirror listener). It reuses faultProxy's relay
// (flaky mode: resets, truncation, flipped bytes) and adds a "down" mode
// that drops every open connection and refuses new ones.
type linkProxy struct {
	ln    net.Listener
	fp    *faultProxy
	mu    sync.Mutex // guards down transitions and conns
	down  bool
	conns map[net.Conn]struct{}
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lp := &linkProxy{ln: ln, fp: &faultProxy{target: target}, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); lp.setDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			lp.mu.Lock()
			if lp.down {
				lp.mu.Unlock()
				c.Close()
				continue
			}
			lp.conns[c] = struct{}{}
			lp.mu.Unlock()
			go func() {
				lp.fp.relay(c)
				lp.mu.Lock()
				delete(lp.conns, c)
				lp.mu.Unlock()
			}()
		}
	}()
	return lp
}

func (lp *linkProxy) port() int { return lp.ln.Addr().(*net.TCPAddr).Port }

// setDown cuts (closing every relayed connection) or restores the link.
func (lp *linkProxy) setDown(down bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lp.down = down
	if down {
		for c := range lp.conns {
			c.Close()
		}
	}
}

// soakNode is one node of the soak with the logs of its earlier runs.
type soakNode struct {
	name string
	p    *proc
	up   atomic.Bool // clients only post to nodes that are up
	hist []string    // output of finished runs, oldest first
}

// keepLog records the output of a run that has ended (the process has
// exited, so its buffer is no longer written).
func (n *soakNode) keepLog() {
	if n.p.log != nil {
		n.hist = append(n.hist, n.p.log.String())
	}
}

func (n *soakNode) kill() { n.up.Store(false); n.p.kill(); n.keepLog() }
func (n *soakNode) stop() { n.up.Store(false); n.p.stop(); n.keepLog() }
func (n *soakNode) start() {
	n.p.start()
	n.up.Store(true)
}

// soakMsg is message i of the soak with seed: a unique searchable token
// sk<seed>n<i>, a date spread over three years (many anti-entropy day
// buckets) and a pseudo-random body of varying size.
func soakMsg(seed uint64, i int64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	date := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(3*365*24)) * time.Hour)
	lines := 4 + r.IntN(60)
	if r.IntN(40) == 0 {
		lines = 1500 + r.IntN(1500) // an occasional 100-200 KB message
	}
	var body strings.Builder
	for l := 0; l < lines; l++ {
		fmt.Fprintf(&body, "%016x%016x%016x%016x\r\n", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
	}
	return []byte(fmt.Sprintf("Date: %s\r\nFrom: s%d@example.com\r\nTo: archive@example.com\r\nSubject: %s soak\r\nMessage-ID: <sk%d.%d@soak>\r\n\r\n%s",
		date.Format(time.RFC1123Z), i, soakToken(seed, i), seed, i, body.String()))
}

func soakToken(seed uint64, i int64) string { return fmt.Sprintf("sk%dn%d", seed%1000000, i) }

// soakEnv returns the seed and duration from MAILARC_SOAK_SEED and
// MAILARC_SOAK_DURATION (default: time-based seed, 90s).
func soakEnv(t *testing.T) (uint64, time.Duration) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("MAILARC_SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("MAILARC_SOAK_SEED=%q: %v", v, err)
		}
		seed = s
	}
	dur := 90 * time.Second
	if v := os.Getenv("MAILARC_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("MAILARC_SOAK_DURATION=%q: want a positive Go duration like 90s or 5m", v)
		}
		dur = d
	}
	return seed, dur
}

// soakLedger is what the clients learnt: acked messages (with the node
// that acknowledged them) and messages whose fate is unknown, each by id ->
// message number (soakMsg regenerates the bytes, so a long soak does not
// hold every message in memory).
type soakLedger struct {
	mu       sync.Mutex
	acked    map[string]int64
	ackedBy  map[string]string
	maybe    map[string]int64 // no answer, an error or a non-2xx status
	problems []string
}

// TestMirrorSoak is the seeded randomised soak of three mirrored nodes.
func TestMirrorSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the mirroring soak in -short mode (set MAILARC_SOAK_DURATION to tune its length)")
	}
	seed, dur := soakEnv(t)
	st := seededTB{TB: t, seed: seed}
	// Chaos plus healing, the checks and verify take the duration and a
	// few minutes more; fail clearly instead of hitting the test timeout.
	if dl, ok := t.Deadline(); ok && time.Until(dl) < dur+4*time.Minute {
		st.Fatalf("MAILARC_SOAK_DURATION=%s leaves too little of the test deadline (%s left): raise go test -timeout",
			dur, time.Until(dl).Round(time.Second))
	}
	t.Logf("soak seed %d, chaos for %s (replay: MAILARC_SOAK_SEED=%d MAILARC_SOAK_DURATION=%s)", seed, dur, seed, dur)
	var nodes []*soakNode
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dir, err := os.MkdirTemp("", fmt.Sprintf("mailarc-soak-%d-", seed))
		if err == nil {
			for _, n := range nodes {
				logs := append(append([]string{}, n.hist...), "")
				if n.p.cmd == nil && n.p.log != nil && (len(n.hist) == 0 || n.hist[len(n.hist)-1] != n.p.log.String()) {
					logs[len(logs)-1] = n.p.log.String()
				}
				_ = os.WriteFile(filepath.Join(dir, n.name+".log"), []byte(strings.Join(logs, "\n---- restart ----\n")), 0o600)
			}
		}
		t.Logf("SOAK FAILED with seed %d; replay with MAILARC_SOAK_SEED=%d MAILARC_SOAK_DURATION=%s go test -tags sqlite_fts5 -run TestMirrorSoak ./internal/e2e (node logs in %s)",
			seed, seed, dur, dir)
	})
	rng := rand.New(rand.NewPCG(seed, 0x50a6))
	t0 := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("%6.1fs "+format, append([]any{time.Since(t0).Seconds()}, args...)...)
	}

	// Three nodes; proxies[i][j] carries node i's connections to node j.
	names := []string{"arc-a", "arc-b", "arc-c"}
	for _, name := range names {
		nodes = append(nodes, &soakNode{name: name, p: newMirrorProc(t, t.TempDir(), name, mirrorSecret)})
	}
	proxies := make([][]*linkProxy, 3)
	for i := range nodes {
		proxies[i] = make([]*linkProxy, 3)
		for j := range nodes {
			if i != j {
				proxies[i][j] = newLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", nodes[j].p.mirrorPort))
			}
		}
	}
	for i, n := range nodes {
		var peers []mirrorPeer
		for j, m := range nodes {
			if i != j {
				peers = append(peers, mirrorPeer{m.name, proxies[i][j].port()})
			}
		}
		n.p.writeMirrorConfig(n.name, mirrorSecret, peers...)
	}
	for _, n := range nodes {
		n.start()
	}

	// Clients: post unique messages to random live nodes.
	led := &soakLedger{acked: map[string]int64{}, ackedBy: map[string]string{}, maybe: map[string]int64{}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 3
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w+1)))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(5+r.IntN(30)) * time.Millisecond): // pacing, not synchronisation
				}
				var live []*soakNode
				for _, n := range nodes {
					if n.up.Load() {
						live = append(live, n)
					}
				}
				if len(live) == 0 {
					continue
				}
				n := live[r.IntN(len(live))]
				i := next.Add(1)
				raw := soakMsg(seed, i)
				id := sha(raw)
				code, body, err := soakPost(client, n.p, raw)
				led.mu.Lock()
				switch {
				case err == nil && (code == 200 || code == 201):
					var res struct {
						ID        string `json:"id"`
						Duplicate bool   `json:"duplicate"`
					}
					if jerr := json.Unmarshal(body, &res); jerr != nil || res.ID != id || res.Duplicate != (code == 200) || res.Duplicate {
						led.problems = append(led.problems, fmt.Sprintf("%s answered %d %s for a new message %s", n.name, code, body, id))
					}
					led.acked[id] = i
					led.ackedBy[id] = n.name
				default:
					led.maybe[id] = i
				}
				led.mu.Unlock()
			}
		}(w)
	}

	// Chaos: one action at a time, so at most one node is down or paused.
	actions := map[string]int{}
	deadline := time.Now().Add(dur)
	pause := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	for time.Now().Before(deadline) {
		time.Sleep(pause(time.Second, 4*time.Second)) // chaos pacing
		i := rng.IntN(3)
		n := nodes[i]
		j := (i + 1 + rng.IntN(2)) % 3
		switch a := rng.IntN(11); {
		case a < 3:
			d := pause(200*time.Millisecond, 5*time.Second)
			logf("kill -9 %s, restart after %s", n.name, d.Round(time.Millisecond))
			n.kill()
			time.Sleep(d)
			n.start()
			actions["kill"]++
		case a < 5:
			d := pause(time.Second, 5*time.Second)
			logf("SIGSTOP %s for %s", n.name, d.Round(time.Millisecond))
			n.up.Store(false)
			pid := n.p.cmd.Process.Pid
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				st.Fatalf("SIGSTOP %s: %v", n.name, err)
			}
			time.Sleep(d)
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				st.Fatalf("SIGCONT %s: %v", n.name, err)
			}
			n.up.Store(true)
			actions["pause"]++
		case a < 7:
			d := pause(2*time.Second, 8*time.Second)
			logf("cut link %s <-> %s for %s", n.name, nodes[j].name, d.Round(time.Millisecond))
			proxies[i][j].setDown(true)
			proxies[j][i].setDown(true)
			time.Sleep(d)
			proxies[i][j].setDown(false)
			proxies[j][i].setDown(false)
			actions["cut"]++
		case a < 8:
			d := pause(2*time.Second, 8*time.Second)
			logf("flaky link %s <-> %s for %s", n.name, nodes[j].name, d.Round(time.Millisecond))
			proxies[i][j].fp.faulty.Store(true)
			proxies[j][i].fp.faulty.Store(true)
			time.Sleep(d)
			proxies[i][j].fp.faulty.Store(false)
			proxies[j][i].fp.faulty.Store(false)
			actions["flaky"]++
		case a < 9:
			// Compound: the link is cut while one of its ends crashes and
			// comes back, so what it owes the other end survives a kill -9.
			d := pause(200*time.Millisecond, 3*time.Second)
			logf("cut link %s <-> %s, kill -9 %s meanwhile, restart after %s", n.name, nodes[j].name, n.name, d.Round(time.Millisecond))
			proxies[i][j].setDown(true)
			proxies[j][i].setDown(true)
			time.Sleep(pause(time.Second, 3*time.Second))
			n.kill()
			time.Sleep(d)
			n.start()
			time.Sleep(pause(time.Second, 3*time.Second))
			proxies[i][j].setDown(false)
			proxies[j][i].setDown(false)
			actions["cut+kill"]++
		default:
			logf("graceful restart of %s", n.name)
			n.stop()
			n.start()
			actions["restart"]++
		}
	}
	close(stop)
	wg.Wait()
	led.mu.Lock() // the clients are gone; hold it for tidiness
	defer led.mu.Unlock()
	perNode := map[string]int{}
	for _, by := range led.ackedBy {
		perNode[by]++
	}
	logf("chaos over: actions %v; %d acked (%v), %d of unknown fate", actions, len(led.acked), perNode, len(led.maybe))
	for _, p := range led.problems {
		st.Errorf("%s", p)
	}
	if len(led.acked) < 100 {
		st.Fatalf("only %d messages were acknowledged during the soak: the nodes were barely available", len(led.acked))
	}

	// Heal: everything is up (the chaos loop restores after each action),
	// links are whole; wait for the queues to drain, then make every node
	// run an anti-entropy pass with every peer.
	drainedAll := func(what string) {
		testutil.Eventually(st, 5*time.Minute, what, func() bool {
			for _, n := range nodes {
				s, ok := n.p.status()
				if !ok || len(s.Peers) != 2 {
					return false
				}
				for _, pr := range s.Peers {
					if pr.Queued != 0 || pr.State != "online" {
						return false
					}
				}
			}
			return true
		})
	}
	drainedAll("every push queue to drain with every peer online")
	logf("push queues drained")
	type pass struct {
		n      *soakNode
		peer   string
		before int64
	}
	var passes []pass
	for i, n := range nodes {
		for j, m := range nodes {
			if i == j {
				continue
			}
			if i == 0 { // the CLI once, the API for the rest
				passes = append(passes, pass{n, m.name, peersSync(t, n.p, m.name)})
				continue
			}
			before := n.p.passes(t, m.name)
			code, body, err := n.p.do("POST", "/api/v1/peers/"+m.name+"/sync", nil)
			if err != nil || code != 202 {
				st.Fatalf("sync %s with %s: %d %v %s", n.name, m.name, code, err, body)
			}
			passes = append(passes, pass{n, m.name, before})
		}
	}
	for _, ps := range passes {
		passDone(t, ps.n.p, ps.peer, ps.before, 5*time.Minute)
	}
	drainedAll("every push queue to drain after anti-entropy")
	logf("anti-entropy passes complete")

	// (4) Convergence by count first (cheap), then exactly below.
	minWant := int64(len(led.acked))
	testutil.Eventually(st, 3*time.Minute, "all three nodes to hold the same number of messages", func() bool {
		var counts []int64
		for _, n := range nodes {
			s, ok := n.p.status()
			if !ok {
				return false
			}
			counts = append(counts, s.Counts.Archived)
		}
		return counts[0] >= minWant && counts[0] == counts[1] && counts[1] == counts[2]
	})

	// (1) No acknowledged message lost: every one on every node, byte for byte.
	ids := make([]string, 0, len(led.acked))
	for id := range led.acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, n := range nodes {
		if missing := soakMissing(client, n.p, ids, seed, led.acked); len(missing) > 0 {
			ex := missing[0]
			st.Fatalf("%s lost %d acknowledged messages (or holds them altered), e.g. %s (acked by %s): %s",
				n.name, len(missing), ex.id, led.ackedBy[ex.id], ex.why)
		}
	}
	logf("all %d acknowledged messages are on every node, byte-identical", len(ids))

	// Unknown-fate messages: each made it everywhere or nowhere.
	maybeIDs := make([]string, 0, len(led.maybe))
	for id := range led.maybe {
		maybeIDs = append(maybeIDs, id)
	}
	sort.Strings(maybeIDs)
	present := make([]map[string]bool, len(nodes))
	for k, n := range nodes {
		present[k] = map[string]bool{}
		missing := soakMissing(client, n.p, maybeIDs, seed, led.maybe)
		gone := map[string]string{}
		for _, m := range missing {
			gone[m.id] = m.why
		}
		for _, id := range maybeIDs {
			if why, ok := gone[id]; !ok {
				present[k][id] = true
			} else if !strings.HasPrefix(why, "404") {
				st.Fatalf("%s: unacknowledged message %s: %s", n.name, id, why)
			}
		}
	}
	for _, id := range maybeIDs {
		if present[0][id] != present[1][id] || present[1][id] != present[2][id] {
			st.Fatalf("unacknowledged message %s did not converge: on arc-a %v, arc-b %v, arc-c %v",
				id, present[0][id], present[1][id], present[2][id])
		}
	}
	want := int64(len(led.acked) + len(present[0]))
	logf("%d of %d unknown-fate messages made it (on all nodes)", len(present[0]), len(maybeIDs))

	// (2) No duplicates or strays; (5) search finds what each node holds.
	for _, n := range nodes {
		var s struct {
			Counts struct{ Archived, Indexed int64 }
			Index  struct {
				Lag int64 `json:"lag_messages"`
			}
		}
		testutil.Eventually(st, 3*time.Minute, n.name+" to finish indexing", func() bool {
			code, body, err := n.p.do("GET", "/api/v1/status", nil)
			return err == nil && code == 200 && json.Unmarshal(body, &s) == nil && s.Index.Lag == 0 && s.Counts.Indexed == s.Counts.Archived
		})
		if s.Counts.Archived != want {
			st.Fatalf("%s archived %d messages, want exactly %d (%d acked + %d unacked that made it): duplicates or strays",
				n.name, s.Counts.Archived, want, len(led.acked), len(present[0]))
		}
		if total := soakSearchTotal(st, n.p, ""); total != want {
			st.Fatalf("%s: an empty search finds %d messages, want %d", n.name, total, want)
		}
		for k := 0; k < 5; k++ {
			id := ids[rng.IntN(len(ids))]
			tok := soakToken(seed, led.acked[id])
			code, body, err := n.p.do("GET", "/api/v1/search?q="+url.QueryEscape(tok), nil)
			var r struct {
				Total    int64
				Messages []struct{ ID string }
			}
			if err != nil || code != 200 || json.Unmarshal(body, &r) != nil || r.Total != 1 || len(r.Messages) != 1 || r.Messages[0].ID != id {
				st.Fatalf("%s: search %s: %d %v %s (want exactly %s)", n.name, tok, code, err, body, id)
			}
		}
	}
	logf("counts, index and search agree on every node (%d messages)", want)

	// (3) Every blob matches its id; nodes stop cleanly; no mirror trouble.
	for _, n := range nodes {
		n.stop()
	}
	for _, n := range nodes {
		verifyOK(t, n.p)
		for _, run := range n.hist {
			for _, bad := range []string{"parked", "protocol error", "do not match its id", "panic:"} {
				if strings.Contains(run, bad) {
					st.Errorf("%s logged %q", n.name, bad)
				}
			}
		}
	}
	logf("verify: 0 problems on every node")
}

func soakPost(c *http.Client, p *proc, raw []byte) (int, []byte, error) {
	return soakDo(c, p, "POST", "/api/v1/messages", raw)
}

func soakDo(c *http.Client, p *proc, method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, p.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("admin", adminPass)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

type soakMiss struct{ id, why string }

// soakMissing fetches every id's raw bytes from p (a few at a time) and
// returns those that are absent ("404 ...") or differ from the bytes of
// message num[id] of the soak with seed.
func soakMissing(c *http.Client, p *proc, ids []string, seed uint64, num map[string]int64) []soakMiss {
	var mu sync.Mutex
	var out []soakMiss
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= len(ids) {
					return
				}
				id := ids[k]
				code, got, err := soakDo(c, p, "GET", "/api/v1/messages/"+id+"/raw", nil)
				why := ""
				switch {
				case err != nil:
					why = err.Error()
				case code == 404:
					why = "404 not found"
				case code != 200:
					why = fmt.Sprintf("status %d", code)
				case !bytes.Equal(got, soakMsg(seed, num[id])):
					why = fmt.Sprintf("not byte-identical (%d bytes, want %d)", len(got), len(soakMsg(seed, num[id])))
				}
				if why != "" {
					mu.Lock()
					out = append(out, soakMiss{id, why})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func soakSearchTotal(t testing.TB, p *proc, q string) int64 {
	t.Helper()
	code, body, err := p.do("GET", "/api/v1/search?count=exact&limit=1&q="+url.QueryEscape(q), nil)
	var r struct{ Total int64 }
	if err != nil || code != 200 || json.Unmarshal(body, &r) != nil {
		t.Fatalf("search %q on %s: %d %v %s", q, p.httpAddr, code, err, body)
	}
	return r.Total
}
