package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/config"
)

func TestRoomTokens(t *testing.T) {
	rt, err := NewRoomTokens(config.Config{JWTSecret: testSecret})
	if err != nil || rt == nil {
		t.Fatalf("NewRoomTokens: %v %v", rt, err)
	}
	now := time.Now()
	otherKey := []byte("another-secret-of-at-least-32-bytes!!")
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name  string
		token string
		base  string
		ok    bool
	}{
		{"valid", signHS(t, tokenClaims("alice", "room", "game:42")), "alice", true},
		{"valid HS512", signWith(t, jwt.SigningMethodHS512, []byte(testSecret), tokenClaims("alice", "room", "game:42")), "alice", true},
		{"valid without iat", signHS(t, tokenClaims("alice", "room", "game:42", "iat", nil)), "alice", true},
		{"key auth base id", signHS(t, tokenClaims("k:abc", "room", "game:42")), "k:abc", true},
		{"expired within leeway", signHS(t, tokenClaims("alice", "room", "game:42", "exp", now.Add(-Leeway/2).Unix())), "alice", true},
		{"expired", signHS(t, tokenClaims("alice", "room", "game:42", "exp", now.Add(-Leeway-2*time.Second).Unix())), "alice", false},
		{"no exp", signHS(t, tokenClaims("alice", "room", "game:42", "exp", nil)), "alice", false},
		{"not yet valid", signHS(t, tokenClaims("alice", "room", "game:42", "nbf", now.Add(time.Minute).Unix())), "alice", false},
		{"another room", signHS(t, tokenClaims("alice", "room", "game:43")), "alice", false},
		{"room is a prefix", signHS(t, tokenClaims("alice", "room", "game:*")), "alice", false},
		{"no room claim", signHS(t, tokenClaims("alice")), "alice", false},
		{"room not a string", signHS(t, tokenClaims("alice", "room", []string{"game:42"})), "alice", false},
		{"another sub", signHS(t, tokenClaims("bob", "room", "game:42")), "alice", false},
		{"sub with the device suffix", signHS(t, tokenClaims("alice:phone", "room", "game:42")), "alice", false},
		{"no sub", signHS(t, tokenClaims("", "room", "game:42")), "", false},
		{"wrong key", signWith(t, jwt.SigningMethodHS256, otherKey, tokenClaims("alice", "room", "game:42")), "alice", false},
		{"wrong algorithm", signWith(t, jwt.SigningMethodEdDSA, edPriv, tokenClaims("alice", "room", "game:42")), "alice", false},
		{"alg none", signWith(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, tokenClaims("alice", "room", "game:42")), "alice", false},
		{"garbage", "not.a.token", "alice", false},
		{"empty", "", "alice", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rt.Verify(tc.token, tc.base, "game:42")
			if tc.ok != (err == nil) {
				t.Fatalf("Verify: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrRoomToken) {
				t.Fatalf("error %v does not wrap ErrRoomToken", err)
			}
		})
	}
}

// TestRoomTokensPublicKey: with a public key, room tokens must be signed by
// its private key with its algorithm; an HS256 token keyed with the public
// key's bytes is refused.
func TestRoomTokensPublicKey(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rt, err := NewRoomTokens(config.Config{Auth: "key", JWTPublicKeyFile: writePEM(t, pub)})
	if err != nil {
		t.Fatal(err)
	}
	good := signWith(t, jwt.SigningMethodEdDSA, priv, tokenClaims("k:abc", "room", "r"))
	if err := rt.Verify(good, "k:abc", "r"); err != nil {
		t.Fatalf("EdDSA token: %v", err)
	}
	confused := signWith(t, jwt.SigningMethodHS256, []byte(pub), tokenClaims("k:abc", "room", "r"))
	if err := rt.Verify(confused, "k:abc", "r"); !errors.Is(err, ErrRoomToken) {
		t.Fatalf("HS256 keyed with the public key: %v", err)
	}
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	if err := rt.Verify(signWith(t, jwt.SigningMethodEdDSA, otherPriv, tokenClaims("k:abc", "room", "r")), "k:abc", "r"); !errors.Is(err, ErrRoomToken) {
		t.Fatalf("signed with another key: %v", err)
	}
}

func TestRoomTokensAudience(t *testing.T) {
	rt, err := NewRoomTokens(config.Config{JWTSecret: testSecret, JWTAudience: "relay", JWTIssuer: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Verify(signHS(t, tokenClaims("a", "room", "r", "aud", "relay", "iss", "backend")), "a", "r"); err != nil {
		t.Fatalf("with aud and iss: %v", err)
	}
	if err := rt.Verify(signHS(t, tokenClaims("a", "room", "r", "aud", "other", "iss", "backend")), "a", "r"); err == nil {
		t.Fatal("another aud accepted")
	}
}

func TestRoomTokensWithoutKey(t *testing.T) {
	rt, err := NewRoomTokens(config.Config{Auth: "none"})
	if rt != nil || err != nil {
		t.Fatalf("no key: %v %v, want nil nil", rt, err)
	}
	if err := rt.Verify(signHS(t, tokenClaims("alice", "room", "r")), "alice", "r"); !errors.Is(err, ErrRoomToken) {
		t.Fatalf("nil RoomTokens: %v", err)
	}
	_, err = NewRoomTokens(config.Config{JWTSecret: "short"})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "WSRELAY_JWT_SECRET" {
		t.Fatalf("short secret: %v", err)
	}
}
