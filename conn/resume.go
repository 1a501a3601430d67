package conn

import (
	"encoding/binary"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// Session resume (docs/protocol.md section 10) at the level of one peer's send
// path. With Env.Resume, a Conn numbers the data messages that enter its
// queue (1, 2, 3, ...), keeps those it wrote in a replay buffer until the
// client acknowledges them, and outlives its socket: Detach keeps the
// queue, the replay buffer and the numbering while no socket is attached,
// and Attach gives the Conn a new socket, writing the welcome and then the
// messages the client missed, in their original order and bytes.

// DetachResult says what Detach did.
type DetachResult int

// Detach results.
const (
	// Detached: the Conn has no socket now and waits for Attach or Expire.
	Detached DetachResult = iota
	// Ended: the session ends with this socket (resume is off, or the
	// connection was closed for good: CloseWith, Shutdown). The caller
	// tears it down as for any closed connection.
	Ended
	// NotAttached: sock is no longer the Conn's socket (a resume took the
	// session over, or it was detached already); the caller does nothing
	// for the session.
	NotAttached
)

// Detach is called once sock, the Conn's socket, closed for a reason that
// does not end the session (no close frame, a network error, the liveness
// timeout, a close code other than 1000 and 1001). It keeps the peer's
// queue, its replay buffer and its numbering; frames queued from now on wait
// for Attach. The welcome and replayed frames not yet written are released:
// the next Attach writes its own.
func (c *Conn) Detach(sock Socket) DetachResult {
	c.mu.Lock()
	if c.sock != sock {
		c.mu.Unlock()
		return NotAttached
	}
	if !c.resume || c.ring.isSealed() {
		c.mu.Unlock()
		return Ended
	}
	held, ok := c.detachLocked()
	c.mu.Unlock()
	if !ok {
		return Ended
	}
	c.detached(held)
	return Detached
}

// detached ends the flow control of a Conn that just detached: it lets go
// of the senders it held (a detached Conn holds no one back), and its own
// reader, which the socket took with it, is no longer paused.
func (c *Conn) detached(held []*Conn) {
	release(held)
	c.unpark()
}

// detachLocked moves an open Conn to detached, and returns the senders it
// held, for detached once mu is unlocked. Called under mu.
func (c *Conn) detachLocked() (held []*Conn, ok bool) {
	for {
		from := c.load()
		if from >= phaseDetached {
			return nil, false
		}
		if c.swapNext(from, phaseDetached) { // blocked may become scheduled; a Flush still writing stops
			break
		}
	}
	c.sock = nil
	c.releaseGreeting()
	return c.takeWaitersLocked(), true
}

// Takeover detaches the Conn from its socket, which is still open, for a
// resume on another socket: the old socket gets a close frame with code and
// reason and is closed shortly after, and its end does not touch the
// session (Detach reports NotAttached). It returns false when the Conn is
// not attached to a socket (detached already, or closing).
func (c *Conn) Takeover(code int, reason string) bool {
	c.mu.Lock()
	sock := c.sock
	if sock == nil || !c.resume || c.ring.isSealed() {
		c.mu.Unlock()
		return false
	}
	held, ok := c.detachLocked()
	c.mu.Unlock()
	if !ok {
		return false
	}
	c.detached(held)
	var tmp [128]byte
	_, _ = sock.Write(frame.AppendCloseFrame(tmp[:0], code, reason))
	time.AfterFunc(takeoverLinger, func() { _ = sock.Close() })
	return true
}

// takeoverLinger is how long a socket taken over by a resume stays open for
// its close frame to be written.
const takeoverLinger = 100 * time.Millisecond

// Suspend writes a close frame with code and reason to sock and closes it
// without ending the session: its end detaches the Conn (Detach). It is for
// the ends that a client may resume from: the liveness timeout, a client's
// close code other than 1000 and 1001. Code 0 sends a close frame without a
// code. It does nothing when sock is not the Conn's socket (any more).
// Without Env.Resume it is CloseWith.
func (c *Conn) Suspend(sock Socket, code int, reason string) {
	if !c.resume {
		c.CloseWith(code, reason)
		return
	}
	if !c.Owns(sock) || c.load() >= phaseDetached {
		return
	}
	var tmp [128]byte
	c.write(sock, frame.AppendCloseFrame(tmp[:0], code, reason))
	_ = sock.Close()
}

// Attach gives a detached Conn the socket sock of a resume whose client
// received the data messages up to received. It queues the frame welcome
// returns ahead of everything (the Conn takes over its reference), then
// every message after received that the Conn still holds, then what was
// queued while detached; the caller owes the Conn a Flush. missed, also
// passed to welcome, is how many messages after received cannot be
// replayed: released from the replay buffer, or dropped on a full queue
// while detached. welcome runs under the Conn's lock: it must only build
// the frame. ok is false, and nothing changes, when the Conn is not
// detached or received is past what it sent.
func (c *Conn) Attach(sock Socket, received uint64, welcome func(missed uint64) *frame.Buf) (missed uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.load() != phaseDetached || received > c.sent {
		return 0, false
	}
	missed, c.dropped = c.dropped, 0
	gone := c.sent - uint64(c.replay.len()) // messages up to gone are no longer held
	if gone > received {
		missed += gone - received
	}
	c.replayTrim(received)
	o := c.openingLocked()
	if k := c.replay.len(); k > 0 {
		o.resend = make([]*frame.Buf, k)
		for i := range k {
			b := c.replay.at(i)
			b.Retain(1)
			o.resend[i] = b
		}
		o.resendSeq = c.sent - uint64(k) + 1
	}
	o.greeting = welcome(missed)
	c.sock = sock
	c.ackOut = false // a ping to the old socket gets no pong here
	c.wrote.Store(received)
	c.submitted.Store(0)
	c.written.Store(0)
	c.set(phaseScheduled)
	c.Touch()
	return missed, true
}

// Expire ends a detached session whose resume window passed: the frames
// still queued are released and counted as discarded at close, the replay
// buffer is released, and the Conn takes no more frames. It returns false,
// and does nothing, when the Conn is not detached (it was resumed or ended
// meanwhile).
func (c *Conn) Expire() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.load() != phaseDetached {
		return false
	}
	c.teardown(phaseClosed)
	return true
}

