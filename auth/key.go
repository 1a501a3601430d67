package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wsrelay/wsrelay/frame"
)

// Key auth (WSRELAY_AUTH=key, docs/protocol.md section 11): the client names an
// Ed25519 public key with ?key=K and proves it holds the private key by
// signing a nonce the server sends after the upgrade. The peer id is k:K,
// so it certifies itself and the server keeps no secret.
const (
	// KeyPrefix starts every peer id of key auth.
	KeyPrefix = "k:"
	// AuthContext is signed in front of the nonce, so that a key-auth
	// signature cannot be replayed as a signature of anything else.
	AuthContext = "wsrelay-auth-v1:"
	// ChallengeTimeout is how long a client has to answer the challenge.
	ChallengeTimeout = 10 * time.Second
	// CloseAuthFailed and CloseAuthFailedReason close a connection whose
	// challenge failed (counted as rejected{reason="auth"}).
	CloseAuthFailed       = 4003
	CloseAuthFailedReason = "authentication failed"
)

// Encoded sizes, unpadded base64url.
const (
	keyTextLen   = 43 // ed25519.PublicKeySize bytes
	nonceBytes   = 32
	nonceTextLen = 43
	sigTextLen   = 86 // ed25519.SignatureSize bytes
)

// b64 decodes unpadded base64url strictly: the unused low bits of the last
// character must be zero, so each value has exactly one encoding. (It still
// skips '\r' and '\n'; callers check the length first, which rules them out.)
var b64 = base64.RawURLEncoding.Strict()

// ParseKey decodes K of ?key=K: the unpadded base64url encoding of a 32-byte
// Ed25519 public key, nothing else (no padding, no standard-alphabet
// characters, no whitespace, no other length). A key of small order, which
// anyone could "prove", and a non-canonical encoding of a key, which would
// give it a second id, are refused too. Its error wraps ErrBadKey.
func ParseKey(k string) (ed25519.PublicKey, error) {
	if len(k) != keyTextLen || strings.ContainsAny(k, "\r\n") {
		return nil, fmt.Errorf("%w: want %d base64url characters", ErrBadKey, keyTextLen)
	}
	b, err := b64.DecodeString(k)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: not unpadded base64url", ErrBadKey)
	}
	if weakKey(b) {
		return nil, fmt.Errorf("%w: not a usable Ed25519 public key", ErrBadKey)
	}
	return ed25519.PublicKey(b), nil
}

// smallOrderY holds the y coordinates (little-endian) of the eight points of
// small order on edwards25519: the identity (1), the point of order 2 (p-1),
// the two of order 4 (0) and the four of order 8 (two y, each with two x).
// crypto/ed25519 accepts such a public key, and for it a fixed signature
// verifies for a good share of all messages: no private key is needed, so
// its k: id would belong to anyone.
var smallOrderY = [...][32]byte{
	{0},
	{1},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
}

// weakKey reports whether the 32-byte public key b encodes its y
// coordinate non-canonically (y >= p = 2^255-19, which gives one key
// several k: ids) or is a point of small order.
func weakKey(b []byte) bool {
	var y [32]byte
	copy(y[:], b)
	y[31] &= 0x7f // the sign of x
	if y[31] == 0x7f && y[0] >= 0xed && allFF(y[1:31]) {
		return true
	}
	for _, w := range smallOrderY {
		if y == w {
			return true
		}
	}
	return false
}

