// Package loop runs wsrelay on the nbio event loop: it owns the listener,
// the HTTP endpoints (/ws, /health, /ready, /stats, /metrics, /echo), the
// upgrade checks (origin, identity, limits), the liveness sweeper and the
// graceful shutdown.
//
// A small pool of poller goroutines reads every socket; there is no
// goroutine per connection and none per message. After the upgrade, nbio
// hands a connection's bytes to wsrelay's own RFC 6455 decoder
// (frame.Reader) on the poller goroutine; messages are routed there and the
// touched recipients are flushed once per read.
package loop