// NoResume turns session resume off for this Conn (an /echo connection has
// no session): nothing is numbered or kept for replay. It is called before
// the Conn is used.
func (c *Conn) NoResume() { c.resume = false }

// Owns reports whether sock is the Conn's socket. A socket a resume took the
// session from is not: what is read from it must not close the session.
func (c *Conn) Owns(sock Socket) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sock == sock
}

// WriteControlTo is WriteControl for the transport of sock: it writes p only
// while sock is the Conn's socket, so that a socket a resume took the
// session from never writes to its successor, and not once CloseWith
// decided its close frame, so that nothing follows that frame. Like
// AckPing's ping, p is written under mu, in the critical section of the
// check: control frames are few (heartbeat pings, pongs) and short.
func (c *Conn) WriteControlTo(sock Socket, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sock == sock && c.load() < phaseClosing {
		c.write(sock, p)
	}
}

// Sent returns how many data messages the Conn took off its queue to write:
// a client cannot have received more.
func (c *Conn) Sent() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}

// Epoch returns how many times the Conn was detached from a socket. A
// transport notes it when it attaches a socket: once it changed, that
// socket's session went elsewhere (a resume took it over) and what is read
// from the socket must be ignored. It is one atomic load.
func (c *Conn) Epoch() uint32 { return c.epoch() }

// Detached reports whether the Conn is detached from any socket.
func (c *Conn) Detached() bool { return c.load() == phaseDetached }

// Preface sets bytes to write before anything else, in the same write as
// the first frames: the transport's upgrade response. With it the peer can
// be registered (and reached) before the client may send its first message,
// and the upgrade response still comes first. Call it before Greet or after
// Attach, before the Flush they call for. p is copied.
func (c *Conn) Preface(p []byte) {
	c.mu.Lock()
	c.openingLocked().preface = append([]byte(nil), p...)
	c.mu.Unlock()
}

