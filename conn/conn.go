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

	rings sync.Pool
	epoch time.Time
}

// NewEnv returns an Env for queues of queueSize frames.
func NewEnv(queueSize int, st *stats.Stats, d *Drainer) *Env {
	e := &Env{QueueSize: queueSize, HighWater: 256 << 10, Stats: st, Drainer: d, epoch: time.Now()}
	// One spare slot so a shutdown close frame always fits.
	e.rings.New = func() any { return newRing(queueSize + 1) }
	return e
}

// Mono returns the monotonic time since the Env was made, the clock of
// liveness and rate limits.
func (e *Env) Mono() time.Duration { return time.Since(e.epoch) }

func (e *Env) getRing() *ring  { return e.rings.Get().(*ring) }
func (e *Env) putRing(r *ring) { e.rings.Put(r) }

// state of a connection's send side.
type state uint8

const (
	stateOpen     state = iota
	stateDraining       // shutdown: flush the queue, which ends with a close frame, then close
	stateClosing        // close frame written; the socket closes once it reached the kernel
	stateClosed         // torn down
)

// Conn is one connected peer. Its methods are safe for concurrent use unless
// stated otherwise.
type Conn struct {
	// Set at construction.
	ID   string
	IP   string
	sock Socket
	env  *Env

	// Written by the reading goroutine, read by the liveness sweeper.
	lastSeen atomic.Int64 // Env.Mono() in nanoseconds

	// Owned by the reading goroutine (Charge).
	limiter     *rate.Limiter // made by the first Charge: idle peers never pay for it
	excessStart time.Duration
	lastExcess  time.Duration
	lastNotice  time.Duration
	excessSeen  bool
	noticeSent  bool

	// Write accounting: bytes handed to the socket and bytes it reported
	// written. Their difference is in flight inside the transport.
	submitted atomic.Int64
	written   atomic.Int64
	blocked   atomic.Bool // flushing stopped at HighWater; Written resumes it
	lingering atomic.Bool // closing: close the socket when nothing is in flight

	// Guarded by mu.
	mu      sync.Mutex
	ring    *ring // nil while nothing waits
	sched   bool  // a flush is owed: someone will call Flush
	st      state
	dropped uint64 // frames dropped since the last overflow notice
	writing bool   // a Flush is writing frames it took from the ring
	closing []byte // close frame for that Flush to write after them

	// Rooms is the set of rooms the peer is in, owned by the router and
	// guarded by RoomsMu.
	RoomsMu sync.Mutex
	Rooms   []string
}

// New returns the Conn of peer id at ip, writing to sock.
func New(env *Env, id, ip string, sock Socket) *Conn {
	c := &Conn{ID: id, IP: ip, sock: sock, env: env}
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
	return c.st == stateOpen
}