func allFF(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// Key is auth mode key. Identify checks the request's ?key= and ?device=;
// the Identity it returns carries the Key, and the connection is admitted as
// its Peer only once NewChallenge(Key) has been answered. The zero Key
// allows every room.
type Key struct {
	rooms Rooms
}

// Identify implements Authenticator. Without ?key= the request is refused
// with ErrNoCredential (401); a malformed key is ErrBadKey (400); a
// ?device= that makes the peer id invalid or longer than 64 characters is
// ErrBadPeerID (400).
func (a Key) Identify(r *http.Request) (Identity, error) {
	q := r.URL.Query()
	k := q.Get("key")
	if k == "" {
		return Identity{}, ErrNoCredential
	}
	pub, err := ParseKey(k)
	if err != nil {
		return Identity{}, err
	}
	base := KeyPrefix + k
	id := base
	if d := q.Get("device"); d != "" {
		id = base + ":" + d
	}
	if !frame.ValidPeerID([]byte(id)) {
		return Identity{}, ErrBadPeerID
	}
	return Identity{Peer: id, Base: base, Rooms: a.rooms, Key: pub}, nil
}

// Authenticate implements Authenticator. It refuses every request: a key
// proves nothing before its challenge is answered, so a caller that cannot
// run the challenge must not admit anyone.
func (a Key) Authenticate(r *http.Request) (string, error) {
	if _, err := a.Identify(r); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w: auth mode key needs the challenge (Identify)", ErrInvalid)
}

// Challenge is one connection's pending key-auth proof. The server sends
// AppendMessage's frame as its first message; the client's first message
// must be an auth message that Verify accepts, within ChallengeTimeout.
// Anything else (another message first, a binary message, no answer in time)
// fails the challenge; the caller closes with CloseAuthFailed.
//
// A Challenge holds the key and the signed text (about 100 bytes); it is
// not safe for concurrent use, and is dropped once answered.
type Challenge struct {
	key ed25519.PublicKey
	// signed is AuthContext followed by the nonce as sent.
	signed [len(AuthContext) + nonceTextLen]byte
}

// NewChallenge returns a challenge for key with a fresh nonce of 32 bytes
// from crypto/rand.
func NewChallenge(key ed25519.PublicKey) *Challenge {
	var raw [nonceBytes]byte
	rand.Read(raw[:]) // never fails: crypto/rand crashes the program instead
	c := &Challenge{key: key}
	copy(c.signed[:], AuthContext)
	base64.RawURLEncoding.Encode(c.signed[len(AuthContext):], raw[:])
	return c
}

// Nonce returns the nonce as sent: 43 characters of unpadded base64url.
func (c *Challenge) Nonce() string { return string(c.signed[len(AuthContext):]) }

// AppendMessage appends the challenge message
// {"type":"challenge","nonce":NONCE} to dst and returns the extended slice.
func (c *Challenge) AppendMessage(dst []byte) []byte {
	dst = append(dst, `{"type":"challenge","nonce":"`...)
	dst = append(dst, c.signed[len(AuthContext):]...)
	return append(dst, `"}`...)
}

// Verify checks msg, the client's first text message: it must be an auth
// message (ParseAuth) whose signature verifies, under the challenge's key,
// for AuthContext followed by the nonce. It returns nil or an error wrapping
// ErrAuthFailed.
func (c *Challenge) Verify(msg []byte) error {
	sig, err := ParseAuth(msg)
	if err != nil {
		return err
	}
	if !ed25519.Verify(c.key, c.signed[:], sig) {
		return fmt.Errorf("%w: wrong signature", ErrAuthFailed)
	}
	return nil
}

// ParseAuth parses the client's answer {"type":"auth","sig":SIG} and returns
// the 64 signature bytes of SIG, which must be their unpadded base64url
// encoding. msg must be one JSON object whose "type" is the string "auth";
// other fields are ignored; keys match exactly, and of duplicate keys the
// last one counts, as for every other message. The error wraps
// ErrAuthFailed.
func ParseAuth(msg []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil || m == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrAuthFailed)
	}
	var typ, sig string
	if json.Unmarshal(m["type"], &typ) != nil || typ != "auth" {
		return nil, fmt.Errorf("%w: first message is not auth", ErrAuthFailed)
	}
	if json.Unmarshal(m["sig"], &sig) != nil || len(sig) != sigTextLen || strings.ContainsAny(sig, "\r\n") {
		return nil, fmt.Errorf("%w: sig is not %d base64url characters", ErrAuthFailed, sigTextLen)
	}
	b, err := b64.DecodeString(sig)
	if err != nil || len(b) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: sig is not unpadded base64url", ErrAuthFailed)
	}
	return b, nil
}
