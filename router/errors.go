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

// ErrNotSent reports a message meant for peers on other nodes that the
// cluster did not take: it did not leave this node (local recipients, if
// any, got it). It is counted as a cluster_send_failed drop. It is not a
// refusal: the protocol has no error code for it, so the sender gets neither
// an ack nor an error.
var ErrNotSent = errors.New("router: not handed to the cluster")
