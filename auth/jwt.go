package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
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
//
// The optional claim "rooms" (docs/protocol.md section 11) limits the rooms the
// peer may join without a room token; see ParseRooms. A claim that is not
// an array of valid patterns refuses the token; "rooms": null counts as an
// empty claim (no room), never as an absent one.
type JWT struct {
	verifier
	rooms Rooms // what a token without a rooms claim allows
}

// verifier checks JWTs with the configured key: connection tokens and room
// tokens share it, and so share keys, algorithms, leeway, aud and iss.
type verifier struct {
	key    any
	parser *jwt.Parser
}

// NewJWT loads the key of cfg (WSRELAY_JWT_SECRET or
// WSRELAY_JWT_PUBLIC_KEY_FILE) and returns the authenticator.
func NewJWT(cfg config.Config) (*JWT, error) {
	if cfg.JWTSecret == "" && cfg.JWTPublicKeyFile == "" {
		return nil, &config.Error{Var: config.Prefix + "JWT_SECRET", Err: errors.New("WSRELAY_AUTH=jwt needs WSRELAY_JWT_SECRET or WSRELAY_JWT_PUBLIC_KEY_FILE")}
	}
	v, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	return &JWT{verifier: v, rooms: defaultRooms(cfg)}, nil
}

// newVerifier loads the key of cfg, which must have one.
func newVerifier(cfg config.Config) (verifier, error) {
	var key any
	var methods []string
	switch {
	case cfg.JWTSecret != "" && cfg.JWTPublicKeyFile != "":
		return verifier{}, &config.Error{Var: config.Prefix + "JWT_SECRET", Err: errors.New("set only one of WSRELAY_JWT_SECRET and WSRELAY_JWT_PUBLIC_KEY_FILE")}
	case cfg.JWTSecret != "":
		if len(cfg.JWTSecret) < MinSecretBytes {
			return verifier{}, &config.Error{Var: config.Prefix + "JWT_SECRET", Err: fmt.Errorf("too short: at least %d bytes", MinSecretBytes)}
		}
		key = []byte(cfg.JWTSecret)
		methods = []string{"HS256", "HS384", "HS512"}
	case cfg.JWTPublicKeyFile != "":
		var err error
		key, methods, err = loadPublicKey(cfg.JWTPublicKeyFile)
		if err != nil {
			return verifier{}, &config.Error{Var: config.Prefix + "JWT_PUBLIC_KEY_FILE", Err: err}
		}
	default:
		return verifier{}, &config.Error{Var: config.Prefix + "JWT_SECRET", Err: errors.New("no JWT key configured")}
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
	return verifier{key: key, parser: jwt.NewParser(opts...)}, nil
}

// parse verifies tok and decodes its claims into claims. Its errors name the
// failed check, never the token.
func (v *verifier) parse(tok string, claims jwt.Claims) error {
	_, err := v.parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return v.key, nil })
	return err
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

// connClaims are the claims of a connection token. Rooms stays raw so that
// an absent claim (nil) differs from "rooms": null.
type connClaims struct {
	jwt.RegisteredClaims
	Rooms json.RawMessage `json:"rooms"`
}

// Authenticate implements Authenticator.
func (a *JWT) Authenticate(r *http.Request) (string, error) {
	id, err := a.Identify(r)
	return id.Peer, err
}

// Identify implements Authenticator. The rooms claim is parsed here, once
// per connection, into the Identity's Rooms.
func (a *JWT) Identify(r *http.Request) (Identity, error) {
	tok := credential(r, "Bearer", "token")
	if tok == "" {
		return Identity{}, ErrNoCredential
	}
	var claims connClaims
	if err := a.parse(tok, &claims); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if claims.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no sub claim", ErrInvalid)
	}
	rooms := a.rooms
	if claims.Rooms != nil {
		var patterns []string
		if err := json.Unmarshal(claims.Rooms, &patterns); err != nil {
			return Identity{}, fmt.Errorf("%w: rooms claim is not an array of strings", ErrInvalid)
		}
		var err error
		if rooms, err = ParseRooms(patterns); err != nil {
			return Identity{}, err
		}
	}
	return withDevice(claims.Subject, rooms, r)
}
