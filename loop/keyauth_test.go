package loop_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/auth"
	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/frame"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/stats"
)

// Key auth (WSRELAY_AUTH=key, docs/protocol.md section 11) through a real server.

func newKey(t testing.TB) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(pub), priv
}

// startKey runs a relay in auth mode key whose challenge times out after
// limit.
func startKey(t *testing.T, limit time.Duration, env ...string) *relaytest.Server {
	t.Helper()
	return relaytest.StartOpts(t, relaytest.Options{ChallengeTimeout: limit}, append([]string{"WSRELAY_AUTH=key"}, env...)...)
}

// challenged upgrades with ?key=k (plus query) and returns the connection
// and the nonce of the challenge, which must be the first message.
func challenged(t *testing.T, ts *relaytest.Server, k, query string) (*relaytest.RawConn, string) {
	t.Helper()
	rc := relaytest.RawDial(t, ts.Addr().String(), "/ws?key="+k+query)
	t.Cleanup(func() { rc.Close() })
	op, p, err := rc.ReadFrame(5 * time.Second)
	if err != nil || op != frame.OpText {
		t.Fatalf("first frame: op %d, %v", op, err)
	}
	var m struct{ Type, Nonce string }
	if err := json.Unmarshal(p, &m); err != nil || m.Type != "challenge" {
		t.Fatalf("first message %s, want a challenge", p)
	}
	if raw, err := base64.RawURLEncoding.Strict().DecodeString(m.Nonce); err != nil || len(raw) != 32 {
		t.Fatalf("nonce %q: not 32 bytes of unpadded base64url", m.Nonce)
	}
	return rc, m.Nonce
}

// authMsg is the answer to nonce signed with priv.
func authMsg(priv ed25519.PrivateKey, nonce string) []byte {
	sig := ed25519.Sign(priv, []byte(auth.AuthContext+nonce))
	return []byte(`{"type":"auth","sig":"` + base64.RawURLEncoding.EncodeToString(sig) + `"}`)
}

// readClose reads until a close frame within d and returns its code and
// reason.
func readClose(t *testing.T, rc *relaytest.RawConn, d time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		op, p, err := rc.ReadFrame(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a close frame: %v", err)
		}
		if op == frame.OpClose {
			if len(p) < 2 {
				return 1005, ""
			}
			return int(p[0])<<8 | int(p[1]), string(p[2:])
		}
		if op == frame.OpText {
			t.Fatalf("got %s before the close", p)
		}
	}
}

