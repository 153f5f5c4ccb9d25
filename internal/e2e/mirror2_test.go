package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
)

// Mirroring II: anti-entropy, backfill, tombstones, purge safety, policy
// drift, shared sessions and accounts (DESIGN §6).

// aeSt is the part of /api/v1/status these tests read.
type aeSt struct {
	Counts struct{ Archived int64 }
	Peers  []struct {
		Name        string `json:"name"`
		State       string `json:"state"`
		Queued      int64  `json:"queued"`
		AntiEntropy struct {
			State        string     `json:"state"`
			Verified     int64      `json:"buckets_verified"`
			Total        int64      `json:"buckets_total"`
			LastComplete *time.Time `json:"last_complete"`
			Passes       int64      `json:"passes_completed"`
			Pulled       int64      `json:"pulled"`
			Pushed       int64      `json:"pushed"`
		} `json:"anti_entropy"`
		PurgesHeldBack int64  `json:"purges_held_back"`
		PurgeWarning   string `json:"purge_warning"`
	}
	Drift []string `json:"policy_drift"`
}

func (p *proc) aeStatus(t *testing.T) aeSt {
	t.Helper()
	var st aeSt
	code, body, err := p.do("GET", "/api/v1/status", nil)
	if err != nil || code != 200 {
		return st
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// oldMsg is a message dated 2001 (expired under a one-year retention).
func oldMsg(tag string, i int) []byte {
	raw := mirrorMsg(tag, i)
	return append([]byte("Date: Mon, 01 Jan 2001 00:00:00 +0000\r\n"), raw...)
}

func postAll(t *testing.T, p *proc, msgs [][]byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, raw := range msgs {
		code, body, err := p.do("POST", "/api/v1/messages", raw)
		if err != nil || (code != 201 && code != 200) {
			t.Fatalf("ingest: %d %v %s", code, err, body)
		}
		out[sha(raw)] = raw
	}
	return out
}

// peersSync runs `mailarc peers sync` on p and returns the number of
// passes with peer completed before it.
func peersSync(t *testing.T, p *proc, peer string) int64 {
	t.Helper()
	before := p.passes(t, peer)
	out, code := cli(t, nil, "peers", "sync", "--server", "http://"+p.httpAddr, peer)
	if code != 0 || !strings.Contains(out, "requested") {
		t.Fatalf("peers sync %s: exit %d\n%s", peer, code, out)
	}
	return before
}

func (p *proc) passes(t *testing.T, peer string) int64 {
	for _, pr := range p.aeStatus(t).Peers {
		if pr.Name == peer {
			return pr.AntiEntropy.Passes
		}
	}
	return 0
}

// passDone waits until p has completed more than before anti-entropy
// passes with peer, with nothing running or pending.
func passDone(t *testing.T, p *proc, peer string, before int64, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, "anti-entropy with "+peer+" to complete", func() bool {
		for _, pr := range p.aeStatus(t).Peers {
			if pr.Name == peer {
				ae := pr.AntiEntropy
				return ae.State == "idle" && ae.Passes > before && ae.LastComplete != nil && ae.Verified == ae.Total
			}
		}
		return false
	})
}

// metric returns the value of one sample line of p's /metrics.
func (p *proc) metric(t *testing.T, prefix string) float64 {
	t.Helper()
	code, body, err := p.do("GET", "/metrics", nil)
	if err != nil || code != 200 {
		t.Fatalf("metrics: %d %v", code, err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(l, prefix+" "), &v)
			return v
		}
	}
	return 0
}

