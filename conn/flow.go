package conn

import (
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// Flow control (docs/protocol.md section 9): a recipient that keeps up may hold
// back the local sender whose message filled its queue, instead of dropping
// what that sender sends next.
//
// The recipient's side, guarded by its mu: when a frame routed from sender
// S leaves recipient R keeping up with at least QueueSize/2 frames waiting,
// R holds S (S joins R.waiters, S.holds grows by one). R releases every
// sender it holds once its queue is below QueueSize/4 (Flush), when it has
// held them for Env.StallTimeout (it is then stalled: it holds no one and
// drops as in version 1 until its queue is empty again), and when it closes.
//
// The sender's side, lock-free: S.holds counts the recipients holding S,
// plus the parked bit. S's reading goroutine calls Park after every message
// it handled; while a recipient holds S, Park sets the parked bit and the
// reader stops. The release that brings the count to zero while the bit is
// set clears it and calls the transport's Resume, which reads S again.
// Nothing waits anywhere: no goroutine per paused connection.

// parked is the bit of Conn.holds that says the sender's reader stopped.
const parked = 1 << 30

// Resumer is implemented by a Socket whose reading flow control may pause.
// Only a Conn whose Socket implements it is ever held back. Resume goes to
// the socket attached when the last hold is released (session resume may
// have replaced the one that parked).
type Resumer interface {
	// Resume is called when the last recipient holding a parked sender
	// released it. It must not block and must not read on the calling
	// goroutine, which may hold another connection's flush: it hands the
	// reading back to the transport, which continues where the reader
	// stopped.
	Resume()
}

// holdAt is the queue length from which a recipient that keeps up holds
// its senders, and releaseBelow the length under which it lets them go.
func (e *Env) holdAt() int       { return max(1, e.QueueSize/2) }
func (e *Env) releaseBelow() int { return max(1, e.QueueSize/4) }

// EnqueueFrom is Enqueue for a frame routed from the local sender s (nil:
// the frame comes from no local reader, such as another node). With flow
// control on, when b leaves c keeping up with at least QueueSize/2 frames
// waiting, c holds s: s's reader parks after the message it is handling
// (Park) until c released it.
func (c *Conn) EnqueueFrom(b *frame.Buf, s *Conn) (queued, mustFlush bool) {
	return c.enqueue(b, s)
}

// holdLocked makes c hold s, unless it already does. Called under c.mu.
func (c *Conn) holdLocked(s *Conn) {
	for _, w := range c.waiters {
		if w == s {
			return
		}
	}
	c.waiters = append(c.waiters, s)
	s.holds.Add(1)
	if len(c.waiters) > 1 {
		return
	}
	// A new backlog: it may hold its senders for StallTimeout.
	c.holdSince = c.env.Mono()
	if c.stallTimer == nil {
		c.stallTimer = time.AfterFunc(c.env.StallTimeout, c.stall)
	} else {
		c.stallTimer.Reset(c.env.StallTimeout)
	}
}

// takeWaitersLocked ends c's backlog: it returns the senders c held, for
// release once mu is unlocked. Called under c.mu.
func (c *Conn) takeWaitersLocked() []*Conn {
	ws := c.waiters
	if ws == nil {
		return nil
	}
	c.waiters = nil
	c.stallTimer.Stop()
	return ws
}

// release lets go of the senders ws, which a recipient held.
func release(ws []*Conn) {
	for _, s := range ws {
		s.unhold()
	}
}

// stall runs when c has held its senders for StallTimeout: c is stalled
// until its queue is empty, and lets them go.
func (c *Conn) stall() {
	c.mu.Lock()
	if len(c.waiters) == 0 || c.env.Mono()-c.holdSince < c.env.StallTimeout {
		// The backlog this timer was set for ended; a newer one re-armed it.
		c.mu.Unlock()
		return
	}
	c.stalled = true
	ws := c.takeWaitersLocked()
	c.mu.Unlock()
	release(ws)
}

// unhold is called once for every recipient that held c and let it go.
func (c *Conn) unhold() {
	if c.holds.Add(-1) != parked {
		return // still held, or not parked: the reader goes on by itself
	}
	if !c.holds.CompareAndSwap(parked, 0) {
		return // Teardown took the parked bit
	}
	c.env.Stats.FlowResumed(c.env.Mono() - time.Duration(c.pausedAt.Load()))
	c.Touch() // time paused does not count toward CLIENT_TIMEOUT
	// The reader of the socket attached now; a detached Conn (session
	// resume) has none, and the next socket's reader starts unpaused.
	if r, ok := c.socket().(Resumer); ok {
		r.Resume()
	}
}

// Park is called by the reading goroutine after every message it handled.
// It reports whether a recipient holds the connection back: the reader must
// then stop reading, keep what it has not decoded, and continue when the
// Socket's Resume is called. Park never blocks.
func (c *Conn) Park() bool {
	if c.holds.Load() == 0 {
		return false
	}
	c.pausedAt.Store(int64(c.env.Mono()))
	c.env.Stats.FlowPaused()
	for {
		v := c.holds.Load()
		if v == 0 {
			// Released meanwhile: a pause that ended at once.
			c.env.Stats.FlowResumed(0)
			return false
		}
		if c.holds.CompareAndSwap(v, v|parked) {
			return true
		}
	}
}

// Paused reports whether flow control stopped reading the connection. A
// paused connection is not timed out for silence.
func (c *Conn) Paused() bool { return c.holds.Load()&parked != 0 }

// Stalled reports whether the connection is stalled: it held a sender for
// StallTimeout and has not emptied its queue since. A stalled connection
// holds no one back; frames for it are dropped when its queue is full.
func (c *Conn) Stalled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stalled
}

// unpark ends the pause of a connection that closes, or detaches, while
// parked.
func (c *Conn) unpark() {
	for {
		v := c.holds.Load()
		if v&parked == 0 {
			return
		}
		if c.holds.CompareAndSwap(v, v&^parked) {
			c.env.Stats.FlowResumed(c.env.Mono() - time.Duration(c.pausedAt.Load()))
			return
		}
	}
}
