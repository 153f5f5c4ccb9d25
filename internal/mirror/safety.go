package mirror

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// PeersHave is the purge-safety check (purge_requires_peers): ok[id] is
// true when every configured peer has acknowledged id, that is when for
// each peer one of these holds:
//
//   - the message reached us from that peer (origin peer:NAME);
//   - it is pushable, the peer's cursor is past its seq and it is not
//     parked for the peer (the peer answered stored, have or purged);
//   - its seq is at or below the peer's anti-entropy confirmed head (a
//     completed pass found or put it there);
//   - the peer told us it purged the id itself.
//
// Ids not held here count as ok (nothing left to protect). holdingBack
// names the peers that kept at least one id back; each gets a logged
// warning (at most every 10 minutes) and a status line.
func (m *Mirror) PeersHave(ctx context.Context, ids []string) (ok map[string]bool, holdingBack []string, err error) {
	ok = make(map[string]bool, len(ids))
	msgs, err := m.cat.MessagesByID(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		ok[id] = true
	}
	for _, name := range m.order {
		p := m.peers[name]
		cursor, err := m.cat.PeerCursor(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		row, _, err := m.tab.aeLoad(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		tombs, err := m.tab.peerTombs(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		parked, err := m.tab.parkedSet(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		var back int64
		for _, id := range ids {
			mm := msgs[id]
			if mm == nil {
				continue
			}
			acked := tombs[id] || mm.Seq <= row.ConfirmedHead ||
				(pushable(mm) && mm.Seq <= cursor && !parked[id])
			for _, o := range mm.Origins {
				acked = acked || o == "peer:"+name
			}
			if !acked {
				ok[id] = false
				back++
			}
		}
		p.mu.Lock()
		p.heldBack, p.heldBackAt = back, time.Now()
		logIt := back > 0 && time.Since(p.heldBackLogs) > 10*time.Minute
		if logIt {
			p.heldBackLogs = time.Now()
		}
		state := p.state
		p.mu.Unlock()
		m.met.heldBack.WithLabelValues(name).Set(float64(back))
		if back > 0 {
			holdingBack = append(holdingBack, name)
		}
		if logIt {
			m.log.Warn("retention purges deferred: peer has not acknowledged messages yet (purge_requires_peers)",
				"peer", name, "messages", back, "peer_state", state)
		}
	}
	return ok, holdingBack, nil
}

// PolicyDrift returns one line per peer whose retention policies or active
// holds (as announced in its latest hello) differ from ours.
func (m *Mirror) PolicyDrift(ctx context.Context) []string {
	out := []string{}
	if m.cfg.Policy == nil {
		return out
	}
	mine, summary := m.cfg.Policy(ctx)
	for _, name := range m.order {
		p := m.peers[name]
		p.mu.Lock()
		theirs, their, seen := p.policy, p.policySummary, p.policySeen
		p.mu.Unlock()
		if !seen || theirs == mine {
			continue
		}
		if theirs == "" {
			out = append(out, fmt.Sprintf("%s: does not report its retention policies and holds", name))
			continue
		}
		out = append(out, fmt.Sprintf("%s: retention policies or holds differ (here: %s; %s: %s): search results will differ between the nodes", name, summary, name, their))
	}
	sort.Strings(out)
	return out
}

// PolicySummary renders a short description for the hello ("default 7y,
// 2 policies, 1 active hold").
func PolicySummary(def string, policies, holds int) string {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	return strings.Join([]string{"default " + def, plural(policies, "policy", "policies"), plural(holds, "active hold", "active holds")}, ", ")
}
