package conn

// phase is where a Conn's send path is. It is the one state of the send
// path: who owes the next Flush, whether a Flush is writing, whether the
// connection is closing. Conn.phase holds it.
//
//	phaseIdle       open; nothing queued, no flush owed
//	phaseScheduled  frames wait in the ring; one goroutine owes a Flush (the
//	                caller whose Enqueue reported mustFlush, or the Drainer)
//	phaseWriting    that Flush runs: it takes batches off the ring and writes
//	                them without holding mu
//	phaseBlocked    the Flush stopped at Env.HighWater bytes in flight; Written
//	                owes the flush now
//	phaseDetached   the socket went away but the session lives on for a
//	                resume (Env.Resume): Enqueue queues and numbers frames,
//	                nobody flushes, nothing is written
//	phaseClosing    CloseWith decided the close frame; the frame is not yet
//	                handed to the socket. Enqueue refuses frames from here on
//	phaseLingering  the close frame was handed to the socket; the socket is
//	                closed once nothing is in flight, or after closeLinger
//	phaseClosed     Teardown ran: the socket is closed, nothing is written
//
// Transitions (from, to: who, under which lock):
//
//	idle -> scheduled          Enqueue queues the first frame (its caller
//	                           owes the Flush), or Shutdown queues its close
//	                           frame (the Drainer owes it): mu
//	scheduled -> writing       the Flush that is owed starts a batch: mu
//	writing -> idle            Flush finds the ring empty and gives it back: mu
//	scheduled|writing ->       Flush finds HighWater bytes in flight: mu
//	  blocked
//	blocked -> writing         the same Flush, re-checking, finds that Written
//	                           ran between its check and the store: CAS
//	blocked -> scheduled       Written: in flight fell below HighWater/2; it
//	                           hands the Conn to the Drainer: CAS
//	writing -> lingering       Flush wrote the last frame of a sealed ring
//	                           (Shutdown's close frame): mu
//	idle..blocked -> detached  Detach or Takeover, into the next epoch: mu,
//	                           CAS (blocked may become scheduled meanwhile).
//	                           A Flush still writing finds the epoch changed
//	                           at its next batch and stops
//	detached -> scheduled      Attach gives the Conn a new socket; its caller
//	                           owes the Flush: mu
//	idle..detached -> closing  CloseWith (teardown): mu, CAS (blocked may
//	                           become scheduled meanwhile); from detached it
//	                           goes on to closed at once, there is no socket
//	closing -> lingering       whoever wrote the close frame: CloseWith
//	                           itself, or the Flush that was writing when
//	                           CloseWith ran (it writes the frame after its
//	                           batch, so nothing follows a close frame): mu
//	any -> closed              Teardown (teardown): mu, CAS; closed is final:
//	                           a Flush still writing stops at its next batch
//	                           and writes no close frame
//
// Every transition is made under mu except the two out of blocked, which the
// parking Flush and Written make without it; so every transition out of
// blocked is a compare-and-swap. Written runs under the transport's lock and
// only reads the phase and swaps it.
//
// Draining after Shutdown is not a phase: the ring is sealed with the close
// frame as its last frame, and the phases above go on unchanged (the drain
// may block at HighWater and resume like any flush) until the Flush that
// writes that frame moves to lingering. Enqueue refuses frames to a sealed
// ring.
type phase uint32

const (
	phaseIdle phase = iota
	phaseScheduled
	phaseWriting
	phaseBlocked
	phaseDetached
	phaseClosing
	phaseLingering
	phaseClosed
)

// The phase word holds the phase in its low byte and, above it, the epoch:
// the number of times the Conn was detached from a socket (session resume).
// A Flush belongs to the epoch it started in: after a detach, a Flush still
// writing to the old socket finds the epoch changed and stops, and its
// compare-and-swap out of blocked fails, even if a Flush of the next socket
// brought the phase back to the same value meanwhile.
const phaseBits = 8

func (c *Conn) load() phase { return phase(c.phase.Load() & (1<<phaseBits - 1)) }

// epoch returns the Conn's current epoch.
func (c *Conn) epoch() uint32 { return c.phase.Load() >> phaseBits }

// set moves the send path to p in the current epoch. Called under mu, from a
// phase that only changes under mu (not blocked).
func (c *Conn) set(p phase) { c.phase.Store(c.phase.Load()&^(1<<phaseBits-1) | uint32(p)) }

// swap moves the send path from old to p if it is still in old, in whatever
// epoch.
func (c *Conn) swap(old, p phase) bool {
	for {
		w := c.phase.Load()
		if phase(w&(1<<phaseBits-1)) != old {
			return false
		}
		if c.phase.CompareAndSwap(w, w&^(1<<phaseBits-1)|uint32(p)) {
			return true
		}
	}
}

// swapIn moves the send path from old to p if it is still in old and in
// epoch ep.
func (c *Conn) swapIn(ep uint32, old, p phase) bool {
	return c.phase.CompareAndSwap(ep<<phaseBits|uint32(old), ep<<phaseBits|uint32(p))
}

// swapNext moves the send path from old to p and to the next epoch, if it is
// still in old.
func (c *Conn) swapNext(old, p phase) bool {
	w := c.phase.Load()
	if phase(w&(1<<phaseBits-1)) != old {
		return false
	}
	return c.phase.CompareAndSwap(w, (w>>phaseBits+1)<<phaseBits|uint32(p))
}
