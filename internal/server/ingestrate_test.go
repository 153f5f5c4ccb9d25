package server

import (
	"testing"
	"time"
)

func TestIngestMeter(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	m := newIngestMeter(t0, func() time.Time { return now })
	var count int64
	m.count = func() int64 { return count }

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
	m.commit() // the archive counts the group after its callbacks
	count += 10
	at(20 * time.Second)
	check("young node (a minute at least)", 10, 10)
	at(120 * time.Second)
	m.commit()
	count += 6
	m.commit() // a second commit in the same second keeps the first sample
	at(200 * time.Second)
	check("since start", 4.8, 16) // 16 over 200 s
	at(400 * time.Second)
	check("sliding window", 1.2, 16) // only the 6 of T+120 s within the last 300 s
	at(800 * time.Second)
	check("quiet", 0, 16)
}
