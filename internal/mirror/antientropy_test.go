package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/testutil"
)

func hexID(i int) string {
	s := sha256.Sum256([]byte(fmt.Sprint(i)))
	return hex.EncodeToString(s[:])
}

func TestBucketKeys(t *testing.T) {
	t.Parallel()
	id := hexID(1)
	for _, date := range []int64{0, 1, 86399, 86400, -1, -86401, 1700000000, 253402300799} {
		k := bucketKey{set: 'm'}
		for !k.leaf() {
			c := k.child(id, date)
			if !c.contains(id, date) {
				t.Fatalf("date %d: child %s of %s does not contain the id", date, c, k)
			}
			back, err := parseKey(c.String())
			if err != nil || back != c {
				t.Fatalf("date %d: %s does not round-trip: %+v %v", date, c, back, err)
			}
			if c.level != k.level+1 {
				t.Fatalf("level %d -> %d", k.level, c.level)
			}
			k = c
		}
		if k.level != 3 || k.hex != id[:1] {
			t.Fatalf("leaf %s", k)
		}
		// Another day is not contained.
		if k.contains(id, date+secondsPerDay) {
			t.Fatalf("leaf %s contains the next day", k)
		}
	}
	tk := bucketKey{set: 't'}
	c1 := tk.child(id, 0)
	c2 := c1.child(id, 0)
	if c1.String() != "t."+id[:1] || c2.String() != "t."+id[:2] || !c2.leaf() || c1.leaf() {
		t.Fatalf("tombstone keys %s %s", c1, c2)
	}
	for _, bad := range []string{"", "x", "m.", "m.a", "m.01", "m.+1", "m.0.33", "m.0.1.g", "m.0.1.ab", "t.", "t.abc", "t.G", "m.0.1.a.b", "t.a.b"} {
		if _, err := parseKey(bad); err == nil {
			t.Errorf("parseKey(%q) accepted", bad)
		}
	}
}

func TestDigestDiff(t *testing.T) {
	t.Parallel()
	var a, b digest
	for i := 0; i < 100; i++ {
		a.add(hexID(i))
	}
	for i := 99; i >= 0; i-- {
		b.add(hexID(i))
	}
	if a != b {
		t.Fatal("digest depends on order")
	}
	b.add(hexID(100))
	local := map[string]digest{"m.1": a, "m.2": a, "m.3": a, "m.5": {}}
	remote := map[string]digest{"m.1": a, "m.2": b, "m.4": a}
	got := diffDigests(local, remote)
	want := []string{"m.2", "m.3", "m.4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("diffDigests = %v, want %v", got, want)
	}
	// Encoding round trip.
	back, err := decodeDigests(encodeDigests(local))
	if err != nil || len(back) != len(local) || back["m.2"] != a {
		t.Fatalf("digest round trip: %v %v", back, err)
	}
	ol, or := diffIDs([]string{"a", "b", "c"}, []string{"c", "d", "d"})
	if fmt.Sprint(ol) != "[a b]" || fmt.Sprint(or) != "[d]" {
		t.Fatalf("diffIDs = %v %v", ol, or)
	}
	ids := []string{hexID(1), hexID(2)}
	dec, err := decodeIDs(encodeIDs(ids))
	if err != nil || fmt.Sprint(dec) != fmt.Sprint(ids) {
		t.Fatalf("ids round trip: %v %v", dec, err)
	}
}

