// Package loop is wsrelay's transport on the nbio event loop: it owns the
// listener, TLS, the HTTP endpoints (/ws, /health, /ready, /stats, /metrics,
// /echo), the upgrade checks (origin, identity, limits), the liveness
// sweeper and the graceful shutdown. What a peer says once connected is the
// business of package session: the loop hands it each connection's opening
// (Handler.Open, Session.Greet), messages (Session.OnMessage) and close
// (Session.OnClose). Its collaborators are made by the caller and passed to
// New in Deps.
//
// A small pool of poller goroutines reads every socket; there is no
// goroutine per connection and none per message. After the upgrade, nbio
// hands a connection's bytes to wsrelay's own RFC 6455 decoder
// (frame.Reader) on the poller goroutine; messages are handled there by the
// session and the touched recipients are flushed once per read.
package loop
