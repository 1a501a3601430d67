package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/wsrelay/wsrelay/config"
)

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv, base64.RawURLEncoding.EncodeToString(pub)
}

func TestParseKey(t *testing.T) {
	pub, _, k := newKey(t)
	got, err := ParseKey(k)
	if err != nil || !got.Equal(pub) {
		t.Fatalf("ParseKey(%q) = %x, %v", k, got, err)
	}
	// A last character with its unused low bits set decodes to the same
	// key in lax decoders: refused, so one key has one peer id.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", k[42])
	nonCanonical := k[:42] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1])
	for name, bad := range map[string]string{
		"empty":            "",
		"padded":           base64.URLEncoding.EncodeToString(pub),
		"standard base64":  base64.StdEncoding.EncodeToString(pub),
		"too short":        k[:42],
		"too long":         k + "A",
		"31 bytes":         base64.RawURLEncoding.EncodeToString(pub[:31]),
		"33 bytes":         base64.RawURLEncoding.EncodeToString(append(pub[:32:32], 0)),
		"newline inside":   k[:20] + "\n" + k[20:42],
		"space":            k[:42] + " ",
		"non-canonical":    nonCanonical,
		"bad character":    k[:42] + "*",
		"hex":              strings.Repeat("ab", 32),
		"standard letters": strings.Repeat("+", 43),
	} {
		if _, err := ParseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s %q: err %v, want ErrBadKey", name, bad, err)
		}
	}
}

func TestKeyIdentify(t *testing.T) {
	pub, _, k := newKey(t)
	a, err := New(config.Config{Auth: "key"})
	if err != nil {
		t.Fatal(err)
	}
	identify := func(query string) (Identity, error) {
		return a.Identify(httptest.NewRequest("GET", "/ws?"+query, nil))
	}

	id, err := identify("key=" + k + "&peer=mallory")
	if err != nil {
		t.Fatal(err)
	}
	if id.Peer != "k:"+k || id.Base != "k:"+k || !id.Key.Equal(pub) || !id.Rooms.All() {
		t.Fatalf("identity %+v", id)
	}
	// The longest device keeps the peer id at 64 characters: k: (2) + key
	// (43) + ':' (1) + 18.
	dev := strings.Repeat("d", 64-len(KeyPrefix)-len(k)-1)
	id, err = identify("key=" + k + "&device=" + dev)
	if err != nil || id.Peer != "k:"+k+":"+dev || len(id.Peer) != 64 || id.Base != "k:"+k {
		t.Fatalf("device %q: %+v %v", dev, id, err)
	}

	for _, tc := range []struct {
		name  string
		query string
		want  error
	}{
		{"no key", "peer=alice", ErrNoCredential},
		{"malformed key", "key=abc", ErrBadKey},
		{"padded key", "key=" + url.QueryEscape(base64.URLEncoding.EncodeToString(pub)), ErrBadKey},
		{"device over the length limit", "key=" + k + "&device=" + dev + "x", ErrBadPeerID},
		{"device with a bad character", "key=" + k + "&device=a%20b", ErrBadPeerID},
	} {
		if _, err := identify(tc.query); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}

	// Authenticate cannot run the challenge: it admits nobody.
	if peer, err := a.Authenticate(httptest.NewRequest("GET", "/ws?key="+k, nil)); err == nil || peer != "" {
		t.Fatalf("Authenticate in mode key: %q %v", peer, err)
	}
}

// answer is the client's auth message: priv's signature of signed.
func answer(priv ed25519.PrivateKey, signed string) []byte {
	sig := ed25519.Sign(priv, []byte(signed))
	return []byte(`{"type":"auth","sig":"` + base64.RawURLEncoding.EncodeToString(sig) + `"}`)
}

func TestChallengeMessage(t *testing.T) {
	pub, _, _ := newKey(t)
	seen := map[string]bool{}
	for range 100 {
		c := NewChallenge(pub)
		var m struct{ Type, Nonce string }
		msg := c.AppendMessage([]byte("x"))
		if msg[0] != 'x' || json.Unmarshal(msg[1:], &m) != nil || m.Type != "challenge" || m.Nonce != c.Nonce() {
			t.Fatalf("challenge message %s", msg)
		}
		raw, err := base64.RawURLEncoding.Strict().DecodeString(m.Nonce)
		if err != nil || len(raw) != 32 || len(m.Nonce) != 43 {
			t.Fatalf("nonce %q: %d bytes, %v", m.Nonce, len(raw), err)
		}
		if seen[m.Nonce] {
			t.Fatalf("nonce %q repeated", m.Nonce)
		}
		seen[m.Nonce] = true
	}
}