func TestKeyAuthAccepted(t *testing.T) {
	ts := startKey(t, 0)
	k, priv := newKey(t)
	rc, nonce := challenged(t, ts, k, "")
	if ts.Stats.Connections() != 0 {
		t.Fatal("a connection counted open before it answered")
	}
	if err := rc.SendFrame(true, frame.OpText, authMsg(priv, nonce)); err != nil {
		t.Fatal(err)
	}
	_, p, err := rc.ReadFrame(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var w struct{ Type, Peer string }
	if json.Unmarshal(p, &w) != nil || w.Type != "welcome" || w.Peer != "k:"+k {
		t.Fatalf("after the answer: %s, want welcome as k:%s", p, k)
	}
	if ts.Stats.Connections() != 1 {
		t.Fatalf("connections %d, want 1", ts.Stats.Connections())
	}

	// The Go client answers by itself; two key peers talk.
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	c, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Key: priv2, Query: url.Values{"device": {"tab1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if want := client.KeyID(pub2) + ":tab1"; c.PeerID() != want {
		t.Fatalf("peer %q, want %q", c.PeerID(), want)
	}
	msg := `{"type":"direct","to":"` + c.PeerID() + `","data":"hi"}`
	if err := rc.SendFrame(true, frame.OpText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if m := relaytest.Recv(t, c, "direct"); m.From != "k:"+k || string(m.Data) != `"hi"` {
		t.Fatalf("got %s", m.Raw)
	}
	_, _, body := ts.Get("/metrics")
	mustContain(t, body, `wsrelay_connections_rejected_total{reason="auth"} 0`, "wsrelay_connections_accepted_total 2")
}

func TestKeyAuthFailures(t *testing.T) {
	ts := startKey(t, 300*time.Millisecond)
	k, priv := newKey(t)
	_, other := newKey(t)
	tests := []struct {
		name string
		// answer sends what the client sends first, given the nonce;
		// nothing for the timeout.
		answer func(rc *relaytest.RawConn, nonce string) error
	}{
		{"wrong signature", func(rc *relaytest.RawConn, nonce string) error {
			return rc.SendFrame(true, frame.OpText, authMsg(other, nonce))
		}},
		{"wrong nonce", func(rc *relaytest.RawConn, nonce string) error {
			b := []byte(nonce)
			b[0] ^= 1
			return rc.SendFrame(true, frame.OpText, authMsg(priv, string(b)))
		}},
		{"nonce without the context", func(rc *relaytest.RawConn, nonce string) error {
			sig := ed25519.Sign(priv, []byte(nonce))
			return rc.SendFrame(true, frame.OpText, []byte(`{"type":"auth","sig":"`+base64.RawURLEncoding.EncodeToString(sig)+`"}`))
		}},
		{"padded signature", func(rc *relaytest.RawConn, nonce string) error {
			sig := ed25519.Sign(priv, []byte(auth.AuthContext+nonce))
			return rc.SendFrame(true, frame.OpText, []byte(`{"type":"auth","sig":"`+base64.URLEncoding.EncodeToString(sig)+`"}`))
		}},
		{"message before auth", func(rc *relaytest.RawConn, _ string) error {
			return rc.SendFrame(true, frame.OpText, []byte(`{"type":"join","room":"lobby"}`))
		}},
		{"binary before auth", func(rc *relaytest.RawConn, _ string) error {
			return rc.SendFrame(true, frame.OpBinary, frame.AppendClientHeader(nil, frame.BinBroadcast, 0, 0, ""))
		}},
		{"not JSON", func(rc *relaytest.RawConn, _ string) error {
			return rc.SendFrame(true, frame.OpText, []byte(`auth`))
		}},
		{"no answer in time", func(*relaytest.RawConn, string) error { return nil }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, nonce := challenged(t, ts, k, "")
			start := time.Now()
			if err := tt.answer(rc, nonce); err != nil {
				t.Fatal(err)
			}
			code, reason := readClose(t, rc, 5*time.Second)
			if code != 4003 || reason != "authentication failed" {
				t.Fatalf("closed with %d %q, want 4003 %q", code, reason, "authentication failed")
			}
			if tt.name == "no answer in time" {
				// 300 ms limit, 250 ms sweep: closed no sooner than the
				// limit, and well before the default 10 s.
				if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
					t.Fatalf("closed after %v", d)
				}
			}
			if got := ts.Stats.RejectedBy(stats.RejectAuth); got != uint64(i+1) {
				t.Fatalf("rejected{auth} = %d, want %d", got, i+1)
			}
		})
	}
	relaytest.Eventually(t, 5*time.Second, "every connection closed", func() bool { return ts.OpenConns() == 0 })
	if n := ts.Stats.Connections(); n != 0 {
		t.Fatalf("connections gauge %d after failed challenges", n)
	}
	_, _, body := ts.Get("/metrics")
	mustContain(t, body, "wsrelay_connections_accepted_total 0")
}

// TestKeyAuthPendingUnreachable: before it answers, a key peer is no peer:
// nothing is routed to it, and it does not replace a connected peer with
// the same id.
func TestKeyAuthPendingUnreachable(t *testing.T) {
	ts := startKey(t, 0)
	k, priv := newKey(t)
	c, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	rc, _ := challenged(t, ts, k, "") // same key, never answers
	_, priv2 := newKey(t)
	d, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Key: priv2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.CloseNow()
	if err := d.Direct("k:"+k, "hi", 1); err != nil {
		t.Fatal(err)
	}
	relaytest.Recv(t, d, "ack")
	if m := relaytest.Recv(t, c, "direct"); m.From != d.PeerID() {
		t.Fatalf("got %s", m.Raw)
	}
	if _, p, err := rc.ReadFrame(200 * time.Millisecond); err == nil {
		t.Fatalf("the pending connection got %q", p)
	}
}

func TestKeyAuthUpgradeRefusals(t *testing.T) {
	ts := startKey(t, 0)
	k, _ := newKey(t)
	pub := make([]byte, 32)
	pub[0] = 1 // the identity point: small order, refused
	tests := []struct {
		name   string
		query  string
		status int
	}{
		{"no key", "", 401},
		{"too short", "?key=" + k[:42], 400},
		{"too long", "?key=" + k + "A", 400},
		{"padded", "?key=" + k + "=", 400},
		{"standard alphabet", "?key=" + strings.NewReplacer("-", "+", "_", "/").Replace(strings.Repeat("-_", 21)+"A"), 400},
		{"not base64", "?key=" + strings.Repeat("!", 43), 400},
		{"small-order key", "?key=" + base64.RawURLEncoding.EncodeToString(pub), 400},
		{"device too long", "?key=" + k + "&device=" + strings.Repeat("d", 64-len("k:")-len(k)), 400},
		{"device invalid", "?key=" + k + "&device=a/b", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := relaytest.TryRawDial(ts.Addr().String(), "/ws"+tt.query)
			if err == nil || !strings.Contains(err.Error(), "status "+strconv.Itoa(tt.status)) {
				t.Fatalf("dial %s: %v, want status %d", tt.query, err, tt.status)
			}
		})
	}

	t.Run("device at the length limit", func(t *testing.T) {
		device := strings.Repeat("d", 64-len("k:")-len(k)-1)
		_, priv := newKey(t)
		kk := base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
		c, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Key: priv, Query: url.Values{"device": {device}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if want := "k:" + kk + ":" + device; c.PeerID() != want || len(want) != 64 {
			t.Fatalf("peer %q (%d), want %q", c.PeerID(), len(c.PeerID()), want)
		}
	})
}

// TestKeyAuthRoomToken: a key peer's room token names k:<key> as its sub,
// the base id without the device.
func TestKeyAuthRoomToken(t *testing.T) {
	ts := startKey(t, 0, "WSRELAY_JWT_SECRET="+testSecret, "WSRELAY_JWT_REQUIRE_ROOMS=true")
	k, priv := newKey(t)
	c, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Key: priv, Query: url.Values{"device": {"d1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if got := joinResult(t, c, "vip", "", "a"); got != "forbidden" {
		t.Fatalf("key peer under REQUIRE_ROOMS without a token: %s", got)
	}
	tok := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), roomClaims("k:"+k, "vip"))
	if got := joinResult(t, c, "vip", tok, "b"); got != "joined" {
		t.Fatalf("key peer with a room token: %s", got)
	}
}

// TestKeyAuthEcho: /echo needs the same proof as /ws.
func TestKeyAuthEcho(t *testing.T) {
	ts := startKey(t, 0, "WSRELAY_ECHO=true")
	k, priv := newKey(t)
	rc := relaytest.RawDial(t, ts.Addr().String(), "/echo?key="+k)
	defer rc.Close()
	_, p, err := rc.ReadFrame(5 * time.Second)
	if err != nil || !strings.Contains(string(p), `"challenge"`) {
		t.Fatalf("first frame %q, %v", p, err)
	}
	var m struct{ Nonce string }
	_ = json.Unmarshal(p, &m)
	if err := rc.SendFrame(true, frame.OpText, authMsg(priv, m.Nonce)); err != nil {
		t.Fatal(err)
	}
	if err := rc.SendFrame(true, frame.OpText, []byte("echo me")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := rc.ReadFrame(5 * time.Second); err != nil || string(p) != "echo me" {
		t.Fatalf("echo: %q, %v", p, err)
	}
	if _, err := relaytest.TryRawDial(ts.Addr().String(), "/echo?key=bad"); err == nil || !strings.Contains(err.Error(), "status 400") {
		t.Fatalf("malformed key on /echo: %v", err)
	}
}
