package frame

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseClientHeader(t *testing.T) {
	long := strings.Repeat("r", MaxRoomLen)
	tests := []struct {
		name    string
		msg     []byte
		want    Header
		payload string
		err     error
	}{
		{"direct", hdrBytes(1, 1, 7, 0x80, 0, 3, "bob", "payload"), Header{Op: BinDirect, CType: 7, Flags: 0x80, To: bs("bob")}, "payload", nil},
		{"publish", hdrBytes(1, 2, 1, 0, 0, 9, "org/lobby", "\x00\x01\x02"), Header{Op: BinPublish, CType: 1, To: bs("org/lobby")}, "\x00\x01\x02", nil},
		{"publish longest room", hdrBytes(1, 2, 0, 0, 0, MaxRoomLen, long, "x"), Header{Op: BinPublish, To: bs(long)}, "x", nil},
		{"broadcast", hdrBytes(1, 3, 2, 1, 0, 0, "p"), Header{Op: BinBroadcast, CType: 2, Flags: 1}, "p", nil},
		{"empty payload", hdrBytes(1, 1, 0, 0, 0, 1, "a"), Header{Op: BinDirect, To: bs("a")}, "", nil},
		{"header only broadcast", hdrBytes(1, 3, 0, 0, 0, 0), Header{Op: BinBroadcast}, "", nil},

		{"empty", nil, Header{}, "", ErrBinaryShort},
		{"version 0", hdrBytes(0, 1, 0, 0, 0, 0), Header{}, "", ErrBinaryVersion},
		{"version 2", hdrBytes(2), Header{}, "", ErrBinaryVersion},
		{"five bytes", hdrBytes(1, 3, 0, 0, 0), Header{}, "", ErrBinaryShort},
		{"op 0", hdrBytes(1, 0, 0, 0, 0, 0), Header{}, "", ErrBinaryOp},
		{"op 4", hdrBytes(1, 4, 0, 0, 0, 0), Header{}, "", ErrBinaryOp},
		{"op 255", hdrBytes(1, 255, 0, 0, 0, 0), Header{}, "", ErrBinaryOp},
		{"from_len 1", hdrBytes(1, 1, 0, 0, 1, "a", 1, "b"), Header{}, "", ErrBinaryFromLen},
		{"to past the end", hdrBytes(1, 1, 0, 0, 0, 5, "bob"), Header{}, "", ErrBinaryShort},
		{"direct empty to", hdrBytes(1, 1, 0, 0, 0, 0, "x"), Header{}, "", ErrBinaryTo},
		{"direct to with slash", hdrBytes(1, 1, 0, 0, 0, 3, "a/b"), Header{}, "", ErrBinaryTo},
		{"direct to too long", hdrBytes(1, 1, 0, 0, 0, MaxPeerIDLen+1, strings.Repeat("p", MaxPeerIDLen+1)), Header{}, "", ErrBinaryTo},
		{"publish empty room", hdrBytes(1, 2, 0, 0, 0, 0), Header{}, "", ErrBinaryTo},
		{"publish room too long", hdrBytes(1, 2, 0, 0, 0, MaxRoomLen+1, long+"r"), Header{}, "", ErrBinaryTo},
		{"publish bad room char", hdrBytes(1, 2, 0, 0, 0, 2, "a b"), Header{}, "", ErrBinaryTo},
		{"broadcast with to", hdrBytes(1, 3, 0, 0, 0, 1, "a"), Header{}, "", ErrBinaryTo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Header{Op: 9, To: bs("stale")}
			payload, err := ParseClientHeader(tt.msg, &h)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if !errors.Is(err, ErrBadFrame) {
					t.Fatalf("%v does not match ErrBadFrame", err)
				}
				if payload != nil || !headerEqual(h, Header{}) {
					t.Fatalf("on error got payload %q and header %+v", payload, h)
				}
				return
			}
			if !headerEqual(h, tt.want) {
				t.Fatalf("header %+v, want %+v", h, tt.want)
			}
			if string(payload) != tt.payload {
				t.Fatalf("payload %q, want %q", payload, tt.payload)
			}
		})
	}
}

