package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
)

// ErrUnknownPeer is returned for a peer name not in [[mirror.peers]].
var ErrUnknownPeer = errors.New("mirror: no such peer")

// UserSync replicates user accounts between peers (package auth implements
// it). Records are opaque JSON to the mirror; they travel only over the
// authenticated TLS link.
type UserSync interface {
	// ExportUsers returns every account record (with deletions).
	ExportUsers(ctx context.Context) ([]byte, error)
	// MergeUsers applies a peer's records, last writer wins.
	MergeUsers(ctx context.Context, data []byte) (changed int, err error)
}

// AEStatus is a peer's anti-entropy progress in status.
type AEStatus struct {
	// State is "running", "pending" (a pass is due) or "idle".
	State string `json:"state"`
	// Verified and Total count the top-level buckets (32-day periods of
	// held mail and tombstone groups) of the current or last pass.
	Verified     int64      `json:"buckets_verified"`
	Total        int64      `json:"buckets_total"`
	LastComplete *time.Time `json:"last_complete"`
	// Passes counts the completed passes with this peer.
	Passes    int64  `json:"passes_completed"`
	Reason    string `json:"reason,omitempty"`
	Pulled    int64  `json:"pulled"`
	Pushed    int64  `json:"pushed"`
	LastError string `json:"last_error,omitempty"`
}

func aeStatus(r aeRow, exists, running bool) AEStatus {
	st := AEStatus{State: "idle", Verified: r.Verified, Total: r.Total, Pulled: r.Pulled, Pushed: r.Pushed, Passes: r.Passes, LastError: r.LastError}
	switch {
	case !exists:
		st.State, st.Reason = "pending", "first contact"
	case running:
		st.State, st.Reason = "running", r.PassReason
	case r.PassStarted > 0:
		st.State, st.Reason = "pending", "resume: "+r.PassReason
	case r.Wanted != "":
		st.State, st.Reason = "pending", r.Wanted
	}
	if r.LastComplete > 0 {
		t := time.Unix(r.LastComplete, 0).UTC()
		st.LastComplete = &t
	}
	return st
}

// RequestSync asks for an anti-entropy pass with peer now (`mailarc peers
// sync NAME`, POST /api/v1/peers/{name}/sync).
func (m *Mirror) RequestSync(ctx context.Context, name, reason string) error {
	p := m.peers[name]
	if p == nil {
		return fmt.Errorf("%w: %q", ErrUnknownPeer, name)
	}
	if err := m.tab.aeEnsure(ctx, name, "", 0, reason); err != nil {
		return err
	}
	if err := m.tab.aeWant(ctx, name, reason); err != nil {
		return err
	}
	signal(p.aeWake)
	return nil
}

// RepairPeer forgets peer's pinned certificate (the next authentication
// pins its current one) and requests a full anti-entropy pass.
func (m *Mirror) RepairPeer(ctx context.Context, name string) (hadPin bool, err error) {
	if m.peers[name] == nil {
		return false, fmt.Errorf("%w: %q", ErrUnknownPeer, name)
	}
	if hadPin, err = Repair(ctx, m.cat, name); err != nil {
		return false, err
	}
	signal(m.peers[name].wake)
	return hadPin, m.RequestSync(ctx, name, "repair requested by an admin")
}

// UsersChanged tells the peers' anti-entropy lanes to send the accounts
// now (the auth service calls it after every account change).
func (m *Mirror) UsersChanged() {
	for _, p := range m.peers {
		p.usersDirty.Store(true)
		signal(p.aeWake)
	}
}

