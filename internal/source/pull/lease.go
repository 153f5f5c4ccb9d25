package pull

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lease keys in a source's persisted state (see the package doc).
const (
	keyLeaseEpoch  = "lease.epoch"
	keyLeaseHolder = "lease.holder"
	leaseKeyPrefix = "lease."
)

const (
	// defaultTakeover is takeover_after when the source does not set it.
	defaultTakeover = 5 * time.Minute
	// maxHeartbeat caps the derived heartbeat interval.
	maxHeartbeat = 10 * time.Second
	// minHeartbeat floors it (tests use takeover_after of a few seconds).
	minHeartbeat = 100 * time.Millisecond
	// handBackBeats is how many heartbeat intervals an earlier candidate
	// (normally the owner) must have been heard continuously before the
	// holder hands the source back to it.
	handBackBeats = 2
	// streakBeats is the gap, in heartbeat intervals, that breaks a
	// node's streak of heartbeats (it then has to be healthy anew).
	streakBeats = 3
)

// Heartbeat wire limits: a payload is rejected above these.
const (
	maxHeartbeatBytes   = 4 << 20
	maxHeartbeatSources = 1024
	maxStateKeys        = 4096
	maxNameLen          = 255
	// maxSharedState caps the cursor state shared for one source; larger
	// state is not shared (the standby then refetches, which ingest
	// deduplicates).
	maxSharedState = 256 << 10
)

// heartbeatMsg is the payload one node sends its peers over the mirror
// link (JSON; see the package doc).
type heartbeatMsg struct {
	Node    string      `json:"node"`
	Sources []leaseInfo `json:"sources"`
}

// leaseInfo is the sender's view of one source's lease.
type leaseInfo struct {
	Name   string `json:"name"`
	Epoch  uint64 `json:"epoch"`
	Holder string `json:"holder"`
	// State is the sender's cursor state, sent only while the sender
	// holds the lease.
	State map[string]string `json:"state,omitempty"`
}

// decodeHeartbeat parses and checks a heartbeat payload. It never panics.
func decodeHeartbeat(p []byte) (heartbeatMsg, error) {
	var hb heartbeatMsg
	if len(p) > maxHeartbeatBytes {
		return hb, fmt.Errorf("heartbeat: %d bytes exceeds %d", len(p), maxHeartbeatBytes)
	}
	if err := json.Unmarshal(p, &hb); err != nil {
		return hb, fmt.Errorf("heartbeat: %w", err)
	}
	if !validName(hb.Node) {
		return hb, errors.New("heartbeat: bad node name")
	}
	if len(hb.Sources) > maxHeartbeatSources {
		return hb, fmt.Errorf("heartbeat: %d sources exceeds %d", len(hb.Sources), maxHeartbeatSources)
	}
	for _, s := range hb.Sources {
		if !validName(s.Name) || (s.Holder != "" && !validName(s.Holder)) {
			return hb, errors.New("heartbeat: bad source or holder name")
		}
		if len(s.State) > maxStateKeys {
			return hb, fmt.Errorf("heartbeat: source %s: too many state keys", s.Name)
		}
		for k := range s.State {
			if k == "" || len(k) > 1024 || strings.HasPrefix(k, leaseKeyPrefix) {
				return hb, fmt.Errorf("heartbeat: source %s: bad state key", s.Name)
			}
		}
	}
	return hb, nil
}

func validName(s string) bool {
	return s != "" && len(s) <= maxNameLen && !strings.ContainsAny(s, "\x00\r\n")
}

// heartbeatInterval derives the heartbeat interval from takeover_after:
// a sixth of it, between minHeartbeat and maxHeartbeat (10 s for the
// default 5 minutes).
func heartbeatInterval(takeover time.Duration) time.Duration {
	return min(max(takeover/6, minHeartbeat), maxHeartbeat)
}

// leaseMachine is the failover state machine of one source on one node.
// It is pure (time is passed in) and not safe for concurrent use; the
// Manager serialises calls.
//
// The lease is (epoch, holder); a higher epoch always wins and, at the
// same epoch, the holder earlier in the candidate order (owner, then the
// standbys) wins, so every node converges on one view. A node polls only
// while it holds the lease and is ready (it has heard every other
// candidate once since it started, or takeover_after has passed), so a
// restarted owner first learns about a takeover before polling.
type leaseMachine struct {
	self     string
	order    []string // owner, then standby nodes
	takeover time.Duration
	beat     time.Duration
	started  time.Time

	epoch  uint64
	holder string

	heard  map[string]time.Time // last heartbeat from a node
	streak map[string]time.Time // start of its current continuous streak
}