// TestMirrorBackfillNewNode: an empty node joining a node with history
// backfills all of it, with one kill -9 of each side part-way, while fresh
// mail keeps reaching it with bounded lag.
func TestMirrorBackfillNewNode(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	a := newMirrorProc(t, t.TempDir(), "arc-a", mirrorSecret)
	c := newMirrorProc(t, t.TempDir(), "arc-c", mirrorSecret)
	a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-c", c.mirrorPort})
	c.writeMirrorConfig("arc-c", mirrorSecret, mirrorPeer{"arc-a", a.mirrorPort})
	a.start()
	t0 := time.Now()
	hist := ingest(t, a, "bf", 0, n, 8)
	t.Logf("ingested %d on arc-a in %s", n, time.Since(t0).Round(time.Millisecond))

	c.start()
	t1 := time.Now()
	// Fresh mail posted on A while the backfill runs must reach C quickly.
	var live sync.Map
	var maxLag, seen atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			raw := mirrorMsg("live", i)
			code, _, err := a.do("POST", "/api/v1/messages", raw)
			if err != nil || (code != 201 && code != 200) {
				continue // A is being killed and restarted
			}
			id := sha(raw)
			live.Store(id, raw)
			posted := time.Now()
			for time.Since(posted) < 60*time.Second {
				select {
				case <-stop:
					return
				default:
				}
				if code, _, err := c.do("GET", "/api/v1/messages/"+id+"/raw", nil); err == nil && code == 200 {
					if lag := time.Since(posted); int64(lag) > maxLag.Load() {
						maxLag.Store(int64(lag))
					}
					seen.Add(1)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	archived := func(p *proc) int64 { st, _ := p.status(); return st.Counts.Archived }
	testutil.Eventually(t, 120*time.Second, "arc-c to hold a quarter", func() bool { return archived(c) >= int64(n/4) })
	c.kill()
	c.start()
	testutil.Eventually(t, 120*time.Second, "arc-c to hold half", func() bool { return archived(c) >= int64(n/2) })
	// A kill -9 loses nothing a node acknowledged or announced.
	if strings.Contains(a.log.String(), "lost history") {
		t.Errorf("arc-a took arc-c, killed, for a restored node:\n%s", a.log.String())
	}
	a.kill()
	a.start()
	midway := archived(c) < int64(n)
	testutil.Eventually(t, 240*time.Second, "arc-c to hold the history", func() bool { return archived(c) >= int64(n) })
	t.Logf("backfill of %d messages took %s", n, time.Since(t1).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	want := merge(hist)
	live.Range(func(k, v any) bool { want[k.(string)] = v.([]byte); return true })
	converged(t, c, want, 120*time.Second)
	drained(t, a, "arc-c", 180*time.Second)
	if seen.Load() == 0 {
		t.Error("no fresh mail was observed reaching arc-c during the backfill")
	}
	if lag := time.Duration(maxLag.Load()); lag > 30*time.Second {
		t.Errorf("fresh mail lagged %s behind during the backfill (want <= 30s)", lag)
	} else {
		t.Logf("max lag of %d fresh messages during backfill: %s (A restarted mid-way: %v)", seen.Load(), lag.Round(time.Millisecond), midway)
	}
	noMirrorTrouble(t, a, c)
	a.stop()
	c.stop()
	verifyOK(t, c)
}

// TestMirrorOriginDeath: A pushes to B only (its link to C is dead), then
// dies for good; B never pushes on what came from A, so only anti-entropy
// between the survivors gives C the messages.
func TestMirrorOriginDeath(t *testing.T) {
	a := newMirrorProc(t, t.TempDir(), "arc-a", mirrorSecret)
	b := newMirrorProc(t, t.TempDir(), "arc-b", mirrorSecret)
	c := newMirrorProc(t, t.TempDir(), "arc-c", mirrorSecret)
	// Nothing listens on these ports: the link between A and C is cut both
	// ways (else C's own anti-entropy with A would fetch the mail).
	dead1, dead2 := freePort(t), freePort(t)
	a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-b", b.mirrorPort}, mirrorPeer{"arc-c", dead1})
	b.writeMirrorConfig("arc-b", mirrorSecret, mirrorPeer{"arc-a", a.mirrorPort}, mirrorPeer{"arc-c", c.mirrorPort})
	c.writeMirrorConfig("arc-c", mirrorSecret, mirrorPeer{"arc-a", dead2}, mirrorPeer{"arc-b", b.mirrorPort})
	a.start()
	b.start()
	c.start()
	// Let the first-contact passes between B and C finish before A's mail
	// arrives, so only the later, requested pass can move it.
	passDone(t, b, "arc-c", 0, 120*time.Second)
	passDone(t, c, "arc-b", 0, 120*time.Second)
	fromA := ingest(t, a, "od", 0, 300, 4)
	converged(t, b, fromA, 180*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	if pr, _, _ := a.peer("arc-c"); pr.Queued != 300 {
		t.Fatalf("arc-a owes arc-c %d messages, want 300 (link should be cut)", pr.Queued)
	}
	a.kill() // for good
	// C got nothing from B's normal push (origin peer:arc-a is not pushed on).
	if st, _ := c.status(); st.Counts.Archived != 0 {
		t.Fatalf("arc-c holds %d before anti-entropy, want 0", st.Counts.Archived)
	}
	fromC := ingest(t, c, "oc", 0, 20, 2)
	since := peersSync(t, b, "arc-c")
	all := merge(fromA, fromC)
	converged(t, c, all, 120*time.Second)
	converged(t, b, all, 120*time.Second)
	passDone(t, b, "arc-c", since, 180*time.Second)
	noMirrorTrouble(t, b, c)
}

// TestMirrorTombstones: an id purged by A's retention is never stored again
// on A, whether B repairs or pushes it; B learns the tombstones. A message
// B originates that A purged meanwhile (A got the same bytes by import while
// B could not reach it) is answered purged when B pushes it, and B's queue
// returns to 0 and stays there. A retention difference, then a difference in
// holds alone, shows as policy drift.
func TestMirrorTombstones(t *testing.T) {
	a, b := mirrorPair(t)
	a.start()
	b.start()
	var msgs [][]byte
	for i := 0; i < 15; i++ {
		msgs = append(msgs, oldMsg("tomb", i))
	}
	old := postAll(t, a, msgs)
	converged(t, b, old, 180*time.Second)
	drained(t, a, "arc-b", 120*time.Second)

	if code, body, err := a.do("PUT", "/api/v1/retention", []byte(`{"default":"1y","policies":[]}`)); err != nil || code != 200 {
		t.Fatalf("set retention: %d %v %s", code, err, body)
	}
	runRetention(t, a, 15)
	if st, _ := a.status(); st.Counts.Archived != 0 {
		t.Fatalf("arc-a holds %d after the purge", st.Counts.Archived)
	}
	// B repairs with A (anti-entropy pushes everything A lacks): A answers
	// purged, nothing comes back.
	since := peersSync(t, b, "arc-a")
	passDone(t, b, "arc-a", since, 180*time.Second)
	// A re-offering from its side too.
	since = peersSync(t, a, "arc-b")
	passDone(t, a, "arc-b", since, 180*time.Second)
	if st, _ := a.status(); st.Counts.Archived != 0 {
		t.Fatalf("purged mail came back to arc-a: %d messages", st.Counts.Archived)
	}
	for id := range old {
		if code, _, _ := a.do("GET", "/api/v1/messages/"+id+"/raw", nil); code != 404 {
			t.Fatalf("purged %s answers %d on arc-a", id, code)
		}
	}
	if n := b.metric(t, `mailarc_mirror_pushed_total{peer="arc-a",result="purged"}`); n < 15 {
		t.Fatalf("arc-b's repair did not offer the purged ids to arc-a (purged answers: %v)", n)
	}
	// A second pass moves nothing (tombstones are in the digests).
	since = peersSync(t, b, "arc-a")
	passDone(t, b, "arc-a", since, 180*time.Second)
	for _, pr := range b.aeStatus(t).Peers {
		if pr.AntiEntropy.Pushed != 0 {
			t.Fatalf("second pass pushed %d", pr.AntiEntropy.Pushed)
		}
	}
	if st, _ := b.status(); st.Counts.Archived != 15 {
		t.Fatalf("arc-b holds %d, want 15 (deletions never replicate)", st.Counts.Archived)
	}
	// Policies differ: both sides say so in one line naming the other.
	testutil.Eventually(t, 120*time.Second, "policy drift on arc-b", func() bool {
		d := b.aeStatus(t).Drift
		return len(d) == 1 && strings.HasPrefix(d[0], "arc-a:")
	})
	testutil.Eventually(t, 120*time.Second, "policy drift on arc-a", func() bool {
		d := a.aeStatus(t).Drift
		return len(d) == 1 && strings.HasPrefix(d[0], "arc-b:")
	})

	// B originates a message while it cannot reach A (A listens on another
	// mirror port); A archives the same bytes by import and purges them.
	purgedBefore := b.metric(t, `mailarc_mirror_pushed_total{peer="arc-a",result="purged"}`)
	a.stop()
	raw := oldMsg("tombB", 0)
	id := sha(raw)
	postAll(t, b, [][]byte{raw})
	testutil.Eventually(t, 60*time.Second, "arc-b to owe arc-a the new message", func() bool {
		pr, _, ok := b.peer("arc-a")
		return ok && pr.Queued == 1 && pr.State != "online"
	})
	eml := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(eml, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := cli(t, nil, "import", "--config", a.config, eml); code != 0 {
		t.Fatalf("import on arc-a: %d\n%s", code, out)
	}
	realPort := a.mirrorPort
	a.mirrorPort = freePort(t)
	a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-b", b.mirrorPort})
	a.start()
	runRetention(t, a, 1) // arc-b has it (arc-a's push got "have"), so purge safety lets it go
	a.stop()
	a.mirrorPort = realPort
	a.writeMirrorConfig("arc-a", mirrorSecret, mirrorPeer{"arc-b", b.mirrorPort})
	a.start()
	testutil.Eventually(t, 120*time.Second, "arc-b's queue for arc-a to drain (answered purged)", func() bool {
		pr, _, ok := b.peer("arc-a")
		return ok && pr.Queued == 0 && pr.State == "online"
	})
	if n := b.metric(t, `mailarc_mirror_pushed_total{peer="arc-a",result="purged"}`); n < purgedBefore+1 {
		t.Fatalf("arc-a did not answer purged to arc-b's push (purged answers %v, were %v)", n, purgedBefore)
	}
	// It stays 0: nothing is re-offered after another pass either.
	since = peersSync(t, b, "arc-a")
	passDone(t, b, "arc-a", since, 180*time.Second)
	if pr, _, _ := b.peer("arc-a"); pr.Queued != 0 {
		t.Fatalf("arc-b owes arc-a %d again", pr.Queued)
	}
	if code, _, _ := a.do("GET", "/api/v1/messages/"+id+"/raw", nil); code != 404 {
		t.Fatalf("the purged message answers %d on arc-a", code)
	}
	if code, _, _ := b.do("GET", "/api/v1/messages/"+id+"/raw", nil); code != 200 {
		t.Fatalf("arc-b lost its own message: %d", code)
	}

	// Same retention again: no drift. Then a hold on A alone is drift.
	if code, body, err := a.do("PUT", "/api/v1/retention", []byte(`{"default":"forever","policies":[]}`)); err != nil || code != 200 {
		t.Fatalf("reset retention: %d %v %s", code, err, body)
	}
	since = peersSync(t, b, "arc-a") // a new connection: fresh hellos both ways
	passDone(t, b, "arc-a", since, 180*time.Second)
	testutil.Eventually(t, 60*time.Second, "no policy drift with equal retention", func() bool {
		return len(a.aeStatus(t).Drift) == 0 && len(b.aeStatus(t).Drift) == 0
	})
	if code, body, err := a.do("POST", "/api/v1/holds", []byte(`{"name":"case-1","query":"tombB"}`)); err != nil || code != 201 {
		t.Fatalf("create hold: %d %v %s", code, err, body)
	}
	since = peersSync(t, b, "arc-a")
	passDone(t, b, "arc-a", since, 180*time.Second)
	testutil.Eventually(t, 60*time.Second, "policy drift from a hold alone", func() bool {
		da, db := a.aeStatus(t).Drift, b.aeStatus(t).Drift
		return len(da) == 1 && strings.HasPrefix(da[0], "arc-b:") && strings.Contains(da[0], "here: default forever, 0 policies, 1 active hold;") &&
			len(db) == 1 && strings.HasPrefix(db[0], "arc-a:") && strings.Contains(db[0], "arc-a: default forever, 0 policies, 1 active hold)")
	})
	noMirrorTrouble(t, a, b)
}

// runRetention waits until a dry run on p would purge want messages, then
// confirms a real run.
func runRetention(t *testing.T, p *proc, want int64) {
	t.Helper()
	var dry struct {
		WouldPurge int64 `json:"would_purge"`
		Pending    int64 `json:"pending"`
	}
	testutil.Eventually(t, 180*time.Second, fmt.Sprintf("a dry run to purge %d", want), func() bool {
		code, body, err := p.do("POST", "/api/v1/retention/run?dry_run=true", nil)
		return err == nil && code == 200 && json.Unmarshal(body, &dry) == nil && dry.Pending == 0 && dry.WouldPurge == want
	})
	code, body, err := p.do("POST", fmt.Sprintf("/api/v1/retention/run?confirm=%d", want), nil)
	var res struct{ Purged int64 }
	if err != nil || code != 200 || json.Unmarshal(body, &res) != nil || res.Purged != want {
		t.Fatalf("retention run: %d %v %s", code, err, body)
	}
}

// TestMirrorPurgeDeferred: while B is down, A's retention does not purge
// what B has not acknowledged, and status names B; once B caught up the
// purge proceeds.
func TestMirrorPurgeDeferred(t *testing.T) {
	a, b := mirrorPair(t)
	a.start()
	b.start()
	drained(t, a, "arc-b", 120*time.Second)
	b.stop()
	var msgs [][]byte
	for i := 0; i < 10; i++ {
		msgs = append(msgs, oldMsg("defer", i))
	}
	old := postAll(t, a, msgs)
	if code, body, err := a.do("PUT", "/api/v1/retention", []byte(`{"default":"1y","policies":[]}`)); err != nil || code != 200 {
		t.Fatalf("set retention: %d %v %s", code, err, body)
	}
	// Indexed, expired, but deferred: nothing to purge now.
	runRetention(t, a, 0)
	if st, _ := a.status(); st.Counts.Archived != 10 {
		t.Fatalf("arc-a purged while arc-b was down: %d left", st.Counts.Archived)
	}
	found := false
	for _, pr := range a.aeStatus(t).Peers {
		found = found || (pr.Name == "arc-b" && pr.PurgesHeldBack == 10 && strings.Contains(pr.PurgeWarning, "arc-b"))
	}
	if !found {
		t.Fatalf("status does not name arc-b as holding purges back: %+v", a.aeStatus(t).Peers)
	}
	if !strings.Contains(a.log.String(), "retention purges deferred") {
		t.Fatalf("no warning logged:\n%s", a.log.String())
	}
	b.start()
	converged(t, b, old, 180*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	runRetention(t, a, 10)
	if st, _ := a.status(); st.Counts.Archived != 0 {
		t.Fatalf("arc-a holds %d after the purge", st.Counts.Archived)
	}
	if st, _ := b.status(); st.Counts.Archived != 10 {
		t.Fatalf("arc-b holds %d, want 10", st.Counts.Archived)
	}
}

// TestMirrorRebuiltPeer: B loses its data directory and starts empty (new
// store instance, new certificate). After an admin repairs the pin on A,
// B gets everything back, including the mail it had originated itself.
func TestMirrorRebuiltPeer(t *testing.T) {
	a, b := mirrorPair(t)
	a.start()
	b.start()
	ma := ingest(t, a, "ra", 0, 300, 4)
	mb := ingest(t, b, "rb", 0, 100, 2)
	all := merge(ma, mb)
	converged(t, a, all, 180*time.Second)
	converged(t, b, all, 180*time.Second)
	b.kill()
	if err := os.RemoveAll(filepath.Join(b.dir, "data")); err != nil {
		t.Fatal(err)
	}
	b.start()
	code, body, err := a.do("POST", "/api/v1/peers/arc-b/repair", nil)
	if err != nil || code != 202 {
		t.Fatalf("repair: %d %v %s", code, err, body)
	}
	converged(t, b, all, 120*time.Second)
	drained(t, a, "arc-b", 180*time.Second)
	if !strings.Contains(a.log.String(), "store instance of arc-b changed") {
		t.Errorf("arc-a did not notice the rebuilt peer:\n%s", a.log.String())
	}
	noMirrorTrouble(t, a, b)
}

// logged waits until p's log contains s; on timeout it fails with the log.
func logged(t *testing.T, p *proc, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %s:\n%s", p.httpAddr, s, timeout, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copyDir copies the directory tree src to dst (cp -a: a stopped node's
// data directory, as a backup would).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// restoreDir replaces dir by a copy of the backup.
func restoreDir(t *testing.T, backup, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, backup, dir)
}

// TestMirrorRestoredPeer: B is restored from a backup of its data directory
// (same store instance) after both nodes archived more. A notices the feed
// head went backwards, re-offers everything and repairs B, including B's
// own mail archived after the backup. Then the harder case: B is restored
// again and archives enough on its own, before A sees it, that its head is
// higher than before; A still notices (B lacks a message it acknowledged).
func TestMirrorRestoredPeer(t *testing.T) {
	a, b := mirrorPair(t)
	a.start()
	b.start()
	all := merge(ingest(t, a, "ra", 0, 150, 4), ingest(t, b, "rb", 0, 50, 2))
	converged(t, a, all, 120*time.Second)
	converged(t, b, all, 120*time.Second)
	drained(t, b, "arc-a", 120*time.Second)
	b.stop()
	backup := filepath.Join(t.TempDir(), "backup")
	copyDir(t, filepath.Join(b.dir, "data"), backup)
	b.start()
	all = merge(all, ingest(t, a, "ra", 150, 100, 4), ingest(t, b, "rb", 50, 50, 2))
	converged(t, b, all, 120*time.Second)
	converged(t, a, all, 120*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	drained(t, b, "arc-a", 120*time.Second)
	// A sees B's current head in a hello (as it does at least every five
	// minutes when its anti-entropy lane reconnects).
	passDone(t, a, "arc-b", peersSync(t, a, "arc-b"), 120*time.Second)
	b.stop()
	restoreDir(t, backup, filepath.Join(b.dir, "data"))
	b.start()
	logged(t, a, "feed head of arc-b went backwards", 120*time.Second)
	converged(t, b, all, 120*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	drained(t, b, "arc-a", 120*time.Second)
	searchCount(t, b, "mirrored", len(all), 120*time.Second)

	// Restored again, but B archives more than it lost before A sees it.
	b.stop()
	backup2 := filepath.Join(t.TempDir(), "backup")
	copyDir(t, filepath.Join(b.dir, "data"), backup2)
	b.start()
	all = merge(all, ingest(t, a, "ra", 250, 40, 4))
	converged(t, b, all, 120*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	b.stop()
	a.stop()
	restoreDir(t, backup2, filepath.Join(b.dir, "data"))
	b.start()
	all = merge(all, ingest(t, b, "rc", 0, 80, 4))
	a.start()
	logged(t, a, "arc-b no longer holds message", 120*time.Second)
	converged(t, b, all, 120*time.Second)
	converged(t, a, all, 120*time.Second)
	drained(t, a, "arc-b", 120*time.Second)
	drained(t, b, "arc-a", 120*time.Second)
	searchCount(t, a, "mirrored", len(all), 120*time.Second)
	searchCount(t, b, "mirrored", len(all), 120*time.Second)
	if strings.Contains(a.log.String(), "went backwards") {
		t.Errorf("arc-b's head was higher after the second restore, yet arc-a logged it went backwards:\n%s", a.log.String())
	}
	noMirrorTrouble(t, a, b)
	a.stop()
	b.stop()
	verifyOK(t, b)
}

// TestMirrorSessionsAndUsers: a session issued by A is valid on B, and an
// account created on A can sign in on B.
func TestMirrorSessionsAndUsers(t *testing.T) {
	a, b := mirrorPair(t)
	a.start()
	b.start()
	code, body, err := a.do("POST", "/api/v1/users", []byte(`{"name":"carol","password":"carol-password-1","role":"auditor"}`))
	if err != nil || code != 201 {
		t.Fatalf("add user: %d %v %s", code, err, body)
	}
	testutil.Eventually(t, 120*time.Second, "carol to sign in on arc-b", func() bool {
		req, _ := http.NewRequest("GET", b.url("/api/v1/status"), nil)
		req.SetBasicAuth("carol", "carol-password-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// Sign in on A through the login form, use the cookie on B.
	session := webLogin(t, a, "carol", "carol-password-1")
	for _, p := range []*proc{a, b} {
		req, _ := http.NewRequest("GET", p.url("/api/v1/status"), nil)
		req.AddCookie(session)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("session from arc-a on %s: %d", p.httpAddr, resp.StatusCode)
		}
	}
}

// TestDataDirWithoutMarker: a data directory that lost its MAILARC marker
// is refused by the real binary rather than started as an empty archive.
func TestDataDirWithoutMarker(t *testing.T) {
	dir := t.TempDir()
	p := newProc(t, dir, "")
	p.start()
	if code, _, err := p.do("POST", "/api/v1/messages", mirrorMsg("mk", 1)); err != nil || code != 201 {
		t.Fatalf("ingest: %d %v", code, err)
	}
	p.stop()
	if err := os.Remove(filepath.Join(dir, "data", "MAILARC")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--config", p.config)
	cmd.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD="+adminPass)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("serve started without the marker:\n%s", out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("serve kept running without the marker:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "no MAILARC marker") || !strings.Contains(out.String(), "refusing to start") {
		t.Fatalf("refusal does not explain itself:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "MAILARC")); err == nil {
		t.Fatal("a new marker was written over the old archive")
	}
}
