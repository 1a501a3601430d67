package loop

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestPollerYieldPeriod checks that a poller reading continuously passes
// through the scheduler once per yieldPeriod, not on every read, and that
// each poller (file descriptors modulo the pollers) keeps its own period.
func TestPollerYieldPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		y := newPollerYield(2)
		yields := 0
		y.yield = func() { yields++ }

		// Poller 0 (even descriptors) reads every millisecond for 20 ms.
		for ms := 0; ms <= 20; ms++ {
			y.Tick(4 + 2*(ms%3)) // descriptors 4, 6 and 8: all poller 0
			time.Sleep(time.Millisecond)
		}
		if want := int(20 * time.Millisecond / yieldPeriod); yields != want {
			t.Fatalf("poller 0 yielded %d times in 20 ms of reads, want %d (one per %v)", yields, want, yieldPeriod)
		}

		// Poller 1 has not yielded yet: its first read after a period yields,
		// while poller 0, which yielded a millisecond ago, does not.
		yields = 0
		y.Tick(7)
		if yields != 1 {
			t.Errorf("poller 1's first read after %v: %d yields, want 1", yieldPeriod, yields)
		}
		y.Tick(10)
		if yields != 1 {
			t.Errorf("poller 0 yielded again within %v", yieldPeriod)
		}
	})
}