func TestParseServerHeader(t *testing.T) {
	tests := []struct {
		name    string
		msg     []byte
		want    Header
		payload string
		err     error
	}{
		{"direct", hdrBytes(1, 1, 3, 4, 5, "alice", 0, "data"), Header{Op: BinDirect, CType: 3, Flags: 4, From: bs("alice")}, "data", nil},
		{"publish", hdrBytes(1, 2, 0, 0, 1, "a", 5, "lobby", "\xff"), Header{Op: BinPublish, From: bs("a"), To: bs("lobby")}, "\xff", nil},
		{"broadcast", hdrBytes(1, 3, 0, 0, 4, "tg:1", 0), Header{Op: BinBroadcast, From: bs("tg:1")}, "", nil},

		{"empty", nil, Header{}, "", ErrBinaryShort},
		{"version", hdrBytes(3, 1, 0, 0, 1, "a", 0), Header{}, "", ErrBinaryVersion},
		{"short fixed part", hdrBytes(1, 1, 0, 0, 1), Header{}, "", ErrBinaryShort},
		{"op", hdrBytes(1, 9, 0, 0, 1, "a", 0), Header{}, "", ErrBinaryOp},
		{"from past the end", hdrBytes(1, 1, 0, 0, 9, "alice"), Header{}, "", ErrBinaryShort},
		{"no to_len", hdrBytes(1, 1, 0, 0, 5, "alice"), Header{}, "", ErrBinaryShort},
		{"to past the end", hdrBytes(1, 2, 0, 0, 1, "a", 9, "lob"), Header{}, "", ErrBinaryShort},
		{"empty from", hdrBytes(1, 1, 0, 0, 0, 0, "x"), Header{}, "", ErrBinaryFrom},
		{"bad from", hdrBytes(1, 1, 0, 0, 3, "a/b", 0), Header{}, "", ErrBinaryFrom},
		{"direct with to", hdrBytes(1, 1, 0, 0, 1, "a", 1, "b"), Header{}, "", ErrBinaryTo},
		{"publish without room", hdrBytes(1, 2, 0, 0, 1, "a", 0), Header{}, "", ErrBinaryTo},
		{"broadcast with to", hdrBytes(1, 3, 0, 0, 1, "a", 1, "r"), Header{}, "", ErrBinaryTo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Header
			payload, err := ParseServerHeader(tt.msg, &h)
			if err != tt.err {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				if !errors.Is(err, ErrBadFrame) || payload != nil || !headerEqual(h, Header{}) {
					t.Fatalf("bad failure: err %v, payload %q, header %+v", err, payload, h)
				}
				return
			}
			if !headerEqual(h, tt.want) || string(payload) != tt.payload {
				t.Fatalf("got %+v %q, want %+v %q", h, payload, tt.want, tt.payload)
			}
		})
	}
}

func TestHeaderErrors(t *testing.T) {
	errs := []error{ErrBinaryShort, ErrBinaryVersion, ErrBinaryOp, ErrBinaryFromLen, ErrBinaryFrom, ErrBinaryTo}
	seen := map[string]bool{}
	for _, err := range errs {
		if !errors.Is(err, ErrBadFrame) {
			t.Errorf("%v does not match ErrBadFrame", err)
		}
		if errors.Is(err, ErrBadJSON) {
			t.Errorf("%v matches ErrBadJSON", err)
		}
		if !strings.HasPrefix(err.Error(), ErrBadFrame.Error()+": ") {
			t.Errorf("%q does not start with %q", err, ErrBadFrame)
		}
		if seen[err.Error()] {
			t.Errorf("duplicate text %q", err)
		}
		seen[err.Error()] = true
		for _, other := range errs {
			if other != err && errors.Is(err, other) {
				t.Errorf("%v matches %v", err, other)
			}
		}
	}
	if wrapped := fmt.Errorf("conn: %w", ErrBinaryTo); !errors.Is(wrapped, ErrBadFrame) || !errors.Is(wrapped, ErrBinaryTo) {
		t.Error("a wrapped header error no longer matches")
	}
}

