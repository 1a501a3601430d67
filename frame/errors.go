package frame

import (
	"errors"
	"strconv"
)

// ErrBadJSON is returned by ScanEnvelope for every malformed text message:
// not exactly one JSON object, invalid JSON anywhere in it (including nesting
// deeper than MaxDepth), or no top-level string field "type". It corresponds
// to the protocol error code bad_json.
var ErrBadJSON = errors.New("frame: bad json")

// ErrBadFrame is matched, through errors.Is, by every error ParseClientHeader
// and ParseServerHeader return. It corresponds to the protocol error code
// bad_frame; the specific ErrBinary* value says which check failed.
var ErrBadFrame = errors.New("frame: bad binary header")

// Binary header errors, one per check. Each satisfies
// errors.Is(err, ErrBadFrame) and is returned as is, so the parsers never
// allocate, not even on failure.
var (
	// ErrBinaryShort: the message ends inside the header, before the end of
	// a declared from or to field.
	ErrBinaryShort error = &headerError{"frame: bad binary header: short header"}
	// ErrBinaryVersion: the version byte is not Version.
	ErrBinaryVersion error = &headerError{"frame: bad binary header: unsupported version"}
	// ErrBinaryOp: the op byte is not BinDirect, BinPublish or BinBroadcast.
	ErrBinaryOp error = &headerError{"frame: bad binary header: unknown op"}
	// ErrBinaryFromLen: a client frame has from_len other than 0.
	ErrBinaryFromLen error = &headerError{"frame: bad binary header: from_len not 0"}
	// ErrBinaryFrom: a server frame's from is not a valid peer id.
	ErrBinaryFrom error = &headerError{"frame: bad binary header: malformed from"}
	// ErrBinaryTo: to is not a valid peer id (direct), not a valid room
	// (client publish), or not empty where the op requires it to be.
	ErrBinaryTo error = &headerError{"frame: bad binary header: malformed to"}
)

// headerError is the type of the ErrBinary* sentinels: distinct values that
// all unwrap to ErrBadFrame.
type headerError struct{ msg string }

func (e *headerError) Error() string { return e.msg }

// Unwrap makes errors.Is(err, ErrBadFrame) true.
func (e *headerError) Unwrap() error { return ErrBadFrame }

// CloseError is a protocol violation by the peer: it carries the close code
// to send (CloseProtocolError, CloseInvalidPayload, CloseTooBig) and a short
// reason, suitable both for the close frame (it fits in one) and for logs, so
// that the one value decides the reply. Reader.Feed returns only the Err*
// values below, never a copy: match one with errors.Is, or read the code and
// reason of any with errors.As. The Err* values are shared; do not modify
// them.
type CloseError struct {
	Code   int
	Reason string
}

// Error returns "frame: websocket close <code>: <reason>".
func (e *CloseError) Error() string {
	return "frame: websocket close " + strconv.Itoa(e.Code) + ": " + e.Reason
}

// Protocol violations found by Reader.Feed (RFC 6455, client to server), one
// per check. Reason is what the close frame carries, word for word.
var (
	// ErrReservedBits: a frame has RSV2 or RSV3 set, or RSV1 on a
	// connection that did not negotiate permessage-deflate
	// (Reader.Deflate false); no extension defines them (section 5.2).
	ErrReservedBits = &CloseError{Code: CloseProtocolError, Reason: "reserved bits set"}
	// ErrCompressedControl: a close, ping or pong frame has RSV1 set;
	// permessage-deflate compresses data messages only (RFC 7692 section
	// 6.1).
	ErrCompressedControl = &CloseError{Code: CloseProtocolError, Reason: "RSV1 set on a control frame"}
	// ErrCompressedContinuation: a continuation frame has RSV1 set; only
	// the first frame of a compressed message carries it (RFC 7692
	// section 6.1).
	ErrCompressedContinuation = &CloseError{Code: CloseProtocolError, Reason: "RSV1 set on a continuation frame"}
	// ErrBadOpcode: a frame's opcode is reserved (section 5.2).
	ErrBadOpcode = &CloseError{Code: CloseProtocolError, Reason: "unknown opcode"}
	// ErrInterleavedMessage: a text or binary frame starts a new message
	// while a fragmented one is still in progress (section 5.4).
	ErrInterleavedMessage = &CloseError{Code: CloseProtocolError, Reason: "new message inside a fragmented message"}
	// ErrUnexpectedContinuation: a continuation frame arrives when no
	// fragmented message is in progress (section 5.4).
	ErrUnexpectedContinuation = &CloseError{Code: CloseProtocolError, Reason: "continuation frame without a message"}
	// ErrFragmentedControl: a close, ping or pong frame lacks the FIN bit
	// (section 5.5).
	ErrFragmentedControl = &CloseError{Code: CloseProtocolError, Reason: "fragmented control frame"}
	// ErrUnmaskedClientFrame: a client frame lacks the mask bit (section
	// 5.1).
	ErrUnmaskedClientFrame = &CloseError{Code: CloseProtocolError, Reason: "unmasked client frame"}
	// ErrControlTooLong: a control frame declares a payload over 125 bytes
	// (section 5.5).
	ErrControlTooLong = &CloseError{Code: CloseProtocolError, Reason: "control frame payload over 125 bytes"}
	// ErrLengthMSB: a 64-bit payload length has its most significant bit set
	// (section 5.2).
	ErrLengthMSB = &CloseError{Code: CloseProtocolError, Reason: "payload length with the most significant bit set"}
	// ErrMessageTooBig: a frame's declared length takes its message past
	// Reader.MaxMessage, counting the fragments already received (past
	// DeflatedLimit(MaxMessage) for a compressed message, which is checked
	// again once inflated: ErrInflatedTooBig). It is reported from the
	// header, before the payload arrives.
	ErrMessageTooBig = &CloseError{Code: CloseTooBig, Reason: "message too big"}
	// ErrInflatedTooBig: a compressed message inflates to more than
	// Reader.MaxMessage bytes. Inflating stops at the first byte past the
	// limit, so the message costs no more than the limit.
	ErrInflatedTooBig = &CloseError{Code: CloseTooBig, Reason: "message too big once inflated"}
	// ErrBadDeflate: a compressed message is not a valid DEFLATE stream
	// (RFC 7692 section 7.2.2). It is data inconsistent with its message,
	// hence 1007, as for invalid UTF-8.
	ErrBadDeflate = &CloseError{Code: CloseInvalidPayload, Reason: "invalid compressed data"}
	// ErrInvalidUTF8: a text message is not valid UTF-8 (section 8.1). It is
	// reported as soon as the bytes received cannot start valid UTF-8,
	// without waiting for the end of the frame or message.
	ErrInvalidUTF8 = &CloseError{Code: CloseInvalidPayload, Reason: "invalid UTF-8 in text message"}
	// ErrShortClose: a close frame's payload is a single byte, too short
	// for a close code (section 5.5.1).
	ErrShortClose = &CloseError{Code: CloseProtocolError, Reason: "close payload of 1 byte"}
	// ErrBadCloseCode: a close frame carries a code that ValidCloseCode
	// rejects (section 7.4).
	ErrBadCloseCode = &CloseError{Code: CloseProtocolError, Reason: "invalid close code"}
	// ErrInvalidCloseReason: a close frame's reason is not valid UTF-8
	// (section 5.5.1).
	ErrInvalidCloseReason = &CloseError{Code: CloseInvalidPayload, Reason: "invalid UTF-8 in close reason"}
)
