package loop

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/conn"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/router"
	"github.com/wsrelay/wsrelay/session"
	"github.com/wsrelay/wsrelay/stats"
)

// wsConn is one upgraded connection as nbio sees it: the session of its
// nbio.Conn, fed by the poller (Parse) and closed once (CloseAndClean). It
// implements conn.Socket for its conn.Conn.
type wsConn struct {
	*conn.Conn

	// Set at construction.
	srv *Server
	hc  *nbhttp.Conn
	nbc *nbio.Conn
	tc  *tls.Conn // wss: encrypts into nbc; nil for plain ws
	// tlsRecord is the ciphertext overhead of one TLS record (wss only).
	tlsRecord int
	ip        string
	sess      *session.Session // set before the connection is published to its poller

	// Owned by the goroutine that reads the connection: its poller, or a
	// worker after a flow-control pause (read.go); rd hands the role over.
	reader frame.Reader
	done   bool   // a close frame or a protocol error ended reading
	epoch  uint32 // the Conn's epoch when this socket was attached (set before publication)
	rd     atomic.Uint32

	// Owned by the sweeper goroutine.
	lastPing time.Duration

	// Key auth (keyauth.go). challenge is set at construction and then
	// owned by the goroutine that reads the connection; authDeadline is set at construction.
	// auth is read by any goroutine and changed under authMu.
	challenge    *auth.Challenge
	authDeadline time.Duration // on the Env's monotonic clock
	authMu       sync.Mutex
	auth         atomic.Uint32

	closed atomic.Bool
}

// Write implements conn.Socket. Over TLS, conn.Conn counted b as submitted
// but nbio reports the ciphertext written, which is longer by tlsRecord per
// record: that difference is counted in flight before the write, so that
// in-flight bytes are exactly the ciphertext nbio still holds and a slow
// reader over TLS meets the same high-water mark as over TCP.
func (w *wsConn) Write(b []byte) (int, error) {
	if w.tc == nil {
		return w.nbc.Write(b)
	}
	records := (len(b) + maxTLSRecord - 1) / maxTLSRecord
	w.Conn.Written(-records * w.tlsRecord)
	return w.tc.Write(b)
}

// Close implements conn.Socket. Over TLS it sends close_notify first.
func (w *wsConn) Close() error {
	if w.tc == nil {
		return w.nbc.Close()
	}
	return w.tc.Close()
}

// WriteControl writes a control frame to this socket, and only while it is
// the socket of its session: a socket a resume took the session from never
// writes to its successor.
func (w *wsConn) WriteControl(p []byte) { w.Conn.WriteControlTo(w, p) }

// closeWith closes the session with code and reason (for good) when w is
// its socket; a socket a resume took the session from is only closed.
func (w *wsConn) closeWith(code int, reason string) {
	if w.Owns(w) {
		w.CloseWith(code, reason)
		return
	}
	_ = w.Close()
}

// UnderlayerConn implements nbhttp.ParserCloser.
func (w *wsConn) UnderlayerConn() net.Conn { return w.hc }

// Parse implements nbhttp.ParserCloser: nbio's data handler calls it, on
// the goroutine that reads the connection (read.go), with every chunk read
// from the socket (decrypted, over TLS). Messages are routed as they are
// decoded; the recipients they touched are flushed once at the end. While
// flow control holds the connection back, the reader keeps the chunk.
func (w *wsConn) Parse(data []byte) error {
	if w.done {
		return nil
	}
	w.Touch()
	w.srv.stats.BytesIn(len(data))
	w.decode(data)
	return nil
}

// resume decodes the input the reader kept when flow control stopped it.
func (w *wsConn) resume() {
	w.decode(nil)
}

