package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
)

// errRetryItems means the peer answered retry for some item.
var errRetryItems = errors.New("mirror: the peer asked to retry some messages later")

// runLane keeps one lane to a peer connected and pushing, forever: network
// errors back off exponentially with full jitter (capped at RetryMax),
// refusals retry every SlowRetry; a connection from the peer cuts any wait
// short.
func (m *Mirror) runLane(ctx context.Context, p *peer, live bool) {
	lane := "backlog"
	if live {
		lane = "live"
	}
	attempt := 0
	for ctx.Err() == nil {
		s, closeConn, err := m.dial(ctx, p, lane)
		if err == nil {
			attempt = 0
			m.setState(p, StateOnline, "")
			if live {
				err = m.liveLoop(ctx, p, s)
			} else {
				err = m.backlogLoop(ctx, p, s)
			}
			closeConn()
		}
		if ctx.Err() != nil {
			return
		}
		var delay time.Duration
		var he *HandshakeError
		switch {
		case errors.As(err, &he):
			m.setState(p, he.State, he.Error())
			m.log.Error("mirror: peer refused", "peer", p.cfg.Name, "lane", lane, "state", he.State, "reason", he.Error())
			delay = m.cfg.SlowRetry
		case errors.Is(err, errRetryItems):
			p.setErr(err.Error())
			delay = m.backoff(&attempt)
		default:
			m.setState(p, StateOffline, err.Error())
			m.log.Debug("mirror: link to peer failed", "peer", p.cfg.Name, "lane", lane, "err", err)
			delay = m.backoff(&attempt)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-p.wake:
			signal(p.wake) // let the other lane see it too
		}
		t.Stop()
	}
}

