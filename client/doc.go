// Package client is the Go client of the wsrelay wire protocol (docs/protocol.md,
// sections 2 to 5). The relay's integration tests, the bench harness and
// applications use it to connect as a peer, join rooms, and exchange JSON and
// binary messages with other peers.
//
// A Client is one WebSocket connection. Dial connects, waits for the relay's
// welcome and returns; Receive delivers what the relay sends, in order; the
// Send helpers (Join, Leave, Direct, Publish, Broadcast, Ping, SendBinary)
// write requests. Nothing is validated on the way out: the client sends what
// it is given, so tests can provoke every error the relay defines.
//
//	c, err := client.Dial(ctx, "ws://localhost:8080/ws", &client.Options{Peer: "alice"})
//	if err != nil {
//		var he *client.HandshakeError
//		if errors.As(err, &he) {
//			log.Printf("refused: %d, retry after %q", he.StatusCode, he.Header.Get("Retry-After"))
//		}
//		return err
//	}
//	defer c.Close()
//
//	if err := c.Join("lobby", 1); err != nil {
//		return err
//	}
//	joined, err := c.ReceiveType(ctx, "joined")
//	if err != nil {
//		return err
//	}
//	log.Printf("in lobby with %v", joined.Peers)
//	c.Publish("lobby", map[string]string{"text": "hi"}, nil)
//	for {
//		m, err := c.Receive(ctx)
//		if err != nil {
//			return err // a *client.CloseError once the connection is gone
//		}
//		log.Printf("%s from %s: %s", m.Type, m.From, m.Data)
//	}
//
// # Goroutines and backpressure
//
// Each Client runs one reader goroutine. It reads frames, decodes them and
// pushes them into a buffered channel (Options.ReceiveBuffer, default 1024)
// that Receive drains. When the channel is full the reader blocks and stops
// reading the socket: a client that does not call Receive becomes a slow
// reader, and the relay's per-peer queue fills and overflows, exactly as for
// any slow peer. Close and CloseNow wait for the reader to exit, so a closed
// Client leaves no goroutine behind.
//
// WebSocket pings from the relay are answered by the reader goroutine. While
// it is blocked on a full receive channel it reads nothing, so pings queued
// behind undelivered messages go unanswered until Receive makes room.
// SetAutoPong(false) stops answering pings altogether (for liveness tests).
//
// # Message size
//
// Data frames are written through the dialer's write buffer (gorilla's default
// is 4096 bytes); a larger message goes out as a fragmented WebSocket message.
// Pass an Options.Dialer with a larger WriteBufferSize to send it as one frame.
//
// # Compression
//
// Options.Compression offers permessage-deflate without context takeover,
// the only form wsrelay accepts (WSRELAY_COMPRESSION=true). Once it is
// negotiated (Compressed), the relay sends its messages of at least
// WSRELAY_COMPRESSION_MIN_BYTES compressed and the Client compresses its own
// of at least Options.CompressMinBytes; either side may still send any
// message plain. No compression state is kept between messages.
package client
