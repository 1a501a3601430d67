package loop_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/client"
	"github.com/wsrelay/wsrelay/config"
	"github.com/wsrelay/wsrelay/internal/relaytest"
	"github.com/wsrelay/wsrelay/loop"
)

const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

// waitConns waits up to 5 s for the server to count n open connections.
func waitConns(t testing.TB, s *loop.Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.OpenConns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("open connections: %d, want %d", s.OpenConns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// authStatus dials with opts and returns the handshake status (0: accepted)
// and, when accepted, the peer id of the welcome.
func authStatus(ts *relaytest.Server, opts *client.Options) (int, string) {
	ts.T.Helper()
	c, err := client.Dial(relaytest.Ctx(ts.T, 5*time.Second), ts.WS, opts)
	if err != nil {
		var he *client.HandshakeError
		if !errors.As(err, &he) {
			ts.T.Fatalf("dial: %v", err)
		}
		return he.StatusCode, ""
	}
	defer c.CloseNow()
	return 0, c.PeerID()
}

func TestJWTSecret(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret,
		"WSRELAY_JWT_AUDIENCE=relay", "WSRELAY_JWT_ISSUER=https://id.example.com")
	key := []byte(testSecret)
	good := func(kv ...any) jwt.MapClaims {
		return relaytest.JWTClaims("alice", append([]any{"aud", "relay", "iss", "https://id.example.com"}, kv...)...)
	}
	now := time.Now()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := []struct {
		name   string
		opts   *client.Options
		status int
		peer   string
	}{
		{"HS256 header", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good())}, 0, "alice"},
		{"HS384 query", &client.Options{Query: url.Values{"token": {relaytest.SignJWT(t, jwt.SigningMethodHS384, key, good())}}}, 0, "alice"},
		{"HS512 device", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS512, key, good()), Query: url.Values{"device": {"phone"}}}, 0, "alice:phone"},
		{"peer param ignored", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good()), Peer: "mallory"}, 0, "alice"},
		{"expired within leeway", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("exp", now.Add(-2*time.Second).Unix()))}, 0, "alice"},
		{"no token", &client.Options{}, 401, ""},
		{"garbage", &client.Options{Token: "not.a.jwt"}, 401, ""},
		{"wrong secret", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), good())}, 401, ""},
		{"expired", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("exp", now.Add(-time.Minute).Unix()))}, 401, ""},
		{"no exp", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("exp", nil))}, 401, ""},
		{"not yet valid", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("nbf", now.Add(time.Minute).Unix()))}, 401, ""},
		{"wrong audience", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("aud", "other"))}, 401, ""},
		{"no audience", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("aud", nil))}, 401, ""},
		{"wrong issuer", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("iss", "https://evil.example.com"))}, 401, ""},
		{"no sub", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("sub", nil))}, 401, ""},
		{"invalid sub", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("sub", "a b"))}, 401, ""},
		{"sub too long", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good("sub", strings.Repeat("a", 65)))}, 401, ""},
		{"invalid device", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, key, good()), Query: url.Values{"device": {"a/b"}}}, 401, ""},
		{"alg none", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good())}, 401, ""},
		{"RS256 on a secret", &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodRS256, rsaKey, good())}, 401, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, peer := authStatus(ts, tc.opts)
			if status != tc.status || peer != tc.peer {
				t.Fatalf("got status %d peer %q, want %d %q", status, peer, tc.status, tc.peer)
			}
		})
	}
	_, _, body := ts.Get("/metrics")
	mustContain(t, body, `wsrelay_connections_rejected_total{reason="auth"} 15`)
}

func TestJWTPublicKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name    string
		pub     crypto.PublicKey
		good    []jwt.SigningMethod
		goodKey any
		bad     jwt.SigningMethod // another algorithm family, signed with some key
		badKey  any
	}{
		{"RSA", &rsaKey.PublicKey, []jwt.SigningMethod{jwt.SigningMethodRS256, jwt.SigningMethodRS384, jwt.SigningMethodRS512}, rsaKey, jwt.SigningMethodES256, ec256},
		{"P-256", &ec256.PublicKey, []jwt.SigningMethod{jwt.SigningMethodES256}, ec256, jwt.SigningMethodRS256, rsaKey},
		{"P-384", &ec384.PublicKey, []jwt.SigningMethod{jwt.SigningMethodES384}, ec384, jwt.SigningMethodES256, ec256},
		{"Ed25519", edPub, []jwt.SigningMethod{jwt.SigningMethodEdDSA}, edKey, jwt.SigningMethodES256, ec256},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := relaytest.WritePublicKeyPEM(t, tc.pub)
			ts := relaytest.Start(t, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_PUBLIC_KEY_FILE="+path)
			for _, m := range tc.good {
				if status, peer := authStatus(ts, &client.Options{Token: relaytest.SignJWT(t, m, tc.goodKey, relaytest.JWTClaims("bob"))}); status != 0 || peer != "bob" {
					t.Errorf("%s: status %d peer %q, want accepted as bob", m.Alg(), status, peer)
				}
			}
			if status, _ := authStatus(ts, &client.Options{Token: relaytest.SignJWT(t, tc.bad, tc.badKey, relaytest.JWTClaims("bob"))}); status != 401 {
				t.Errorf("%s token: status %d, want 401", tc.bad.Alg(), status)
			}
			// Algorithm confusion: HS256 keyed with the public key's own PEM bytes.
			pemBytes, _ := os.ReadFile(path)
			if status, _ := authStatus(ts, &client.Options{Token: relaytest.SignJWT(t, jwt.SigningMethodHS256, pemBytes, relaytest.JWTClaims("bob"))}); status != 401 {
				t.Errorf("HS256 with the public key as secret: status %d, want 401", status)
			}
		})
	}
}

// TestAuthBadKeys: a key that cannot serve refuses to start the server (main
// turns the error into exit status 2 before listening).
func TestAuthBadKeys(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	priv := filepath.Join(dir, "priv.pem")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(k)
	_ = os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakPath := relaytest.WritePublicKeyPEM(t, &weak.PublicKey)
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"short secret", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET=short"}, "WSRELAY_JWT_SECRET"},
		{"not PEM", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + notPEM}, "WSRELAY_JWT_PUBLIC_KEY_FILE"},
		{"private key", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + priv}, "WSRELAY_JWT_PUBLIC_KEY_FILE"},
		{"RSA 1024", []string{"WSRELAY_AUTH=jwt", "WSRELAY_JWT_PUBLIC_KEY_FILE=" + weakPath}, "WSRELAY_JWT_PUBLIC_KEY_FILE"},
		{"TLS key not matching", []string{"WSRELAY_TLS_CERT_FILE=" + notPEM, "WSRELAY_TLS_KEY_FILE=" + notPEM}, "WSRELAY_TLS_CERT_FILE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(append([]string{"WSRELAY_ADDR=127.0.0.1:0"}, tc.env...))
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			_, err = relaytest.Wire(cfg, relaytest.Options{})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want+": ") {
				t.Fatalf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

const testBotToken = "123456:ABC-test-bot-token"

// initData builds Mini App initData the way Telegram signs it: the
// data-check-string (fields but hash, sorted, key=value joined by "\n")
// under HMAC-SHA256 keyed by HMAC-SHA256("WebAppData", bot token).
func initData(botToken string, fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k + "=" + fields[k]
	}
	secret := hmac.New(sha256.New, []byte("WebAppData"))
	secret.Write([]byte(botToken))
	m := hmac.New(sha256.New, secret.Sum(nil))
	m.Write([]byte(strings.Join(lines, "\n")))
	v := url.Values{}
	for k, x := range fields {
		v.Set(k, x)
	}
	v.Set("hash", hex.EncodeToString(m.Sum(nil)))
	return v.Encode()
}

func tgFields(userID int64, authDate time.Time) map[string]string {
	return map[string]string{
		"query_id":  "AAHdF6IQAAAAAN0XohDhrOrc",
		"user":      fmt.Sprintf(`{"id":%d,"first_name":"Ada","username":"ada","language_code":"en"}`, userID),
		"auth_date": strconv.FormatInt(authDate.Unix(), 10),
	}
}

