package cluster

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// Message kinds, the first byte of every NATS message body.
//
// Frames (subjects <prefix>.room.<room>, <prefix>.all, <prefix>.node.<id>):
//
//	'd' op to_len to body     a direct frame for local peer to
//	'r' op room_len room body a room frame for the local members of room
//	'b' op body               a broadcast frame for every local peer
//
// op is the WebSocket opcode (1 text, 2 binary) and body the frame's
// payload exactly as the sending node built it, the from field stamped: the
// receiver copies it into one frame.Buf and hands that to every local
// recipient, without looking inside.
//
// Control (subject <prefix>.node.<id>):
//
//	'q' node_len node         node asks for a presence snapshot (it saw a gap)
//	'k' peer_len peer code(2) reason_len reason
//	                          close local peer with code and reason (server API)
//
// Presence (subject <prefix>.presence), one message carrying records:
//
//	'p' node_len node inc(8) seq(8) record...
//
// inc is the sending process's random incarnation, seq the number of the
// presence message from it (heartbeats repeat the last one). Records:
//
//	'H'                             heartbeat (alone in its message)
//	'S' gen(8) hello(1)             snapshot begins; hello: please send yours
//	'E' gen(8)                      snapshot ends: forget what it did not list
//	'U' peer_len peer ts(8)         peer registered at ts (unix ns)
//	'D' peer_len peer               peer gone
//	'J' peer_len peer room_len room peer joined room
//	'L' peer_len peer room_len room peer left room
//	'X'                             node stops (graceful shutdown)
//
// A session that moves between nodes (a resume on another node,
// handover.go) is announced with the moved records, which are applied like
// their upper-case twins but tell no local member:
//
//	'u' peer_len peer ts(8)         peer's session moved here at ts; its
//	                                registration on another node is forgotten
//	'm' peer_len peer               peer's session moved away
//	'j' peer_len peer room_len room peer is a member of room (moved here)
//	'l' peer_len peer room_len room peer is no longer a member (moved away)
//
// Integers are big-endian. Lengths are one byte: peer ids, rooms and node ids
// are at most 128 bytes.
const (
	kindDirect    = 'd'
	kindRoom      = 'r'
	kindBroadcast = 'b'
	kindSyncReq   = 'q'
	kindClose     = 'k'
	kindPresence  = 'p'

	recHeartbeat = 'H'
	recSnapStart = 'S'
	recSnapEnd   = 'E'
	recUp        = 'U'
	recDown      = 'D'
	recJoin      = 'J'
	recLeave     = 'L'
	recBye       = 'X'

	recMovedUp    = 'u'
	recMovedDown  = 'm'
	recMovedJoin  = 'j'
	recMovedLeave = 'l'
)

// appendField appends a one-byte length and s.
func appendField(dst []byte, s string) []byte {
	return append(append(dst, byte(len(s))), s...)
}

// appendClose appends a message asking a node to close peer's connection.
func appendClose(dst []byte, peer string, code int, reason string) []byte {
	dst = appendField(append(dst, kindClose), peer)
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return appendField(dst, reason)
}

// appendPresenceHeader appends the header of a presence message.
func appendPresenceHeader(dst []byte, node string, inc, seq uint64) []byte {
	dst = append(dst, kindPresence)
	dst = appendField(dst, node)
	dst = binary.BigEndian.AppendUint64(dst, inc)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// reader decodes the fields of one message. A short or malformed message
// sets bad; every later read returns zero values.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) byte() byte {
	if b := r.next(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) field() []byte {
	n := int(r.byte())
	if r.bad {
		return nil
	}
	if f := r.next(n); f != nil {
		return f[:n:n]
	}
	return nil
}

func (r *reader) uint16() uint16 {
	if b := r.next(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if b := r.next(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// next takes the next n bytes; nil, and bad set, when fewer are left.
func (r *reader) next(n int) []byte {
	if len(r.b) < n {
		r.bad = true
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

// roomToken maps a room name (docs/protocol.md section 2) to one NATS subject
// token. Names without '.' are used as they are; names with one are
// hex-encoded behind '~', a character no room name contains, so the mapping
// is one-to-one.
func roomToken(room string) string {
	if !strings.Contains(room, ".") {
		return room
	}
	return "~" + hex.EncodeToString([]byte(room))
}

// subjects are the NATS subjects of one cluster.
type subjects struct {
	presence string // every node's presence messages
	all      string // broadcast frames
	room     string // prefix of room subjects: <prefix>.room.
	node     string // prefix of node inboxes: <prefix>.node.
	handover string // prefix of session handover subjects: <prefix>.handover.
}

func newSubjects(prefix string) subjects {
	return subjects{
		presence: prefix + ".presence",
		all:      prefix + ".all",
		room:     prefix + ".room.",
		node:     prefix + ".node.",
		handover: prefix + ".handover.",
	}
}

func (s subjects) roomSubject(room string) string   { return s.room + roomToken(room) }
func (s subjects) nodeSubject(id string) string     { return s.node + id }
func (s subjects) handoverSubject(id string) string { return s.handover + id }
