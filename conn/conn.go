package conn

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// Socket is a connection's transport, implemented by the event loop.
//
// Write must not block: it hands the bytes to the kernel or keeps them in the
// transport's own buffer, and is atomic per call (frames of concurrent calls
// never interleave). Bytes that reach the kernel are reported to the Conn
// through Written. Close may be called more than once.
type Socket interface {
	Write(b []byte) (int, error)
	Close() error
}

// Limits of one flush.
const (
	maxBatchFrames = 64
	maxBatchBytes  = 64 << 10
	// closeLinger bounds how long a closing connection waits for its close
	// frame to reach the kernel before the socket is closed anyway.
	closeLinger = time.Second
)

// Env is what every Conn of one server shares. Fields are set before the
// first Conn is made and not changed afterwards.
type Env struct {
	// QueueSize is the capacity of each connection's send queue, in frames.
	QueueSize int
	// HighWater is how many bytes may be handed to a socket and not yet
	// written to the kernel before the connection stops flushing its queue.
	HighWater int64
	// RateMsgs and RateBurst configure every connection's rate limiter;
	// RateMsgs 0 turns rate limiting off.
	RateMsgs  int
	RateBurst int
	// Stats counts drops, bytes and discards.
	Stats *stats.Stats
	// Drainer resumes connections whose sockets drained.
	Drainer *Drainer
	// Flow turns flow control on (docs/protocol.md section 9, flow.go): a
	// recipient that keeps up holds back the local sender that fills its
	// queue, for at most StallTimeout per backlog.
	Flow         bool
	StallTimeout time.Duration
	// Resume turns on session resume (docs/protocol.md section 10): data
	// messages are numbered and kept for replay until acknowledged, and a
	// connection may be detached from its socket and attached to another.
	// Set it with EnableResume.
	Resume bool
	// CompressMin is the smallest frame body sent compressed to the peers
	// that negotiated permessage-deflate (Conn.Deflate).
	CompressMin int
	// AckLater, with Resume, takes a Conn whose replay buffer holds frames
	// that a Flush could not append a ping for yet (the interval between
	// two such pings had not passed): its owner calls Conn.AckPing, at
	// least a few times a second, until AckPing stops asking again. Without
	// it the frames wait for the next data write or the heartbeat's ping.
	// It is called under the Conn's lock: it must only note the Conn.
	AckLater func(*Conn)

	rings   sync.Pool
	replays [len(replayTiers)]sync.Pool // replay storage, by tier (replay.go)
	epoch   time.Time
}

// NewEnv returns an Env for queues of queueSize frames.
func NewEnv(queueSize int, st *stats.Stats, d *Drainer) *Env {
	e := &Env{QueueSize: queueSize, HighWater: 256 << 10, Stats: st, Drainer: d, StallTimeout: time.Second, epoch: time.Now()}
	// One spare slot so a shutdown close frame always fits.
	e.rings.New = func() any { return newRing(queueSize + 1) }
	return e
}

// EnableResume turns on session resume for every Conn of e. It is called
// before the first Conn is made.
func (e *Env) EnableResume() {
	e.Resume = true
	e.initReplays()
}

// Mono returns the monotonic time since the Env was made, the clock of
// liveness and rate limits.
func (e *Env) Mono() time.Duration { return time.Since(e.epoch) }

func (e *Env) getRing() *ring  { return e.rings.Get().(*ring) }
func (e *Env) putRing(r *ring) { e.rings.Put(r) }

