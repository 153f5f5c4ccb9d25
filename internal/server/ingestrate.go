package server

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ingestWindow is the sliding window of the ingest rate on the status
// document; ingestSlots samples at one-second resolution cover it.
const (
	ingestWindow = 5 * time.Minute
	ingestSlots  = int(ingestWindow / time.Second)
)

// ingestedMetric is the archive's counter of newly stored messages.
const ingestedMetric = "mailarc_archive_messages_ingested_total"

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

// ingestMeter derives the ingest rate from the archive's counter
// (mailarc_archive_messages_ingested_total), read after every group
// commit (archive.OnCommit) and when the status is asked for.
//
// The archive registers its counters through tap, which also keeps them in
// a private registry: reading that one gathers a handful of counters, never
// the node's collectors that query the catalog or the store.
type ingestMeter struct {
	now   func() time.Time
	start time.Time
	own   *prometheus.Registry

	mu sync.Mutex
	// ring holds, per second, the counter at the first commit in that
	// second. The archive adds a group to the counter just after its
	// commit callbacks, so a sample is the count before that group: the
	// messages committed after second s are total now minus the sample of
	// the first commit after s.
	ring [ingestSlots]ingestSample
}

type ingestSample struct {
	sec   int64 // unix seconds; 0 for an empty slot
	total float64
}

func newIngestMeter(start time.Time, now func() time.Time) *ingestMeter {
	return &ingestMeter{now: now, start: start, own: prometheus.NewRegistry()}
}

// tap returns a Registerer that registers with reg and also keeps the
// counters in the meter's own registry.
func (m *ingestMeter) tap(reg prometheus.Registerer) prometheus.Registerer {
	return counterTap{Registerer: reg, own: m.own}
}

type counterTap struct {
	prometheus.Registerer
	own *prometheus.Registry
}

func (t counterTap) keep(c prometheus.Collector) {
	if _, ok := c.(prometheus.Counter); ok {
		_ = t.own.Register(c) // a duplicate is the archive's own error, reported by the real registry
	}
}

// Register implements prometheus.Registerer.
func (t counterTap) Register(c prometheus.Collector) error {
	if err := t.Registerer.Register(c); err != nil {
		return err
	}
	t.keep(c)
	return nil
}

// MustRegister implements prometheus.Registerer.
func (t counterTap) MustRegister(cs ...prometheus.Collector) {
	t.Registerer.MustRegister(cs...)
	for _, c := range cs {
		t.keep(c)
	}
}

// total reads the archive's counter (0 before the archive registered it).
func (m *ingestMeter) total() float64 {
	mfs, err := m.own.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == ingestedMetric && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
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
