package frame

// Identity limits of docs/protocol.md sections 2 and 3.
const (
	MaxPeerIDLen = 64  // longest peer id, in bytes
	MaxRoomLen   = 128 // longest room name, in bytes
	MaxIDLen     = 64  // longest request "id": a number's bytes, or a string's bytes between its quotes
)

// charClass marks the bytes allowed in peer ids (classPeer) and room names
// (classRoom). It is computed once and never written again.
var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			t[c] = classPeer | classRoom
		}
	}
	for _, c := range []byte("._:-") {
		t[c] = classPeer | classRoom
	}
	t['/'] = classRoom
	return t
}()

const (
	classPeer = 1 << iota
	classRoom
)

// ValidPeerID reports whether b is a valid peer id: 1 to MaxPeerIDLen bytes,
// each an ASCII letter, a digit, or one of . _ : -
func ValidPeerID(b []byte) bool { return validChars(b, MaxPeerIDLen, classPeer) }

// ValidRoom reports whether b is a valid room name: 1 to MaxRoomLen bytes,
// each an ASCII letter, a digit, or one of . _ : / -
func ValidRoom(b []byte) bool { return validChars(b, MaxRoomLen, classRoom) }

func validChars(b []byte, max int, class uint8) bool {
	if len(b) == 0 || len(b) > max {
		return false
	}
	for _, c := range b {
		if charClass[c]&class == 0 {
			return false
		}
	}
	return true
}

// ValidID reports whether raw, the raw "id" token of a request
// (Envelope.ID), is a JSON number of at most MaxIDLen bytes or a JSON string
// with at most MaxIDLen bytes between its quotes, as sent (escapes count as
// written: `\n` is two bytes). So a string of 64 ASCII characters is accepted.
func ValidID(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		return len(raw) <= MaxIDLen+2 && skipString(raw, 1) == len(raw)
	case c == '-' || isDigit(c):
		return len(raw) <= MaxIDLen && skipNumber(raw, 0) == len(raw)
	}
	return false
}
