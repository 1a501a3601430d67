package loop

import (
	"runtime"
	"sync/atomic"
	"time"
)

// yieldPeriod is how long a busy poller goroutine runs at most without
// passing through the Go scheduler. It must stay well below the runtime's
// 10 ms preemption slice (forcePreemptNS in runtime/proc.go).
const yieldPeriod = 5 * time.Millisecond

// pollerYield makes each nbio poller goroutine pass through the Go scheduler
// every yieldPeriod while it has sockets to read.
//
// Why: a poller spends its life in a loop of epoll_wait(-1) and callbacks
// that never returns to the scheduler, so the runtime's monitor (sysmon)
// sees its P on the same scheduling tick for 10 ms, takes it as a goroutine
// that runs too long and takes the P away from the blocked system call.
// Every such retake resets sysmon to waking up every 20 µs, and a relay
// under steady traffic paid about a tenth of its CPU for that. A Gosched
// every few milliseconds is a few hundred nanoseconds and keeps the tick
// moving. (The other half of the remedy is a P left for everything else:
// config's default WSRELAY_WORKERS is GOMAXPROCS - 1.)
//
// Tick is called by a poller before each read; it is safe for concurrent use.
// Slots are picked by file descriptor modulo the number of pollers, which is
// how nbio assigns connections to pollers, so each poller owns one slot.
type pollerYield struct {
	epoch time.Time // set at construction: the origin of the slots' times
	slots []yieldSlot
	yield func() // runtime.Gosched; replaced in tests
}

// yieldSlot is one poller's last yield, padded to its own cache line.
type yieldSlot struct {
	last atomic.Int64 // nanoseconds since epoch
	_    [56]byte
}

func newPollerYield(pollers int) *pollerYield {
	return &pollerYield{epoch: time.Now(), slots: make([]yieldSlot, max(pollers, 1)), yield: runtime.Gosched}
}

// Tick yields the calling poller goroutine if the poller of fd has not
// yielded for yieldPeriod. Cost when it does not yield: one monotonic clock
// read and one atomic load.
func (y *pollerYield) Tick(fd int) {
	s := &y.slots[uint(fd)%uint(len(y.slots))]
	now := int64(time.Since(y.epoch))
	if now-s.last.Load() < int64(yieldPeriod) {
		return
	}
	s.last.Store(now)
	y.yield()
}
