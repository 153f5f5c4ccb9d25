package main

import (
	"fmt"
	"io"
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
	w     io.Writer        // where the line is drawn (os.Stderr)
	now   func() time.Time // the clock (time.Now; a fake one in tests)
}

// newProgress draws on standard error when it is a terminal.
func newProgress(label string, total int) *progress {
	return newProgressTo(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), time.Now, label, total)
}

// newProgressTo draws on w, only if tty is true, timing with now.
func newProgressTo(w io.Writer, tty bool, now func() time.Time, label string, total int) *progress {
	return &progress{label: label, total: total, start: now(), tty: tty, w: w, now: now}
}

func (p *progress) set(n int) {
	p.n = n
	if !p.tty || p.now().Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.last = p.now()
	p.draw()
}

func (p *progress) draw() {
	el := p.now().Sub(p.start).Seconds()
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
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

func (p *progress) done() {
	if p.tty {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

func repeat(c rune, n int) []rune {
	r := make([]rune, n)
	for i := range r {
		r[i] = c
	}
	return r
}
