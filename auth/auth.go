package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/frame"
)

// Authenticator derives the peer id of an upgrade request from its
// credential. Authenticate is safe for concurrent use; it reads r's headers
// and query and nothing else, and never blocks on I/O.
type Authenticator interface {
	// Authenticate returns the peer id of r, or an error that says why r
	// is refused (ErrBadPeerID: 400; anything else: 401).
	Authenticate(r *http.Request) (peer string, err error)
}

// New returns the Authenticator of cfg.Auth. Keys are loaded and checked
// here, so that a bad key stops the server before it listens; the error then
// is a *config.Error naming the variable.
func New(cfg config.Config) (Authenticator, error) {
	switch cfg.Auth {
	case "", "none":
		return None{}, nil
	case "jwt":
		return NewJWT(cfg)
	case "telegram":
		return NewTelegram(cfg)
	default:
		return nil, &config.Error{Var: config.Prefix + "AUTH", Err: fmt.Errorf("unknown mode %q", cfg.Auth)}
	}
}

// None is auth mode none: the peer id is ?peer= when given, else a random
// one of 128 bits. For development and for deployments where something in
// front of wsrelay already authenticates users.
type None struct{}

// Authenticate implements Authenticator.
func (None) Authenticate(r *http.Request) (string, error) {
	id := r.URL.Query().Get("peer")
	if id == "" {
		return RandomID(), nil
	}
	if !frame.ValidPeerID([]byte(id)) {
		return "", ErrBadPeerID
	}
	return id, nil
}

// RandomID returns a URL-safe random peer id of 128 bits (22 characters).
func RandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// withDevice appends the client's ?device= to base and checks the result is
// a valid peer id.
func withDevice(base string, r *http.Request) (string, error) {
	id := base
	if d := r.URL.Query().Get("device"); d != "" {
		id = base + ":" + d
	}
	if !frame.ValidPeerID([]byte(id)) {
		return "", fmt.Errorf("%w: derived peer id is not valid", ErrInvalid)
	}
	return id, nil
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
