package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/config"
)

const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

// signHS signs claims with HS256 and testSecret.
func signHS(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	return signWith(t, jwt.SigningMethodHS256, []byte(testSecret), claims)
}

func signWith(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenClaims returns valid claims for sub valid for a minute, overridden
// by kv pairs (a nil value deletes the claim).
func tokenClaims(sub string, kv ...any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": sub, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix()}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func identifyJWT(t *testing.T, cfg config.Config, query string) (Identity, error) {
	t.Helper()
	cfg.Auth = "jwt"
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a.Identify(httptest.NewRequest("GET", "/ws?"+query, nil))
}

// TestJWTRoomsClaim checks what a connection token's rooms claim lets its
// peer join, with and without WSRELAY_JWT_REQUIRE_ROOMS.
func TestJWTRoomsClaim(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rooms   any // the claim; nil: absent
		require bool
		allow   []string
		deny    []string
	}{
		{"claim absent", nil, false, []string{"lobby", "game:1"}, nil},
		{"claim absent, rooms required", nil, true, nil, []string{"lobby", "game:1"}},
		{"names", []string{"lobby", "team:red"}, false, []string{"lobby", "team:red"}, []string{"team:blue", "lobby:2"}},
		{"prefix", []string{"game:42:*"}, false, []string{"game:42:lobby", "game:42:players"}, []string{"game:43:lobby", "game:42"}},
		{"claim wins over REQUIRE_ROOMS", []string{"game:42:*"}, true, []string{"game:42:lobby"}, []string{"lobby"}},
		{"empty claim", []string{}, false, nil, []string{"lobby"}},
		{"null claim", "null", false, nil, []string{"lobby"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := tokenClaims("alice")
			switch tc.rooms {
			case nil:
			case "null":
				claims["rooms"] = nil // MapClaims encodes a nil value as null
			default:
				claims["rooms"] = tc.rooms
			}
			id, err := identifyJWT(t, config.Config{JWTSecret: testSecret, JWTRequireRooms: tc.require}, "token="+signHS(t, claims))
			if err != nil {
				t.Fatal(err)
			}
			if id.Peer != "alice" || id.Base != "alice" || id.Key != nil {
				t.Fatalf("identity %+v", id)
			}
			for _, room := range tc.allow {
				if !id.Rooms.Allows([]byte(room)) {
					t.Errorf("%q not allowed", room)
				}
			}
			for _, room := range tc.deny {
				if id.Rooms.Allows([]byte(room)) {
					t.Errorf("%q allowed", room)
				}
			}
		})
	}
}

func TestJWTRoomsClaimInvalid(t *testing.T) {
	for name, rooms := range map[string]any{
		"not an array":     "lobby",
		"not strings":      []any{"lobby", 7},
		"object":           map[string]any{"lobby": true},
		"invalid room":     []string{"lobby", "a b"},
		"star inside":      []string{"game:*:lobby"},
		"empty string":     []string{""},
		"nested null item": []any{nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := identifyJWT(t, config.Config{JWTSecret: testSecret}, "token="+signHS(t, tokenClaims("alice", "rooms", rooms)))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid (401)", err)
			}
		})
	}
}

func TestJWTIdentityDevice(t *testing.T) {
	id, err := identifyJWT(t, config.Config{JWTSecret: testSecret}, "device=phone&token="+signHS(t, tokenClaims("alice", "rooms", []string{"a"})))
	if err != nil {
		t.Fatal(err)
	}
	if id.Peer != "alice:phone" || id.Base != "alice" || !slices.Equal(id.Rooms.Patterns(), []string{"a"}) {
		t.Fatalf("identity %+v", id)
	}
	// Authenticate still answers the peer id.
	a, _ := New(config.Config{Auth: "jwt", JWTSecret: testSecret})
	r := httptest.NewRequest("GET", "/ws?device=phone&token="+signHS(t, tokenClaims("alice")), nil)
	if peer, err := a.Authenticate(r); peer != "alice:phone" || err != nil {
		t.Fatalf("Authenticate: %q %v", peer, err)
	}
}

// TestRequireRoomsEveryMode: WSRELAY_JWT_REQUIRE_ROOMS closes every room to
// the credential alone in every auth mode (room tokens still open them).
func TestRequireRoomsEveryMode(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key := encodeKey(pub)
	for _, tc := range []struct {
		cfg   config.Config
		query string
	}{
		{config.Config{Auth: "none"}, "peer=alice"},
		{config.Config{Auth: "key"}, "key=" + key},
	} {
		for _, require := range []bool{false, true} {
			tc.cfg.JWTRequireRooms = require
			tc.cfg.JWTSecret = testSecret
			a, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, err := a.Identify(httptest.NewRequest("GET", "/ws?"+tc.query, nil))
			if err != nil {
				t.Fatal(err)
			}
			if id.Rooms.Allows([]byte("lobby")) == require {
				t.Errorf("auth %s, REQUIRE_ROOMS=%v: lobby allowed=%v", tc.cfg.Auth, require, !require)
			}
		}
	}
}

// writePEM writes pub as a PKIX PEM file and returns its path.
func writePEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// encodeKey is ?key= for pub.
func encodeKey(pub ed25519.PublicKey) string { return url.QueryEscape(b64.EncodeToString(pub)) }
