package pull

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/config"
)

func TestLeaseMachineTakeoverAndHandBack(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	const takeover, beat = 30 * time.Second, 5 * time.Second
	order := []string{"a", "b", "c"}
	a := newLeaseMachine("a", order, takeover, beat, t0)
	b := newLeaseMachine("b", order, takeover, beat, t0)
	c := newLeaseMachine("c", order, takeover, beat, t0)

	// The owner holds epoch 0 but acts only once it heard the others.
	if a.holder != "a" || a.epoch != 0 || a.active(t0) {
		t.Fatalf("fresh owner: holder %q epoch %d active %v", a.holder, a.epoch, a.active(t0))
	}
	exchange := func(x, y *leaseMachine, now time.Time) {
		x.observe(y.self, y.epoch, y.holder, now)
		y.observe(x.self, x.epoch, x.holder, now)
	}
	now := t0.Add(time.Second)
	exchange(a, b, now)
	exchange(a, c, now)
	exchange(b, c, now)
	if !a.active(now) || b.active(now) || c.active(now) {
		t.Fatal("after hearing everyone only the owner must be active")
	}
	// Nothing changes while heartbeats flow.
	for i := range 20 {
		now = now.Add(beat)
		exchange(a, b, now)
		exchange(a, c, now)
		exchange(b, c, now)
		for _, m := range []*leaseMachine{a, b, c} {
			if m.tick(now) {
				t.Fatalf("beat %d: %s changed the lease to %d/%s", i, m.self, m.epoch, m.holder)
			}
		}
	}
	// The owner dies: b and c keep talking. b takes over only after
	// takeover_after, c never (b, before it, is alive).
	last := now
	for now.Sub(last) < takeover-beat {
		now = now.Add(beat)
		exchange(b, c, now)
		if b.tick(now) || c.tick(now) {
			t.Fatalf("takeover %v after the last heartbeat, before takeover_after", now.Sub(last))
		}
	}
	now = now.Add(beat)
	exchange(b, c, now)
	if !b.tick(now) || b.holder != "b" || b.epoch != 1 || !b.active(now) {
		t.Fatalf("b did not take over: %d/%s", b.epoch, b.holder)
	}
	if c.tick(now) {
		t.Fatal("c took over although b is alive")
	}
	exchange(b, c, now)
	if c.holder != "b" || c.epoch != 1 {
		t.Fatalf("c did not adopt b's lease: %d/%s", c.epoch, c.holder)
	}
	// A poll a started under epoch 0 may no longer delete once a learns
	// about epoch 1; its own view is restored from disk on restart.
	a2 := newLeaseMachine("a", order, takeover, beat, now)
	a2.restore(a.persist())
	if a2.epoch != 0 || a2.holder != "a" || a2.active(now) {
		t.Fatal("restarted owner must wait to hear the others before polling")
	}
	if !a.mayDestroy(0) {
		t.Fatal("holder of the highest known epoch may delete")
	}
	a.observe("b", b.epoch, b.holder, now)
	if a.mayDestroy(0) || a.active(now) {
		t.Fatal("stale epoch: a may still delete after learning epoch 1")
	}
	// The restarted owner learns the takeover and stays passive; b hands
	// back after the owner was healthy for handBackBeats intervals.
	now = now.Add(beat)
	exchange(a2, b, now)
	exchange(a2, c, now)
	if a2.holder != "b" || a2.epoch != 1 || a2.active(now) {
		t.Fatalf("restarted owner: %d/%s active %v", a2.epoch, a2.holder, a2.active(now))
	}
	handed := false
	for i := 0; i < handBackBeats+2 && !handed; i++ {
		now = now.Add(beat)
		exchange(a2, b, now)
		exchange(a2, c, now)
		exchange(b, c, now)
		handed = b.tick(now)
	}
	if !handed || b.holder != "a" || b.epoch != 2 || b.active(now) || b.mayDestroy(1) {
		t.Fatalf("no hand-back: %d/%s", b.epoch, b.holder)
	}
	exchange(a2, b, now)
	if !a2.active(now) || a2.epoch != 2 || !a2.mayDestroy(2) {
		t.Fatalf("owner did not get the lease back: %d/%s", a2.epoch, a2.holder)
	}
	// Stale views never win; at equal epochs the earlier candidate wins.
	if a2.observe("c", 1, "c", now) || a2.holder != "a" {
		t.Fatal("a lower epoch was adopted")
	}
	x := newLeaseMachine("x", order, takeover, beat, now)
	x.observe("c", 7, "c", now)
	if !x.observe("b", 7, "b", now) || x.holder != "b" || x.observe("c", 7, "c", now) {
		t.Fatalf("tie-break: %d/%s", x.epoch, x.holder)
	}
	if x.tick(now.Add(time.Hour)) {
		t.Fatal("a node that is no candidate took over")
	}
}

