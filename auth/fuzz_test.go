package auth

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzRooms checks Allows against a linear scan of the patterns, and that
// ParseRooms accepts exactly the patterns docs/protocol.md section 11 describes.
// The input is a comma-separated claim and a room.
func FuzzRooms(f *testing.F) {
	f.Add("lobby,game:42:*", "game:42:lobby")
	f.Add("a*,ab:*,b", "ab:1")
	f.Add("*", "x")
	f.Add("", "lobby")
	f.Add("game:*,game:42:*,game:42:x", "game:42:x")
	f.Add("a*b", "ab")
	f.Fuzz(func(t *testing.T, claim, room string) {
		var patterns []string
		if claim != "" {
			patterns = strings.Split(claim, ",")
		}
		r, err := ParseRooms(patterns)
		valid := true
		for _, p := range patterns {
			name := strings.TrimSuffix(p, "*")
			if !(name == "" && p == "*") && !validRoomRef(name) {
				valid = false
			}
		}
		if valid != (err == nil) {
			t.Fatalf("ParseRooms(%q): err %v, want valid=%v", patterns, err, valid)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if got, want := r.Allows([]byte(room)), naiveAllows(patterns, room); got != want {
			t.Fatalf("%q Allows(%q) = %v, want %v", patterns, room, got, want)
		}
	})
}

// validRoomRef is docs/protocol.md section 2's room name rule, written out again.
func validRoomRef(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:/-", c) >= 0) {
			return false
		}
	}
	return true
}

// FuzzParseAuth checks that ParseAuth never panics, that what it accepts is
// a JSON object of type "auth" whose sig is the canonical encoding of the
// 64 bytes returned, and that the answer every client builds is accepted.
func FuzzParseAuth(f *testing.F) {
	sig := base64.RawURLEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
	f.Add([]byte(`{"type":"auth","sig":"` + sig + `"}`))
	f.Add([]byte(` {"sig":"` + sig + `","type":"auth","x":[1,{"sig":2}]} `))
	f.Add([]byte(`{"type":"auth","sig":"` + sig + `=="}`))
	f.Add([]byte(`{"type":"join","room":"a"}`))
	f.Add([]byte(`{"type":"auth","type":"join","sig":"` + sig + `"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"type":"auth","sig":"` + sig[:85] + `\n"}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := ParseAuth(msg)
		if err != nil {
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("error %v does not wrap ErrAuthFailed", err)
			}
		} else {
			typ, sig, ok := refAuthFields(msg)
			if !ok || len(got) != ed25519.SignatureSize {
				t.Fatalf("accepted %q: %d bytes, but it is not a JSON object", msg, len(got))
			}
			if typ != "auth" || base64.RawURLEncoding.EncodeToString(got) != sig {
				t.Fatalf("accepted %q: sig %x, reference type %q sig %q", msg, got, typ, sig)
			}
		}
		// Whatever the bytes, a signature of that size encoded as the
		// client encodes it is accepted.
		raw := make([]byte, ed25519.SignatureSize)
		copy(raw, msg)
		answer := `{"type":"auth","sig":"` + base64.RawURLEncoding.EncodeToString(raw) + `"}`
		if back, err := ParseAuth([]byte(answer)); err != nil || string(back) != string(raw) {
			t.Fatalf("client answer %s: %x %v", answer, back, err)
		}
	})
}

// refAuthFields walks msg with encoding/json's tokenizer and returns the
// last top-level "type" and "sig" strings (keys matched exactly), and
// whether msg is one JSON object.
func refAuthFields(msg []byte) (typ, sig string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", "", false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", "", false
		}
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return "", "", false
		}
		var str string
		isString := json.Unmarshal(v, &str) == nil && bytes.HasPrefix(bytes.TrimSpace(v), []byte(`"`))
		switch key {
		case "type":
			typ = ""
			if isString {
				typ = str
			}
		case "sig":
			sig = ""
			if isString {
				sig = str
			}
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "", "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", "", false
	}
	return typ, sig, true
}
