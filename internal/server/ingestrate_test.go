package server

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestIngestMeter(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	m := newIngestMeter(t0, func() time.Time { return now })
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: ingestedMetric, Help: "test"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "mailarc_archive_duplicates_total", Help: "test"})
	gaugeCalls := 0
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mailarc_store_stored_bytes", Help: "test"}, func() float64 { gaugeCalls++; return 1 })
	tap := m.tap(reg)
	tap.MustRegister(c, other)
	if err := tap.Register(g); err != nil {
		t.Fatal(err)
	}
	// The node's registry has everything; the meter never runs the gauge.
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 3 {
		t.Fatalf("node registry: %d families, %v", len(mfs), err)
	}
	gaugeCalls = 0

	at := func(d time.Duration) { now = t0.Add(d) }
	check := func(what string, wantRate float64, wantTotal int64) {
		t.Helper()
		st := m.status()
		if st.PerMinute != wantRate || st.Total != wantTotal || st.WindowSeconds != 300 {
			t.Errorf("%s: %+v, want per_minute %v total %d window 300", what, st, wantRate, wantTotal)
		}
	}
	check("idle", 0, 0)
	at(10 * time.Second)
	m.commit() // the archive adds the group after its callbacks
	c.Add(10)
	other.Add(99)
	at(20 * time.Second)
	check("young node (a minute at least)", 10, 10)
	at(120 * time.Second)
	m.commit()
	c.Add(6)
	m.commit() // a second commit in the same second keeps the first sample
	at(200 * time.Second)
	check("since start", 4.8, 16) // 16 over 200 s
	at(400 * time.Second)
	check("sliding window", 1.2, 16) // only the 6 of T+120 s within the last 300 s
	at(800 * time.Second)
	check("quiet", 0, 16)
	if gaugeCalls != 0 {
		t.Errorf("the meter ran a gauge %d times", gaugeCalls)
	}
}
