package frame

import "errors"

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
