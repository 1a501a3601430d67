package frame

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Close codes used by wsrelay (RFC 6455 section 7.4, docs/protocol.md section 5).
// CloseNoStatus and CloseAbnormal are never sent on the wire: they only
// describe a close that carried no code or no close frame at all.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005
	CloseAbnormal        = 1006
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseTooBig          = 1009
	CloseInternalError   = 1011
	CloseReplaced        = 4001
)

// Frame layout limits (RFC 6455 section 5.2 and 5.5).
const (
	// maxControlPayload is the largest payload of a control frame.
	maxControlPayload = 125
	// maxCloseReason is the longest close reason: a control payload minus
	// the two bytes of the code.
	maxCloseReason = maxControlPayload - 2
	// maxWSHeader is the longest client frame header: 2 bytes, a 64-bit
	// extended length and a 4-byte masking key.
	maxWSHeader = 14
)

// AppendFrameHeader appends an unmasked (server-to-client) header of a final
// (FIN) frame with opcode op and a payload of n bytes, using the shortest
// length encoding. The payload itself is appended by the caller. It panics if
// n is negative.
func AppendFrameHeader(dst []byte, op byte, n int) []byte {
	return appendWSHeader(dst, 0x80|op&0x0F, 0, n)
}

// AppendMaskedFrame appends a complete masked (client-to-server) frame: the
// header with the FIN bit set when fin is true, the masking key, and payload
// masked with key. payload is not modified. Tests and clients use it.
func AppendMaskedFrame(dst []byte, fin bool, op byte, key [4]byte, payload []byte) []byte {
	b0 := op & 0x0F
	if fin {
		b0 |= 0x80
	}
	dst = appendWSHeader(dst, b0, 0x80, len(payload))
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(binary.LittleEndian.Uint32(key[:]), dst[start:])
	return dst
}

// AppendCloseFrame appends a complete unmasked close frame carrying code and
// reason. A reason longer than 123 bytes is cut at the last UTF-8 rune
// boundary that fits, so the payload stays within the 125 bytes allowed for
// control frames. Code 0 appends a close frame with an empty payload (no code,
// no reason); reason is then ignored.
func AppendCloseFrame(dst []byte, code int, reason string) []byte {
	if code == 0 {
		return AppendFrameHeader(dst, OpClose, 0)
	}
	if len(reason) > maxCloseReason {
		n := maxCloseReason
		// Back up over continuation bytes to the start of the rune that
		// does not fit; at most utf8.UTFMax-1 of them.
		for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(reason[n]); i++ {
			n--
		}
		reason = reason[:n]
	}
	dst = AppendFrameHeader(dst, OpClose, 2+len(reason))
	dst = append(dst, byte(code>>8), byte(code))
	return append(dst, reason...)
}

// ValidCloseCode reports whether code may appear in a close frame on the wire
// (RFC 6455 section 7.4): 1000-1003, 1007-1011, the registered 1012-1014,
// and the application ranges 3000-4999. 1004-1006, 1015 and everything else
// are invalid.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// appendWSHeader appends the first two header bytes (b0, and maskBit ORed
// into the length byte) and the extended length of an n-byte payload.
func appendWSHeader(dst []byte, b0, maskBit byte, n int) []byte {
	switch {
	case n < 0:
		panic("frame: negative websocket payload length")
	case n <= 125:
		return append(dst, b0, maskBit|byte(n))
	case n <= 0xFFFF:
		return append(dst, b0, maskBit|126, byte(n>>8), byte(n))
	}
	dst = append(dst, b0, maskBit|127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// maskBytes XORs b with the masking key k and returns the key to use for the
// bytes that follow b. k is the 4-byte key read little-endian and rotated so
// that its low byte applies to b[0]: the key of a frame is
// binary.LittleEndian.Uint32(key[:]), and masking a frame in pieces threads
// the returned key from one piece to the next. Masking and unmasking are the
// same operation.
func maskBytes(k uint32, b []byte) uint32 {
	n := len(b)
	i := 0
	if n >= 8 {
		k64 := uint64(k) | uint64(k)<<32
		for ; i+32 <= n; i += 32 {
			s := b[i : i+32 : i+32]
			binary.LittleEndian.PutUint64(s[0:], binary.LittleEndian.Uint64(s[0:])^k64)
			binary.LittleEndian.PutUint64(s[8:], binary.LittleEndian.Uint64(s[8:])^k64)
			binary.LittleEndian.PutUint64(s[16:], binary.LittleEndian.Uint64(s[16:])^k64)
			binary.LittleEndian.PutUint64(s[24:], binary.LittleEndian.Uint64(s[24:])^k64)
		}
		for ; i+8 <= n; i += 8 {
			s := b[i : i+8 : i+8]
			binary.LittleEndian.PutUint64(s, binary.LittleEndian.Uint64(s)^k64)
		}
	}
	// i is a multiple of 8 here, so byte i takes key byte i&3.
	for ; i < n; i++ {
		b[i] ^= byte(k >> (8 * (i & 3)))
	}
	return bits.RotateLeft32(k, -8*(n&3))
}
