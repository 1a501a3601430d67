// Package session is the protocol a peer speaks once its WebSocket is open
// (docs/protocol.md sections 3 and 4): the welcome, the dispatch of every message
// type, acks, the error vocabulary, the rules of binary delivery, and room
// access on join (section 11: the credential's rooms, room tokens).
//
// session knows nothing of the event loop. The transport (package loop)
// upgrades a socket, wraps it in a conn.Conn and calls Handler.Open, which
// greets the peer and registers it with the router. It then hands every
// complete data message to Session.OnMessage and the end of the connection to
// Session.OnClose. Because the socket is the conn.Socket interface, the whole
// protocol is tested here with an in-memory socket.
//
// A Handler is shared by every connection of a server and is safe for
// concurrent use. A Session belongs to one connection: OnMessage is called
// only by the goroutine that reads the connection, and OnClose once, by the
// goroutine that learns the connection closed. OnClose does not wait for a
// concurrent OnMessage: what that message routes to the closed peer's own
// connection is discarded and counted by package conn.
//
// # Session resume
//
// With a resume window (docs/protocol.md section 10), resume.go keeps a registry
// of sessions by resume token. A Session then outlives its connection:
// OnClose detaches it instead of ending it when the connection was lost
// rather than closed for good, a runtime timer per detached session expires
// it, and Handler.Resume and Session.Attach hand it to the connection that
// resumed it. A Session then belongs to one connection at a time: the
// transport ignores what still arrives on a socket the session left.
package session
