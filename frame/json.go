package frame

import "strconv"

// The Append* functions build the server-to-client JSON messages of
// docs/protocol.md section 3. Each appends one complete message to dst and returns
// the extended slice, like strconv.AppendInt: with enough capacity in dst
// they do not allocate. Fields come in the documented order, without spaces.
// String arguments are escaped by AppendString; data and id arguments are raw
// JSON inserted byte for byte (as scanned by ScanEnvelope), and an empty one
// is written as null.

// AppendString appends s as a JSON string, quotes included. It escapes the
// quote and the backslash as \" and \\ and control characters (below 0x20)
// as \u00XX, and passes every other byte through unchanged.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < 0x20 {
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		} else {
			dst = append(dst, '\\', c)
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendRaw appends the raw JSON value v, or null when v is empty.
func appendRaw(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, v...)
}

// AppendWelcome appends
// {"type":"welcome","peer":P,"server":S,"heartbeat_ms":N,"timeout_ms":N,"max_message_bytes":N,"queue_size":N}.
func AppendWelcome(dst []byte, peer, server string, heartbeatMs, timeoutMs, maxMessageBytes, queueSize int64) []byte {
	dst = append(dst, `{"type":"welcome","peer":`...)
	dst = AppendString(dst, peer)
	dst = append(dst, `,"server":`...)
	dst = AppendString(dst, server)
	dst = append(dst, `,"heartbeat_ms":`...)
	dst = strconv.AppendInt(dst, heartbeatMs, 10)
	dst = append(dst, `,"timeout_ms":`...)
	dst = strconv.AppendInt(dst, timeoutMs, 10)
	dst = append(dst, `,"max_message_bytes":`...)
	dst = strconv.AppendInt(dst, maxMessageBytes, 10)
	dst = append(dst, `,"queue_size":`...)
	dst = strconv.AppendInt(dst, queueSize, 10)
	return append(dst, '}')
}

// AppendJoined appends {"type":"joined","room":R,"peers":[P,...]}; no peers
// give "peers":[].
func AppendJoined(dst []byte, room string, peers []string) []byte {
	dst = append(dst, `{"type":"joined","room":`...)
	dst = AppendString(dst, room)
	dst = append(dst, `,"peers":[`...)
	for i, p := range peers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, p)
	}
	return append(dst, "]}"...)
}

// JoinedLen returns the length of what AppendJoined appends for room and
// peers when neither needs escaping (valid room names and peer ids do not):
// the size a joined reply's buffer needs.
func JoinedLen(room string, peers []string) int {
	n := len(`{"type":"joined","room":""`) + len(room) + len(`,"peers":[]}`)
	for _, p := range peers {
		n += len(p) + 3 // quotes and a comma
	}
	if len(peers) > 0 {
		n-- // no comma after the last
	}
	return n
}

// AppendLeft appends {"type":"left","room":R}.
func AppendLeft(dst []byte, room string) []byte {
	dst = append(dst, `{"type":"left","room":`...)
	dst = AppendString(dst, room)
	return append(dst, '}')
}

// AppendPeerJoined appends {"type":"peer_joined","room":R,"peer":P}.
func AppendPeerJoined(dst []byte, room, peer string) []byte {
	dst = append(dst, `{"type":"peer_joined","room":`...)
	return appendPeerTail(dst, room, peer)
}

// AppendPeerLeft appends {"type":"peer_left","room":R,"peer":P}.
func AppendPeerLeft(dst []byte, room, peer string) []byte {
	dst = append(dst, `{"type":"peer_left","room":`...)
	return appendPeerTail(dst, room, peer)
}

// PresenceLen returns the length of what AppendPeerJoined appends for room
// and peer when neither needs escaping (valid room names and peer ids do
// not); AppendPeerLeft appends 2 bytes less. It is the size a presence
// notice's buffer needs.
func PresenceLen(room, peer string) int {
	return len(`{"type":"peer_joined","room":"","peer":""}`) + len(room) + len(peer)
}

func appendPeerTail(dst []byte, room, peer string) []byte {
	dst = AppendString(dst, room)
	dst = append(dst, `,"peer":`...)
	dst = AppendString(dst, peer)
	return append(dst, '}')
}

// AppendDirect appends {"type":"direct","from":P,"data":D}.
func AppendDirect(dst []byte, from string, data []byte) []byte {
	dst = append(dst, `{"type":"direct","from":`...)
	return appendFromData(dst, from, data)
}

// AppendPublish appends {"type":"publish","room":R,"from":P,"data":D}.
func AppendPublish(dst []byte, room, from string, data []byte) []byte {
	dst = append(dst, `{"type":"publish","room":`...)
	dst = AppendString(dst, room)
	dst = append(dst, `,"from":`...)
	return appendFromData(dst, from, data)
}

// AppendBroadcast appends {"type":"broadcast","from":P,"data":D}.
func AppendBroadcast(dst []byte, from string, data []byte) []byte {
	dst = append(dst, `{"type":"broadcast","from":`...)
	return appendFromData(dst, from, data)
}

func appendFromData(dst []byte, from string, data []byte) []byte {
	dst = AppendString(dst, from)
	dst = append(dst, `,"data":`...)
	dst = appendRaw(dst, data)
	return append(dst, '}')
}

// AppendPong appends {"type":"pong","time":T}, T in Unix milliseconds.
func AppendPong(dst []byte, unixMillis int64) []byte {
	dst = append(dst, `{"type":"pong","time":`...)
	dst = strconv.AppendInt(dst, unixMillis, 10)
	return append(dst, '}')
}

// AppendAck appends {"type":"ack","id":ID}, id being the request's raw
// Envelope.ID.
func AppendAck(dst []byte, id []byte) []byte {
	dst = append(dst, `{"type":"ack","id":`...)
	dst = appendRaw(dst, id)
	return append(dst, '}')
}

// AppendOverflow appends {"type":"overflow","dropped":N}.
func AppendOverflow(dst []byte, dropped uint64) []byte {
	dst = append(dst, `{"type":"overflow","dropped":`...)
	dst = strconv.AppendUint(dst, dropped, 10)
	return append(dst, '}')
}

// AppendError appends {"type":"error","code":C,"message":M}, with
// ,"id":ID before the closing brace when id (the request's raw Envelope.ID)
// is not empty.
func AppendError(dst []byte, code, message string, id []byte) []byte {
	dst = append(dst, `{"type":"error","code":`...)
	dst = AppendString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	if len(id) > 0 {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	return append(dst, '}')
}

// AppendResumeFields appends the session resume fields (docs/protocol.md section
// 10) to a welcome that AppendWelcome just appended to dst, inside its
// object: "resume":TOKEN and "resumed":false for a new session; for a
// resumed one "resumed":true, "rooms":[...] and "missed":K as well.
func AppendResumeFields(dst []byte, token string, resumed bool, rooms []string, missed uint64) []byte {
	dst = dst[:len(dst)-1] // the welcome's closing brace
	dst = append(dst, `,"resume":`...)
	dst = AppendString(dst, token)
	if !resumed {
		return append(dst, `,"resumed":false}`...)
	}
	dst = append(dst, `,"resumed":true,"rooms":[`...)
	for i, r := range rooms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, r)
	}
	dst = append(dst, `],"missed":`...)
	dst = strconv.AppendUint(dst, missed, 10)
	return append(dst, '}')
}
