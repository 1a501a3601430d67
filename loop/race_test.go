//go:build race

package loop_test

// raceEnabled tells tests that the race detector slows the server down.
const raceEnabled = true
