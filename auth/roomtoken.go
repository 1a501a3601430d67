package auth

import (
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/config"
)

// RoomTokens checks room tokens: the "token" of a join (docs/protocol.md section
// 11). A room token is a JWT verified exactly like a connection token (same
// key, accepted algorithms, Leeway, and aud and iss when configured), with
// exp required, whose sub is the joining peer's base id and whose claim
// "room" is the room. A valid one allows that one join whatever the peer's
// Rooms say.
//
// Room tokens work in every auth mode once a JWT key is configured. A
// RoomTokens is immutable and safe for concurrent use.
type RoomTokens struct {
	verifier
}

// NewRoomTokens returns the checker of room tokens for cfg's JWT key
// (WSRELAY_JWT_SECRET or WSRELAY_JWT_PUBLIC_KEY_FILE), or nil when no key is
// configured: a nil *RoomTokens refuses every room token. A key that cannot
// be used is a *config.Error naming the variable.
func NewRoomTokens(cfg config.Config) (*RoomTokens, error) {
	if cfg.JWTSecret == "" && cfg.JWTPublicKeyFile == "" {
		return nil, nil
	}
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	return &RoomTokens{verifier: v}, nil
}

// roomClaims are the claims of a room token.
type roomClaims struct {
	jwt.RegisteredClaims
	Room *string `json:"room"`
}

// Verify reports whether token lets the peer whose Identity.Base is base join
// room. It returns nil, or an error wrapping ErrRoomToken that names the
// failed check (never the token): the join then fails with forbidden. It
// allocates (a JWT is decoded), so it runs only for joins that carry a
// token.
func (t *RoomTokens) Verify(token, base, room string) error {
	if t == nil {
		return fmt.Errorf("%w: no JWT key configured", ErrRoomToken)
	}
	var claims roomClaims
	if err := t.parse(token, &claims); err != nil {
		return fmt.Errorf("%w: %v", ErrRoomToken, err)
	}
	switch {
	case claims.Subject == "" || claims.Subject != base:
		return fmt.Errorf("%w: sub is not the joining peer", ErrRoomToken)
	case claims.Room == nil:
		return fmt.Errorf("%w: no room claim", ErrRoomToken)
	case *claims.Room != room:
		return fmt.Errorf("%w: token is for another room", ErrRoomToken)
	}
	return nil
}
