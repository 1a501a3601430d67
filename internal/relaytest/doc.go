// Package relaytest starts fully wired wsrelay servers on 127.0.0.1:0 and
// talks to them, for the integration tests of loop, session and cluster.
//
// Start wires a server the way main does: one metrics set, the counters, the
// authenticator, the router, the cluster link when WSRELAY_NATS_URL is set,
// the protocol and the transport. The helpers fail the test on error, call
// t.Helper and register their cleanups with t.Cleanup. Every wait is bounded.
package relaytest
