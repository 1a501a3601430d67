package cluster

import (
	"strings"
	"testing"
)

// TestRoomToken: valid room names (docs/protocol.md section 2) map to distinct
// single tokens.
func TestRoomToken(t *testing.T) {
	seen := map[string]string{}
	for _, room := range []string{"lobby", "a/b:c-d_e", "a.b", "a..b", ".", "A.B", "61.62", "612e62", "7e612e62"} {
		tok := roomToken(room)
		if tok == "" || strings.ContainsAny(tok, ". *>\t\r\n") {
			t.Errorf("roomToken(%q) = %q: not a single NATS subject token", room, tok)
		}
		if other, dup := seen[tok]; dup {
			t.Errorf("roomToken(%q) = roomToken(%q) = %q", room, other, tok)
		}
		seen[tok] = room
	}
}

func TestReaderShortInput(t *testing.T) {
	r := reader{b: []byte{5, 'a', 'b'}}
	if f := r.field(); f != nil || !r.bad {
		t.Fatalf("field of a short message: %q, bad %v", f, r.bad)
	}
	r = reader{b: []byte{1, 2, 3}}
	if v := r.uint64(); v != 0 || !r.bad {
		t.Fatalf("uint64 of 3 bytes: %d, bad %v", v, r.bad)
	}
}