func TestTelegram(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=telegram", "WSRELAY_TELEGRAM_BOT_TOKEN="+testBotToken, "WSRELAY_TELEGRAM_MAX_AGE=1h")
	now := time.Now()
	good := initData(testBotToken, tgFields(279058397, now))
	header := func(v string) http.Header { return http.Header{"Authorization": {"tma " + v}} }
	tampered := strings.Replace(good, "279058397", "279058398", 1)
	old := initData(testBotToken, tgFields(279058397, now.Add(-2*time.Hour)))
	future := initData(testBotToken, tgFields(279058397, now.Add(time.Hour)))
	otherBot := initData("654321:other-bot", tgFields(279058397, now))
	noUser := tgFields(1, now)
	delete(noUser, "user")
	cases := []struct {
		name   string
		opts   *client.Options
		status int
		peer   string
	}{
		{"header", &client.Options{Header: header(good)}, 0, "tg:279058397"},
		{"query", &client.Options{Query: url.Values{"tma": {good}}}, 0, "tg:279058397"},
		{"device", &client.Options{Header: header(good), Query: url.Values{"device": {"tab2"}}}, 0, "tg:279058397:tab2"},
		{"peer param ignored", &client.Options{Header: header(good), Peer: "mallory"}, 0, "tg:279058397"},
		{"missing", &client.Options{}, 401, ""},
		{"tampered user", &client.Options{Header: header(tampered)}, 401, ""},
		{"other bot", &client.Options{Header: header(otherBot)}, 401, ""},
		{"too old", &client.Options{Header: header(old)}, 401, ""},
		{"future", &client.Options{Header: header(future)}, 401, ""},
		{"no hash", &client.Options{Header: header(strings.Split(good, "&hash=")[0])}, 401, ""},
		{"no user", &client.Options{Header: header(initData(testBotToken, noUser))}, 401, ""},
		{"user id zero", &client.Options{Header: header(initData(testBotToken, tgFields(0, now)))}, 401, ""},
		{"bearer scheme", &client.Options{Header: http.Header{"Authorization": {"Bearer " + good}}}, 401, ""},
		{"repeated field", &client.Options{Header: header(good + "&auth_date=1")}, 401, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, peer := authStatus(ts, tc.opts)
			if status != tc.status || peer != tc.peer {
				t.Fatalf("got status %d peer %q, want %d %q", status, peer, tc.status, tc.peer)
			}
		})
	}
}

// TestAuthRefusalOrder: origin (403) is checked before the credential (401),
// the credential before the connection limits (429), and /echo needs the
// credential too.
func TestAuthRefusalOrder(t *testing.T) {
	ts := relaytest.Start(t, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret, "WSRELAY_MAX_CONNS_PER_IP=1", "WSRELAY_ECHO=true")
	tok := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), relaytest.JWTClaims("carol"))
	if status, _ := authStatus(ts, &client.Options{Header: http.Header{"Origin": {"https://evil.example.com"}}}); status != 403 {
		t.Fatalf("foreign origin without token: %d, want 403", status)
	}
	if status, _ := authStatus(ts, &client.Options{Token: tok}); status != 0 {
		t.Fatalf("good token: %d", status)
	}
	waitConns(t, ts.Server, 0)
	first, err := client.Dial(relaytest.Ctx(t, 5*time.Second), ts.WS, &client.Options{Token: tok, Query: url.Values{"device": {"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer first.CloseNow()
	if status, _ := authStatus(ts, &client.Options{}); status != 401 {
		t.Fatalf("no token at the per-IP limit: %d, want 401", status)
	}
	if status, _ := authStatus(ts, &client.Options{Token: tok, Query: url.Values{"device": {"b"}}}); status != 429 {
		t.Fatalf("good token at the per-IP limit: %d, want 429", status)
	}
	first.CloseNow()
	echoURL := strings.Replace(ts.WS, "/ws", "/echo", 1)
	_, err = client.Dial(relaytest.Ctx(t, 5*time.Second), echoURL, &client.Options{})
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 401 {
		t.Fatalf("/echo without token: %v, want 401", err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (the logger).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAuthFailureLogged: a refused credential is logged at debug level with
// the reason, and the credential itself never appears in the log.
func TestAuthFailureLogged(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := relaytest.StartOpts(t, relaytest.Options{Logger: log}, "WSRELAY_AUTH=jwt", "WSRELAY_JWT_SECRET="+testSecret)
	expired := relaytest.SignJWT(t, jwt.SigningMethodHS256, []byte(testSecret), relaytest.JWTClaims("dave", "exp", time.Now().Add(-time.Hour).Unix()))
	if status, _ := authStatus(ts, &client.Options{Token: expired}); status != 401 {
		t.Fatalf("expired token: %d", status)
	}
	out := buf.String()
	mustContain(t, out, "upgrade refused", "reason=auth", "status=401", "token is expired")
	sig := expired[strings.LastIndexByte(expired, '.')+1:]
	if strings.Contains(out, sig) || strings.Contains(out, "dave") {
		t.Fatalf("the log shows the token:\n%s", out)
	}
}