// Greet queues welcome, the first frame of a connection, ahead of every
// other frame, without a number: the client counts the data messages after
// it. The Conn takes its own reference. Like Enqueue it reports whether the
// caller owes the Conn a Flush.
func (c *Conn) Greet(welcome *frame.Buf) (mustFlush bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.acceptsLocked() || c.load() == phaseDetached {
		return false
	}
	welcome.Retain(1)
	o := c.openingLocked()
	if o.greeting != nil {
		o.greeting.Release()
	}
	o.greeting = welcome
	if c.load() == phaseIdle {
		c.set(phaseScheduled)
		return true
	}
	return false
}

// Ack records that the client received every data message up to n (a
// {"type":"ping","received":n}): they leave the replay buffer. n past what
// was written to the socket counts only up to that.
func (c *Conn) Ack(n uint64) {
	if c.resume {
		c.ack(n, false)
	}
}

// ack is Ack, and OnPong when pong is set: a pong answers the ping a Flush
// appended (askAckLocked), or a later one.
func (c *Conn) ack(n uint64, pong bool) {
	n = min(n, c.wrote.Load())
	c.mu.Lock()
	c.replayTrim(n) // nothing to do for n not past what was acknowledged
	if pong {
		c.ackOut = false
		if c.replay.len() > 0 {
			// Written after that ping: they need the next one.
			c.ackLaterLocked()
		}
	}
	c.mu.Unlock()
}

// pingMarkLen is the length of the payload of a server ping with resume on.
const pingMarkLen = 8

// AppendPing appends a complete WebSocket ping frame. With Env.Resume its
// payload is the number of the last data message written before it, so that
// the client's pong (OnPong) acknowledges every message up to that number.
func (c *Conn) AppendPing(dst []byte) []byte {
	if !c.resume {
		return append(dst, 0x80|frame.OpPing, 0)
	}
	return appendAckPing(dst, c.wrote.Load())
}

// appendAckPing appends a ping whose pong acknowledges the data messages up
// to mark.
func appendAckPing(dst []byte, mark uint64) []byte {
	dst = append(dst, 0x80|frame.OpPing, pingMarkLen)
	return binary.BigEndian.AppendUint64(dst, mark)
}

// Acknowledging pings are spaced out (askAckLocked). A burst of data
// writes begins after ackQuiet without one; for its first ackFast the
// pings may go ackPingMin apart, so that a short burst (a join and its
// presence, a few messages) is released at once; after that the interval
// doubles with each ping up to ackPingMax, so that sustained traffic costs
// one pong every few seconds. Conn.ackShift holds the interval as
// ackPingMin<<(ackShift-1), 0 before the burst's first ping; Conn.ackBurst
// when the burst began.
const (
	ackPingMin      = 62500 * time.Microsecond
	ackPingMaxShift = 7
	ackPingMax      = ackPingMin << (ackPingMaxShift - 1) // 4 s
	ackQuiet        = time.Second
	ackFast         = time.Second
)

// askAckLocked is called by a Flush about to write data messages (so with
// Env.Resume, and the replay buffer holds them). It reports whether the
// Flush appends a ping to them, in the same write: when no such ping waits
// for its pong. Its pong, a round trip later, releases what the write carried,
// so that frames do not wait for the heartbeat (PING_INTERVAL) in the
// replay buffer. A Flush that must not ping yet (see ackPingMin) leaves the
// ping to Env.AckLater (AckPing). A client that does not answer gets no
// second one; the heartbeat's pings still acknowledge. Called under mu.
func (c *Conn) askAckLocked() bool {
	now := c.env.Mono()
	if now-c.lastData >= ackQuiet {
		c.ackShift, c.ackBurst = 0, int32(now/time.Millisecond)
	}
	c.lastData = now
	if c.ackOut {
		return false
	}
	if !c.ackDueLocked(now) {
		c.ackLaterLocked()
		return false
	}
	return true
}

