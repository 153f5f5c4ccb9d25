package main

import (
	"os"
	"runtime/debug"
)

// Garbage-collector defaults for mailarc's workload, used unless the
// operator sets Go's own GOGC or GOMEMLIMIT: ingest allocates a buffer per
// message (up to the size cap) that dies at the acknowledgement, so the
// default GOGC=100 collects very often while the live heap stays small.
// A higher GOGC trades memory for CPU; the soft memory limit keeps the Go
// heap bounded (the collector works harder as it nears the limit). The
// before/after numbers are in docs/benchmarks.md.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 768 << 20
)

// tuneGC applies the defaults above where the environment does not.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
