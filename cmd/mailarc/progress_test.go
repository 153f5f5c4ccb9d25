package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// lastLine is the line a terminal shows after the carriage-return redraws in s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndex(s, "\r\033[K"); i >= 0 {
		s = s[i+len("\r\033[K"):]
	}
	return s
}

func TestProgressCountRateETA(t *testing.T) {
	clock := &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	var out bytes.Buffer
	p := newProgressTo(&out, true, clock.now, "import", 100)

	clock.advance(10 * time.Second)
	p.set(50) // 5 messages/s, 50 to go: 10 s left
	if got, want := lastLine(out.String()), "import [===============               ] 50/100  50% ETA 10s 5/s"; got != want {
		t.Fatalf("progress at 50/100 after 10s:\n got %q\nwant %q", got, want)
	}

	// Redraws are throttled to five a second.
	clock.advance(100 * time.Millisecond)
	before := out.Len()
	p.set(51)
	if out.Len() != before {
		t.Errorf("redrawn %q only 100ms after the last draw", out.String()[before:])
	}

	clock.advance(10 * time.Second)
	p.set(80) // 80 in 20.1 s: 3.98/s, 20 to go: 5 s left
	if got, want := lastLine(out.String()), "import [========================      ] 80/100  80% ETA 5s 4/s"; got != want {
		t.Fatalf("progress at 80/100:\n got %q\nwant %q", got, want)
	}

	clock.advance(5 * time.Second)
	p.n = 100
	p.done() // the final line has no ETA and ends the line
	if s := out.String(); !strings.HasSuffix(s, "\n") || lastLine(s) != "import [==============================] 100/100 100% 4/s" {
		t.Fatalf("final line %q", lastLine(s))
	}
}

func TestProgressWithoutTotal(t *testing.T) {
	clock := &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	var out bytes.Buffer
	p := newProgressTo(&out, true, clock.now, "verify", 0)
	clock.advance(4 * time.Second)
	p.set(1000)
	if got := lastLine(out.String()); got != "verify: 1000 250/s" {
		t.Fatalf("progress without a total: %q", got)
	}
}

func TestProgressSilentWithoutTTY(t *testing.T) {
	clock := &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	var out bytes.Buffer
	p := newProgressTo(&out, false, clock.now, "import", 10)
	for i := 1; i <= 10; i++ {
		clock.advance(time.Second)
		p.set(i)
	}
	p.done()
	if out.Len() != 0 {
		t.Fatalf("progress drawn on a non-terminal: %q", out.String())
	}
}
