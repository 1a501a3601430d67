package loop_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/session"
)

// Room access (docs/protocol.md section 11): the rooms claim of a connection
// token, WSRELAY_JWT_REQUIRE_ROOMS, and room tokens on join, through a real
// server and a real client.

// dialJWT connects with a connection token of claims (HS256, testSecret)
// and the query device when not empty.
func dialJWT(t *testing.T, ts *relaytest.Server, c jwt.MapClaims, device string) *client.Client {
	t.Helper()
	opts := &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), c)}
	if device != "" {
		opts.Query = map[string][]string{"device": {device}}
	}
	cl, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = cl.CloseNow() })
	return cl
}

// joinResult joins room (with token when not empty) under request id and
// returns "joined", or the error code; the error must echo the id.
func joinResult(t *testing.T, c *client.Client, room, token, id string) string {
	t.Helper()
	var err error
	if token == "" {
		err = c.Join(room, id)
	} else {
		err = c.JoinWithToken(room, token, id)
	}
	if err != nil {
		t.Fatal(err)
	}
	for {
		m := relaytest.Next(t, c)
		switch m.Type {
		case "joined":
			if m.Room != room {
				t.Fatalf("joined %q, want %q", m.Room, room)
			}
			return "joined"
		case "error":
			if string(m.ID) != `"`+id+`"` {
				t.Fatalf("error %s %q carries id %s, want %q", m.Code, m.Message, m.ID, id)
			}
			return m.Code
		}
	}
}

func TestRoomsClaim(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret)
	patterns := []any{"lobby", "game:42:*", "org/team"}
	tests := []struct {
		name   string
		rooms  any // the claim; nil: absent
		room   string
		result string
	}{
		{"listed room", patterns, "lobby", "joined"},
		{"another listed room", patterns, "org/team", "joined"},
		{"prefix pattern", patterns, "game:42:lobby", "joined"},
		{"prefix itself", patterns, "game:42:", "joined"},
		{"outside the prefix", patterns, "game:43:lobby", "forbidden"},
		{"prefix without its colon", patterns, "game:42", "forbidden"},
		{"longer than a listed name", patterns, "lobby2", "forbidden"},
		{"shorter than a listed name", patterns, "lobb", "forbidden"},
		{"star allows all", []any{"*"}, "anything/at:all", "joined"},
		{"empty claim allows none", []any{}, "lobby", "forbidden"},
		{"claim absent allows every room", nil, "anything/at:all", "joined"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialJWT(t, ts, relaytest.JWTClaims("alice", "rooms", tt.rooms), "")
			if got := joinResult(t, c, tt.room, "", "j"+string(rune('a'+i))); got != tt.result {
				t.Fatalf("join %q with rooms %v: %s, want %s", tt.room, tt.rooms, got, tt.result)
			}
		})
	}

	t.Run("forbidden message and metric", func(t *testing.T) {
		before := ts.Session.Errors(session.CodeForbidden)
		c := dialJWT(t, ts, relaytest.JWTClaims("bob", "rooms", []any{"lobby"}), "")
		if err := c.Join("private", 7); err != nil {
			t.Fatal(err)
		}
		m := relaytest.Recv(t, c, "error")
		if m.Code != "forbidden" || string(m.ID) != "7" || m.Message != "room not allowed for this peer" {
			t.Fatalf("got %s", m.Raw)
		}
		// The refused peer is not a member: another member's publish does
		// not reach it, and its own publish is refused.
		if err := c.Publish("private", "x", 8); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, c, "error"); m.Code != "not_member" {
			t.Fatalf("publish after a refused join: %s", m.Raw)
		}
		if n := ts.Session.Errors(session.CodeForbidden) - before; n != 1 {
			t.Fatalf("forbidden counted %d times, want 1", n)
		}
	})
}

func TestRequireRooms(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret, "WSRELAY_JWT_REQUIRE_ROOMS=true")
	c := dialJWT(t, ts, relaytest.JWTClaims("alice"), "")
	if got := joinResult(t, c, "lobby", "", "a"); got != "forbidden" {
		t.Fatalf("no claim under REQUIRE_ROOMS: %s", got)
	}
	c2 := dialJWT(t, ts, relaytest.JWTClaims("bob", "rooms", []any{"lobby"}), "")
	if got := joinResult(t, c2, "lobby", "", "b"); got != "joined" {
		t.Fatalf("claimed room under REQUIRE_ROOMS: %s", got)
	}
	rt := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), roomClaims("alice", "lobby"))
	if got := joinResult(t, c, "lobby", rt, "c"); got != "joined" {
		t.Fatalf("room token under REQUIRE_ROOMS: %s", got)
	}

	// The setting holds in every auth mode, room tokens too.
	none := relaytest.Start(t, "WSRELAY_JWT_SECRET="+testSecret, "WSRELAY_JWT_REQUIRE_ROOMS=true")
	carol := none.Dial("carol")
	if got := joinResult(t, carol, "lobby", "", "d"); got != "forbidden" {
		t.Fatalf("auth none under REQUIRE_ROOMS: %s", got)
	}
	rt = relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), roomClaims("carol", "lobby"))
	if got := joinResult(t, carol, "lobby", rt, "e"); got != "joined" {
		t.Fatalf("auth none, room token: %s", got)
	}
}

