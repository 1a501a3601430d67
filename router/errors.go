package router

import "errors"

// Refusals of a request. The protocol (package session) maps each to its
// error code and message with errors.Is.
var (
	ErrPeerNotFound = errors.New("router: no such peer")
	ErrNotMember    = errors.New("router: not a member of this room")
	ErrForbidden    = errors.New("router: broadcast is disabled on this relay")
	ErrTooManyRooms = errors.New("router: too many rooms joined")
	ErrRoomFull     = errors.New("router: room is full")
)
