// Package api is the server API (docs/protocol.md section 12): application
// backends send messages to peers and rooms, disconnect peers and list a
// room's members over plain HTTP, without holding a WebSocket themselves.
//
// A Handler serves the paths under /api/. Every call needs the key of
// WSRELAY_API_KEY as a bearer token, compared in constant time; bodies are
// JSON objects of at most WSRELAY_MAX_MESSAGE_BYTES, and failures are
// answered as {"error":CODE,"message":TEXT} with the codes of section 3.
// Messages are delivered as publish, direct and broadcast from the sender
// "@server", which no peer id can equal.
//
// The API reaches the whole cluster from any node: the router delivers to
// local peers and hands the rest to its backplane (publish and broadcast on
// the room and broadcast subjects, direct and disconnect to the node that
// holds the peer; room listings come from the replicated view).
//
// Requests are served on the event loop's HTTP executor, like every other
// HTTP request: no goroutine is started per request. A large fan-out is
// handed to the connections' drain workers (router.Batch.Handoff).
package api
