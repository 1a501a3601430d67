// Package auth turns the credential of a WebSocket upgrade request into an
// Identity: the peer id and the rooms it may join (docs/protocol.md
// sections 2 and 11). Each authentication mode (WSRELAY_AUTH) is one Authenticator:
// none, jwt, telegram and key. Beside them: Rooms, the room patterns of a
// JWT "rooms" claim, matched without allocating on every join; RoomTokens,
// the check of a join's room token; and Challenge, the Ed25519
// challenge/response of key auth.
//
// An Authenticator never logs and never puts a credential into an error: the
// errors it returns name what was wrong ("token is expired", "hash
// mismatch") so that the server may log them, rate-limited, at debug level.
package auth