// FuzzAEDecoders: the anti-entropy wire decoders never panic and what
// they accept re-encodes to something they accept again.
func FuzzAEDecoders(f *testing.F) {
	f.Add([]byte(`{"keys":["m","t","m.3","m.3.100","m.3.100.a","t.f","t.0e"]}`))
	f.Add([]byte(`[{"k":"m.1","n":3,"x":"` + hexID(1) + `"}]`))
	f.Add([]byte(`[{"k":"m.1","n":3,"x":"` + hexID(1) + `00"}]`)) // over-long digest once panicked hex.Decode
	f.Add(make([]byte, 64))
	f.Add([]byte(`{"keys":["m.-1.-1.0"]}`))
	f.Add([]byte(`[{"name":"admin","updated":1,"deleted":true}]`))
	f.Fuzz(func(t *testing.T, p []byte) {
		if keys, err := decodeKeys(p); err == nil {
			strs := make([]string, len(keys))
			for i, k := range keys {
				strs[i] = k.String()
				_ = k.leaf()
				if k.set == 'm' {
					_, _ = k.dateRange()
				}
				date := int64(12345)
				if k.set == 'm' && k.level > 0 {
					date, _ = k.dateRange()
				}
				if id := hexID(1); !k.leaf() && k.contains(id, date) {
					c := k.child(id, date)
					if _, err := parseKey(c.String()); err != nil {
						t.Fatalf("child %s of %s does not parse: %v", c, k, err)
					}
				}
			}
			if _, err := decodeKeys(encodeKeys(strs)); err != nil {
				t.Fatalf("re-encoded keys refused: %v", err)
			}
		}
		if d, err := decodeDigests(p); err == nil {
			if _, err := decodeDigests(encodeDigests(d)); err != nil {
				t.Fatalf("re-encoded digests refused: %v", err)
			}
		}
		if ids, err := decodeIDs(p); err == nil {
			if string(encodeIDs(ids)) != string(p) {
				t.Fatal("ids do not round-trip")
			}
		}
		var hs Hello
		_ = json.Unmarshal(p, &hs)
	})
}

