//go:build !race

package loop

// raceEnabled tells tests that the race detector slows the server down.
const raceEnabled = false
