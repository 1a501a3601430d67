package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsrelay/wsrelay/config"
)

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 5 * time.Second

// MinSecretBytes is the shortest WSRELAY_JWT_SECRET accepted: RFC 7518
// section 3.2 requires an HMAC key at least as long as the hash (HS256).
const MinSecretBytes = 32

// JWT is auth mode jwt. The token comes as "Authorization: Bearer T" or
// ?token=T; the peer id is its sub claim, or sub:D with ?device=D.
//
// The accepted algorithms follow from the key and nothing else: a secret
// accepts HS256, HS384 and HS512; an RSA key RS256, RS384 and RS512; an
// ECDSA key the one ES algorithm of its curve; an Ed25519 key EdDSA. A token
// whose header names another algorithm (say HS256 signed with the bytes of
// the public key, or "none") is refused. exp is required; exp, nbf and iat
// are checked with Leeway; aud and iss when configured.
type JWT struct {
	key    any
	parser *jwt.Parser
}

// NewJWT loads the key of cfg (WSRELAY_JWT_SECRET or
// WSRELAY_JWT_PUBLIC_KEY_FILE) and returns the authenticator.
func NewJWT(cfg config.Config) (*JWT, error) {
	var key any
	var methods []string
	switch {
	case cfg.JWTSecret != "" && cfg.JWTPublicKeyFile != "":
		return nil, &config.Error{Var: config.Prefix + "JWT_SECRET", Err: errors.New("set only one of WSRELAY_JWT_SECRET and WSRELAY_JWT_PUBLIC_KEY_FILE")}
	case cfg.JWTSecret != "":
		if len(cfg.JWTSecret) < MinSecretBytes {
			return nil, &config.Error{Var: config.Prefix + "JWT_SECRET", Err: fmt.Errorf("too short: at least %d bytes", MinSecretBytes)}
		}
		key = []byte(cfg.JWTSecret)
		methods = []string{"HS256", "HS384", "HS512"}
	case cfg.JWTPublicKeyFile != "":
		var err error
		key, methods, err = loadPublicKey(cfg.JWTPublicKeyFile)
		if err != nil {
			return nil, &config.Error{Var: config.Prefix + "JWT_PUBLIC_KEY_FILE", Err: err}
		}
	default:
		return nil, &config.Error{Var: config.Prefix + "JWT_SECRET", Err: errors.New("WSRELAY_AUTH=jwt needs WSRELAY_JWT_SECRET or WSRELAY_JWT_PUBLIC_KEY_FILE")}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithLeeway(Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	return &JWT{key: key, parser: jwt.NewParser(opts...)}, nil
}

// loadPublicKey reads a PEM public key (PKIX "PUBLIC KEY", PKCS #1 "RSA
// PUBLIC KEY", or the key of a "CERTIFICATE") and returns it with the
// algorithms it verifies.
func loadPublicKey(path string) (any, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, errors.New("no PEM block found")
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("parse public key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, nil, fmt.Errorf("RSA key of %d bits: at least 2048 needed", k.N.BitLen())
		}
		return k, []string{"RS256", "RS384", "RS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
		return nil, nil, errors.New("unsupported ECDSA curve")
	case ed25519.PublicKey:
		return k, []string{"EdDSA"}, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T", key)
}

// Authenticate implements Authenticator.
func (a *JWT) Authenticate(r *http.Request) (string, error) {
	tok := credential(r, "Bearer", "token")
	if tok == "" {
		return "", ErrNoCredential
	}
	var claims jwt.RegisteredClaims
	_, err := a.parser.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return a.key, nil })
	if err != nil {
		// jwt's messages name the failed check, never the token.
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if claims.Subject == "" {
		return "", fmt.Errorf("%w: no sub claim", ErrInvalid)
	}
	return withDevice(claims.Subject, r)
}
