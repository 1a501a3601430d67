// Package auth turns the credential of a WebSocket upgrade request into a
// peer id (docs/protocol.md section 2). Each authentication mode (WSRELAY_AUTH)
// is one Authenticator: none, jwt and telegram.
//
// An Authenticator never logs and never puts a credential into an error: the
// errors it returns name what was wrong ("token is expired", "hash
// mismatch") so that the server may log them, rate-limited, at debug level.
package auth
