//go:build !race

package message

// timeScale stretches time bounds in tests (1 without the race detector).
const timeScale = 1

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
