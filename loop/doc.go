// Package loop is wsrelay's transport on the nbio event loop: it owns the
// listener, TLS, the HTTP endpoints (/ws, /health, /ready, /stats, /metrics,
// /echo), the upgrade checks (origin, identity, limits), the liveness
// sweeper and the graceful shutdown. What a peer says once connected is the
// business of package session: the loop hands it each connection's opening
// (Handler.Open, Session.Greet), messages (Session.OnMessage) and close
// (Session.OnClose). Its collaborators are made by the caller and passed to
// New in Deps.
//
// In auth mode key the upgrade is not the end of the checks: the 101
// response carries the key-auth challenge, and the session is greeted only
// once the client's first message answered it (keyauth.go). The sweeper
// closes, with 4003, a connection that has not answered in time.
//
// A small pool of poller goroutines reads every socket; there is no
// goroutine per connection and none per message. After the upgrade, nbio
// hands a connection's bytes to wsrelay's own RFC 6455 decoder
// (frame.Reader) on the poller goroutine; messages are handled there by the
// session and the touched recipients are flushed once per read.
//
// Sockets reach nbio through a gate (gate.go): nbio finds a socket's
// connection by descriptor number, and a number freed by a close on any
// goroutine but the socket's own poller may still have an event pending
// there, so a new socket is registered only once its poller has moved past
// every event that could carry its number.
package loop
