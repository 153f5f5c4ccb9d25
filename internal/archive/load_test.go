package archive

import (
	"testing"
	"time"
)

// TestLoadMeter: a steady rate reads as itself; a burst shows within a
// fraction of a second and fades within a second after it ends.
func TestLoadMeter(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var m loadMeter
	if r := m.perSecond(start); r != 0 {
		t.Fatalf("rate before any commit = %v, want 0", r)
	}
	// 200 msgs/s for 10 s, in groups of 4 every 20 ms.
	now := start
	for range 500 {
		now = now.Add(20 * time.Millisecond)
		m.add(now, 4)
	}
	if r := m.perSecond(now); r < 190 || r > 210 {
		t.Fatalf("steady 200 msgs/s reads %.0f", r)
	}
	// A burst at 2,000 msgs/s: busy (> busyRate) within 150 ms.
	var busyAfter time.Duration
	for i := 1; i <= 100; i++ {
		now = now.Add(5 * time.Millisecond)
		m.add(now, 10)
		if busyAfter == 0 && m.perSecond(now) > busyRate {
			busyAfter = time.Duration(i) * 5 * time.Millisecond
		}
	}
	if busyAfter == 0 || busyAfter > 150*time.Millisecond {
		t.Fatalf("a burst at 2,000 msgs/s counted as busy after %v, want within 150 ms", busyAfter)
	}
	if r := m.perSecond(now); r < 1200 { // 200 + 1,800·(1 - 1/e)
		t.Fatalf("after 0.5 s at 2,000 msgs/s the rate reads %.0f", r)
	}
	// The burst ends: not busy a second later.
	if r := m.perSecond(now.Add(time.Second)); r > busyRate {
		t.Fatalf("a second after the burst the rate reads %.0f, still over %d", r, busyRate)
	}
	// A commit stamped earlier than the last one (clocks step) still counts.
	before := m.perSecond(now)
	m.add(now.Add(-time.Second), 10)
	if r := m.perSecond(now); r <= before {
		t.Fatalf("a commit stamped in the past was not counted: %.0f -> %.0f", before, r)
	}
}
