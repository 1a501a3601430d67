package loop

import (
	"errors"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// Key auth (WSRELAY_AUTH=key, docs/protocol.md section 11) after the upgrade: the
// 101 response carries the challenge, the client's first message must
// answer it, and the sweeper closes a connection that has not answered
// within the time limit. No goroutine and no timer per pending connection:
// it waits in the sweeper's wheel like any other.
//
// A connection is admitted (counted open, greeted, registered as its peer)
// only once its answer verified. Until then it holds its MAX_CLIENTS and
// per-IP slots but is no peer: nothing can be routed to it. A failed
// challenge is counted in wsrelay_connections_rejected_total{reason="auth"}
// and closed with 4003.

// Auth states of a wsConn (wsConn.auth). The zero value is admitted: every
// connection outside auth mode key.
const (
	authAdmitted uint32 = iota
	authPending         // challenge sent, no answer yet
	authFailed          // challenge failed, connection closing
)

// Reasons a challenge failed that package auth does not name.
var (
	errAuthBinary  = errors.New("loop: binary message before auth")
	errAuthTimeout = errors.New("loop: no answer to the challenge in time")
)

// appendChallenge appends the challenge of ch as one WebSocket text frame.
func appendChallenge(dst []byte, ch *auth.Challenge) []byte {
	var msg [96]byte
	m := ch.AppendMessage(msg[:0])
	dst = frame.AppendFrameHeader(dst, frame.OpText, len(m))
	return append(dst, m...)
}

// answer handles the first data message of a connection whose challenge is
// pending. On the goroutine that reads w. A valid answer admits the
// peer: it is counted open and greeted (welcome, registration). Anything
// else fails the challenge. Either way the challenge is spent.
func (w *wsConn) answer(op byte, p []byte) {
	ch := w.challenge
	w.challenge = nil
	err := errAuthBinary
	if op == frame.OpText {
		err = ch.Verify(p)
	}
	if err != nil {
		w.done = true
		w.failAuth(err)
		return
	}
	w.authMu.Lock()
	defer w.authMu.Unlock()
	// CloseAndClean sets closed before it reads the state under authMu:
	// a connection it already cleaned up must not be registered after it.
	if w.auth.Load() != authPending || w.closed.Load() {
		w.done = true
		return
	}
	w.auth.Store(authAdmitted)
	w.srv.stats.ConnOpened()
	// The welcome is written under authMu: the write never blocks (nbio
	// buffers it), and only this connection's close waits for the lock.
	w.sess.Greet(nil)
}

// failAuth fails a pending challenge: counted as rejected{reason="auth"},
// closed with 4003. Any goroutine; a no-op unless the challenge is pending.
func (w *wsConn) failAuth(err error) {
	w.authMu.Lock()
	pending := w.auth.Load() == authPending
	if pending {
		w.auth.Store(authFailed)
	}
	w.authMu.Unlock()
	if !pending {
		return
	}
	w.srv.stats.Reject(stats.RejectAuth)
	w.srv.logBadInput("key auth failed", w, "err", err.Error())
	w.CloseWith(auth.CloseAuthFailed, auth.CloseAuthFailedReason)
}

// admitted reports, for CloseAndClean (which has set closed), whether the
// connection was admitted; after it returns, answer no longer admits it.
func (w *wsConn) admitted() bool {
	w.authMu.Lock()
	defer w.authMu.Unlock()
	return w.auth.Load() == authAdmitted
}