func TestAppendHeaders(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"client direct", AppendClientHeader(nil, BinDirect, 1, 2, "bob"), hdrBytes(1, 1, 1, 2, 0, 3, "bob")},
		{"client broadcast", AppendClientHeader(nil, BinBroadcast, 0, 0, ""), hdrBytes(1, 3, 0, 0, 0, 0)},
		{"server publish", AppendServerHeader(nil, BinPublish, 5, 6, "alice", "r/1"), hdrBytes(1, 2, 5, 6, 5, "alice", 3, "r/1")},
		{"server direct", AppendServerHeader([]byte("x"), BinDirect, 0, 0, "a", ""), hdrBytes("x", 1, 1, 0, 0, 1, "a", 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestHeaderRoundTrip relays a client frame the way the server does: parse
// it, stamp from, and parse the result as a client would.
func TestHeaderRoundTrip(t *testing.T) {
	for _, op := range []byte{BinDirect, BinPublish, BinBroadcast} {
		to := map[byte]string{BinDirect: "bob", BinPublish: "room/1", BinBroadcast: ""}[op]
		msg := AppendClientHeader(nil, op, 9, 0xA5, to)
		msg = append(msg, "\x00payload\xff"...)

		var in Header
		payload, err := ParseClientHeader(msg, &in)
		if err != nil {
			t.Fatalf("op %d: %v", op, err)
		}
		serverTo := ""
		if op == BinPublish {
			serverTo = string(in.To)
		}
		out := AppendServerHeader(nil, in.Op, in.CType, in.Flags, "alice", serverTo)
		out = append(out, payload...)

		var h Header
		got, err := ParseServerHeader(out, &h)
		if err != nil {
			t.Fatalf("op %d: %v", op, err)
		}
		want := Header{Op: op, CType: 9, Flags: 0xA5, From: bs("alice"), To: []byte(serverTo)}
		if !headerEqual(h, want) || string(got) != "\x00payload\xff" {
			t.Fatalf("op %d: got %+v %q", op, h, got)
		}
	}
}

func TestAppendHeaderPanicsOnLongField(t *testing.T) {
	long := strings.Repeat("x", 256)
	for name, f := range map[string]func(){
		"client to":   func() { AppendClientHeader(nil, BinPublish, 0, 0, long) },
		"server from": func() { AppendServerHeader(nil, BinDirect, 0, 0, long, "") },
		"server to":   func() { AppendServerHeader(nil, BinPublish, 0, 0, "a", long) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
	// 255 bytes still fit.
	if h := AppendClientHeader(nil, BinPublish, 0, 0, long[:255]); h[5] != 255 || len(h) != 6+255 {
		t.Fatal("255-byte to mis-encoded")
	}
}

// hdrBytes builds a message from ints (single bytes) and strings.
func hdrBytes(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch p := p.(type) {
		case int:
			out = append(out, byte(p))
		case string:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("cat: %T", p))
		}
	}
	return out
}

// headerEqual compares headers; nil and empty From/To are equal.
func headerEqual(a, b Header) bool {
	return a.Op == b.Op && a.CType == b.CType && a.Flags == b.Flags && bytes.Equal(a.From, b.From) && bytes.Equal(a.To, b.To)
}

func ExampleParseClientHeader() {
	msg := AppendClientHeader(nil, BinPublish, 1, 0, "lobby")
	msg = append(msg, "compressed bytes"...)

	var h Header
	payload, err := ParseClientHeader(msg, &h)
	fmt.Printf("op=%d ctype=%d to=%s payload=%q err=%v\n", h.Op, h.CType, h.To, payload, err)

	_, err = ParseClientHeader([]byte{1, 1, 0, 0, 0, 3, 'a', '/', 'b'}, &h)
	fmt.Println(err, errors.Is(err, ErrBadFrame))
	// Output:
	// op=2 ctype=1 to=lobby payload="compressed bytes" err=<nil>
	// frame: bad binary header: malformed to true
}