// noteHello records a peer's hello (either direction): its policy digest
// for drift, its max_message_size, and its store instance and feed head. A
// new peer, a changed instance (rebuilt, restored) or a head that went
// backwards (restored from a backup) requests an anti-entropy pass; the
// last two also reset the peer's cursor and what we believed it holds.
//
// The peer's lanes connect concurrently, so its hellos may be noted in
// another order than it built them while mail flows and the head grows. A
// hello of the same peer process (boot) with a lower hello sequence than
// one already noted, or of a process already replaced by a newer one, is
// stale and ignored; heads are compared only in order, so a lower head
// means a restarted peer lost history.
func (m *Mirror) noteHello(ctx context.Context, p *peer, h Hello) {
	m.helloMu.Lock()
	defer m.helloMu.Unlock()
	if h.Boot != "" && ((h.Boot == p.boot && h.HelloSeq <= p.helloSeq) || slices.Contains(p.pastBoots, h.Boot)) {
		return // built before a hello we already noted
	}
	if h.Boot != p.boot && p.boot != "" {
		p.pastBoots = append(p.pastBoots, p.boot)
		if len(p.pastBoots) > 8 {
			p.pastBoots = p.pastBoots[1:]
		}
	}
	p.boot, p.helloSeq = h.Boot, h.HelloSeq
	p.mu.Lock()
	p.policy, p.policySummary, p.policySeen = h.Policy, h.PolicySummary, true
	p.mu.Unlock()
	p.maxMsg.Store(h.MaxMessage)
	name := p.cfg.Name
	row, ok, err := m.tab.aeLoad(ctx, name)
	if err != nil {
		m.log.Warn("mirror: anti-entropy state", "peer", name, "err", err)
		return
	}
	if !ok {
		if err := m.tab.aeEnsure(ctx, name, h.Instance, h.Head, "first contact"); err != nil {
			m.log.Warn("mirror: anti-entropy state", "peer", name, "err", err)
		}
		signal(p.aeWake)
		return
	}
	reason := ""
	switch {
	case row.Instance != "" && row.Instance != h.Instance:
		reason = fmt.Sprintf("store instance of %s changed (%s, was %s): rebuilt or restored", name, h.Instance, row.Instance)
	case h.Head < row.Head:
		reason = fmt.Sprintf("feed head of %s went backwards (%d, was %d): restored from a backup", name, h.Head, row.Head)
	}
	if reason != "" {
		m.lostHistory(ctx, p, reason)
	}
	if row.Instance != h.Instance || row.Head != h.Head {
		if err := m.tab.aeSeen(ctx, name, h.Instance, h.Head); err != nil {
			m.log.Warn("mirror: anti-entropy state", "peer", name, "err", err)
		}
	}
}

// lostHistory handles a peer that lost mail it had (rebuilt, restored from
// a backup): its push cursor is reset, so the whole feed is offered again,
// what we believed it holds is forgotten (purge safety), and an
// anti-entropy pass is requested. The caller holds m.helloMu.
func (m *Mirror) lostHistory(ctx context.Context, p *peer, reason string) {
	name := p.cfg.Name
	m.log.Warn("mirror: peer lost history; re-offering everything and running anti-entropy", "peer", name, "reason", reason)
	if err := m.cat.ResetPeerCursor(ctx, name); err != nil {
		m.log.Warn("mirror: reset cursor", "peer", name, "err", err)
	}
	if err := m.tab.aeForget(ctx, name, reason); err != nil {
		m.log.Warn("mirror: anti-entropy state", "peer", name, "err", err)
	}
	signal(p.aeWake)
	signal(p.work)
}

// aeLoop runs anti-entropy passes and account syncs with one peer, over
// their own connection (lane "ae"), so the push lanes keep flowing.
func (m *Mirror) aeLoop(ctx context.Context, p *peer) {
	attempt := 0
	nextProbe := time.Now()
	for ctx.Err() == nil {
		row, ok, err := m.tab.aeLoad(ctx, p.cfg.Name)
		if err != nil {
			m.log.Warn("mirror: anti-entropy state", "peer", p.cfg.Name, "err", err)
		}
		now := time.Now()
		due := !ok || row.PassStarted > 0 || row.Wanted != "" ||
			now.Sub(time.Unix(row.LastComplete, 0)) >= m.cfg.AntiEntropyInterval
		var wait time.Duration
		if due || p.usersDirty.Load() || !now.Before(nextProbe) {
			nextProbe = now.Add(m.cfg.ProbeInterval)
			err := m.aeConnect(ctx, p)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				var he *HandshakeError
				if errors.As(err, &he) {
					wait = m.cfg.SlowRetry
				} else {
					wait = m.backoff(&attempt)
				}
				p.setAEErr(err.Error())
				if rerr := m.tab.aeFail(context.WithoutCancel(ctx), p.cfg.Name, err.Error()); rerr != nil {
					m.log.Warn("mirror: anti-entropy state", "err", rerr)
				}
				m.log.Debug("mirror: anti-entropy with peer failed", "peer", p.cfg.Name, "err", err)
			} else {
				attempt = 0
				continue
			}
		} else {
			wait = time.Until(nextProbe)
			if ok && row.LastComplete > 0 {
				wait = min(wait, time.Until(time.Unix(row.LastComplete, 0).Add(m.cfg.AntiEntropyInterval)))
			}
		}
		t := time.NewTimer(max(wait, 10*time.Millisecond))
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-p.aeWake:
		}
		t.Stop()
	}
}

