package archive

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrLowSpace means the data directory's file system has less free space
// than the configured reserve (Options.MinFreeSpace). Ingest returns it
// wrapped together with ErrUnavailable: the refusal is temporary (SMTP
// 452 4.3.1, HTTP 503), the sender keeps the message and retries.
var ErrLowSpace = errors.New("archive: disk nearly full")

// spaceCheckInterval is how often the free space is measured: Ingest uses
// the last measurement in between, so a burst costs no system calls.
const spaceCheckInterval = time.Second

// FreeSpace returns the bytes available to an unprivileged process on the
// file system holding path (statfs f_bavail × f_bsize).
func FreeSpace(path string) (int64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(path, &s); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(s.Bavail) * int64(s.Bsize), nil
}

// SpaceStatus is the free-space reserve's state, for status reports.
type SpaceStatus struct {
	// Path is the directory whose file system is checked.
	Path string `json:"path"`
	// FreeBytes is the free space at the last check (-1 before the first
	// successful one).
	FreeBytes int64 `json:"free_bytes"`
	// MinFreeBytes is the reserve.
	MinFreeBytes int64 `json:"min_free_bytes"`
	// Low is true while ingest is refused for lack of space.
	Low bool `json:"low"`
}

// spaceGuard refuses ingest while free space is below the reserve. It
// measures at most once per spaceCheckInterval, from whichever Ingest call
// finds the last measurement stale; the others read the cached verdict.
type spaceGuard struct {
	path string
	min  int64
	free func(string) (int64, error)
	now  func() time.Time
	log  *slog.Logger

	next atomic.Int64 // unix nanos when the next measurement is due
	last atomic.Int64 // free bytes at the last successful measurement, -1 before
	low  atomic.Bool
}

// newSpaceGuard returns the guard configured by opt (defaults applied), or
// nil when there is no reserve.
func newSpaceGuard(opt Options) *spaceGuard {
	if opt.MinFreeSpace <= 0 || opt.SpacePath == "" {
		return nil
	}
	g := &spaceGuard{path: opt.SpacePath, min: opt.MinFreeSpace, free: opt.FreeSpace, now: opt.Now, log: opt.Logger}
	if g.free == nil {
		g.free = FreeSpace
	}
	g.last.Store(-1)
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "mailarc_archive_free_bytes",
				Help: "Bytes available on the data directory's file system at the last check (once a second at most, while ingesting).",
			}, func() float64 { return float64(g.last.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "mailarc_archive_low_space",
				Help: "1 while ingest is refused because free space is below min_free_space, else 0.",
			}, func() float64 {
				if g.low.Load() {
					return 1
				}
				return 0
			}),
		)
	}
	g.measure()
	return g
}

// check returns an error wrapping ErrUnavailable and ErrLowSpace while free
// space is below the reserve. A nil guard never refuses.
func (g *spaceGuard) check() error {
	if g == nil {
		return nil
	}
	g.refresh()
	if g.low.Load() {
		return fmt.Errorf("%w: %w (%d bytes free in %s, min_free_space %d)", ErrUnavailable, ErrLowSpace, g.last.Load(), g.path, g.min)
	}
	return nil
}

// refresh measures when the last measurement is older than
// spaceCheckInterval; of concurrent callers only one measures.
func (g *spaceGuard) refresh() {
	now := g.now().UnixNano()
	if due := g.next.Load(); now >= due && g.next.CompareAndSwap(due, now+int64(spaceCheckInterval)) {
		g.measure()
	}
}

// measure reads the free space and updates the verdict, logging changes.
// A failed measurement keeps the previous verdict (the store and catalog
// report real I/O errors themselves).
func (g *spaceGuard) measure() {
	g.next.Store(g.now().UnixNano() + int64(spaceCheckInterval))
	free, err := g.free(g.path)
	if err != nil {
		g.log.Warn("free-space check failed", "path", g.path, "err", err)
		return
	}
	g.last.Store(free)
	low := free < g.min
	if g.low.Swap(low) != low {
		if low {
			g.log.Error("disk nearly full: refusing new messages until space is freed (senders retry)",
				"path", g.path, "free_bytes", free, "min_free_space", g.min)
		} else {
			g.log.Info("free space above the reserve again: accepting messages", "path", g.path, "free_bytes", free)
		}
	}
}

// Space reports the free-space reserve's state; ok is false when no
// reserve is configured.
func (a *Archive) Space() (s SpaceStatus, ok bool) {
	g := a.space
	if g == nil {
		return SpaceStatus{}, false
	}
	g.refresh()
	return SpaceStatus{Path: g.path, FreeBytes: g.last.Load(), MinFreeBytes: g.min, Low: g.low.Load()}, true
}
