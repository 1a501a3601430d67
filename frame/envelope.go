package frame

import (
	"encoding/binary"
	"math/bits"
)

// MaxDepth is how deeply arrays and objects may nest in a text message,
// counting the top-level object as 1. ScanEnvelope rejects deeper messages
// with ErrBadJSON; it never recurses, whatever the input.
const MaxDepth = 64

// Envelope is the routing part of a client's JSON text message (docs/protocol.md
// section 3). Every field is a sub-slice of the message passed to
// ScanEnvelope, with its capacity clipped to its length: it is valid exactly
// as long as that message is, and appending to it never writes into the
// message. Copy what must outlive the message.
type Envelope struct {
	// Type is the contents of the "type" string, between the quotes, raw:
	// escapes are not decoded.
	Type []byte
	// ID is the raw JSON value of "id" (a number like 12, or a string
	// including its quotes like "abc"; other kinds are reported as sent and
	// rejected by ValidID), nil when absent.
	ID []byte
	// To is the contents of the "to" string, nil when absent or not a string.
	To []byte
	// Room is the contents of the "room" string, nil when absent or not a
	// string.
	Room []byte
	// Data is the raw bytes of the "data" value exactly as sent (any JSON
	// value, "null" included), nil when absent.
	Data []byte
	// Received is the raw JSON value of "received" (a ping's count of the
	// data messages received, docs/protocol.md section 10; see ParseCount), nil
	// when absent.
	Received []byte
	// Token is the contents of the "token" string (a join's room token,
	// docs/protocol.md section 11), raw: escapes are not decoded, and a JWT has
	// none. nil when absent or not a string.
	Token []byte
	// HasTo, HasRoom and HasToken report whether the key was present at
	// all, even with a value that is not a string.
	HasTo, HasRoom, HasToken bool
}

// ScanEnvelope checks that msg is exactly one JSON object (RFC 8259; leading
// and trailing whitespace allowed) whose top-level "type" is a string, and
// fills *e with the top-level "type", "id", "to", "room", "data", "token"
// and "received" fields.
// Other keys and nested keys are ignored; of duplicate keys the last one
// wins, as with encoding/json. Keys are compared on their raw bytes, so a key
// written with escapes does not match.
//
// The whole message is validated, data included: string escapes, numbers,
// literals, and nesting up to MaxDepth. Bytes of 0x80 and above inside
// strings are not checked for UTF-8 validity (the WebSocket layer checks
// text frames).
//
// ScanEnvelope resets *e first. It returns ErrBadJSON for every problem and
// then leaves *e zero. It does not allocate, does not copy, and runs in time
// linear in len(msg).
func ScanEnvelope(msg []byte, e *Envelope) error {
	if !scanEnvelope(msg, e) {
		*e = Envelope{}
		return ErrBadJSON
	}
	return nil
}

func scanEnvelope(msg []byte, e *Envelope) bool {
	*e = Envelope{}
	i := skipSpace(msg, 0)
	if i >= len(msg) || msg[i] != '{' {
		return false
	}
	typeOK := false
	i = skipSpace(msg, i+1)
	if i < len(msg) && msg[i] == '}' {
		i++
	} else {
		for {
			if i >= len(msg) || msg[i] != '"' {
				return false
			}
			end := skipString(msg, i+1)
			if end < 0 {
				return false
			}
			key := msg[i+1 : end-1]
			i = skipSpace(msg, end)
			if i >= len(msg) || msg[i] != ':' {
				return false
			}
			start := skipSpace(msg, i+1)
			if i = skipValue(msg, start, 1); i < 0 {
				return false
			}
			val := msg[start:i:i]
			switch string(key) {
			case "type":
				e.Type, typeOK = stringContents(val)
			case "id":
				e.ID = val
			case "to":
				e.To, _ = stringContents(val)
				e.HasTo = true
			case "room":
				e.Room, _ = stringContents(val)
				e.HasRoom = true
			case "data":
				e.Data = val
			case "received":
				e.Received = val
			case "token":
				e.Token, _ = stringContents(val)
				e.HasToken = true
			}
			i = skipSpace(msg, i)
			if i >= len(msg) {
				return false
			}
			if msg[i] == '}' {
				i++
				break
			}
			if msg[i] != ',' {
				return false
			}
			i = skipSpace(msg, i+1)
		}
	}
	return typeOK && skipSpace(msg, i) == len(msg)
}

