//go:build race

package message

// timeScale stretches time bounds in tests: the race detector slows parsing
// down by an order of magnitude.
const timeScale = 20

// raceEnabled reports whether the race detector is on.
const raceEnabled = true