// Conn is one connected peer. Its methods are safe for concurrent use unless
// stated otherwise.
type Conn struct {
	// Set at construction.
	ID       string
	IP       string
	env      *Env
	resume   bool // Env.Resume, unless NoResume was called
	pausable bool // its socket is a Resumer: flow control may pause its reading

	// Written by the reading goroutine, read by the liveness sweeper.
	lastSeen atomic.Int64 // Env.Mono() in nanoseconds

	// Owned by the reading goroutine (Charge).
	limiter     *rate.Limiter // made by the first Charge: idle peers never pay for it
	excessStart time.Duration
	lastExcess  time.Duration
	lastNotice  time.Duration
	excessSeen  bool
	noticeSent  bool

	// Deflate: the peer negotiated permessage-deflate, so queued data
	// frames of at least Env.CompressMin body bytes go to it compressed,
	// in the form shared by every such recipient (frame.Buf.Deflated).
	// Set right after New, before the Conn is shared; never changed. (It
	// sits here to use the padding after the bools above: an idle peer
	// costs no more with it.)
	Deflate bool

	// Write accounting: bytes handed to the socket and bytes it reported
	// written. Their difference is in flight inside the transport.
	submitted atomic.Int64
	written   atomic.Int64

	// The send path's state machine (see phase): changed under mu, except
	// the compare-and-swaps out of phaseBlocked.
	phase atomic.Uint32

	// Flow control as a sender (flow.go): the recipients holding it back,
	// plus the parked bit; and when it parked (Env.Mono nanoseconds).
	holds    atomic.Int32
	pausedAt atomic.Int64

	// wrote is the number of the last data message whose write to the
	// current socket returned (Env.Resume): a ping sent now proves, once
	// answered, that the client received every message up to it.
	wrote atomic.Uint64

	// Guarded by mu.
	mu         sync.Mutex
	sock       Socket // nil while detached
	ring       *ring  // nil while nothing waits
	dropped    uint64 // frames dropped since the last overflow notice
	closeFrame []byte // phaseClosing: the close frame the writing Flush writes last
	// Flow control as a recipient (flow.go).
	waiters    []*Conn       // the senders it holds back
	holdSince  time.Duration // when the current backlog began to hold senders
	stalled    bool          // held a sender for StallTimeout; until the ring is empty
	ackOut     bool          // Env.Resume: a ping a Flush appended is not answered yet (resume.go)
	ackShift   uint8         // Env.Resume: the interval between such pings (resume.go)
	ackLater   bool          // Env.Resume: handed to Env.AckLater, AckPing not yet run
	ackBurst   int32         // Env.Resume: when the current burst of data writes began (Env.Mono ms)
	stallTimer *time.Timer   // made by the first backlog

	// Session resume (Env.Resume), guarded by mu. Data messages are
	// numbered from 1 as they enter the ring: the ring holds the numbers
	// after sent (every frame in it but Shutdown's close frame), the replay
	// buffer those up to sent that the client has not acknowledged.
	sent     uint64
	replay   *replay       // nil while empty
	opening  *opening      // nil once the first frames of a connection were taken
	ackAt    time.Duration // when the last acknowledging ping went (Env.Mono; askAckLocked)
	lastData time.Duration // when the last Flush wrote data messages (Env.Mono)
}

// opening is what a Conn writes first on a new socket, before its queue:
// the transport's upgrade response, the welcome, and after a resume the
// replayed frames. It is allocated for the occasion and dropped once
// written, so that an open connection does not pay for it.
type opening struct {
	preface   []byte       // the transport's upgrade response
	greeting  *frame.Buf   // the welcome
	resend    []*frame.Buf // replayed frames owed after the greeting, one reference each
	resendSeq uint64       // the number of resend[0]
}

// openingLocked returns c.opening, making it if needed. Called under mu.
func (c *Conn) openingLocked() *opening {
	if c.opening == nil {
		c.opening = &opening{}
	}
	return c.opening
}

// New returns the Conn of peer id at ip, writing to sock.
func New(env *Env, id, ip string, sock Socket) *Conn {
	c := &Conn{ID: id, IP: ip, sock: sock, env: env, resume: env.Resume}
	_, c.pausable = sock.(Resumer)
	c.Touch()
	return c
}

// Touch records a sign of life from the peer now.
func (c *Conn) Touch() { c.lastSeen.Store(int64(c.env.Mono())) }

// LastSeen returns when the peer was last heard from, on the Env.Mono clock.
func (c *Conn) LastSeen() time.Duration { return time.Duration(c.lastSeen.Load()) }

// InFlight returns the bytes handed to the socket and not yet written to the
// kernel.
func (c *Conn) InFlight() int64 { return c.submitted.Load() - c.written.Load() }

// Queued returns the number of frames waiting in the send queue.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil {
		return 0
	}
	return c.ring.len()
}

// HasQueue reports whether the connection currently holds queue memory.
func (c *Conn) HasQueue() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ring != nil
}

// Open reports whether frames may still be enqueued.
func (c *Conn) Open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acceptsLocked()
}

// acceptsLocked reports whether Enqueue takes frames: the connection is not
// closing and Shutdown did not seal the ring. Called under mu.
func (c *Conn) acceptsLocked() bool { return c.load() < phaseClosing && !c.ring.isSealed() }

// Enqueue hands b to the peer. It never blocks and never writes. When b is
// queued it takes a reference on b and reports queued; mustFlush is true when
// the caller now owes the Conn a call to Flush (at most one caller at a time
// gets true). A full queue drops b and counts it as queue_full; a closing
// connection ignores b.
func (c *Conn) Enqueue(b *frame.Buf) (queued, mustFlush bool) {
	return c.enqueue(b, nil)
}