// decode feeds data to the reader, or resumes it when data is nil, and
// closes the connection on a protocol error.
func (w *wsConn) decode(data []byte) {
	h := handlers.Get().(*handler)
	h.w = w
	h.sc.Batch.Sender = w.Conn
	var err error
	if data == nil {
		err = w.reader.Resume(h)
	} else {
		err = w.reader.Feed(data, h)
	}
	h.sc.Batch.Flush()
	h.sc.Batch.Sender = nil
	h.w = nil
	handlers.Put(h)
	if err != nil && !w.done {
		w.done = true
		code, reason := frame.CloseProtocolError, "protocol error"
		var ce *frame.CloseError
		if errors.As(err, &ce) {
			code, reason = ce.Code, ce.Reason
		}
		if code == frame.CloseTooBig {
			w.srv.stats.Evict(stats.EvictTooLarge)
		}
		w.srv.logBadInput("closing on protocol error", w, "code", code, "reason", reason)
		w.closeWith(code, reason)
	}
}

// CloseAndClean implements nbhttp.ParserCloser: nbio calls it once when the
// socket closed, for whatever reason.
func (w *wsConn) CloseAndClean(error) {
	if !w.closed.CompareAndSwap(false, true) {
		return
	}
	s := w.srv
	admitted := w.admitted()
	if admitted {
		bt := router.Batch{Handoff: fanoutHandoff}
		w.sess.OnClose(w, &bt) // ends the session, or detaches it for a resume
		bt.Flush()
	} else {
		w.Teardown()
	}
	s.mu.Lock()
	delete(s.all, w)
	s.mu.Unlock()
	s.releaseIP(w.ip)
	s.conns.Add(-1)
	if admitted {
		s.stats.ConnClosed()
	}
}

// handler receives what a wsConn's reader decodes during one Parse call:
// data messages go to the connection's session, control frames are answered
// here. Pooled: one per concurrent Parse.
type handler struct {
	w  *wsConn
	sc session.Scratch
}

var handlers = sync.Pool{New: func() any {
	return &handler{sc: session.Scratch{Batch: router.Batch{Handoff: fanoutHandoff}}}
}}

// OnMessage hands one complete data message to the session.
func (h *handler) OnMessage(op byte, p []byte) {
	w := h.w
	if w.done {
		return
	}
	if w.challenge != nil {
		w.answer(op, p)
		return
	}
	if w.Epoch() != w.epoch {
		// A resume took the session to another socket: what still comes
		// on this one is not the session's any more.
		w.done = true
		return
	}
	if !w.sess.OnMessage(op, p, &h.sc) {
		w.done = true
		return
	}
	if w.Park() {
		// A recipient that keeps up holds w back: stop reading until it
		// lets go (Resume); what w sent meanwhile waits in the reader and
		// the socket.
		w.reader.Stop()
	}
}

// fanoutHandoff is the number of recipients from which a Parse call hands
// its flushes to the Drainer instead of writing them on the poller (see
// router.Batch.Handoff). Below it, replies and direct messages are written
// at once; above it, a room's fan-out is written by the Drainer, which
// coalesces the frames that keep arriving for the same recipients.
const fanoutHandoff = 32

// OnPing answers a client ping with a pong carrying the same payload.
func (h *handler) OnPing(p []byte) {
	var tmp [2 + 125]byte
	b := frame.AppendFrameHeader(tmp[:0], frame.OpPong, len(p))
	h.w.WriteControl(append(b, p...))
}

// OnPong acknowledges, with resume on, the data messages written before the
// server's ping it answers. It counted as a sign of life already.
func (h *handler) OnPong(p []byte) { h.w.Conn.OnPong(p) }

// OnClose answers the client's close frame with the same code and closes.
// Codes 1000 and 1001 end the session; with resume on, any other code
// detaches it (docs/protocol.md section 10).
func (h *handler) OnClose(code int, _ string) {
	w := h.w
	w.done = true
	if code == frame.CloseNoStatus {
		code = 0
	}
	h.sc.Batch.Flush()
	if code == frame.CloseNormal || code == frame.CloseGoingAway {
		w.closeWith(code, "")
		return
	}
	w.Suspend(w, code, "")
}
