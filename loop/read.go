package loop

import (
	"errors"
	"sync"
	"syscall"

	"github.com/lesismal/nbio"
)

// Reading, and pausing it (flow control, docs/protocol.md section 9).
//
// The engine runs in edge-triggered mode (EPOLLET) with our own OnRead: the
// poller tells us a socket became readable, and we read it until EAGAIN. A
// connection that flow control paused is simply not read: its bytes stay in
// the kernel, TCP slows its sender down, and its descriptor stays armed for
// write-readiness and hang-up, so its own queue keeps draining (over TLS
// too: the TLS layer only sees what we read). Since no new edge may come for
// bytes already waiting, Resume reads it again on a worker, starting with
// the input the frame.Reader kept when it stopped. EPOLLONESHOT would have
// stopped write and hang-up events as well, and level-triggered mode would
// wake the poller for the paused socket over and over.
//
// Exactly one goroutine reads a connection at a time: the poller on an edge,
// or an executor worker after a Resume or when the poller's read budget ran
// out. wsConn.rd hands that role over:
//
//	rdIdle        nobody reads; the poller takes the role on the next edge
//	rdBusy        the role is taken
//	rdBusyMore    taken, and the poller saw an edge meanwhile: the reader
//	              reads the socket again before letting go
//	rdBusyResume  taken, and flow control resumed the connection meanwhile:
//	              the reader goes on although its frame.Reader stopped
//	rdParked      the frame.Reader stopped for flow control; nobody reads
//	              until Resume hands the role to a worker
const (
	rdIdle uint32 = iota
	rdBusy
	rdBusyMore
	rdBusyResume
	rdParked
)

// readsPerEdge bounds the socket reads one poller pass does for one
// connection, so that a flooding peer cannot starve the other sockets of its
// poller; a worker continues where it stopped.
const readsPerEdge = 16

// readBufSize is the size of the buffers workers read into, the size of a
// poller's own buffer.
const readBufSize = 64 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// onRead is the engine's OnRead: the socket of c became readable.
func (s *Server) onRead(c *nbio.Conn) {
	s.accepted.Load()      // see Start
	s.yield.Tick(c.Hash()) // runs on the poller goroutine, before it reads
	if w, ok := c.Session().(*wsConn); ok {
		w.onEdge(s.engine.Engine.PollerBuffer(c))
		return
	}
	// The HTTP phase: read it all, nbhttp parses.
	readSocket(c, s.engine.Engine.PollerBuffer(c), -1, nil)
}

// readSocket reads c until EAGAIN, or for at most max reads when max >= 0,
// and hands every chunk to c's data handler (nbhttp's, which calls Parse
// after the upgrade). stop, when not nil, is checked after each chunk and
// ends the reading early. It reports whether the socket has nothing more to
// read (EAGAIN, or closed).
func readSocket(c *nbio.Conn, buf []byte, max int, stop func() bool) (drained bool) {
	for i := 0; max < 0 || i < max; i++ {
		n, err := c.Read(buf)
		if n > 0 {
			c.DataHandler()(c, buf[:n])
		}
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return true
		case err != nil:
			_ = c.CloseWithError(err)
			return true
		case n == 0:
			return true
		}
		if stop != nil && stop() {
			return false
		}
		if n < len(buf) {
			// A short read emptied the socket: bytes that arrive later
			// bring a new edge (nbio's own edge-triggered loop stops here
			// too), and the EAGAIN read is saved.
			return true
		}
	}
	return false
}

// onEdge runs on the poller when w's socket became readable.
func (w *wsConn) onEdge(buf []byte) {
	for {
		switch st := w.rd.Load(); st {
		case rdIdle:
			if w.rd.CompareAndSwap(rdIdle, rdBusy) {
				w.pump(buf, readsPerEdge)
				return
			}
		case rdBusy:
			// A worker reads: it must look at the socket again.
			if w.rd.CompareAndSwap(rdBusy, rdBusyMore) {
				return
			}
		default:
			// The reader will read the socket anyway (more, resume), or
			// the connection is paused and Resume will.
			return
		}
	}
}

// Resume implements conn.Resumer: the last recipient that held w back let
// it go. It never reads on the calling goroutine.
func (w *wsConn) Resume() {
	for {
		switch st := w.rd.Load(); st {
		case rdParked, rdIdle:
			// Idle: the reader stopped in a pass that was not pump's (the
			// first bytes after the upgrade, read in the HTTP phase).
			if w.rd.CompareAndSwap(st, rdBusy) {
				w.srv.exec.Submit(w.work)
				return
			}
		case rdBusy, rdBusyMore:
			// Its reader has not let go yet: it will go on.
			if w.rd.CompareAndSwap(st, rdBusyResume) {
				return
			}
		default:
			return
		}
	}
}

// work reads w on an executor worker; the caller handed it the role.
func (w *wsConn) work() {
	bp := readBufs.Get().(*[]byte)
	w.pump(*bp, readsPerEdge)
	readBufs.Put(bp)
}

// stopped reports whether flow control stopped w's frame.Reader. After a
// close frame or a protocol error nothing is decoded any more and reading
// never pauses.
func (w *wsConn) stopped() bool { return w.reader.Stopped() && !w.done }

// pump reads w while the caller holds the role (rd is a busy state), until
// the socket is empty, flow control stops the reader, or maxReads reads
// are done (then a worker continues), and hands the role over.
func (w *wsConn) pump(buf []byte, maxReads int) {
	for {
		if w.stopped() {
			w.resume() // decode what the reader kept when it stopped
		}
		drained := true
		if !w.stopped() {
			drained = readSocket(w.nbc, buf, maxReads, w.stopped)
		}
		switch {
		case w.stopped():
			if w.rd.CompareAndSwap(rdBusy, rdParked) || w.rd.CompareAndSwap(rdBusyMore, rdParked) {
				return
			}
			// rdBusyResume: released before it let go.
		case !drained:
			// Out of reads, not of input: a worker continues, and the
			// poller serves its other sockets.
			w.srv.exec.Submit(w.work)
			return
		default:
			if w.rd.CompareAndSwap(rdBusy, rdIdle) {
				return
			}
			// rdBusyMore: an edge came while we read; rdBusyResume: a
			// stale resume of a reader that no longer waits.
		}
		w.rd.Store(rdBusy)
	}
}