func TestLeaseMachineNoPeersHeard(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	b := newLeaseMachine("b", []string{"a", "b"}, time.Minute, 10*time.Second, t0)
	if b.tick(t0.Add(59 * time.Second)) {
		t.Fatal("took over before takeover_after since start")
	}
	if !b.tick(t0.Add(time.Minute)) || !b.active(t0.Add(time.Minute)) {
		t.Fatal("standby did not take over from a silent owner")
	}
	a := newLeaseMachine("a", []string{"a", "b"}, time.Minute, 10*time.Second, t0)
	if a.active(t0) || !a.active(t0.Add(time.Minute)) {
		t.Fatal("a lone owner polls after takeover_after")
	}
	// A persisted lease older than one already heard is not restored; a
	// newer one is.
	a.observe("b", 1, "b", t0)
	if a.restore(map[string]string{keyLeaseEpoch: "0", keyLeaseHolder: "a"}) || a.holder != "b" || a.epoch != 1 {
		t.Fatalf("stale persisted lease restored: %d/%s", a.epoch, a.holder)
	}
	if !a.restore(map[string]string{keyLeaseEpoch: "4", keyLeaseHolder: "a"}) || a.holder != "a" || a.epoch != 4 {
		t.Fatalf("newer persisted lease not restored: %d/%s", a.epoch, a.holder)
	}
	if a.restore(map[string]string{keyLeaseEpoch: "x", keyLeaseHolder: "a"}) || a.restore(nil) {
		t.Fatal("malformed lease restored")
	}
}

func TestHeartbeatInterval(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want time.Duration }{
		{5 * time.Minute, 10 * time.Second}, {3 * time.Second, 500 * time.Millisecond}, {time.Millisecond, minHeartbeat},
	} {
		if got := heartbeatInterval(c.in); got != c.want {
			t.Errorf("heartbeatInterval(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// link pumps heartbeats between two managers while up.
type link struct {
	up   atomic.Bool
	stop chan struct{}
	wg   sync.WaitGroup
}

func pump(t *testing.T, a, b func() *Manager, every time.Duration) *link {
	l := &link{stop: make(chan struct{})}
	l.up.Store(true)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tk.C:
			}
			ma, mb := a(), b()
			if !l.up.Load() || ma == nil || mb == nil {
				continue
			}
			ctx := context.Background()
			p, err := ma.Heartbeat(ctx, mb.node)
			if err == nil {
				err = mb.ReceiveHeartbeat(ctx, ma.node, p)
			}
			if err == nil {
				p, err = mb.Heartbeat(ctx, ma.node)
			}
			if err == nil {
				err = ma.ReceiveHeartbeat(ctx, mb.node, p)
			}
			if err != nil {
				t.Errorf("heartbeat: %v", err)
			}
		}
	}()
	t.Cleanup(func() { close(l.stop); l.wg.Wait() })
	return l
}

