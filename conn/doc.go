// Package conn holds the state of one connected peer: its identity, its
// bounded send queue, write accounting, rate limiter and liveness.
//
// conn does not know nbio: the socket is the small Socket interface that the
// event loop implements, so everything here is tested without sockets.
//
// # Sending
//
// Frames reach a peer through Enqueue, which never blocks and never writes:
// it pushes a reference-counted frame.Buf into the peer's ring and reports
// whether the caller must flush the peer. The caller flushes every touched
// peer once after routing a whole batch of messages, so a busy peer gets many
// frames per write(2). A peer whose socket does not drain keeps at most
// Env.HighWater bytes in flight; further frames wait in its ring, and when the
// ring is full new frames are dropped, counted (queue_full) and announced to
// the peer later with an overflow message. The ring's memory is taken from a
// pool only while frames wait and is returned as soon as it is empty, so an
// idle peer costs no queue memory.
//
// A peer that negotiated permessage-deflate (Conn.Deflate) gets the
// compressed form of each queued data frame of at least Env.CompressMin body
// bytes. That form belongs to the frame.Buf: the first such recipient's
// flush compresses it, every other one writes the same bytes, and it is
// released with the frame. Other peers get the plain frame. The peer holds
// no compression state of its own.
//
// The send path is one state machine, the phase type in phase.go: whether a
// flush is owed and by whom, whether one is writing or parked at HighWater,
// whether a close frame is on its way or the socket lingers until it is
// written. Every transition is listed there with who makes it and under
// which lock. Frames still queued when a
// connection closes are released and counted in one place (teardown), for
// CloseWith and Teardown alike.
//
// # Session resume
//
// With Env.Resume (docs/protocol.md section 10) a Conn is a session that may
// outlive its socket, in resume.go: it numbers the data messages entering
// its queue, keeps the ones it wrote in a replay buffer (replay.go) of
// references to the shared frames until the client acknowledges them (a
// pong to a ping sent after them, or a received count), and Detach and
// Attach move it from a lost socket to the one that resumed it. A detach
// starts a new epoch of the send path, so that nothing done for the old
// socket can act on the new one.
package conn
