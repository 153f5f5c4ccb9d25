package mirror

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/archive"
)

// PeerStatus is one entry of peers[] in /api/v1/status.
type PeerStatus struct {
	Name  string `json:"name"`
	URL   string `json:"url"`
	State string `json:"state"`
	// Queued counts the pushable messages (those with a non-peer origin)
	// after the peer's cursor: what this node still owes the peer.
	Queued           int64      `json:"queued"`
	OldestQueuedAgeS float64    `json:"oldest_queued_age_s"`
	LastSuccess      *time.Time `json:"last_success"`
	LastError        string     `json:"last_error"`
	// Throughput is messages stored on the peer per second, averaged over
	// the last minute.
	Throughput float64 `json:"throughput"`
	Cursor     int64   `json:"cursor"`
	Parked     int64   `json:"parked"`
	// Fingerprint is the pinned SHA-256 of the peer's certificate.
	Fingerprint string `json:"fingerprint,omitempty"`
	// AntiEntropy is the progress of the current or last anti-entropy pass.
	AntiEntropy AEStatus `json:"anti_entropy"`
	// PurgesHeldBack counts messages retention would purge but defers
	// because this peer has not acknowledged them (purge_requires_peers);
	// PurgeWarning says so in one line.
	PurgesHeldBack int64  `json:"purges_held_back,omitempty"`
	PurgeWarning   string `json:"purge_warning,omitempty"`
}

// Status reports every configured peer, in configuration order.
func (m *Mirror) Status(ctx context.Context) ([]PeerStatus, error) {
	out := make([]PeerStatus, 0, len(m.order))
	for _, name := range m.order {
		p := m.peers[name]
		st, err := peerStatus(ctx, m.cat, m.tab, p.cfg)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		st.State, st.LastError = p.state, p.lastErr
		if !p.lastSuccess.IsZero() {
			t := p.lastSuccess.UTC().Truncate(time.Second)
			st.LastSuccess = &t
		}
		st.Throughput = p.rate.perSecond(time.Now())
		if p.aeErr != "" && st.AntiEntropy.LastError == "" {
			st.AntiEntropy.LastError = p.aeErr
		}
		if p.heldBack > 0 && time.Since(p.heldBackAt) < 24*time.Hour {
			st.PurgesHeldBack = p.heldBack
			st.PurgeWarning = fmt.Sprintf("retention purges deferred: %d messages not yet acknowledged by peer %s (it is %s)", p.heldBack, name, p.state)
		}
		p.mu.Unlock()
		if p.aeRunning.Load() {
			st.AntiEntropy.State = "running"
			st.AntiEntropy.Reason = strings.TrimPrefix(st.AntiEntropy.Reason, "resume: ")
		}
		m.met.observe(name, st)
		out = append(out, st)
	}
	return out, nil
}

// OfflineStatus reports peers from the catalog alone, for a node that is
// not running (`mailarc peers --data DIR`): state is "offline" and
// last_error says the node is not serving.
func OfflineStatus(ctx context.Context, cat *archive.Catalog, peers []PeerConfig) ([]PeerStatus, error) {
	t, err := openTables(ctx, cat)
	if err != nil {
		return nil, err
	}
	out := make([]PeerStatus, 0, len(peers))
	for _, p := range peers {
		st, err := peerStatus(ctx, cat, t, p)
		if err != nil {
			return nil, err
		}
		st.State, st.LastError = StateOffline, "this node is not running"
		out = append(out, st)
	}
	return out, nil
}

func peerStatus(ctx context.Context, cat *archive.Catalog, t *tables, p PeerConfig) (PeerStatus, error) {
	st := PeerStatus{Name: p.Name, URL: p.URL}
	var err error
	if st.Cursor, err = cat.PeerCursor(ctx, p.Name); err != nil {
		return st, err
	}
	n, oldest, err := cat.PushableAfter(ctx, st.Cursor)
	if err != nil {
		return st, err
	}
	st.Queued = n
	if !oldest.IsZero() {
		st.OldestQueuedAgeS = max(0, time.Since(oldest).Seconds())
	}
	if st.Parked, err = t.parkedCount(ctx, p.Name); err != nil {
		return st, err
	}
	if st.Fingerprint, err = t.pinned(ctx, p.Name); err != nil {
		return st, err
	}
	row, ok, err := t.aeLoad(ctx, p.Name)
	if err != nil {
		return st, err
	}
	st.AntiEntropy = aeStatus(row, ok, false)
	return st, nil
}

