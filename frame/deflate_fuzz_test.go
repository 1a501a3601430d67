package frame

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzInflate sends arbitrary bytes as the payload of a compressed message
// (RSV1), text or binary, in one frame or two fragments cut at split, fed
// whole and in two chunks, to a Reader with a small MaxMessage. The verdict
// must match compress/flate's reading of the same payload: the inflated
// message when it is valid and within the limit, 1009 when it inflates past
// the limit, 1007 when it is corrupt or (text) not UTF-8; and the Reader
// never delivers more than MaxMessage bytes.
func FuzzInflate(f *testing.F) {
	for _, s := range []string{"", "a", "hello hello hello", strings.Repeat("{\"k\":1}", 60), "\xff\xfe"} {
		f.Add(appendDeflated(nil, []byte(s)), uint(3), false)
	}
	f.Add([]byte{0x00}, uint(0), true)                                // an empty message
	f.Add([]byte{0x07}, uint(0), false)                               // reserved block type
	f.Add(finalBlock("done"), uint(1), true)                          // BFINAL inside the message
	f.Add([]byte("\x00\x64\x00\x9b\xff0123"), uint(2), false)         // stored block cut short
	f.Add(bomb(1)[:200], uint(100), false)                            // inflates far past the limit
	f.Add(appendDeflated(nil, randomBytes(300, 1)), uint(150), false) // incompressible, at the limit
	f.Fuzz(func(t *testing.T, payload []byte, split uint, isText bool) {
		if len(payload) > DeflatedLimit(fuzzMaxMessage) {
			return // refused from the header; FuzzReader covers lengths
		}
		op := OpBinary
		if isText {
			op = OpText
		}
		ref, refErr := io.ReadAll(io.LimitReader(flate.NewReader(io.MultiReader(bytes.NewReader(payload), strings.NewReader(deflateTail))), fuzzMaxMessage+1))
		var want error
		switch {
		case len(ref) > fuzzMaxMessage:
			want = ErrInflatedTooBig
		case refErr != nil:
			want = ErrBadDeflate
		case isText && !utf8.Valid(ref):
			want = ErrInvalidUTF8
		}

		cut := int(split % uint(len(payload)+1))
		one := zfirst(true, op, string(payload))
		two := cat(zfirst(false, op, string(payload[:cut])), mf(true, OpContinuation, string(payload[cut:])))
		for _, in := range [][]byte{one, two} {
			for _, cuts := range [][]int{nil, {int(split % uint(len(in)+1))}} {
				events, err, r := feedReader(t, &Reader{MaxMessage: fuzzMaxMessage, Deflate: true}, in, cuts)
				if want != nil {
					if !errors.Is(err, want) || len(events) != 0 {
						t.Fatalf("Feed = %v with %d messages, want %v", err, len(events), want)
					}
					if r.Buffered() != 0 {
						t.Fatalf("Buffered() = %d after failing", r.Buffered())
					}
					continue
				}
				if err != nil {
					t.Fatalf("Feed = %v, compress/flate inflates it to %d bytes", err, len(ref))
				}
				if len(events) != 1 || events[0].op != op || events[0].data != string(ref) {
					t.Fatalf("events %v, want one message of %d bytes", events, len(ref))
				}
			}
		}
	})
}

// FuzzDeflateRoundTrip compresses an arbitrary message as an outgoing frame
// would be, and checks that compress/flate and the Reader both get the
// message back, and that a frame is only offered compressed when it is
// shorter.
func FuzzDeflateRoundTrip(f *testing.F) {
	f.Add([]byte(""), true)
	f.Add([]byte(strings.Repeat(`{"type":"publish","data":"x"}`, 40)), true)
	f.Add(randomBytes(700, 3), false)
	f.Fuzz(func(t *testing.T, msg []byte, isText bool) {
		op := OpBinary
		if isText {
			if !utf8.Valid(msg) {
				return
			}
			op = OpText
		}
		b := NewBuf(len(msg))
		defer b.Release()
		b.B = append(b.B, msg...)
		b.Finish(op)
		z := b.Deflated(0)
		if z == nil {
			// Only when compressing does not help: check that it
			// really does not.
			if c := appendDeflated(nil, msg); len(c)+2 < len(msg) {
				t.Fatalf("%d bytes compress to %d, but the frame was not compressed", len(msg), len(c))
			}
			return
		}
		if len(z) >= len(b.Bytes()) {
			t.Fatalf("compressed frame %d bytes, plain %d", len(z), len(b.Bytes()))
		}
		if z[0] != 0xC0|op {
			t.Fatalf("first byte %#x, want FIN, RSV1, op %d", z[0], op)
		}
		// Mask it as a client would and read it back.
		_, _, payload := parseServerFrame(t, clearRSV1(z))
		in := zfirst(true, op, string(payload))
		events, err, _ := feedReader(t, &Reader{MaxMessage: len(msg), Deflate: true}, in, nil)
		if err != nil || len(events) != 1 || events[0].data != string(msg) {
			t.Fatalf("read back %v, %v; want the %d bytes sent", events, err, len(msg))
		}
	})
}

// FuzzNegotiateDeflate checks NegotiateDeflate against a reference reading
// of header values without quoted strings: split on commas and semicolons,
// every element well-formed, at least one permessage-deflate offer whose
// parameters are all known, once each, with valid values.
func FuzzNegotiateDeflate(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"permessage-deflate; server_max_window_bits=10, permessage-deflate",
		"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits=15",
		`permessage-deflate; client_max_window_bits="12"`,
		"permessage-deflate; foo=bar",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got := NegotiateDeflate([]string{header})
		if strings.ContainsRune(header, '"') {
			return
		}
		if want := refNegotiate(header); got != want {
			t.Fatalf("NegotiateDeflate(%q) = %v, reference says %v", header, got, want)
		}
	})
}

// refNegotiate is the reference for FuzzNegotiateDeflate.
func refNegotiate(header string) bool {
	isToken := func(s string) bool {
		if s == "" {
			return false
		}
		for i := 0; i < len(s); i++ {
			if !isTokenChar(s[i]) {
				return false
			}
		}
		return true
	}
	trim := func(s string) string { return strings.Trim(s, " \t") }
	accepted := false
	for _, elem := range strings.Split(header, ",") {
		if trim(elem) == "" {
			continue
		}
		parts := strings.Split(elem, ";")
		name := trim(parts[0])
		if !isToken(name) {
			return false
		}
		ok := strings.EqualFold(name, "permessage-deflate")
		seen := map[string]bool{}
		for _, p := range parts[1:] {
			k, v, hasValue := strings.Cut(p, "=")
			k, v = trim(k), trim(v)
			if !isToken(k) || hasValue && !isToken(v) {
				return false
			}
			k = strings.ToLower(k)
			if seen[k] {
				ok = false
			}
			seen[k] = true
			bits := -1
			if hasValue {
				bits = 0
				for n := 8; n <= 15; n++ {
					if v == strconv.Itoa(n) {
						bits = n
					}
				}
			}
			switch k {
			case "server_no_context_takeover", "client_no_context_takeover":
				ok = ok && !hasValue
			case "server_max_window_bits":
				ok = ok && bits == 15
			case "client_max_window_bits":
				ok = ok && bits != 0
			default:
				ok = false
			}
		}
		accepted = accepted || ok
	}
	return accepted
}