// TestAntiEntropyInProcess: B and C hold disjoint mail that reached them
// from a third node (origin peer:arc-a, so the normal push never moves
// it); a pass converges them. A tombstone on C is not resurrected, is
// learnt by B, and a second pass moves nothing.
func TestAntiEntropyInProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pb, pc := freePort(t), freePort(t)
	b := openNode(t, "arc-b", pb, map[string]int{"arc-c": pc})
	c := openNode(t, "arc-c", pc, map[string]int{"arc-b": pb})
	// First-contact passes run on their own; wait for them to settle.
	for _, n := range []*testNode{b, c} {
		waitPass(t, n, 1)
	}
	want := map[string]bool{}
	var purgedID string
	for i := 0; i < 60; i++ {
		n := b
		if i%3 == 0 {
			n = c
		}
		r, err := n.arch.Ingest(ctx, testMsg("arc-a", i), archive.Origin{Source: "peer:arc-a", Arrival: time.Unix(1700000000+int64(i)*40000, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want[r.ID] = true
		if i == 1 {
			purgedID = r.ID
		}
	}
	// C purged one of B's ids by its own retention.
	if _, err := c.cat.Purge(ctx, []string{purgedID}, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	delete(want, purgedID)
	for _, n := range []*testNode{b, c} {
		if err := n.m.RequestSync(ctx, map[string]string{"arc-b": "arc-c", "arc-c": "arc-b"}[n.name], "test"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 30*time.Second, "arc-c to hold every message", func() bool {
		s, err := c.cat.Stats(ctx)
		return err == nil && s.Messages == int64(len(want))
	})
	testutil.Eventually(t, 30*time.Second, "arc-b to hold every message and the purged one", func() bool {
		s, err := b.cat.Stats(ctx)
		return err == nil && s.Messages == int64(len(want))+1
	})
	for _, n := range []*testNode{b, c} {
		waitPass(t, n, 0)
	}
	have, err := c.cat.Exists(ctx, []string{purgedID})
	if err != nil || have[purgedID] {
		t.Fatalf("purged id resurrected on arc-c: %v", err)
	}
	tombs, err := b.m.tab.peerTombs(ctx, "arc-c")
	if err != nil || !tombs[purgedID] {
		t.Fatalf("arc-b did not learn arc-c's tombstone: %v %v", tombs, err)
	}
	// Purge safety on B: the purged-on-C id counts as acknowledged by C.
	ok, back, err := b.m.PeersHave(ctx, []string{purgedID})
	if err != nil || !ok[purgedID] || len(back) != 0 {
		t.Fatalf("PeersHave = %v %v %v", ok, back, err)
	}
	// A second pass finds nothing to move.
	row0, _, _ := b.m.tab.aeLoad(ctx, "arc-c")
	if err := b.m.RequestSync(ctx, "arc-c", "again"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "second pass", func() bool {
		r, _, err := b.m.tab.aeLoad(ctx, "arc-c")
		return err == nil && r.LastComplete >= row0.LastComplete && r.Wanted == "" && r.PassStarted == 0 && !b.m.peers["arc-c"].aeRunning.Load()
	})
	r, _, _ := b.m.tab.aeLoad(ctx, "arc-c")
	if r.Pulled != 0 || r.Pushed != 0 || r.Total == 0 || r.Verified != r.Total {
		t.Fatalf("second pass moved something or did not verify: %+v", r)
	}
	st, err := b.m.Status(ctx)
	if err != nil || st[0].AntiEntropy.LastComplete == nil || st[0].AntiEntropy.Verified != st[0].AntiEntropy.Total {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// waitPass waits until node n has no pass due or running with its peer
// (and, when minComplete > 0, has completed one).
func waitPass(t *testing.T, n *testNode, minComplete int) {
	t.Helper()
	for _, name := range n.m.order {
		testutil.Eventually(t, 30*time.Second, n.name+" anti-entropy with "+name+" to finish", func() bool {
			r, ok, err := n.m.tab.aeLoad(context.Background(), name)
			return err == nil && ok && r.Wanted == "" && r.PassStarted == 0 && !n.m.peers[name].aeRunning.Load() &&
				(minComplete == 0 || r.LastComplete > 0)
		})
	}
}

// TestUserSyncLastWriterWins drives the account replication the mirror
// does (UserSync over two catalogs): a new account arrives, a newer change
// wins in both directions, a deletion wins over older versions and is not
// undone by a stale copy.
func TestUserSyncLastWriterWins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := func() *auth.Service {
		cat, err := catalog.Open(ctx, filepath.Join(t.TempDir(), "catalog.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cat.Close() })
		return auth.New(cat.DB())
	}
	a, b := open(), open()
	var us UserSync = a
	sync := func(from, to UserSync) {
		t.Helper()
		data, err := from.ExportUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := to.MergeUsers(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.AddUser(ctx, "carol", "first-password", auth.RoleUser, []string{"carol@example.com"}); err != nil {
		t.Fatal(err)
	}
	sync(us, b)
	if _, err := b.Login(ctx, "carol", "first-password", "test"); err != nil {
		t.Fatalf("replicated account cannot sign in: %v", err)
	}
	stale, err := a.ExportUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // updated has one-second resolution
	if err := b.SetPassword(ctx, "carol", "second-password"); err != nil {
		t.Fatal(err)
	}
	sync(b, a)
	if _, err := b.MergeUsers(ctx, stale); err != nil { // an old copy loses
		t.Fatal(err)
	}
	for _, s := range []*auth.Service{a, b} {
		if _, err := s.Login(ctx, "carol", "second-password", "test2"); err != nil {
			t.Fatalf("newer password not everywhere: %v", err)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	if err := a.DeleteUser(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	sync(us, b)
	if _, err := b.Get(ctx, "carol"); !errors.Is(err, auth.ErrNoUser) {
		t.Fatalf("deletion did not replicate: %v", err)
	}
	if _, err := b.MergeUsers(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "carol"); !errors.Is(err, auth.ErrNoUser) {
		t.Fatalf("a stale copy resurrected a deleted account: %v", err)
	}
	if n, err := b.MergeUsers(ctx, []byte(`[{"name":"evil","password_hash":"plain","role":"admin","updated":99999999999}]`)); err != nil || n != 0 {
		t.Fatalf("a record without an argon2id hash was accepted: %d %v", n, err)
	}
}

// ingestSpread ingests n messages tagged tag into node (origin peer:arc-x,
// so only anti-entropy moves them), dated 33 days apart so that a pass has
// many top-level buckets.
func ingestSpread(t *testing.T, node *testNode, tag string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		at := time.Unix(1500000000+int64(i)*33*secondsPerDay, 0)
		if _, err := node.arch.Ingest(ctx, testMsg(tag, i), archive.Origin{Source: "peer:arc-x", Arrival: at}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAntiEntropyResume: a pass stopped part-way (the mirror shut down
// after three top-level buckets) keeps its persisted progress; the
// reopened mirror resumes the same pass, skips the verified buckets and
// completes it, without starting over.
func TestAntiEntropyResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pb, pc := freePort(t), freePort(t)
	const stopAfter = 3
	var mu sync.Mutex
	var first, second []string
	stopped := make(chan struct{})
	var bn *testNode // set before the mirror starts, read by the hook
	var logB *testutil.SyncBuffer
	b := openNodeOpts(t, "arc-b", pb, map[string]int{"arc-c": pc}, nodeOpts{
		cfg: func(c *Config) { logB = captureLog(c) },
		before: func(n *testNode) {
			bn = n
			ingestSpread(t, n, "b", 16)
		},
		hooks: hooks{aeBucketDone: func(peer, bucket string) error {
			mu.Lock()
			defer mu.Unlock()
			first = append(first, bucket)
			if len(first) == stopAfter {
				bn.m.cancel() // shut down here, as a crash or restart would
				close(stopped)
				return errors.New("test: stopped mid-pass")
			}
			return nil
		}},
	})
	c := openNodeOpts(t, "arc-c", pc, map[string]int{"arc-b": pb}, nodeOpts{before: func(n *testNode) { ingestSpread(t, n, "c", 6) }})
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the first pass never reached the stop point")
	}
	tab := b.m.tab
	b.stopMirror(t)
	row, _, err := tab.aeLoad(ctx, "arc-c")
	if err != nil {
		t.Fatal(err)
	}
	done, err := tab.aeDoneSet(ctx, "arc-c")
	if err != nil {
		t.Fatal(err)
	}
	if row.PassStarted == 0 || row.Verified != stopAfter || len(done) != stopAfter || row.Total <= stopAfter+1 || row.Passes != 0 {
		t.Fatalf("after the stop: pass_started %d, verified %d of %d, %d buckets done, %d passes; want a pass in progress with %d verified",
			row.PassStarted, row.Verified, row.Total, len(done), row.Passes, stopAfter)
	}
	for _, k := range first {
		if !done[k] {
			t.Fatalf("verified bucket %s not persisted (done: %v)", k, done)
		}
	}
	b.startMirror(t, hooks{aeBucketDone: func(peer, bucket string) error {
		mu.Lock()
		defer mu.Unlock()
		second = append(second, bucket)
		return nil
	}})
	waitPass(t, b, 1)
	after, _, err := b.m.tab.aeLoad(ctx, "arc-c")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range second {
		if done[k] {
			t.Fatalf("the resumed pass verified bucket %s again (started over?)", k)
		}
	}
	if after.Passes != 1 || after.PassReason != "first contact" || int64(len(first)+len(second)) != after.Total || after.Verified != after.Total {
		t.Fatalf("resumed pass: %d passes, reason %q, %d+%d buckets for %d total, verified %d", after.Passes, after.PassReason, len(first), len(second), after.Total, after.Verified)
	}
	if !strings.Contains(logB.String(), "anti-entropy pass resumed") {
		t.Fatalf("no resume logged:\n%s", logB.String())
	}
	// The resumed pass did its job: both hold all 22 messages.
	for _, n := range []*testNode{b, c} {
		testutil.Eventually(t, 30*time.Second, n.name+" to hold every message", func() bool {
			s, err := n.cat.Stats(ctx)
			return err == nil && s.Messages == 22
		})
	}
	all := append(append([]string{}, first...), second...)
	sort.Strings(all)
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("bucket %s verified twice", all[i])
		}
	}
}

// TestAntiEntropyPeriodic: with anti_entropy_interval of a second, passes
// with reason "periodic" complete on their own, without RequestSync.
func TestAntiEntropyPeriodic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pb, pc := freePort(t), freePort(t)
	var logB *testutil.SyncBuffer
	b := openNodeOpts(t, "arc-b", pb, map[string]int{"arc-c": pc}, nodeOpts{cfg: func(c *Config) {
		logB = captureLog(c)
		c.AntiEntropyInterval = time.Second
	}})
	c := openNode(t, "arc-c", pc, map[string]int{"arc-b": pb})
	waitPass(t, b, 1)
	// Mail only anti-entropy moves (peer origin), added after the first pass.
	ingestSpread(t, c, "c", 4)
	testutil.Eventually(t, 30*time.Second, "a periodic pass to complete and bring the mail", func() bool {
		r, _, err := b.m.tab.aeLoad(ctx, "arc-c")
		s, _ := b.cat.Stats(ctx)
		return err == nil && r.Passes >= 2 && r.PassReason == "periodic" && r.PassStarted == 0 && s.Messages == 4
	})
	if l := logB.String(); !strings.Contains(l, `anti-entropy pass started" peer=arc-c reason=periodic`) {
		t.Fatalf("no periodic pass logged:\n%s", l)
	}
}

// TestNoteHelloOrder: hellos noted out of order (the peer's lanes connect
// concurrently while its head grows) are not taken for a restore; a lower
// head from a new peer process is, and resets the peer's cursor.
func TestNoteHelloOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logA *testutil.SyncBuffer
	a := openNodeOpts(t, "arc-a", freePort(t), map[string]int{"arc-b": freePort(t)}, nodeOpts{cfg: func(c *Config) { logA = captureLog(c) }})
	p := a.m.peers["arc-b"]
	hello := func(boot string, seq, head int64) Hello {
		return Hello{Node: "arc-b", Instance: "inst-b", Boot: boot, HelloSeq: seq, Head: head, MaxMessage: 1000 + seq}
	}
	a.m.noteHello(ctx, p, hello("boot1", 1, 10))
	a.m.noteHello(ctx, p, hello("boot1", 3, 30))
	if err := a.cat.SetPeerCursor(ctx, "arc-b", 5); err != nil {
		t.Fatal(err)
	}
	a.m.noteHello(ctx, p, hello("boot1", 2, 20)) // built before seq 3: stale
	row, _, err := a.m.tab.aeLoad(ctx, "arc-b")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := a.cat.PeerCursor(ctx, "arc-b"); c != 5 || row.Head != 30 || p.maxMsg.Load() != 1003 || strings.Contains(logA.String(), "lost history") {
		t.Fatalf("a stale hello was noted: cursor %d, head %d, max %d\n%s", c, row.Head, p.maxMsg.Load(), logA.String())
	}
	a.m.noteHello(ctx, p, hello("boot2", 1, 25)) // restarted with fewer messages
	row, _, err = a.m.tab.aeLoad(ctx, "arc-b")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := a.cat.PeerCursor(ctx, "arc-b"); c != 0 || row.Head != 25 || !strings.Contains(logA.String(), "feed head of arc-b went backwards (25, was 30)") {
		t.Fatalf("a restarted peer with a lower head was not handled as restored: cursor %d, head %d\n%s", c, row.Head, logA.String())
	}
	// A late hello of the replaced process is stale too.
	if err := a.cat.SetPeerCursor(ctx, "arc-b", 7); err != nil {
		t.Fatal(err)
	}
	a.m.noteHello(ctx, p, hello("boot2", 2, 40))
	a.m.noteHello(ctx, p, hello("boot1", 4, 35))
	row, _, err = a.m.tab.aeLoad(ctx, "arc-b")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := a.cat.PeerCursor(ctx, "arc-b"); c != 7 || row.Head != 40 || strings.Count(logA.String(), "lost history") != 1 {
		t.Fatalf("a hello of the replaced process was noted: cursor %d, head %d\n%s", c, row.Head, logA.String())
	}
}