// refreshLoop keeps the queued gauge current and, as a safety net for a
// missed commit notification, wakes the lanes every few seconds.
func (m *Mirror) refreshLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.Status(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("mirror: status refresh", "err", err)
		}
		m.Notify()
	}
}

// succeeded records n messages stored on the peer.
func (p *peer) succeeded(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.lastSuccess = now
	p.rate.add(now, n)
}

// rate counts events in one-second buckets over the last minute.
type rate struct {
	count [60]int64
	stamp [60]int64
}

func (r *rate) add(now time.Time, n int) {
	s := now.Unix()
	i := s % 60
	if r.stamp[i] != s {
		r.stamp[i], r.count[i] = s, 0
	}
	r.count[i] += int64(n)
}

func (r *rate) perSecond(now time.Time) float64 {
	s := now.Unix()
	var sum int64
	for i := range r.count {
		if s-r.stamp[i] < 60 {
			sum += r.count[i]
		}
	}
	return float64(sum) / 60
}

// metrics are the mirror's Prometheus metrics. The per-peer gauges are
// refreshed from Status (every few seconds by refreshLoop, and on every
// status request).
type metrics struct {
	queued      *prometheus.GaugeVec
	oldestAge   *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	aeVerified  *prometheus.GaugeVec
	aeTotal     *prometheus.GaugeVec
	heldBack    *prometheus.GaugeVec
	pushedV     *prometheus.CounterVec
	state       *prometheus.GaugeVec
	mu          sync.Mutex
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_mirror_queued",
			Help: "Pushable messages after the peer's cursor (not yet confirmed by the peer).",
		}, []string{"peer"}),
		oldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_mirror_oldest_queued_age_seconds",
			Help: "Age of the oldest message still owed to the peer (0 when nothing is queued).",
		}, []string{"peer"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_mirror_last_success_timestamp_seconds",
			Help: "Unix time the peer last confirmed storing a message pushed to it since this process started (0: not yet).",
		}, []string{"peer"}),
		aeVerified: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_mirror_ae_buckets_verified",
			Help: "Top-level buckets verified by the current or last anti-entropy pass with the peer.",
		}, []string{"peer"}),
		aeTotal: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_mirror_ae_buckets_total",
			Help: "Top-level buckets of the current or last anti-entropy pass with the peer.",
		}, []string{"peer"}),
		heldBack: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_mirror_purges_held_back",
			Help: "Messages retention would purge but defers because the peer has not acknowledged them (purge_requires_peers).",
		}, []string{"peer"}),
		pushedV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailarc_mirror_pushed_total",
			Help: "Per-message push outcomes by peer; result is stored, have, purged, rejected or retry.",
		}, []string{"peer", "result"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_mirror_state",
			Help: "1 for the peer's current state (online, offline, unauthorized, version_mismatch, refused), 0 for the others.",
		}, []string{"peer", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.queued, m.oldestAge, m.lastSuccess, m.aeVerified, m.aeTotal, m.heldBack, m.pushedV, m.state)
	}
	return m
}

// observe sets a peer's gauges from its status.
func (m *metrics) observe(peer string, st PeerStatus) {
	m.queued.WithLabelValues(peer).Set(float64(st.Queued))
	m.oldestAge.WithLabelValues(peer).Set(st.OldestQueuedAgeS)
	last := 0.0
	if st.LastSuccess != nil {
		last = float64(st.LastSuccess.Unix())
	}
	m.lastSuccess.WithLabelValues(peer).Set(last)
	m.aeVerified.WithLabelValues(peer).Set(float64(st.AntiEntropy.Verified))
	m.aeTotal.WithLabelValues(peer).Set(float64(st.AntiEntropy.Total))
	m.heldBack.WithLabelValues(peer).Set(float64(st.PurgesHeldBack))
}

func (m *metrics) pushed(peer, result string, n int) {
	m.pushedV.WithLabelValues(peer, result).Add(float64(n))
}

func (m *metrics) setState(peer, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range States {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(peer, s).Set(v)
	}
}
