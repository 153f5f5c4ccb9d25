package archive

import (
	"math"
	"sync"
	"time"
)

// loadTau is the time constant of the ingest rate estimate (loadMeter): a
// burst at four times busyRate counts as busy after about 70 ms, a burst at
// twice busyRate after about 150 ms, and the estimate falls back under
// busyRate within a second after the burst ends.
const loadTau = 500 * time.Millisecond

// loadMeter estimates the commit rate in messages per second: an
// exponentially decaying count of committed messages (time constant
// loadTau) divided by loadTau. A steady rate r reads r; a burst shows
// within a fraction of loadTau, where counting whole seconds left the first
// second of every burst looking idle (the indexer ran flat out and the
// store compressed at its slow level through it).
type loadMeter struct {
	mu   sync.Mutex
	rate float64   // estimate at time at
	at   time.Time // zero: nothing counted yet
}

// add counts n messages committed at now.
func (m *loadMeter) add(now time.Time, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rate = m.decayed(now) + float64(n)/loadTau.Seconds()
	if now.After(m.at) {
		m.at = now
	}
}

// perSecond returns the estimate at now.
func (m *loadMeter) perSecond(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.decayed(now)
}

func (m *loadMeter) decayed(now time.Time) float64 {
	if m.at.IsZero() {
		return 0
	}
	dt := now.Sub(m.at)
	if dt <= 0 {
		return m.rate
	}
	return m.rate * math.Exp(-dt.Seconds()/loadTau.Seconds())
}