func (p *peer) setAEErr(s string) {
	p.mu.Lock()
	p.aeErr = s
	p.mu.Unlock()
}

// aeConnect dials the peer, syncs accounts and runs a pass when one is due.
func (m *Mirror) aeConnect(ctx context.Context, p *peer) error {
	s, closeConn, err := m.dial(ctx, p, "ae")
	if err != nil {
		return err
	}
	defer closeConn()
	if p.usersDirty.Swap(false) || m.cfg.Users != nil {
		if err := m.syncUsers(ctx, p, s); err != nil {
			p.usersDirty.Store(true)
			return err
		}
	}
	row, ok, err := m.tab.aeLoad(ctx, p.cfg.Name)
	if err != nil || !ok {
		return err
	}
	reason := ""
	switch {
	case row.PassStarted > 0:
		reason = row.PassReason
	case row.Wanted != "":
		reason = row.Wanted
	case time.Since(time.Unix(row.LastComplete, 0)) >= m.cfg.AntiEntropyInterval:
		reason = "periodic"
	}
	if reason == "" {
		return nil
	}
	return m.runPass(ctx, p, s, row, reason)
}

// syncUsers sends our accounts and merges the peer's answer.
func (m *Mirror) syncUsers(ctx context.Context, p *peer, s *session) error {
	if m.cfg.Users == nil {
		return nil
	}
	mine, err := m.cfg.Users.ExportUsers(ctx)
	if err != nil {
		return err
	}
	f, err := m.request(s, frameUsers, mine, frameUsersAns)
	if err != nil {
		return err
	}
	if n, err := m.cfg.Users.MergeUsers(ctx, f); err != nil {
		return fmt.Errorf("mirror: accounts from %s: %w", p.cfg.Name, err)
	} else if n > 0 {
		m.log.Info("mirror: accounts updated from peer", "peer", p.cfg.Name, "changed", n)
	}
	return nil
}

// request writes one frame and reads the answer of type want.
func (m *Mirror) request(s *session, typ byte, payload []byte, want byte) ([]byte, error) {
	if err := s.conn.SetDeadline(time.Now().Add(5 * time.Minute)); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	if err := writeFrame(s.conn, typ, payload); err != nil {
		return nil, err
	}
	f, err := readFrame(s.r, m.maxFrame)
	if err != nil {
		return nil, fmt.Errorf("mirror: answer to %q: %w", typ, err)
	}
	if f.typ != want {
		return nil, fmt.Errorf("mirror: protocol error: expected %q, got %q", want, f.typ)
	}
	return f.payload, nil
}

// pass is the state of one anti-entropy pass.
type pass struct {
	p      *peer
	s      *session
	excl   map[string]bool // ids the peer purged
	pulled int64
	pushed int64
	failed int64
}