// enqueue is Enqueue and EnqueueFrom: s, when not nil, is the local sender
// that c may hold back (flow.go).
func (c *Conn) enqueue(b *frame.Buf, s *Conn) (queued, mustFlush bool) {
	c.mu.Lock()
	if !c.acceptsLocked() {
		c.mu.Unlock()
		return false, false
	}
	if c.ring == nil {
		c.ring = c.env.getRing()
	}
	// A detached recipient (session resume) drains nothing until it is
	// resumed: it never holds a sender back.
	if s != nil && c.env.Flow && !c.stalled && s.pausable && c.load() != phaseDetached && c.ring.len()+1 >= c.env.holdAt() {
		c.holdLocked(s)
	}
	if c.ring.len() >= c.env.QueueSize {
		c.dropped++
		c.mu.Unlock()
		c.env.Stats.Drop(stats.DropQueueFull, 1)
		return false, false
	}
	b.Retain(1)
	c.ring.push(b)
	if c.load() == phaseIdle {
		c.set(phaseScheduled)
		mustFlush = true
	}
	c.mu.Unlock()
	return true, mustFlush
}

// Send enqueues b and flushes at once when the caller owes the flush. It is
// for replies outside a routing batch (welcome, errors, acks).
func (c *Conn) Send(b *frame.Buf) bool {
	queued, flush := c.Enqueue(b)
	if flush {
		c.Flush(nil)
	}
	return queued
}

// Flush writes queued frames, concatenating up to 64 frames into one write,
// until the queue is empty or HighWater bytes are in flight (then Written
// resumes it through the Drainer). Only the goroutine that owes the flush
// (Enqueue returned mustFlush, or the Drainer) calls it; other calls return
// at once, or close a lingering socket whose close frame was written. scratch
// is a reusable buffer; the possibly grown buffer is returned.
func (c *Conn) Flush(scratch []byte) []byte {
	var batch [maxBatchFrames]*frame.Buf
	// mine is the phase in which this call may act: scheduled when it
	// starts, writing once it runs.
	mine := phaseScheduled
	var sock Socket // the socket of the batch being written
	var hi uint64   // the number of its last data message (Env.Resume)
	ep, first := uint32(0), true
	for {
		c.mu.Lock()
		if first {
			ep, first = c.epoch(), false
		} else if c.epoch() != ep {
			// Detached since this Flush started: the next socket's Flush
			// owns the send path; what this one wrote is in the replay
			// buffer.
			c.mu.Unlock()
			return scratch
		}
		if hi > 0 {
			c.noteWritten(sock, hi)
			hi = 0
		}
		switch p := c.load(); {
		case p == mine:
		case p == phaseClosing && mine == phaseWriting:
			// CloseWith ran while this Flush was writing: its close frame
			// goes after the frames written.
			closeFrame := c.closeFrame
			c.closeFrame = nil
			sock = c.sock
			c.mu.Unlock()
			c.write(sock, closeFrame)
			c.linger()
			return scratch
		case p == phaseLingering:
			c.mu.Unlock()
			c.closeIfWritten()
			return scratch
		default:
			// Not owed (idle, blocked), another Flush runs (writing,
			// closing), detached, or closed.
			c.mu.Unlock()
			return scratch
		}

		if c.InFlight() >= c.env.HighWater {
			c.set(phaseBlocked)
			c.mu.Unlock()
			// Re-check: Written may have run between the load and the store.
			if c.InFlight() >= c.env.HighWater || !c.swapIn(ep, phaseBlocked, phaseWriting) {
				return scratch
			}
			mine = phaseWriting
			continue
		}

		sock = c.sock
		var pre []byte
		n, size := 0, 0
		if o := c.opening; o != nil {
			pre, o.preface = o.preface, nil
			if o.greeting != nil {
				batch[0], o.greeting = o.greeting, nil
				n, size = 1, len(batch[0].Bytes())
			}
			for n < maxBatchFrames && len(o.resend) > 0 {
				b := o.resend[0]
				l := len(b.Bytes())
				if n > 0 && size+l > maxBatchBytes {
					break
				}
				batch[n] = b
				o.resend[0] = nil
				o.resend = o.resend[1:]
				hi = o.resendSeq
				o.resendSeq++
				n++
				size += l
			}
			if len(o.resend) == 0 {
				c.opening = nil
			}
		}
		for n < maxBatchFrames && c.opening == nil {
			b := c.ring.peek()
			if b == nil {
				break
			}
			l := len(b.Bytes())
			if n > 0 && size+l > maxBatchBytes {
				break
			}
			batch[n] = c.ring.pop()
			n++
			size += l
			if c.resume && !(c.ring.isSealed() && c.ring.len() == 0) {
				// A data message (not Shutdown's close frame): it stays
				// for replay until the client acknowledges it.
				c.sent++
				hi = c.sent
				b.Retain(1)
				c.replayPush(b)
			}
		}
		// No ping after Shutdown's close frame, if this batch ends with it.
		ping := hi > 0 && !(c.ring.isSealed() && c.ring.len() == 0) && c.askAckLocked()
		var held []*Conn
		if c.waiters != nil && c.ring.len() < c.env.releaseBelow() {
			held = c.takeWaitersLocked()
		}
		sealed := c.ring.isSealed()
		var notice uint64
		if c.dropped > 0 && !sealed {
			if c.resume {
				// The notice is a data message: it is numbered and
				// queued behind the frames still waiting.
				c.queueOverflow()
			} else {
				notice, c.dropped = c.dropped, 0
			}
		}
		if n == 0 && notice == 0 && pre == nil {
			if c.ring.peek() != nil {
				c.mu.Unlock() // the overflow notice just queued
				continue
			}
			c.releaseRing() // empty
			if sealed {
				// Shutdown's close frame was the last frame written.
				c.set(phaseLingering)
				c.mu.Unlock()
				release(held)
				c.linger()
				return scratch
			}
			c.set(phaseIdle)
			c.mu.Unlock()
			release(held)
			return scratch
		}
		if mine != phaseWriting {
			c.set(phaseWriting)
			mine = phaseWriting
		}
		c.mu.Unlock()
		release(held)

		var out []byte
		if n == 1 && notice == 0 && pre == nil && !ping {
			out = c.wire(batch[0])
		} else {
			scratch = append(scratch[:0], pre...)
			for i := 0; i < n; i++ {
				scratch = append(scratch, c.wire(batch[i])...)
			}
			if notice > 0 {
				scratch = appendOverflow(scratch, notice)
			}
			if ping {
				scratch = appendAckPing(scratch, hi)
			}
			out = scratch
		}
		c.write(sock, out)
		for i := 0; i < n; i++ {
			batch[i].Release()
			batch[i] = nil
		}
	}
}

