package auth

import "errors"

// Errors returned by Identify and Authenticate. Every one of them means the
// upgrade is refused: ErrBadPeerID and ErrBadKey with 400 (the client asked
// for a malformed id or sent a malformed key), everything else with 401.
var (
	// ErrBadPeerID: mode none, ?peer= is not a valid peer id; mode key,
	// ?device= makes the peer id invalid or longer than 64 characters.
	ErrBadPeerID = errors.New("auth: malformed peer id")
	// ErrBadKey: mode key, ?key= is not the unpadded base64url encoding of
	// a 32-byte Ed25519 public key.
	ErrBadKey = errors.New("auth: malformed key")
	// ErrNoCredential: the request carries no token, initData or key.
	ErrNoCredential = errors.New("auth: no credential")
	// ErrInvalid wraps every reason a credential was refused.
	ErrInvalid = errors.New("auth: invalid credential")
)

// ErrRoomToken wraps every reason RoomTokens.Verify refused a room token;
// the join fails with error code forbidden.
var ErrRoomToken = errors.New("auth: room token refused")

// ErrAuthFailed wraps every reason a key-auth challenge failed (Challenge):
// the connection is closed with CloseAuthFailed.
var ErrAuthFailed = errors.New("auth: authentication failed")