// backoff is full jitter: uniform in [0, min(RetryMax, RetryBase*2^attempt)].
func (m *Mirror) backoff(attempt *int) time.Duration {
	d := m.cfg.RetryBase << min(*attempt, 20)
	if d <= 0 || d > m.cfg.RetryMax {
		d = m.cfg.RetryMax
	}
	*attempt++
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func (p *peer) setErr(s string) {
	p.mu.Lock()
	p.lastErr = s
	p.mu.Unlock()
}

// idle waits for new mail; on the ping interval it checks the link.
func (m *Mirror) idle(ctx context.Context, s *session, work chan struct{}) error {
	t := time.NewTimer(m.cfg.PingInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-work:
		return nil
	case <-t.C:
		return m.ping(s)
	}
}

func (m *Mirror) ping(s *session) error {
	if err := s.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := writeFrame(s.conn, framePing, nil); err != nil {
		return err
	}
	f, err := readFrame(s.r, 16)
	if err != nil {
		return fmt.Errorf("mirror: ping: %w", err)
	}
	if f.typ != framePong {
		return fmt.Errorf("mirror: protocol error: expected pong, got %q", f.typ)
	}
	return nil
}

// backlogLoop pushes the feed after the peer's durable cursor, batch by
// batch, advancing the cursor over the contiguous finished prefix.
func (m *Mirror) backlogLoop(ctx context.Context, p *peer, s *session) error {
	defer p.busy.Store(false)
	defer p.draining.Store(false)
	if err := m.checkPeerHolds(ctx, p, s); err != nil {
		return err
	}
	for {
		cursor, err := m.cat.PeerCursor(ctx, p.cfg.Name)
		if err != nil {
			return err
		}
		items, err := m.cat.FeedAfter(ctx, cursor, m.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			p.busy.Store(false)
			p.draining.Store(false)
			if err := m.idle(ctx, s, p.work); err != nil {
				return err
			}
			continue
		}
		p.inflightEnd.Store(items[len(items)-1].Seq)
		p.busy.Store(true)
		p.draining.Store(len(items) == m.cfg.BatchSize)
		if h := m.hooks.backlogBatch; h != nil {
			h(p.cfg.Name, len(items))
		}
		done, retry, err := m.pushBatch(ctx, p, s, items)
		next := cursor
		for i, it := range items {
			if !done[i] {
				break
			}
			next = it.Seq
		}
		if next > cursor {
			m.failpoint("mirror-after-push-before-cursor")
			if err := m.cat.SetPeerCursor(context.WithoutCancel(ctx), p.cfg.Name, next); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		if retry {
			return errRetryItems
		}
	}
}

// holdsWindow is how far below the cursor checkPeerHolds looks for the
// newest message the peer acknowledged.
const holdsWindow = 256

// checkPeerHolds asks the peer, once per backlog connection, whether it
// still holds the newest message it acknowledged (the last pushable,
// unparked entry at or below its cursor). A peer restored from a backup
// lacks it even when it has archived enough since the restore that its
// feed head no longer looks lower than before; then the peer is handled as
// having lost history (cursor reset, anti-entropy pass).
func (m *Mirror) checkPeerHolds(ctx context.Context, p *peer, s *session) error {
	name := p.cfg.Name
	cursor, err := m.cat.PeerCursor(ctx, name)
	if err != nil || cursor == 0 {
		return err
	}
	items, err := m.cat.FeedAfter(ctx, max(0, cursor-holdsWindow), holdsWindow)
	if err != nil {
		return err
	}
	var last *archive.Message
	for _, it := range items {
		if it.Seq <= cursor && pushable(it) {
			last = it
		}
	}
	if last == nil {
		return nil // nothing of ours near the cursor to check
	}
	parked, err := m.tab.isParked(ctx, name, last.ID)
	if err != nil || parked {
		return err
	}
	raw, err := hex.DecodeString(last.ID)
	if err != nil || len(raw) != 32 {
		return nil
	}
	if err := s.conn.SetDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := writeFrame(s.conn, frameLack, raw); err != nil {
		return err
	}
	f, err := readFrame(s.r, 1)
	if err != nil {
		return fmt.Errorf("mirror: lack answer: %w", err)
	}
	if f.typ != frameLackAns || len(f.payload) != 1 {
		return fmt.Errorf("mirror: protocol error: bad lack answer (%q, %d bytes for 1 id)", f.typ, len(f.payload))
	}
	if err := s.conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if f.payload[0] != lackNeed {
		return nil
	}
	m.helloMu.Lock()
	defer m.helloMu.Unlock()
	if now, err := m.cat.PeerCursor(ctx, name); err != nil || now < last.Seq {
		return err // reset meanwhile (by a hello): nothing more to do
	}
	m.lostHistory(ctx, p, fmt.Sprintf("%s no longer holds message %s (seq %d here) it acknowledged: restored from a backup", name, last.ID, last.Seq))
	return nil
}

// tooLarge returns why a message of size bytes is not sent to p ("" when
// it may be): it exceeds the max_message_size p announced in its hello.
func tooLarge(p *peer, size int64) string {
	if limit := p.maxMsg.Load(); limit > 0 && size > limit {
		return fmt.Sprintf("too large for %s: %d bytes, its max_message_size is %d", p.cfg.Name, size, limit)
	}
	return ""
}

// liveLoop pushes freshly committed mail right away while the backlog lane
// is busy with older mail. It never moves the cursor: the backlog lane
// reaches the same messages later and the peer answers "have".
func (m *Mirror) liveLoop(ctx context.Context, p *peer, s *session) error {
	after, err := m.cat.Head(ctx)
	if err != nil {
		return err
	}
	for {
		if err := m.idle(ctx, s, p.liveWork); err != nil {
			return err
		}
		for ctx.Err() == nil {
			if !p.busy.Load() {
				// The backlog lane is idle and handles new mail itself.
				if after, err = m.cat.Head(ctx); err != nil {
					return err
				}
				break
			}
			from := max(after, p.inflightEnd.Load())
			items, err := m.cat.FeedAfter(ctx, from, m.cfg.BatchSize)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				after = from
				break
			}
			if _, _, err := m.pushBatch(ctx, p, s, items); err != nil {
				return err
			}
			after = items[len(items)-1].Seq
		}
	}
}

// pushable reports whether a message has a non-peer origin (or none).
func pushable(m *archive.Message) bool {
	if len(m.Origins) == 0 {
		return true
	}
	for _, o := range m.Origins {
		if !strings.HasPrefix(o, "peer:") {
			return true
		}
	}
	return false
}

// pushBatch asks the peer which of items it lacks, streams those and reads
// a result for each. done[i] is true when item i needs no further push
// (not pushable, have, stored, purged, parked); retry is true when the peer
// asked for a retry of some item.
func (m *Mirror) pushBatch(ctx context.Context, p *peer, s *session, items []*archive.Message) (done []bool, retry bool, err error) {
	done, _, retry, err = m.pushItems(ctx, p, s, items, false)
	return done, retry, err
}

// pushItems is pushBatch; with force it also pushes messages that reached
// this node from peers (anti-entropy), and purged[i] reports the items the
// peer answered purged (tombstoned there).
func (m *Mirror) pushItems(ctx context.Context, p *peer, s *session, items []*archive.Message, force bool) (done, purged []bool, retry bool, err error) {
	done = make([]bool, len(items))
	purged = make([]bool, len(items))
	var query []byte
	var idx []int
	for i, it := range items {
		if !force && !pushable(it) {
			done[i] = true
			continue
		}
		raw, err := hex.DecodeString(it.ID)
		if err != nil || len(raw) != 32 {
			done[i] = true
			m.parkLocal(ctx, p, it, "malformed id in the catalog")
			continue
		}
		query = append(query, raw...)
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return done, purged, false, nil
	}
	if err := s.conn.SetDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return done, purged, false, fmt.Errorf("mirror: %w", err)
	}
	if err := writeFrame(s.conn, frameLack, query); err != nil {
		return done, purged, false, err
	}
	f, err := readFrame(s.r, len(idx))
	if err != nil {
		return done, purged, false, fmt.Errorf("mirror: lack answer: %w", err)
	}
	if f.typ != frameLackAns || len(f.payload) != len(idx) {
		return done, purged, false, fmt.Errorf("mirror: protocol error: bad lack answer (%q, %d bytes for %d ids)", f.typ, len(f.payload), len(idx))
	}
	var need []int
	for j, a := range f.payload {
		i := idx[j]
		switch a {
		case lackHave:
			done[i] = true
			m.met.pushed(p.cfg.Name, "have", 1)
		case lackPurged:
			done[i] = true
			purged[i] = true
			m.met.pushed(p.cfg.Name, "purged", 1)
		default:
			need = append(need, i)
		}
	}
	if len(need) == 0 {
		return done, purged, false, nil
	}
	m.failpoint("mirror-before-push")

	// Stream the puts from a goroutine while reading results here.
	sent := make(chan int, len(need))
	wdone := make(chan error, 1)
	w := newWriter(s.conn)
	var readFailed atomic.Bool
	go func() {
		defer close(sent)
		for _, i := range need {
			payload, ok, parked := m.preparePut(ctx, p, items[i])
			if !ok {
				// Parked (damaged or gone locally) never blocks the rest; a
				// read error leaves the item undone, so the cursor waits.
				done[i] = parked
				if !parked {
					readFailed.Store(true)
				}
				continue
			}
			if err := w.write(framePut, payload); err != nil {
				wdone <- err
				_ = s.conn.Close()
				return
			}
			sent <- i
		}
		wdone <- nil
	}()
	byID := map[[32]byte]int{}
	stored := 0
	var readErr error
	for i := range sent {
		var key [32]byte
		raw, _ := hex.DecodeString(items[i].ID)
		copy(key[:], raw)
		byID[key] = i
		if readErr != nil {
			continue
		}
		if err := s.conn.SetReadDeadline(time.Now().Add(5 * time.Minute)); err != nil {
			readErr = err
			continue
		}
		rf, err := readFrame(s.r, 64<<10)
		if err != nil {
			readErr = fmt.Errorf("mirror: push result: %w", err)
			_ = s.conn.Close()
			continue
		}
		id, res, reason, err := decodeResult(rf.payload)
		if rf.typ != frameResult || err != nil {
			readErr = fmt.Errorf("mirror: protocol error: bad push result: %v", err)
			_ = s.conn.Close()
			continue
		}
		j, ok := byID[id]
		if !ok {
			// A result may overtake our bookkeeping of a later send.
			j = -1
			for _, k := range need {
				if items[k].ID == hex.EncodeToString(id[:]) {
					j = k
				}
			}
			if j < 0 {
				readErr = errors.New("mirror: protocol error: result for an id we did not send")
				_ = s.conn.Close()
				continue
			}
		}
		m.met.pushed(p.cfg.Name, resultName(res), 1)
		switch res {
		case resStored:
			done[j] = true
			stored++
		case resHave:
			done[j] = true
		case resPurged:
			done[j] = true
			purged[j] = true
		case resRejected:
			done[j] = true
			m.log.Error("mirror: peer rejected a message; parked", "peer", p.cfg.Name, "id", items[j].ID, "reason", reason)
			if err := m.tab.park(context.WithoutCancel(ctx), p.cfg.Name, items[j].ID, items[j].Seq, "rejected by peer: "+reason); err != nil {
				m.log.Error("mirror: parking", "err", err)
				done[j] = false
			}
		case resRetry:
			retry = true
			p.setErr("peer asked to retry: " + reason)
		}
	}
	werr := <-wdone
	retry = retry || readFailed.Load()
	if stored > 0 {
		p.succeeded(stored)
	}
	if readErr != nil {
		return done, purged, retry, readErr
	}
	if werr != nil {
		return done, purged, retry, werr
	}
	if err := s.conn.SetDeadline(time.Time{}); err != nil {
		return done, purged, retry, fmt.Errorf("mirror: %w", err)
	}
	return done, purged, retry, nil
}

