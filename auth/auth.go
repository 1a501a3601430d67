package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/frame"
)

// Authenticator derives the identity of an upgrade request from its
// credential. Its methods are safe for concurrent use; they read r's headers
// and query and nothing else, and never block on I/O.
type Authenticator interface {
	// Identify returns who r is, or an error that says why r is refused
	// (ErrBadPeerID or ErrBadKey: 400; anything else: 401). In auth mode
	// key the Identity is not proven yet: see Identity.Key.
	Identify(r *http.Request) (Identity, error)
	// Authenticate returns Identify's Peer. In auth mode key, which needs
	// the challenge that only Identify's caller can run, it refuses every
	// request. Callers move to Identify; Authenticate goes away then.
	Authenticate(r *http.Request) (peer string, err error)
}

// Identity is what the credential of an upgrade request proves (docs/protocol.md
// sections 2 and 11).
type Identity struct {
	// Peer is the peer id, with the client's :device suffix.
	Peer string
	// Base is the peer id without the :device suffix: the token's sub,
	// tg:<user.id> or k:<key>; in auth mode none, Peer itself. A room
	// token's sub must equal it.
	Base string
	// Rooms is what the credential lets the peer join without a room token.
	Rooms Rooms
	// Key is set in auth mode key only: the public key whose holder must
	// answer NewChallenge(Key) before the connection is admitted as Peer.
	Key ed25519.PublicKey
}

// New returns the Authenticator of cfg.Auth. Keys are loaded and checked
// here, so that a bad key stops the server before it listens; the error then
// is a *config.Error naming the variable.
func New(cfg config.Config) (Authenticator, error) {
	rooms := defaultRooms(cfg)
	switch cfg.Auth {
	case "", "none":
		return None{rooms: rooms}, nil
	case "jwt":
		return NewJWT(cfg)
	case "telegram":
		return NewTelegram(cfg)
	case "key":
		return Key{rooms: rooms}, nil
	default:
		return nil, &config.Error{Var: config.Prefix + "AUTH", Err: fmt.Errorf("unknown mode %q", cfg.Auth)}
	}
}

// defaultRooms is what a credential without a rooms claim allows: every
// room, or with WSRELAY_JWT_REQUIRE_ROOMS none (room tokens only). It holds
// in every auth mode, since room tokens do.
func defaultRooms(cfg config.Config) Rooms {
	if cfg.JWTRequireRooms {
		return NoRooms()
	}
	return AllRooms()
}

// None is auth mode none: the peer id is ?peer= when given, else a random
// one of 128 bits. For development and for deployments where something in
// front of wsrelay already authenticates users. The zero None allows every
// room.
type None struct {
	rooms Rooms
}

// Identify implements Authenticator.
func (a None) Identify(r *http.Request) (Identity, error) {
	id := r.URL.Query().Get("peer")
	if id == "" {
		id = RandomID()
	} else if !frame.ValidPeerID([]byte(id)) {
		return Identity{}, ErrBadPeerID
	}
	return Identity{Peer: id, Base: id, Rooms: a.rooms}, nil
}

// Authenticate implements Authenticator.
func (a None) Authenticate(r *http.Request) (string, error) {
	id, err := a.Identify(r)
	return id.Peer, err
}

// RandomID returns a URL-safe random peer id of 128 bits (22 characters).
func RandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// withDevice returns the Identity of base, the peer id the credential
// proves, with the client's ?device= appended, and checks the result is a
// valid peer id.
func withDevice(base string, rooms Rooms, r *http.Request) (Identity, error) {
	id := base
	if d := r.URL.Query().Get("device"); d != "" {
		id = base + ":" + d
	}
	if !frame.ValidPeerID([]byte(id)) {
		return Identity{}, fmt.Errorf("%w: derived peer id is not valid", ErrInvalid)
	}
	return Identity{Peer: id, Base: base, Rooms: rooms}, nil
}

// credential returns the Authorization header's value for scheme
// (case-insensitive, e.g. "Bearer"), or else the query parameter param.
func credential(r *http.Request, scheme, param string) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > len(scheme) && h[len(scheme)] == ' ' && strings.EqualFold(h[:len(scheme)], scheme) {
			return strings.TrimSpace(h[len(scheme)+1:])
		}
	}
	return r.URL.Query().Get(param)
}
