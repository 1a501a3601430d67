package session

import (
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/stats"
)

// Type is the "type" of a JSON message a peer may send (docs/protocol.md
// section 3).
type Type string

// Message types a peer may send.
const (
	TypeDirect    Type = "direct"
	TypePublish   Type = "publish"
	TypeBroadcast Type = "broadcast"
	TypeJoin      Type = "join"
	TypeLeave     Type = "leave"
	TypePing      Type = "ping"
)

// route is one entry of the dispatch table: how a message type is counted
// and handled. id is the message's validated "id", nil when absent.
type route struct {
	typ    Type
	kind   stats.Kind
	handle func(s *Session, sc *Scratch, e *frame.Envelope, id []byte)
}

// routes is the dispatch table: every JSON message type a peer may send.
// A type not in it is answered with unknown_type and counted as control.
var routes = [...]route{
	{TypeDirect, stats.KindDirect, (*Session).direct},
	{TypePublish, stats.KindPublish, (*Session).publish},
	{TypeBroadcast, stats.KindBroadcast, (*Session).broadcast},
	{TypeJoin, stats.KindControl, (*Session).join},
	{TypeLeave, stats.KindControl, (*Session).leave},
	{TypePing, stats.KindControl, (*Session).ping},
}

// lookup returns the route of the raw "type" contents t, nil when unknown.
// It does not allocate.
func lookup(t []byte) *route {
	for i := range routes {
		if string(routes[i].typ) == string(t) {
			return &routes[i]
		}
	}
	return nil
}
