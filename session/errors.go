package session

import (
	"errors"
	"fmt"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/wsrelay/wsrelay/router"
)

// Code is a protocol error code (docs/protocol.md section 3). One Code decides the
// "code" and "message" of the error sent to the peer and the label of
// wsrelay_errors_total: this file is the only place they are spelled.
type Code uint8

// Error codes, in the order of docs/protocol.md section 3.
const (
	CodeBadJSON Code = iota
	CodeUnknownType
	CodeBadRequest
	CodeBadFrame
	CodePeerNotFound
	CodeNotMember
	CodeForbidden
	CodeRateLimited
	CodeTooManyRooms
	CodeRoomFull
	CodeTypeNotAllowed
	numCodes
)

// codes holds, for each Code, its wire name (also the metric label) and the
// message sent with it.
var codes = [numCodes]struct{ name, text string }{
	CodeBadJSON:        {"bad_json", "message is not a JSON object with a string type"},
	CodeUnknownType:    {"unknown_type", "unknown message type"},
	CodeBadRequest:     {"bad_request", "missing or invalid field"},
	CodeBadFrame:       {"bad_frame", "invalid binary header"},
	CodePeerNotFound:   {"peer_not_found", "no such peer"},
	CodeNotMember:      {"not_member", "not a member of this room"},
	CodeForbidden:      {"forbidden", "broadcast is disabled on this relay"},
	CodeRateLimited:    {"rate_limited", "rate limit exceeded, messages dropped"},
	CodeTooManyRooms:   {"too_many_rooms", "too many rooms joined"},
	CodeRoomFull:       {"room_full", "room is full"},
	CodeTypeNotAllowed: {"type_not_allowed", "binary content type not allowed or too large"},
}

// Messages of forbidden other than the code's own (broadcast): a join the
// peer's room access does not allow (docs/protocol.md section 11).
const (
	msgRoomNotAllowed = "room not allowed for this peer"
	msgRoomToken      = "room token refused"
)

// String returns the wire name of the code.
func (c Code) String() string { return codes[c].name }

// Text returns the message sent to the peer with the code.
func (c Code) Text() string { return codes[c].text }

// refusals maps the router's sentinel errors to their codes.
var refusals = [...]struct {
	err  error
	code Code
}{
	{router.ErrPeerNotFound, CodePeerNotFound},
	{router.ErrNotMember, CodeNotMember},
	{router.ErrForbidden, CodeForbidden},
	{router.ErrTooManyRooms, CodeTooManyRooms},
	{router.ErrRoomFull, CodeRoomFull},
}

// codeOf returns the code of a refusal by the router; false for an error the
// protocol has no code for.
func codeOf(err error) (Code, bool) {
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			return r.code, true
		}
	}
	return 0, false
}

// errorCounters registers wsrelay_errors_total, one series per code, in set.
func errorCounters(set *vm.Set) (cs [numCodes]*vm.Counter) {
	for i := range cs {
		cs[i] = set.NewCounter(fmt.Sprintf(`wsrelay_errors_total{code=%q}`, codes[i].name))
	}
	return cs
}