// Enqueue hands b to the peer. It never blocks and never writes. When b is
// queued it takes a reference on b and reports queued; mustFlush is true when
// the caller now owes the Conn a call to Flush (at most one caller at a time
// gets true). A full queue drops b and counts it as queue_full; a closing
// connection ignores b.
func (c *Conn) Enqueue(b *frame.Buf) (queued, mustFlush bool) {
	c.mu.Lock()
	if c.st != stateOpen {
		c.mu.Unlock()
		return false, false
	}
	if c.ring == nil {
		c.ring = c.env.getRing()
	}
	if c.ring.len() >= c.env.QueueSize {
		c.dropped++
		c.mu.Unlock()
		c.env.Stats.Drop(stats.DropQueueFull, 1)
		return false, false
	}
	b.Retain(1)
	c.ring.push(b)
	mustFlush = !c.sched
	c.sched = true
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
// (Enqueue returned mustFlush, or the Drainer) calls it. scratch is a
// reusable buffer; the possibly grown buffer is returned.
func (c *Conn) Flush(scratch []byte) []byte {
	var batch [maxBatchFrames]*frame.Buf
	for {
		if c.InFlight() >= c.env.HighWater {
			c.blocked.Store(true)
			// Re-check: Written may have run between the load and the store.
			if c.InFlight() >= c.env.HighWater || !c.blocked.CompareAndSwap(true, false) {
				return scratch
			}
		}
		c.mu.Lock()
		if c.st >= stateClosing {
			c.sched = false
			c.mu.Unlock()
			c.closeIfWritten()
			return scratch
		}
		n, size := 0, 0
		for n < maxBatchFrames {
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
		}
		var notice uint64
		if c.dropped > 0 && c.st == stateOpen {
			notice, c.dropped = c.dropped, 0
		}
		if n == 0 && notice == 0 {
			if c.ring != nil {
				c.env.putRing(c.ring)
				c.ring = nil
			}
			c.sched = false
			draining := c.st == stateDraining
			if draining {
				c.st = stateClosing
			}
			c.mu.Unlock()
			if draining {
				c.closeSoon()
			}
			return scratch
		}
		c.writing = true
		c.mu.Unlock()

		var out []byte
		if n == 1 && notice == 0 {
			out = batch[0].Bytes()
		} else {
			scratch = scratch[:0]
			for i := 0; i < n; i++ {
				scratch = append(scratch, batch[i].Bytes()...)
			}
			if notice > 0 {
				scratch = appendOverflow(scratch, notice)
			}
			out = scratch
		}
		c.write(out)
		for i := 0; i < n; i++ {
			batch[i].Release()
			batch[i] = nil
		}
		c.mu.Lock()
		c.writing = false
		closing := c.closing
		c.closing = nil
		c.mu.Unlock()
		if closing != nil {
			// CloseWith ran during the write: its close frame goes after it.
			c.write(closing)
			c.closeSoon()
			return scratch
		}
	}
}

// appendOverflow appends a complete overflow text frame.
func appendOverflow(dst []byte, dropped uint64) []byte {
	var tmp [64]byte
	body := frame.AppendOverflow(tmp[:0], dropped)
	dst = frame.AppendFrameHeader(dst, frame.OpText, len(body))
	return append(dst, body...)
}

func (c *Conn) write(p []byte) {
	c.submitted.Add(int64(len(p)))
	_, _ = c.sock.Write(p) // a failed write closes the socket; teardown follows
	c.env.Stats.BytesOut(len(p))
}

// WriteControl writes a complete control frame (ping, pong, close) now,
// ahead of queued frames. p may be reused when WriteControl returns.
func (c *Conn) WriteControl(p []byte) {
	c.mu.Lock()
	closed := c.st == stateClosed
	c.mu.Unlock()
	if !closed {
		c.write(p)
	}
}

// Written is called by the transport with the number of bytes that reached
// the kernel. It runs under the transport's lock: it only does atomics and
// may hand the Conn to the Drainer.
func (c *Conn) Written(n int) {
	w := c.written.Add(int64(n))
	inflight := c.submitted.Load() - w
	if inflight < c.env.HighWater/2 && c.blocked.Load() && c.blocked.CompareAndSwap(true, false) {
		c.env.Drainer.Schedule(c)
	}
	if inflight <= 0 && c.lingering.Load() {
		c.env.Drainer.Schedule(c)
	}
}

// CloseWith discards the queue, writes a close frame with code and reason
// and closes the socket once the frame reached the kernel (or after a
// second). Later calls do nothing.
func (c *Conn) CloseWith(code int, reason string) {
	c.mu.Lock()
	if c.st >= stateClosing {
		c.mu.Unlock()
		return
	}
	c.st = stateClosing
	discarded := 0
	if c.ring != nil {
		discarded = c.ring.releaseAll()
		c.env.putRing(c.ring)
		c.ring = nil
	}
	if c.writing {
		// A flush is writing frames it took from the queue: it writes the
		// close frame after them, so that nothing follows a close frame.
		c.closing = frame.AppendCloseFrame(nil, code, reason)
		c.mu.Unlock()
		if discarded > 0 {
			c.env.Stats.DiscardedAtClose(discarded)
		}
		return
	}
	c.mu.Unlock()
	if discarded > 0 {
		c.env.Stats.DiscardedAtClose(discarded)
	}
	var tmp [128]byte
	c.write(frame.AppendCloseFrame(tmp[:0], code, reason))
	c.closeSoon()
}

// Shutdown queues a close frame with code 1001 behind the frames already
// queued; the socket closes once the queue drained. Later frames are refused.
func (c *Conn) Shutdown(closeFrame *frame.Buf) {
	c.mu.Lock()
	if c.st != stateOpen {
		c.mu.Unlock()
		return
	}
	c.st = stateDraining
	if c.ring == nil {
		c.ring = c.env.getRing()
	}
	closeFrame.Retain(1)
	c.ring.push(closeFrame) // the ring has one spare slot for this
	mustFlush := !c.sched
	c.sched = true
	c.mu.Unlock()
	if mustFlush {
		c.env.Drainer.Schedule(c)
	}
}

// closeSoon closes the socket when nothing is in flight, or marks the Conn
// so that Written closes it, with a timer as the last resort.
func (c *Conn) closeSoon() {
	c.lingering.Store(true)
	if c.InFlight() <= 0 {
		_ = c.sock.Close()
		return
	}
	time.AfterFunc(closeLinger, func() { _ = c.sock.Close() })
	c.closeIfWritten()
}

func (c *Conn) closeIfWritten() {
	if c.lingering.Load() && c.InFlight() <= 0 {
		_ = c.sock.Close()
	}
}

// Close closes the socket at once, without a close frame.
func (c *Conn) Close() { _ = c.sock.Close() }

// Teardown is called once the socket is closed. It releases the queue and
// counts the frames that were still waiting. Enqueue refuses frames from now on.
func (c *Conn) Teardown() {
	c.mu.Lock()
	c.st = stateClosed
	discarded := 0
	if c.ring != nil {
		discarded = c.ring.releaseAll()
		c.env.putRing(c.ring)
		c.ring = nil
	}
	c.mu.Unlock()
	if discarded > 0 {
		c.env.Stats.DiscardedAtClose(discarded)
	}
}