// stringContents returns what is between the quotes of val when val is a
// (validated) JSON string.
func stringContents(val []byte) ([]byte, bool) {
	if val[0] != '"' {
		return nil, false
	}
	n := len(val) - 1
	return val[1:n:n], true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(s []byte, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue validates the JSON value that starts at s[i] (whitespace already
// skipped) and returns the index just past it, or -1. depth is the number of
// containers already open around the value. It uses a bit stack instead of
// recursion: bit 0 of stack says whether the innermost open container is an
// object, and n counts the containers opened here (at most MaxDepth-depth,
// which fits the 64 bits).
func skipValue(s []byte, i, depth int) int {
	var stack uint64
	n := 0
value:
	for {
		if i >= len(s) {
			return -1
		}
		switch c := s[i]; c {
		case '{', '[':
			if depth+n >= MaxDepth {
				return -1
			}
			stack <<= 1
			n++
			i = skipSpace(s, i+1)
			if c == '{' {
				stack |= 1
				if i < len(s) && s[i] == '}' {
					i++
					stack >>= 1
					n--
					break
				}
				if i = skipKey(s, i); i < 0 {
					return -1
				}
				continue value
			}
			if i < len(s) && s[i] == ']' {
				i++
				stack >>= 1
				n--
				break
			}
			continue value
		case '"':
			i = skipString(s, i+1)
		case 't':
			i = skipLiteral(s, i, "true")
		case 'f':
			i = skipLiteral(s, i, "false")
		case 'n':
			i = skipLiteral(s, i, "null")
		default:
			i = skipNumber(s, i)
		}
		if i < 0 {
			return -1
		}
		// A value ended at i: close containers, or go on to the next element.
		for n > 0 {
			i = skipSpace(s, i)
			if i >= len(s) {
				return -1
			}
			inObject := stack&1 != 0
			switch s[i] {
			case ',':
				i = skipSpace(s, i+1)
				if inObject {
					if i = skipKey(s, i); i < 0 {
						return -1
					}
				}
				continue value
			case '}':
				if !inObject {
					return -1
				}
			case ']':
				if inObject {
					return -1
				}
			default:
				return -1
			}
			i++
			stack >>= 1
			n--
		}
		return i
	}
}

// skipKey validates `"key"` `:` at s[i] and returns the index of the value
// after it, or -1.
func skipKey(s []byte, i int) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	if i = skipString(s, i+1); i < 0 {
		return -1
	}
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ':' {
		return -1
	}
	return skipSpace(s, i+1)
}

const (
	lsb     = 0x0101010101010101
	msb     = 0x8080808080808080
	quotes  = '"' * lsb
	slashes = '\\' * lsb
	spaces  = 0x20 * lsb
)

// skipString validates the rest of a JSON string whose opening quote is at
// s[i-1] and returns the index just past its closing quote, or -1. It looks
// at eight bytes at a time while none of them is a quote, a backslash or a
// control character.
func skipString(s []byte, i int) int {
	for {
		for i+8 <= len(s) {
			x := binary.LittleEndian.Uint64(s[i:])
			// Exact in the lowest flagged byte: the borrows only run upward.
			m := ((x^quotes)-lsb)&^(x^quotes) | ((x^slashes)-lsb)&^(x^slashes) | (x-spaces)&^x
			if m &= msb; m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(s) {
			return -1
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(s) {
				return -1
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipNumber validates a JSON number at s[i] and returns the index just past
// it, or -1. What follows the number is the caller's to check.
func skipNumber(s []byte, i int) int {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return -1
	case s[i] == '0':
		i++
	case isDigit(s[i]):
		for i++; i < len(s) && isDigit(s[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return -1
		}
		for i++; i < len(s) && isDigit(s[i]); i++ {
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return -1
		}
		for i++; i < len(s) && isDigit(s[i]); i++ {
		}
	}
	return i
}

// skipLiteral checks that lit is at s[i] and returns the index past it, or -1.
func skipLiteral(s []byte, i int, lit string) int {
	if len(s)-i < len(lit) || string(s[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// ParseCount parses a count of messages: a JSON number that is a
// non-negative integer without fraction, exponent or sign, at most 2^64-1
// (the "received" of a ping, the received= of a resume). It does not
// allocate.
func ParseCount(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		hi, lo := bits.Mul64(n, 10)
		sum, carry := bits.Add64(lo, uint64(c-'0'), 0)
		if hi != 0 || carry != 0 {
			return 0, false
		}
		n = sum
	}
	return n, true
}