// roomClaims returns valid room-token claims for sub and room.
func roomClaims(sub, room string, kv ...any) jwt.MapClaims {
	return relaytest.JWTClaims(sub, append([]any{"room", room}, kv...)...)
}

func TestRoomTokens(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret, "WSRELAY_JWT_REQUIRE_ROOMS=true")
	key := []byte(testSecret)
	now := time.Now()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	hs := func(c jwt.MapClaims) string { return relaytest.SignJWT(t, jwt.SigningMethodHS256, key, c) }
	tests := []struct {
		name   string
		token  string
		result string
	}{
		{"valid", hs(roomClaims("alice", "vip")), "joined"},
		{"valid HS512", relaytest.SignJWT(t, jwt.SigningMethodHS512, key, roomClaims("alice", "vip")), "joined"},
		{"expired within leeway", hs(roomClaims("alice", "vip", "exp", now.Add(-2*time.Second).Unix())), "joined"},
		{"expired", hs(roomClaims("alice", "vip", "exp", now.Add(-time.Minute).Unix())), "forbidden"},
		{"no exp", hs(roomClaims("alice", "vip", "exp", nil)), "forbidden"},
		{"not yet valid", hs(roomClaims("alice", "vip", "nbf", now.Add(time.Minute).Unix())), "forbidden"},
		{"another room", hs(roomClaims("alice", "vip2")), "forbidden"},
		{"no room claim", hs(relaytest.JWTClaims("alice")), "forbidden"},
		{"another sub", hs(roomClaims("bob", "vip")), "forbidden"},
		{"sub with the device", hs(roomClaims("alice:phone", "vip")), "forbidden"},
		{"no sub", hs(roomClaims("alice", "vip", "sub", nil)), "forbidden"},
		{"wrong key", relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(strings.Repeat("k", 40)), roomClaims("alice", "vip")), "forbidden"},
		{"RS256 on a secret", relaytest.SignJWT(t, jwt.SigningMethodRS256, rsaKey, roomClaims("alice", "vip")), "forbidden"},
		{"EdDSA on a secret", relaytest.SignJWT(t, jwt.SigningMethodEdDSA, edKey, roomClaims("alice", "vip")), "forbidden"},
		{"alg none", relaytest.SignJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, roomClaims("alice", "vip")), "forbidden"},
		{"garbage", "not.a.jwt", "forbidden"},
		{"empty", "", "forbidden"},
	}
	// The peer is alice:phone: a room token names the base id, alice.
	c := dialJWT(t, ts, relaytest.JWTClaims("alice"), "phone")
	if c.PeerID() != "alice:phone" {
		t.Fatalf("peer %q", c.PeerID())
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "t" + string(rune('a'+i))
			var got string
			if tt.token == "" {
				if err := c.SendText([]byte(`{"type":"join","room":"vip","token":"","id":"` + id + `"}`)); err != nil {
					t.Fatal(err)
				}
				got = relaytest.Recv(t, c, "error").Code
			} else {
				got = joinResult(t, c, "vip", tt.token, id)
			}
			if got != tt.result {
				t.Fatalf("%s, want %s", got, tt.result)
			}
			if got == "joined" {
				if err := c.Leave("vip", nil); err != nil {
					t.Fatal(err)
				}
				relaytest.Recv(t, c, "left")
			}
		})
	}

	t.Run("only the token decides", func(t *testing.T) {
		// The connection token allows vip, but a join that carries an
		// invalid room token is refused all the same.
		d := dialJWT(t, ts, relaytest.JWTClaims("dave", "rooms", []any{"vip"}), "")
		if got := joinResult(t, d, "vip", hs(roomClaims("dave", "other")), "x"); got != "forbidden" {
			t.Fatalf("invalid token, allowed room: %s", got)
		}
		if got := joinResult(t, d, "vip", "", "y"); got != "joined" {
			t.Fatalf("no token, allowed room: %s", got)
		}
		// A room token outside the claim is enough.
		if got := joinResult(t, d, "elsewhere", hs(roomClaims("dave", "elsewhere")), "z"); got != "joined" {
			t.Fatalf("valid token outside the claim: %s", got)
		}
	})

	t.Run("token not a string", func(t *testing.T) {
		if err := c.SendText([]byte(`{"type":"join","room":"vip","token":42,"id":1}`)); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, c, "error"); m.Code != "bad_request" || string(m.ID) != "1" {
			t.Fatalf("got %s", m.Raw)
		}
	})

	t.Run("token refused message", func(t *testing.T) {
		if err := c.JoinWithToken("vip", "not.a.jwt", "m"); err != nil {
			t.Fatal(err)
		}
		if m := relaytest.Recv(t, c, "error"); m.Code != "forbidden" || m.Message != "room token refused" {
			t.Fatalf("got %s", m.Raw)
		}
	})
}

func TestRoomTokensWithoutKey(t *testing.T) {
	// Auth none and no JWT key: every room is allowed, every room token
	// refused.
	ts := relaytest.Start(t)
	c := ts.Dial("erin")
	tok := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), roomClaims("erin", "r"))
	if got := joinResult(t, c, "r", tok, "a"); got != "forbidden" {
		t.Fatalf("room token without a key: %s", got)
	}
	if got := joinResult(t, c, "r", "", "b"); got != "joined" {
		t.Fatalf("plain join: %s", got)
	}
}
