package auth

import "errors"

// Errors returned by Authenticate. Every one of them means the upgrade is
// refused: ErrBadPeerID with 400 (mode none: the client asked for a
// malformed id), everything else with 401.
var (
	// ErrBadPeerID: mode none, ?peer= is not a valid peer id.
	ErrBadPeerID = errors.New("auth: malformed peer id")
	// ErrNoCredential: the request carries no token or initData.
	ErrNoCredential = errors.New("auth: no credential")
	// ErrInvalid wraps every reason a credential was refused.
	ErrInvalid = errors.New("auth: invalid credential")
)
