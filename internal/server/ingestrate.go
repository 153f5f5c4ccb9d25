package server

import (
	"math"
	"sync"
	"time"
)

// ingestWindow is the sliding window of the ingest rate on the status
// document; ingestSlots samples at one-second resolution cover it.
const (
	ingestWindow = 5 * time.Minute
	ingestSlots  = int(ingestWindow / time.Second)
)

// StatusIngest is the ingest rate on the status document.
type StatusIngest struct {
	// PerMinute is the average rate of newly archived messages (duplicates
	// excluded) over the last WindowSeconds, or since the start when the
	// node is younger; never averaged over less than a minute.
	PerMinute float64 `json:"per_minute"`
	// Total counts the messages newly archived since the node started.
	Total         int64 `json:"total"`
	WindowSeconds int   `json:"window_seconds"`
}

// ingestMeter derives the ingest rate from the archive's count of newly
// stored messages (archive.Ingested), sampled after every group commit
// (archive.OnCommit) and read when the status is asked for.
type ingestMeter struct {
	now   func() time.Time
	start time.Time
	count func() int64 // archive.Ingested; set before the first commit

	mu sync.Mutex
	// ring holds, per second, the count at the first commit in that
	// second. The archive counts a group just after its commit callbacks,
	// so a sample is the count before that group: the messages committed
	// after second s are the count now minus the sample of the first
	// commit after s.
	ring [ingestSlots]ingestSample
}

type ingestSample struct {
	sec   int64 // unix seconds; 0 for an empty slot
	total float64
}

func newIngestMeter(start time.Time, now func() time.Time) *ingestMeter {
	return &ingestMeter{now: now, start: start}
}

// total is the archive's count (0 before the archive is attached).
func (m *ingestMeter) total() float64 {
	if m.count == nil {
		return 0
	}
	return float64(m.count())
}

// commit records a sample; it is the archive's OnCommit callback and does
// not block.
func (m *ingestMeter) commit() {
	v := m.total()
	sec := m.now().Unix()
	m.mu.Lock()
	defer m.mu.Unlock()
	slot := &m.ring[int(sec%int64(ingestSlots))]
	if slot.sec != sec {
		*slot = ingestSample{sec: sec, total: v}
	}
}

// status returns the rate and the total now.
func (m *ingestMeter) status() StatusIngest {
	total := m.total()
	now := m.now()
	from := now.Add(-ingestWindow).Unix()
	base := total
	first := int64(math.MaxInt64)
	m.mu.Lock()
	for _, s := range m.ring {
		if s.sec > from && s.sec < first {
			first, base = s.sec, s.total
		}
	}
	m.mu.Unlock()
	span := min(ingestWindow, now.Sub(m.start))
	minutes := max(span.Minutes(), 1)
	rate := (total - base) / minutes
	return StatusIngest{
		PerMinute:     math.Round(rate*10) / 10,
		Total:         int64(total),
		WindowSeconds: int(ingestWindow / time.Second),
	}
}
