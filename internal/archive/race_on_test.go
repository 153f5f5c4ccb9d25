//go:build race

package archive_test

// raceEnabled reports whether the race detector is on.
const raceEnabled = true
