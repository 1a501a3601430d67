//go:build !race

package loop_test

// raceEnabled shrinks the heaviest load tests: the race detector makes
// every delivery many times slower.
const raceEnabled = false