// queueOverflow queues the overflow notice for the frames dropped since the
// last one, when the ring has room. Called under mu, with Env.Resume.
func (c *Conn) queueOverflow() {
	if c.ring == nil {
		c.ring = c.env.getRing()
	}
	if c.ring.len() >= c.env.QueueSize {
		return // later, when the ring has room
	}
	b := frame.NewBuf(48)
	b.B = frame.AppendOverflow(b.B, c.dropped)
	b.Finish(frame.OpText)
	c.dropped = 0
	c.ring.push(b) // the ring takes b's reference
}

// wire returns the bytes of b to write to this peer: the compressed form
// when the peer negotiated permessage-deflate and b is worth compressing
// (compressed now if no earlier recipient needed it), else the plain frame.
// It runs outside mu: compressing takes microseconds.
func (c *Conn) wire(b *frame.Buf) []byte {
	p := b.Bytes()
	if !c.Deflate {
		return p
	}
	z := b.Deflated(c.env.CompressMin)
	if z == nil {
		return p
	}
	c.env.Stats.CompressionSaved(len(p) - len(z))
	return z
}

// appendOverflow appends a complete overflow text frame.
func appendOverflow(dst []byte, dropped uint64) []byte {
	var tmp [64]byte
	body := frame.AppendOverflow(tmp[:0], dropped)
	dst = frame.AppendFrameHeader(dst, frame.OpText, len(body))
	return append(dst, body...)
}

func (c *Conn) write(sock Socket, p []byte) {
	if sock == nil {
		return // detached
	}
	c.submitted.Add(int64(len(p)))
	_, _ = sock.Write(p) // a failed write closes the socket; teardown follows
	c.env.Stats.BytesOut(len(p))
}

// socket returns the socket the Conn writes to, nil while detached.
func (c *Conn) socket() Socket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sock
}

// WriteControl writes a complete control frame (ping, pong, close) now,
// ahead of queued frames. p may be reused when WriteControl returns. A
// detached Conn writes nothing.
func (c *Conn) WriteControl(p []byte) {
	if c.load() != phaseClosed {
		c.write(c.socket(), p)
	}
}

// Written is called by the transport with the number of bytes that reached
// the kernel. It runs under the transport's lock: it only does atomics and
// may hand the Conn to the Drainer.
func (c *Conn) Written(n int) {
	w := c.written.Add(int64(n))
	inflight := c.submitted.Load() - w
	switch c.load() {
	case phaseBlocked:
		if inflight < c.env.HighWater/2 && c.swap(phaseBlocked, phaseScheduled) {
			c.env.Drainer.Schedule(c)
		}
	case phaseLingering:
		if inflight <= 0 {
			c.env.Drainer.Schedule(c) // its Flush closes the socket
		}
	}
}

