package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/term"
)

// progress draws a one-line progress indicator on a terminal (count, rate,
// ETA when the total is known) and stays silent otherwise.
type progress struct {
	label string
	total int
	n     int
	start time.Time
	last  time.Time
	tty   bool
}

func newProgress(label string, total int) *progress {
	return &progress{label: label, total: total, start: time.Now(), tty: term.IsTerminal(int(os.Stderr.Fd()))}
}

func (p *progress) set(n int) {
	p.n = n
	if !p.tty || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	el := time.Since(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.n) / el
	}
	line := fmt.Sprintf("%s: %d", p.label, p.n)
	if p.total > 0 {
		pct := min(100, 100*p.n/max(p.total, 1))
		bar := 30 * pct / 100
		line = fmt.Sprintf("%s [%-30s] %d/%d %3d%%", p.label, string(repeat('=', bar)), p.n, p.total, pct)
		if rate > 0 && p.n < p.total {
			eta := time.Duration(float64(p.total-p.n)/rate) * time.Second
			line += " ETA " + eta.Truncate(time.Second).String()
		}
	}
	line += fmt.Sprintf(" %.0f/s", rate)
	fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
}

func (p *progress) done() {
	if p.tty {
		p.draw()
		fmt.Fprintln(os.Stderr)
	}
}

func repeat(c rune, n int) []rune {
	r := make([]rune, n)
	for i := range r {
		r[i] = c
	}
	return r
}