func TestChallengeVerify(t *testing.T) {
	pub, priv, _ := newKey(t)
	_, otherPriv, _ := newKey(t)
	c := NewChallenge(pub)
	other := NewChallenge(pub)
	good := answer(priv, AuthContext+c.Nonce())
	sig := func(msg []byte) string {
		var m struct{ Sig string }
		json.Unmarshal(msg, &m)
		return m.Sig
	}(good)

	if err := c.Verify(good); err != nil {
		t.Fatalf("valid answer: %v", err)
	}
	if err := c.Verify([]byte(` {"id":1,"sig":"` + sig + `","type":"auth","x":{"type":"join"}} `)); err != nil {
		t.Fatalf("valid answer with other fields: %v", err)
	}
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"wrong key", answer(otherPriv, AuthContext+c.Nonce())},
		{"wrong nonce", answer(priv, AuthContext+other.Nonce())},
		{"nonce without the context", answer(priv, c.Nonce())},
		{"another context", answer(priv, "wsrelay-auth-v2:"+c.Nonce())},
		{"nonce decoded", answer(priv, AuthContext+string(must(base64.RawURLEncoding.DecodeString(c.Nonce()))))},
		{"another message first", []byte(`{"type":"join","room":"lobby"}`)},
		{"ping first", []byte(`{"type":"ping"}`)},
		{"type in another case", []byte(`{"TYPE":"auth","sig":"` + sig + `"}`)},
		{"type not a string", []byte(`{"type":["auth"],"sig":"` + sig + `"}`)},
		{"last type wins", []byte(`{"type":"auth","sig":"` + sig + `","type":"join"}`)},
		{"no sig", []byte(`{"type":"auth"}`)},
		{"sig null", []byte(`{"type":"auth","sig":null}`)},
		{"sig padded", []byte(`{"type":"auth","sig":"` + sig + `=="}`)},
		{"sig standard base64", []byte(`{"type":"auth","sig":"` + base64.StdEncoding.EncodeToString(must(base64.RawURLEncoding.DecodeString(sig))) + `"}`)},
		{"sig truncated", []byte(`{"type":"auth","sig":"` + sig[:85] + `"}`)},
		{"sig with a newline", []byte(`{"type":"auth","sig":"` + sig[:40] + `\n` + sig[41:] + `"}`)},
		{"not JSON", []byte(`auth ` + sig)},
		{"two objects", append(append([]byte{}, good...), good...)},
		{"null", []byte(`null`)},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Verify(tc.msg); !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Verify(%s) = %v, want ErrAuthFailed", tc.msg, err)
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestParseKeyWeak: a key of small order lets anyone pass the challenge with
// a signature made without any private key (R the identity, S zero), for a
// good share of nonces; ParseKey refuses every such key, and every
// non-canonical encoding.
func TestParseKeyWeak(t *testing.T) {
	forged := make([]byte, ed25519.SignatureSize)
	forged[0] = 1 // R = the identity point; S = 0
	forges := func(pub []byte) bool {
		for i := range 64 {
			if ed25519.Verify(pub, []byte(AuthContext+strconv.Itoa(i)), forged) {
				return true
			}
		}
		return false
	}
	var weak [][]byte
	for _, y := range smallOrderY {
		for _, sign := range []byte{0, 0x80} {
			k := y
			k[31] |= sign
			weak = append(weak, k[:])
		}
	}
	// y = p and y = p+1: non-canonical encodings of the order-4 and identity points.
	p := smallOrderY[2]
	p[0]++
	p1 := p
	p1[0]++
	weak = append(weak, p[:], p1[:])

	forgeable := 0
	for _, k := range weak {
		if forges(k) {
			forgeable++
		}
		if _, err := ParseKey(base64.RawURLEncoding.EncodeToString(k)); !errors.Is(err, ErrBadKey) {
			t.Errorf("key %x: err %v, want ErrBadKey", k, err)
		}
	}
	// Each one forges, even x = 0 with the sign bit set (which RFC 8032
	// calls invalid but crypto/ed25519 accepts).
	if forgeable != len(weak) {
		t.Errorf("only %d of %d weak keys forgeable: the table is wrong", forgeable, len(weak))
	}
	for range 20 {
		pub, _, _ := newKey(t)
		if forges(pub) {
			t.Fatalf("random key %x forgeable", pub)
		}
		if _, err := ParseKey(base64.RawURLEncoding.EncodeToString(pub)); err != nil {
			t.Fatalf("random key %x: %v", pub, err)
		}
	}
}

// BenchmarkChallenge is the relay's cost of one key-auth connection: a
// nonce, the challenge message and the check of the answer.
func BenchmarkChallenge(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		ch := NewChallenge(pub)
		buf = ch.AppendMessage(buf[:0])
		b.StopTimer() // the client's half
		sig := ed25519.Sign(priv, []byte(AuthContext+ch.Nonce()))
		answer := []byte(`{"type":"auth","sig":"` + base64.RawURLEncoding.EncodeToString(sig) + `"}`)
		b.StartTimer()
		if err := ch.Verify(answer); err != nil {
			b.Fatal(err)
		}
	}
}