func runManager(t *testing.T, node string, srcs []config.Source, ing Ingester, st StateStore, opt Options) (*Manager, func()) {
	t.Helper()
	m, err := NewManagerOptions(node, srcs, ing, st, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return m, stop
}

// TestFailoverManagers runs an owner and a standby against one mailbox in
// delete mode: takeover with the shared cursor, hand-back, and every
// message archived and removed.
func TestFailoverManagers(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	src := imapSource(t, "j", srv.addr, "secret")
	src.Mode = "delete"
	src.Poll = config.Duration(30 * time.Millisecond)
	// Seconds, not milliseconds: a pump that a loaded machine stalls must
	// not look like a dead owner.
	src.Owner, src.Standby, src.TakeoverAfter = "node-a", []string{"node-b"}, config.Duration(2*time.Second)
	opt := testOptions()
	opt.HeartbeatInterval = 20 * time.Millisecond
	stA, stB := newMemState(), newMemState()
	arcA, arcB := newFakeArchive(), newFakeArchive()

	var cur atomic.Pointer[Manager]
	ma, stopA := runManager(t, "node-a", []config.Source{src}, arcA, stA, opt)
	cur.Store(ma)
	mb, _ := runManager(t, "node-b", []config.Source{src}, arcB, stB, opt)
	l := pump(t, cur.Load, func() *Manager { return mb }, 20*time.Millisecond)

	for i := range 5 {
		srv.append(t, "INBOX", testMsg(i))
	}
	waitFor(t, "owner imports", 10*time.Second, func() bool { return arcA.count() == 5 && srv.count(t, "INBOX") == 0 })
	if arcB.callCount() != 0 || statusOf(mb, "j").State != "standby" || statusOf(mb, "j").Poller != "node-a" {
		t.Fatalf("standby polled while the owner is up: %+v", statusOf(mb, "j"))
	}
	if err := mb.PollNow("j"); err == nil || !strings.Contains(err.Error(), "standby") {
		t.Fatalf("PollNow on a standby: %v", err)
	}
	if stB.get("j", "imap.cursor.INBOX") != "" {
		t.Fatal("cursor shared in delete mode (a standby must only delete what it archived itself)")
	}

	// The owner dies; the standby takes over under epoch 1.
	l.up.Store(false)
	stopA()
	for i := 5; i < 10; i++ {
		srv.append(t, "INBOX", testMsg(i))
	}
	waitFor(t, "standby takes over", 10*time.Second, func() bool {
		s := statusOf(mb, "j")
		return s.Poller == "node-b" && s.LeaseEpoch == 1 && arcB.count() == 5 && srv.count(t, "INBOX") == 0
	})
	if stB.get("j", keyLeaseEpoch) != "1" || stB.get("j", keyLeaseHolder) != "node-b" {
		t.Fatalf("lease not persisted: %q %q", stB.get("j", keyLeaseEpoch), stB.get("j", keyLeaseHolder))
	}
	for i := 5; i < 10; i++ {
		if !arcB.has(testMsg(i)) {
			t.Fatalf("message %d not archived by the standby", i)
		}
	}

	// The owner restarts from its persisted (stale) lease, learns epoch 1
	// and gets the source back under epoch 2.
	ma2, _ := runManager(t, "node-a", []config.Source{src}, arcA, stA, opt)
	cur.Store(ma2)
	l.up.Store(true)
	waitFor(t, "hand-back", 10*time.Second, func() bool {
		a, b := statusOf(ma2, "j"), statusOf(mb, "j")
		return a.Poller == "node-a" && a.LeaseEpoch == 2 && b.Poller == "node-a" && b.LeaseEpoch == 2 && b.State == "standby"
	})
	for i := 10; i < 15; i++ {
		srv.append(t, "INBOX", testMsg(i))
	}
	waitFor(t, "owner imports again", 10*time.Second, func() bool { return arcA.count() == 10 && srv.count(t, "INBOX") == 0 })
	if arcB.count() != 5 {
		t.Fatalf("standby archived %d messages after the hand-back", arcB.count())
	}

	// A higher epoch held elsewhere stops deletions at once.
	r := ma2.byName["j"]
	if !r.mayDestroy() {
		// The owner may be between polls; wait for a poll in progress.
		waitFor(t, "owner polling", 5*time.Second, r.mayDestroy)
	}
	hb, _ := json.Marshal(heartbeatMsg{Node: "node-b", Sources: []leaseInfo{{Name: "j", Epoch: 9, Holder: "node-b"}}})
	if err := ma2.ReceiveHeartbeat(context.Background(), "node-b", hb); err != nil {
		t.Fatal(err)
	}
	if r.mayDestroy() {
		t.Fatal("deletions still allowed after learning a higher epoch held by another node")
	}
}

// TestNoStandbyNeverPolls: without standby nodes a non-owner never polls,
// however long the owner is silent.
func TestNoStandbyNeverPolls(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	srv.append(t, "INBOX", testMsg(1))
	src := imapSource(t, "j", srv.addr, "secret")
	src.Owner, src.TakeoverAfter = "node-a", config.Duration(50*time.Millisecond)
	arc := newFakeArchive()
	m, _ := runManager(t, "node-b", []config.Source{src}, arc, newMemState(), testOptions())
	if m.HasFailover() {
		t.Fatal("failover without standby nodes")
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if arc.callCount() != 0 || statusOf(m, "j").State != "not_owner" {
			t.Fatalf("non-owner polled: %+v", statusOf(m, "j"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFailoverSharesCursorKeepMode: in keep mode the standby stores the
// owner's cursor and, after a takeover, fetches only new mail.
func TestFailoverSharesCursorKeepMode(t *testing.T) {
	t.Parallel()
	srv := startMemIMAP(t, nil)
	src := imapSource(t, "k", srv.addr, "secret")
	src.Poll = config.Duration(30 * time.Millisecond)
	// Seconds, not milliseconds: a pump that a loaded machine stalls must
	// not look like a dead owner.
	src.Owner, src.Standby, src.TakeoverAfter = "node-a", []string{"node-b"}, config.Duration(2*time.Second)
	opt := testOptions()
	opt.HeartbeatInterval = 20 * time.Millisecond
	stB := newMemState()
	arcA, arcB := newFakeArchive(), newFakeArchive()
	ma, stopA := runManager(t, "node-a", []config.Source{src}, arcA, newMemState(), opt)
	mb, _ := runManager(t, "node-b", []config.Source{src}, arcB, stB, opt)
	l := pump(t, func() *Manager { return ma }, func() *Manager { return mb }, 20*time.Millisecond)
	for i := range 5 {
		srv.append(t, "INBOX", testMsg(i))
	}
	waitFor(t, "owner imports", 10*time.Second, func() bool { return arcA.count() == 5 })
	waitFor(t, "cursor shared", 5*time.Second, func() bool {
		c := stB.get("k", "imap.cursor.INBOX")
		return c != "" && c[len(c)-2:] == ":5"
	})
	l.up.Store(false)
	stopA()
	for i := 5; i < 8; i++ {
		srv.append(t, "INBOX", testMsg(i))
	}
	waitFor(t, "standby imports the new mail", 10*time.Second, func() bool { return arcB.count() == 3 })
	if arcB.callCount() != 3 || srv.count(t, "INBOX") != 8 {
		t.Fatalf("standby fetched %d messages (want only the 3 new), mailbox %d", arcB.callCount(), srv.count(t, "INBOX"))
	}
	if err := mb.PollNow("k"); err != nil {
		t.Fatalf("PollNow on the holder: %v", err)
	}
}