// preparePut reads, checks and compresses one message. When ok is false
// the message is not sent: parked is true when it was parked (larger than
// the peer accepts, gone or damaged locally), false after a read error
// worth retrying.
func (m *Mirror) preparePut(ctx context.Context, p *peer, it *archive.Message) (payload []byte, ok, parked bool) {
	if reason := tooLarge(p, it.Size); reason != "" {
		m.parkLocal(ctx, p, it, reason)
		return nil, false, true
	}
	data, err := m.arch.Raw(ctx, it.ID)
	if errors.Is(err, archive.ErrNotFound) {
		m.parkLocal(ctx, p, it, "blob missing locally (run mailarc verify)")
		return nil, false, true
	}
	if err != nil {
		m.log.Warn("mirror: reading a message to push; will retry", "peer", p.cfg.Name, "id", it.ID, "err", err)
		return nil, false, false
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != it.ID {
		m.parkLocal(ctx, p, it, "blob damaged locally: sha-256 does not match (run mailarc verify)")
		return nil, false, true
	}
	meta, _ := json.Marshal(putMeta{Origins: it.Origins, MailFrom: it.MailFrom, RcptTo: it.RcptTo, Arrival: it.Arrival.UnixNano()})
	return encodePut(sum, meta, m.enc.EncodeAll(data, nil)), true, false
}

func (m *Mirror) parkLocal(ctx context.Context, p *peer, it *archive.Message, reason string) {
	m.log.Error("mirror: cannot push a message; parked", "peer", p.cfg.Name, "id", it.ID, "reason", reason)
	if err := m.tab.park(context.WithoutCancel(ctx), p.cfg.Name, it.ID, it.Seq, reason); err != nil {
		m.log.Error("mirror: parking", "err", err)
	}
}