// ackDueLocked reports whether a ping for the replay buffer may go at now,
// and if so counts it as sent: the interval since the last one passed.
// Called under mu.
func (c *Conn) ackDueLocked(now time.Duration) bool {
	if c.ackShift > 0 && now-c.ackAt < ackPingMin<<(c.ackShift-1) {
		return false
	}
	inBurst := time.Duration(int32(now/time.Millisecond)-c.ackBurst) * time.Millisecond
	if c.ackShift == 0 || (inBurst >= ackFast && c.ackShift < ackPingMaxShift) {
		c.ackShift++
	}
	c.ackOut, c.ackAt = true, now
	return true
}

// ackLaterLocked hands c to Env.AckLater, once until AckPing ran, so that
// the frames in its replay buffer get their ping even if no Flush follows.
// Called under mu.
func (c *Conn) ackLaterLocked() {
	if !c.ackLater && c.env.AckLater != nil {
		c.ackLater = true
		c.env.AckLater(c)
	}
}

// AckPing is for the owner of Env.AckLater, some time after the Conn was
// handed to it: it writes a ping, alone, whose pong acknowledges the data
// messages written so far, when the Conn still holds frames for replay, no
// such ping waits for its pong, and the interval of askAckLocked passed; not
// once the connection is closing or draining for Shutdown (a close frame
// may be on its way).
// again is true when only the interval is missing: the owner asks later.
// scratch is a reusable buffer for the ping; the possibly grown buffer is
// returned.
//
// The ping is written under mu, the one exception to writing without it:
// CloseWith and Takeover decide their close frame under mu before writing
// it, so a ping written in the same critical section as the check above
// never follows a close frame. It is one non-blocking write of 10 bytes, at
// most once per ackPingMin per connection, and the transport's callbacks
// it may run (Written) do not take mu.
func (c *Conn) AckPing(scratch []byte) (again bool, out []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.resume || c.ackOut || c.replay.len() == 0 || c.sock == nil || c.load() >= phaseDetached || c.ring.isSealed() {
		c.ackLater = false
		return false, scratch
	}
	if !c.ackDueLocked(c.env.Mono()) {
		return true, scratch
	}
	c.ackLater = false
	scratch = appendAckPing(scratch[:0], c.wrote.Load())
	c.write(c.sock, scratch)
	return false, scratch
}

// OnPong takes the payload of a pong from the client. A pong to a ping of
// AppendPing, or to one a Flush appended, acknowledges the data messages
// written before that ping; other pongs mean nothing.
func (c *Conn) OnPong(p []byte) {
	if c.resume && len(p) == pingMarkLen {
		c.ack(binary.BigEndian.Uint64(p), true)
	}
}

// Numbered returns how many data messages entered the Conn's queue, and
// Replayable how many it holds for replay (for tests and diagnostics).
func (c *Conn) Numbered() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.resume {
		return 0
	}
	n := c.sent
	if c.ring != nil {
		n += uint64(c.ring.len())
		if c.ring.isSealed() {
			n-- // Shutdown's close frame
		}
	}
	return n
}

// Replayable returns the number of written data messages kept for replay.
func (c *Conn) Replayable() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replay.len()
}

// noteWritten records that the data messages up to hi were written to sock.
// Called under mu by the Flush that wrote them.
func (c *Conn) noteWritten(sock Socket, hi uint64) {
	if sock == c.sock && hi > c.wrote.Load() {
		c.wrote.Store(hi)
	}
}

// releaseGreeting drops a welcome and replayed frames not yet written.
// Called under mu.
func (c *Conn) releaseGreeting() {
	o := c.opening
	if o == nil {
		return
	}
	c.opening = nil
	if o.greeting != nil {
		o.greeting.Release()
	}
	for _, b := range o.resend {
		b.Release()
	}
}

// releaseSession releases everything the session holds besides its queue:
// the welcome and replayed frames not yet written and the replay buffer.
// Called under mu by teardown.
func (c *Conn) releaseSession() {
	c.releaseGreeting()
	c.replayRelease()
}
