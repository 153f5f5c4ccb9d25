package pull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// errLeaseLost stops destructive actions of a poll whose lease epoch is no
// longer the highest, or that this node no longer holds.
var errLeaseLost = errors.New("source lease lost to another node: no deletions")

// leaseRun is a runner's failover state; nil for sources without standby
// nodes. Guarded by Manager.leaseMu.
type leaseRun struct {
	mach *leaseMachine
	// durable is the epoch last persisted; a lease is acted on only once
	// it is durable.
	durable uint64
	// pollEpoch is the epoch the current poll started under; cancel stops
	// that poll (nil when not polling).
	pollEpoch uint64
	cancel    context.CancelFunc
	// changed wakes the runner to re-evaluate the lease.
	changed chan struct{}
}

// restoreLeases loads the persisted lease of every failover source.
func (m *Manager) restoreLeases(ctx context.Context) error {
	for _, r := range m.runners {
		if r.lease == nil {
			continue
		}
		st, err := m.st.SourceState(ctx, r.src.Name)
		if err != nil {
			return fmt.Errorf("pull: source %s: load lease: %w", r.src.Name, err)
		}
		m.leaseMu.Lock()
		if r.lease.mach.restore(st) {
			r.lease.durable = r.lease.mach.epoch
		}
		m.leaseMu.Unlock()
	}
	return nil
}

// HasFailover reports whether any source names standby nodes, i.e.
// whether heartbeats must be exchanged with the peers.
func (m *Manager) HasFailover() bool {
	for _, r := range m.runners {
		if r.lease != nil {
			return true
		}
	}
	return false
}

// HeartbeatInterval is how often heartbeats should be exchanged with each
// peer: the shortest interval of any failover source (a sixth of its
// takeover_after, between 100 ms and 10 s), or Options.HeartbeatInterval.
func (m *Manager) HeartbeatInterval() time.Duration {
	return m.beat
}

// Heartbeat returns this node's heartbeat for a peer: the lease view of
// every failover source and, for the sources this node polls, their
// cursor state so a standby can continue where we stopped.
func (m *Manager) Heartbeat(ctx context.Context, peer string) ([]byte, error) {
	hb := heartbeatMsg{Node: m.node, Sources: []leaseInfo{}}
	var share []*runner
	m.leaseMu.Lock()
	now := time.Now()
	m.lastSent = now
	for _, r := range m.runners {
		if r.lease == nil {
			continue
		}
		l := r.lease.mach
		hb.Sources = append(hb.Sources, leaseInfo{Name: r.src.Name, Epoch: l.epoch, Holder: l.holder})
		// Cursor state is shared in keep mode only: in delete mode the
		// mailbox holds just what is not deleted yet (cheap to refetch),
		// and a standby must delete only what it archived itself, never
		// what only the (possibly lost) owner holds.
		if r.src.Mode == "keep" && l.active(now) && r.lease.durable == l.epoch {
			share = append(share, r)
		}
	}
	m.leaseMu.Unlock()
	for _, r := range share {
		st, err := m.st.SourceState(ctx, r.src.Name)
		if err != nil {
			return nil, fmt.Errorf("pull: heartbeat: %w", err)
		}
		size := 0
		for k, v := range st {
			if strings.HasPrefix(k, leaseKeyPrefix) {
				delete(st, k)
				continue
			}
			size += len(k) + len(v)
		}
		if size > maxSharedState || len(st) > maxStateKeys {
			continue
		}
		for i := range hb.Sources {
			if hb.Sources[i].Name == r.src.Name {
				hb.Sources[i].State = st
			}
		}
	}
	b, err := json.Marshal(hb)
	if err != nil {
		return nil, fmt.Errorf("pull: heartbeat: %w", err)
	}
	return b, nil
}