// runPass compares everything with the peer top-down and transfers what
// either side lacks. Progress is persisted per top-level bucket, so an
// interrupted pass resumes where it stopped.
func (m *Mirror) runPass(ctx context.Context, p *peer, s *session, row aeRow, reason string) error {
	name := p.cfg.Name
	p.aeRunning.Store(true)
	defer p.aeRunning.Store(false)
	if row.PassStarted == 0 {
		head, err := m.cat.Head(ctx)
		if err != nil {
			return err
		}
		if err := m.tab.aeStart(ctx, name, head, reason); err != nil {
			return err
		}
		row.Pulled, row.Pushed = 0, 0
		m.log.Info("mirror: anti-entropy pass started", "peer", name, "reason", reason)
	} else {
		m.log.Info("mirror: anti-entropy pass resumed", "peer", name, "reason", reason)
	}
	done, err := m.tab.aeDoneSet(ctx, name)
	if err != nil {
		return err
	}
	excl, err := m.tab.peerTombs(ctx, name)
	if err != nil {
		return err
	}
	ps := &pass{p: p, s: s, excl: excl, pulled: row.Pulled, pushed: row.Pushed}
	roots := []bucketKey{{set: 't'}, {set: 'm'}}
	local := map[string]digest{}
	for _, r := range roots {
		if err := m.localChildren(ctx, r, excl, local); err != nil {
			return err
		}
	}
	remote, err := m.remoteDigests(s, []string{"t", "m"})
	if err != nil {
		return err
	}
	top := map[string]bool{}
	for k := range local {
		top[k] = true
	}
	for k := range remote {
		top[k] = true
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	total := int64(len(keys))
	var verified int64
	for _, k := range keys {
		if done[k] {
			verified++
		}
	}
	save := func() error {
		return m.tab.aeProgress(context.WithoutCancel(ctx), name, total, verified, ps.pulled, ps.pushed)
	}
	if err := save(); err != nil {
		return err
	}
	for _, k := range keys {
		if done[k] {
			continue
		}
		if local[k] != remote[k] {
			bk, err := parseKey(k)
			if err != nil {
				return err
			}
			before := ps.failed
			err = m.reconcile(ctx, ps, bk)
			if serr := save(); err == nil {
				err = serr
			}
			if err != nil {
				return err
			}
			if ps.failed > before {
				continue // not verified: the next pass retries it
			}
		}
		if err := m.tab.aeDone(ctx, name, k); err != nil {
			return err
		}
		verified++
		if err := save(); err != nil {
			return err
		}
		if m.hooks.aeBucketDone != nil {
			if err := m.hooks.aeBucketDone(name, k); err != nil {
				return err
			}
		}
	}
	if ps.failed > 0 {
		// Start over next time (retrying the failed buckets) after a backoff.
		if err := m.tab.aeFail(ctx, name, fmt.Sprintf("%d messages could not be transferred; will retry", ps.failed)); err != nil {
			return err
		}
		return fmt.Errorf("mirror: anti-entropy with %s: %d messages could not be transferred", name, ps.failed)
	}
	if err := m.tab.aeFinish(ctx, name); err != nil {
		return err
	}
	p.setAEErr("")
	m.log.Info("mirror: anti-entropy pass complete", "peer", name, "buckets", total, "pulled", ps.pulled, "pushed", ps.pushed)
	return nil
}

func (m *Mirror) remoteDigests(s *session, keys []string) (map[string]digest, error) {
	b, err := m.request(s, frameDigest, encodeKeys(keys), frameDigestAns)
	if err != nil {
		return nil, err
	}
	return decodeDigests(b)
}

// reconcile compares bucket k's children and descends into those that
// differ; leaves are compared by id lists.
func (m *Mirror) reconcile(ctx context.Context, ps *pass, k bucketKey) error {
	if k.leaf() {
		return m.reconcileLeaves(ctx, ps, []bucketKey{k})
	}
	local := map[string]digest{}
	if err := m.localChildren(ctx, k, ps.excl, local); err != nil {
		return err
	}
	remote, err := m.remoteDigests(ps.s, []string{k.String()})
	if err != nil {
		return err
	}
	var leaves []bucketKey
	for _, d := range diffDigests(local, remote) {
		ck, err := parseKey(d)
		if err != nil {
			return err
		}
		if ck.leaf() {
			leaves = append(leaves, ck)
		} else if err := m.reconcile(ctx, ps, ck); err != nil {
			return err
		}
	}
	if len(leaves) > 0 {
		return m.reconcileLeaves(ctx, ps, leaves)
	}
	return nil
}

// reconcileLeaves exchanges the id lists of leaf buckets and moves what
// differs: held ids by push and pull, tombstones by recording them.
func (m *Mirror) reconcileLeaves(ctx context.Context, ps *pass, leaves []bucketKey) error {
	name := ps.p.cfg.Name
	for len(leaves) > 0 {
		n := min(len(leaves), 256)
		batch := leaves[:n]
		leaves = leaves[n:]
		strs := make([]string, len(batch))
		for i, k := range batch {
			strs[i] = k.String()
		}
		var local []string
		if err := m.localIDs(ctx, batch, ps.excl, func(id string) { local = append(local, id) }); err != nil {
			return err
		}
		b, err := m.request(ps.s, frameIDs, encodeKeys(strs), frameIDsAns)
		if err != nil {
			return err
		}
		remote, err := decodeIDs(b)
		if err != nil {
			return err
		}
		onlyLocal, onlyRemote := diffIDs(local, remote)
		if batch[0].set == 't' {
			// Theirs: remember them; ours they do not know: tell them.
			if err := m.tab.addPeerTombs(ctx, name, onlyRemote); err != nil {
				return err
			}
			for _, id := range onlyRemote {
				ps.excl[id] = true
			}
			if err := m.sendTombs(ps.s, onlyLocal); err != nil {
				return err
			}
			continue
		}
		if err := m.aePush(ctx, ps, onlyLocal); err != nil {
			return err
		}
		tomb, err := m.cat.IsTombstoned(ctx, onlyRemote)
		if err != nil {
			return err
		}
		var want, ours []string
		for _, id := range onlyRemote {
			if tomb[id] {
				ours = append(ours, id)
			} else {
				want = append(want, id)
			}
		}
		if err := m.sendTombs(ps.s, ours); err != nil {
			return err
		}
		if err := m.aePull(ctx, ps, want); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mirror) sendTombs(s *session, ids []string) error {
	for len(ids) > 0 {
		n := min(len(ids), 4096)
		if _, err := m.request(s, frameTombs, encodeIDs(ids[:n]), frameTombsAck); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// aePush sends held messages the peer lacks, including those that reached
// us from other peers.
func (m *Mirror) aePush(ctx context.Context, ps *pass, ids []string) error {
	name := ps.p.cfg.Name
	for len(ids) > 0 {
		n := min(len(ids), m.cfg.BatchSize)
		msgs, err := m.cat.MessagesByID(ctx, ids[:n])
		if err != nil {
			return err
		}
		ids = ids[n:]
		items := make([]*archive.Message, 0, len(msgs))
		for _, mm := range msgs {
			items = append(items, mm)
		}
		if len(items) == 0 {
			continue // purged meanwhile
		}
		done, purged, _, err := m.pushItems(ctx, ps.p, ps.s, items, true)
		var gone []string
		for i, it := range items {
			switch {
			case purged[i]:
				gone = append(gone, it.ID)
				ps.excl[it.ID] = true
			case done[i]:
				ps.pushed++
			default:
				ps.failed++
			}
		}
		if terr := m.tab.addPeerTombs(context.WithoutCancel(ctx), name, gone); err == nil {
			err = terr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// aeReceiveConcurrency bounds the pulled messages being ingested at once.
const aeReceiveConcurrency = 32

// aePull asks the peer for messages we lack and ingests them through the
// normal receive path (SHA-256 check, group commit, origin peer:NAME).
func (m *Mirror) aePull(ctx context.Context, ps *pass, ids []string) error {
	name := ps.p.cfg.Name
	for len(ids) > 0 {
		n := min(len(ids), m.cfg.BatchSize)
		batch := ids[:n]
		ids = ids[n:]
		if err := ps.s.conn.SetDeadline(time.Now().Add(5 * time.Minute)); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		if err := writeFrame(ps.s.conn, frameGet, encodeIDs(batch)); err != nil {
			return err
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var gone []string
		sem := make(chan struct{}, aeReceiveConcurrency)
		var readErr error
		for range batch {
			f, err := readFrame(ps.s.r, m.maxFrame)
			if err != nil {
				readErr = fmt.Errorf("mirror: pull from %s: %w", name, err)
				break
			}
			switch f.typ {
			case framePut:
				sem <- struct{}{}
				wg.Add(1)
				go func(payload []byte) {
					defer wg.Done()
					defer func() { <-sem }()
					_, res, reason := m.receive(ctx, name, payload)
					mu.Lock()
					defer mu.Unlock()
					switch res {
					case resStored, resHave:
						ps.pulled++
					case resPurged:
					case resRejected:
						// Permanent (too large, damaged): retrying cannot help.
						m.log.Error("mirror: anti-entropy refused a message from the peer", "peer", name, "reason", reason)
					default:
						ps.failed++
						m.log.Warn("mirror: anti-entropy could not store a pulled message; will retry", "peer", name, "reason", reason)
					}
				}(f.payload)
			case frameResult:
				id, res, reason, err := decodeResult(f.payload)
				if err != nil {
					readErr = err
					break
				}
				mu.Lock()
				switch res {
				case resPurged:
					gone = append(gone, hex.EncodeToString(id[:]))
				case resRetry:
					ps.failed++
					m.log.Warn("mirror: peer could not send a message now; will retry", "peer", name, "id", hex.EncodeToString(id[:]), "reason", reason)
				default:
					m.log.Error("mirror: peer cannot send a message", "peer", name, "id", hex.EncodeToString(id[:]), "reason", reason)
				}
				mu.Unlock()
			default:
				readErr = fmt.Errorf("mirror: protocol error: unexpected %q answering a get", f.typ)
			}
			if readErr != nil {
				break
			}
		}
		wg.Wait()
		if err := m.tab.addPeerTombs(context.WithoutCancel(ctx), name, gone); err != nil {
			return err
		}
		if readErr != nil {
			return readErr
		}
	}
	return nil
}

// localChildren adds to out the digests of k's children on this node:
// held ids (minus excl, the peer's tombstones) for "m", our tombstones
// plus the peer's known ones for "t".
func (m *Mirror) localChildren(ctx context.Context, k bucketKey, excl map[string]bool, out map[string]digest) error {
	add := func(id string, date int64) {
		c := k.child(id, date).String()
		d := out[c]
		d.add(id)
		out[c] = d
	}
	if k.set == 't' {
		return m.walkTombs(ctx, k.hex, excl, func(id string) { add(id, 0) })
	}
	from, to := k.dateRange()
	return m.cat.WalkIDsByDate(ctx, from, to, func(id string, date int64) error {
		if len(id) == 64 && !excl[id] && k.contains(id, date) {
			add(id, date)
		}
		return nil
	})
}

// walkTombs calls fn for our tombstones and the peer's known ones (excl)
// with prefix, once each.
func (m *Mirror) walkTombs(ctx context.Context, prefix string, excl map[string]bool, fn func(id string)) error {
	seen := map[string]bool{}
	err := m.cat.WalkTombstones(ctx, prefix, func(id string) error {
		if len(id) == 64 {
			seen[id] = true
			fn(id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ks := make([]string, 0)
	for id := range excl {
		if len(id) == 64 && !seen[id] && id[:len(prefix)] == prefix {
			ks = append(ks, id)
		}
	}
	sort.Strings(ks)
	for _, id := range ks {
		fn(id)
	}
	return nil
}

// localIDs calls fn for every id of the leaf buckets keys.
func (m *Mirror) localIDs(ctx context.Context, keys []bucketKey, excl map[string]bool, fn func(id string)) error {
	for _, k := range keys {
		if !k.leaf() {
			return fmt.Errorf("mirror: protocol error: ids of a non-leaf bucket %s", k)
		}
		if k.set == 't' {
			if err := m.walkTombs(ctx, k.hex, excl, fn); err != nil {
				return err
			}
			continue
		}
		from, to := k.dateRange()
		err := m.cat.WalkIDsByDate(ctx, from, to, func(id string, date int64) error {
			if len(id) == 64 && !excl[id] && k.contains(id, date) {
				fn(id)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// aeServer answers a peer's anti-entropy requests on one connection.
type aeServer struct {
	m    *Mirror
	from string
	excl map[string]bool // loaded on first use
}

func (a *aeServer) tombs(ctx context.Context) (map[string]bool, error) {
	if a.excl == nil {
		t, err := a.m.tab.peerTombs(ctx, a.from)
		if err != nil {
			return nil, err
		}
		a.excl = t
	}
	return a.excl, nil
}

// handle answers one anti-entropy, tombstone or account frame.
func (a *aeServer) handle(ctx context.Context, w *writer, f frame) error {
	m := a.m
	switch f.typ {
	case frameDigest, frameIDs:
		keys, err := decodeKeys(f.payload)
		if err != nil {
			return err
		}
		excl, err := a.tombs(ctx)
		if err != nil {
			return err
		}
		if f.typ == frameIDs {
			var ids []string
			if err := m.localIDs(ctx, keys, excl, func(id string) { ids = append(ids, id) }); err != nil {
				return err
			}
			return w.write(frameIDsAns, encodeIDs(ids))
		}
		out := map[string]digest{}
		for _, k := range keys {
			if k.leaf() {
				return fmt.Errorf("mirror: protocol error: digest of leaf bucket %s", k)
			}
			if err := m.localChildren(ctx, k, excl, out); err != nil {
				return err
			}
		}
		return w.write(frameDigestAns, encodeDigests(out))
	case frameTombs:
		ids, err := decodeIDs(f.payload)
		if err != nil {
			return err
		}
		if err := m.tab.addPeerTombs(ctx, a.from, ids); err != nil {
			return err
		}
		if excl, err := a.tombs(ctx); err == nil {
			for _, id := range ids {
				excl[id] = true
			}
		}
		return w.write(frameTombsAck, nil)
	case frameGet:
		ids, err := decodeIDs(f.payload)
		if err != nil {
			return err
		}
		for _, id := range ids {
			payload, res, reason := m.encodeHeld(ctx, m.peers[a.from], id)
			if payload != nil {
				err = w.write(framePut, payload)
			} else {
				var raw [32]byte
				copy(raw[:], encodeIDs([]string{id}))
				err = w.write(frameResult, encodeResult(raw, res, reason))
			}
			if err != nil {
				return err
			}
		}
		return nil
	case frameUsers:
		var ours []byte
		if m.cfg.Users != nil {
			if n, err := m.cfg.Users.MergeUsers(ctx, f.payload); err != nil {
				m.log.Warn("mirror: accounts from peer", "peer", a.from, "err", err)
			} else if n > 0 {
				m.log.Info("mirror: accounts updated from peer", "peer", a.from, "changed", n)
			}
			var err error
			if ours, err = m.cfg.Users.ExportUsers(ctx); err != nil {
				return err
			}
		}
		if ours == nil {
			ours = []byte("[]")
		}
		return w.write(frameUsersAns, ours)
	}
	return fmt.Errorf("mirror: protocol error: unexpected frame %q", f.typ)
}

// encodeHeld builds a put payload for a held message, or a result when it
// cannot be sent to p (purged here, not held, larger than p accepts,
// damaged, temporarily unreadable).
func (m *Mirror) encodeHeld(ctx context.Context, p *peer, id string) ([]byte, byte, string) {
	it, err := m.cat.Get(ctx, id)
	if errors.Is(err, archive.ErrCatalogNotFound) {
		if t, err := m.cat.IsTombstoned(ctx, []string{id}); err == nil && t[id] {
			return nil, resPurged, ""
		}
		return nil, resRejected, "not held"
	}
	if err != nil {
		return nil, resRetry, "temporary: catalog"
	}
	if reason := tooLarge(p, it.Size); reason != "" {
		return nil, resRejected, reason
	}
	data, err := m.arch.Raw(ctx, id)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, resRejected, "blob missing on the sender"
	}
	if err != nil {
		return nil, resRetry, "temporary: store"
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != id {
		return nil, resRejected, "blob damaged on the sender"
	}
	meta, _ := json.Marshal(putMeta{Origins: it.Origins, MailFrom: it.MailFrom, RcptTo: it.RcptTo, Arrival: it.Arrival.UnixNano()})
	return encodePut(sum, meta, m.enc.EncodeAll(data, nil)), 0, ""
}