// CloseWith discards the queue, writes a close frame with code and reason
// and closes the socket once the frame reached the kernel (or after a
// second). Later calls do nothing.
func (c *Conn) CloseWith(code int, reason string) {
	c.mu.Lock()
	var pre []byte // the transport's upgrade response, if no Flush wrote it yet
	if c.opening != nil {
		pre, c.opening.preface = c.opening.preface, nil
	}
	from, ok := c.teardown(phaseClosing)
	if !ok {
		c.mu.Unlock()
		return
	}
	held := c.takeWaitersLocked()
	if from == phaseDetached {
		// No socket to tell: the session ends here.
		c.set(phaseClosed)
		c.mu.Unlock()
		release(held)
		return
	}
	sock := c.sock
	if from == phaseWriting {
		// A Flush is writing frames it took from the queue: it writes the
		// close frame after them, so that nothing follows a close frame.
		c.closeFrame = frame.AppendCloseFrame(nil, code, reason)
		c.mu.Unlock()
		release(held)
		return
	}
	c.mu.Unlock()
	release(held)
	var tmp [128]byte
	c.write(sock, frame.AppendCloseFrame(append(tmp[:0], pre...), code, reason))
	c.linger()
}

// Shutdown queues a close frame with code 1001 behind the frames already
// queued; the socket closes once the queue drained. Later frames are refused.
func (c *Conn) Shutdown(closeFrame *frame.Buf) {
	c.mu.Lock()
	if !c.acceptsLocked() {
		c.mu.Unlock()
		return
	}
	if c.ring == nil {
		c.ring = c.env.getRing()
	}
	closeFrame.Retain(1)
	c.ring.seal(closeFrame) // the ring has one spare slot for this
	mustFlush := c.load() == phaseIdle
	if mustFlush {
		c.set(phaseScheduled)
	}
	c.mu.Unlock()
	if mustFlush {
		c.env.Drainer.Schedule(c)
	}
}

// linger is called once the close frame was handed to the socket: it moves
// a closing Conn to lingering and closes the socket when nothing is in
// flight, or leaves that to Written, with a timer as the last resort.
func (c *Conn) linger() {
	c.mu.Lock()
	if c.load() == phaseClosing {
		c.set(phaseLingering)
	}
	sock := c.sock
	c.mu.Unlock()
	if sock == nil {
		return
	}
	if c.InFlight() <= 0 {
		_ = sock.Close()
		return
	}
	time.AfterFunc(closeLinger, func() { _ = sock.Close() })
	c.closeIfWritten()
}

func (c *Conn) closeIfWritten() {
	if c.load() == phaseLingering && c.InFlight() <= 0 {
		c.Close()
	}
}

// Close closes the socket at once, without a close frame. A detached Conn
// has no socket to close.
func (c *Conn) Close() {
	if sock := c.socket(); sock != nil {
		_ = sock.Close()
	}
}

// Teardown is called once the socket is closed. It releases the queue and
// counts the frames that were still waiting. Enqueue refuses frames from now on.
func (c *Conn) Teardown() {
	c.mu.Lock()
	c.teardown(phaseClosed)
	held := c.takeWaitersLocked()
	c.mu.Unlock()
	release(held)
	c.unpark()
}

// teardown is the one way out of the open phases, shared by CloseWith
// (to phaseClosing) and Teardown (to phaseClosed). It moves the send path to
// phase to, releases every frame still queued and counts them as discarded
// at close. It returns the phase it left; ok is false, and nothing is done,
// when the send path already was at or past to. Called under mu.
func (c *Conn) teardown(to phase) (from phase, ok bool) {
	for {
		from = c.load()
		if from >= to {
			return from, false
		}
		if c.swap(from, to) { // blocked may become scheduled under our feet
			break
		}
	}
	if to == phaseClosed {
		c.closeFrame = nil // the socket is closed: nothing more is written
	}
	if n := c.releaseRing(); n > 0 {
		c.env.Stats.DiscardedAtClose(n)
	}
	c.releaseSession()
	return from, true
}

// releaseRing gives the ring back to the pool, releasing the frames it
// still holds, and returns how many it held. Called under mu.
func (c *Conn) releaseRing() int {
	if c.ring == nil {
		return 0
	}
	n := c.ring.close()
	c.env.putRing(c.ring)
	c.ring = nil
	c.stalled = false // its queue is empty: it keeps up again
	return n
}