// ReceiveHeartbeat handles a peer's heartbeat: it adopts a winning lease
// (stopping our own polling and deletions at once when another node now
// holds it) and stores the holder's cursor state.
func (m *Manager) ReceiveHeartbeat(ctx context.Context, peer string, payload []byte) error {
	hb, err := decodeHeartbeat(payload)
	if err != nil {
		return fmt.Errorf("pull: from %s: %w", peer, err)
	}
	if hb.Node != peer {
		return fmt.Errorf("pull: heartbeat from %s names node %q", peer, hb.Node)
	}
	infos := make(map[string]leaseInfo, len(hb.Sources))
	for _, s := range hb.Sources {
		infos[s.Name] = s
	}
	type apply struct {
		r     *runner
		state map[string]string
	}
	var persist []*runner
	var states []apply
	m.leaseMu.Lock()
	now := time.Now()
	m.heard[peer] = now
	for _, r := range m.runners {
		lr := r.lease
		if lr == nil {
			continue
		}
		l := lr.mach
		l.observe(peer, 0, "", now)
		in, ok := infos[r.src.Name]
		if !ok {
			continue
		}
		if l.observe(peer, in.Epoch, in.Holder, now) {
			m.log.Info("pull source lease adopted", "source", r.src.Name, "from", peer, "epoch", l.epoch, "holder", l.holder)
			persist = append(persist, r)
			if l.holder != m.node && lr.cancel != nil {
				lr.cancel()
			}
		}
		if in.State != nil && r.src.Mode == "keep" && in.Holder == peer && l.holder == peer && l.epoch == in.Epoch && lr.cancel == nil {
			states = append(states, apply{r, in.State})
		}
	}
	m.leaseMu.Unlock()
	var errs []error
	for _, r := range persist {
		if err := m.persistLease(ctx, r); err != nil {
			errs = append(errs, err)
		}
		signal(r.lease.changed)
	}
	for _, a := range states {
		if err := m.storeShared(ctx, a.r, a.state); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// storeShared replaces our cursor state of a source with the holder's.
func (m *Manager) storeShared(ctx context.Context, r *runner, state map[string]string) error {
	cur, err := m.st.SourceState(ctx, r.src.Name)
	if err != nil {
		return fmt.Errorf("pull: source %s: shared state: %w", r.src.Name, err)
	}
	kv := maps.Clone(state)
	for k, v := range cur {
		if strings.HasPrefix(k, leaseKeyPrefix) {
			continue
		}
		if _, ok := state[k]; !ok {
			kv[k] = ""
		} else if state[k] == v {
			delete(kv, k)
		}
	}
	if len(kv) == 0 {
		return nil
	}
	// Re-check under the lock that we did not start polling meanwhile.
	m.leaseMu.Lock()
	polling := r.lease.cancel != nil
	m.leaseMu.Unlock()
	if polling {
		return nil
	}
	if err := m.st.SetSourceState(ctx, r.src.Name, kv); err != nil {
		return fmt.Errorf("pull: source %s: shared state: %w", r.src.Name, err)
	}
	return nil
}

// persistLease writes the current lease view of r durably and marks it
// durable. Writers are serialised and each writes the latest view.
func (m *Manager) persistLease(ctx context.Context, r *runner) error {
	m.persistMu.Lock()
	defer m.persistMu.Unlock()
	m.leaseMu.Lock()
	kv := r.lease.mach.persist()
	epoch := r.lease.mach.epoch
	m.leaseMu.Unlock()
	if err := m.st.SetSourceState(ctx, r.src.Name, kv); err != nil {
		return fmt.Errorf("pull: source %s: persist lease: %w", r.src.Name, err)
	}
	m.leaseMu.Lock()
	if r.lease.durable < epoch {
		r.lease.durable = epoch
	}
	m.leaseMu.Unlock()
	return nil
}

// leaseLoop re-evaluates takeover and hand-back every heartbeat interval.
func (m *Manager) leaseLoop(ctx context.Context) {
	t := time.NewTicker(m.beat)
	defer t.Stop()
	for {
		var changed []*runner
		m.leaseMu.Lock()
		now := time.Now()
		for _, r := range m.runners {
			lr := r.lease
			if lr == nil {
				continue
			}
			if lr.mach.tick(now) {
				m.log.Info("pull source lease changed", "source", r.src.Name, "epoch", lr.mach.epoch, "holder", lr.mach.holder)
				changed = append(changed, r)
			}
			if lr.mach.holder != m.node && lr.cancel != nil {
				lr.cancel()
			}
		}
		m.leaseMu.Unlock()
		for _, r := range changed {
			if err := m.persistLease(ctx, r); err != nil && ctx.Err() == nil {
				m.log.Warn("pull source lease", "source", r.src.Name, "err", err)
			}
		}
		for _, r := range m.runners {
			if r.lease != nil {
				signal(r.lease.changed)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runLeased polls a failover source while this node holds its lease and
// waits as a standby otherwise.
func (r *runner) runLeased(ctx context.Context) {
	for ctx.Err() == nil {
		pctx, ok := r.acquire(ctx)
		if !ok {
			r.setStandby()
			select {
			case <-ctx.Done():
				return
			case <-r.lease.changed:
			}
			continue
		}
		r.m.log.Info("pull source: polling under lease", "source", r.src.Name, "epoch", r.leaseEpoch())
		r.run(pctx)
		r.release()
	}
}

// acquire starts a poll context when this node holds a durable lease.
func (r *runner) acquire(ctx context.Context) (context.Context, bool) {
	r.m.leaseMu.Lock()
	defer r.m.leaseMu.Unlock()
	lr := r.lease
	if !lr.mach.active(time.Now()) || lr.durable != lr.mach.epoch {
		return nil, false
	}
	pctx, cancel := context.WithCancel(ctx)
	lr.pollEpoch = lr.mach.epoch
	lr.cancel = cancel
	return pctx, true
}

func (r *runner) release() {
	r.m.leaseMu.Lock()
	if r.lease.cancel != nil {
		r.lease.cancel()
		r.lease.cancel = nil
	}
	r.m.leaseMu.Unlock()
}

func (r *runner) leaseEpoch() uint64 {
	r.m.leaseMu.Lock()
	defer r.m.leaseMu.Unlock()
	return r.lease.mach.epoch
}

// mayDestroy reports whether the current poll may delete or move messages
// on the server: always without failover; with it, only while this node
// holds the highest lease epoch, the one the poll started under.
func (r *runner) mayDestroy() bool {
	if r.lease == nil {
		return true
	}
	r.m.leaseMu.Lock()
	defer r.m.leaseMu.Unlock()
	return r.lease.cancel != nil && r.lease.mach.mayDestroy(r.lease.pollEpoch)
}

func (r *runner) setStandby() {
	r.mu.Lock()
	if r.status.State != "disabled" {
		r.setStateLocked("standby")
		r.status.NextPoll = time.Time{}
	}
	r.mu.Unlock()
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