func newLeaseMachine(self string, order []string, takeover, beat time.Duration, now time.Time) *leaseMachine {
	return &leaseMachine{self: self, order: order, takeover: takeover, beat: beat, started: now,
		holder: order[0], heard: map[string]time.Time{}, streak: map[string]time.Time{}}
}

// rank is a node's position in the candidate order (len(order) if none).
func (l *leaseMachine) rank(node string) int {
	if i := slices.Index(l.order, node); i >= 0 {
		return i
	}
	return len(l.order)
}

// restore merges a persisted lease into the view (a heartbeat may have
// brought a newer one already) and reports whether it was adopted.
func (l *leaseMachine) restore(st map[string]string) bool {
	e, err := strconv.ParseUint(st[keyLeaseEpoch], 10, 64)
	h := st[keyLeaseHolder]
	if err != nil || h == "" {
		return false
	}
	if e > l.epoch || (e == l.epoch && l.rank(h) < l.rank(l.holder)) {
		l.epoch, l.holder = e, h
		return true
	}
	return false
}

// persist is the lease as state keys.
func (l *leaseMachine) persist() map[string]string {
	return map[string]string{keyLeaseEpoch: strconv.FormatUint(l.epoch, 10), keyLeaseHolder: l.holder}
}

// observe records a heartbeat from a node carrying its view of the lease
// and adopts that view when it wins. It reports whether our view changed.
func (l *leaseMachine) observe(from string, epoch uint64, holder string, now time.Time) bool {
	if last, ok := l.heard[from]; !ok || now.Sub(last) > streakBeats*l.beat {
		l.streak[from] = now
	}
	l.heard[from] = now
	if holder == "" {
		return false
	}
	if epoch > l.epoch || (epoch == l.epoch && holder != l.holder && l.rank(holder) < l.rank(l.holder)) {
		l.epoch, l.holder = epoch, holder
		return true
	}
	return false
}

// healthy reports whether node is heard from (or is us).
func (l *leaseMachine) healthy(node string, now time.Time) bool {
	if node == l.self {
		return true
	}
	t, ok := l.heard[node]
	return ok && now.Sub(t) < l.takeover
}

// silent reports whether node has not been heard for takeover_after
// (counting from our own start when never heard).
func (l *leaseMachine) silent(node string, now time.Time) bool {
	if node == l.self {
		return false
	}
	last := l.started
	if t, ok := l.heard[node]; ok && t.After(last) {
		last = t
	}
	return now.Sub(last) >= l.takeover
}

// ready reports whether we may act on a lease we hold: every other
// candidate was heard once since we started, or takeover_after passed.
func (l *leaseMachine) ready(now time.Time) bool {
	if now.Sub(l.started) >= l.takeover {
		return true
	}
	for _, n := range l.order {
		if _, ok := l.heard[n]; n != l.self && !ok {
			return false
		}
	}
	return true
}

// tick applies takeover and hand-back. It reports whether the lease
// changed (and must be persisted before anyone acts on it).
func (l *leaseMachine) tick(now time.Time) bool {
	me := l.rank(l.self)
	if me >= len(l.order) {
		return false // not a candidate: we only follow
	}
	if l.holder == l.self {
		if !l.ready(now) {
			return false
		}
		// Hand back to the first earlier candidate healthy for a while.
		for _, n := range l.order[:me] {
			s, ok := l.streak[n]
			if l.healthy(n, now) && ok && now.Sub(s) >= handBackBeats*l.beat {
				l.epoch++
				l.holder = n
				return true
			}
		}
		return false
	}
	// Take over when the holder and every candidate before us are silent.
	if !l.silent(l.holder, now) {
		return false
	}
	for _, n := range l.order[:me] {
		if !l.silent(n, now) {
			return false
		}
	}
	l.epoch++
	l.holder = l.self
	return true
}

// active reports whether this node should poll now.
func (l *leaseMachine) active(now time.Time) bool {
	return l.holder == l.self && l.ready(now)
}

// mayDestroy reports whether a poll started under epoch may still delete
// from the server: we hold the lease and nobody holds a higher epoch.
func (l *leaseMachine) mayDestroy(epoch uint64) bool {
	return l.holder == l.self && l.epoch == epoch
}
