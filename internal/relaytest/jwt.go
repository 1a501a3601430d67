package relaytest

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignJWT signs claims with method and key, as an identity provider would
// for a relay in auth mode jwt.
func SignJWT(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// JWTClaims returns claims for sub, issued now and valid for a minute,
// overridden by kv pairs of claim name and value (a nil value deletes the
// claim).
func JWTClaims(sub string, kv ...any) jwt.MapClaims {
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

// WritePublicKeyPEM writes pub as a PEM "PUBLIC KEY" file, the form of
// WSRELAY_JWT_PUBLIC_KEY_FILE, in the test's temporary directory and
// returns its path.
func WritePublicKeyPEM(t testing.TB, pub crypto.PublicKey) string {
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
