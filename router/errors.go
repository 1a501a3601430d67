package router

import "github.com/wsrelay/wsrelay/stats"

// Error is a refused request: the protocol error code sent back to the
// client and a human-readable message. The values below are the only ones.
type Error struct {
	Code    stats.Code
	Message string
}

func (e *Error) Error() string { return "router: " + e.Message }

// Refusals.
var (
	ErrPeerNotFound = &Error{stats.CodePeerNotFound, "no such peer"}
	ErrNotMember    = &Error{stats.CodeNotMember, "not a member of this room"}
	ErrForbidden    = &Error{stats.CodeForbidden, "broadcast is disabled on this relay"}
	ErrTooManyRooms = &Error{stats.CodeTooManyRooms, "too many rooms joined"}
	ErrRoomFull     = &Error{stats.CodeRoomFull, "room is full"}
)
