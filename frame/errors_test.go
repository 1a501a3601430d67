package frame

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
)

// violations names every protocol violation sentinel. TestViolationsListed
// keeps it in step with errors.go, and TestReaderViolations covers each.
var violations = map[string]*CloseError{
	"ErrReservedBits":           ErrReservedBits,
	"ErrBadOpcode":              ErrBadOpcode,
	"ErrInterleavedMessage":     ErrInterleavedMessage,
	"ErrUnexpectedContinuation": ErrUnexpectedContinuation,
	"ErrFragmentedControl":      ErrFragmentedControl,
	"ErrUnmaskedClientFrame":    ErrUnmaskedClientFrame,
	"ErrControlTooLong":         ErrControlTooLong,
	"ErrLengthMSB":              ErrLengthMSB,
	"ErrMessageTooBig":          ErrMessageTooBig,
	"ErrInvalidUTF8":            ErrInvalidUTF8,
	"ErrShortClose":             ErrShortClose,
	"ErrBadCloseCode":           ErrBadCloseCode,
	"ErrInvalidCloseReason":     ErrInvalidCloseReason,
	"ErrCompressedControl":      ErrCompressedControl,
	"ErrCompressedContinuation": ErrCompressedContinuation,
	"ErrInflatedTooBig":         ErrInflatedTooBig,
	"ErrBadDeflate":             ErrBadDeflate,
}

// TestViolationsListed fails when errors.go declares a *CloseError sentinel
// that violations (and so the table below) does not know.
func TestViolationsListed(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, v := range vs.Values {
			u, ok := v.(*ast.UnaryExpr)
			if !ok || u.Op != token.AND {
				continue
			}
			if cl, ok := u.X.(*ast.CompositeLit); ok {
				if id, ok := cl.Type.(*ast.Ident); ok && id.Name == "CloseError" {
					declared = append(declared, vs.Names[i].Name)
				}
			}
		}
		return true
	})
	var listed []string
	for name := range violations {
		listed = append(listed, name)
	}
	slices.Sort(declared)
	slices.Sort(listed)
	if !slices.Equal(declared, listed) {
		t.Fatalf("errors.go declares %v\nviolations lists %v", declared, listed)
	}
}

// TestReaderViolations feeds one malformed stream per violation, whole and
// byte by byte, and checks that Feed reports exactly that sentinel, with the
// close code and reason a client sees on the wire.
func TestReaderViolations(t *testing.T) {
	tests := []struct {
		sentinel string
		name     string
		max      int // MaxMessage; 0 means 65536
		in       []byte
		code     int
		reason   string
		deflate  bool // the Reader accepts permessage-deflate
	}{
		{"ErrReservedBits", "RSV1 on a text frame", 0, withB0(0x81|0x40, "x"), 1002, "reserved bits set", false},
		{"ErrReservedBits", "RSV3 on a ping", 0, withB0(0x89|0x10, "x"), 1002, "reserved bits set", false},
		{"ErrBadOpcode", "reserved data opcode 3", 0, withB0(0x83, "x"), 1002, "unknown opcode", false},
		{"ErrBadOpcode", "reserved control opcode 0xB", 0, withB0(0x8B, "x"), 1002, "unknown opcode", false},
		{"ErrInterleavedMessage", "text inside a fragmented binary", 0, cat(mf(false, OpBinary, "a"), text("b")), 1002, "new message inside a fragmented message", false},
		{"ErrUnexpectedContinuation", "continuation first", 0, mf(true, OpContinuation, "a"), 1002, "continuation frame without a message", false},
		{"ErrUnexpectedContinuation", "continuation after a whole message", 0, cat(text("a"), mf(true, OpContinuation, "b")), 1002, "continuation frame without a message", false},
		{"ErrFragmentedControl", "ping without FIN", 0, mf(false, OpPing, "a"), 1002, "fragmented control frame", false},
		{"ErrUnmaskedClientFrame", "unmasked text", 0, unmasked(OpText, "a"), 1002, "unmasked client frame", false},
		{"ErrControlTooLong", "ping of 126 bytes", 0, ping(stars(126)), 1002, "control frame payload over 125 bytes", false},
		{"ErrControlTooLong", "close of 126 bytes", 0, closeFrame(1000, stars(124)), 1002, "control frame payload over 125 bytes", false},
		{"ErrLengthMSB", "64-bit length with the top bit set", 0, rawLen(0x82, 127, be64(1<<63), ""), 1002, "payload length with the most significant bit set", false},
		{"ErrMessageTooBig", "one frame over MaxMessage", 10, text(stars(11)), 1009, "message too big", false},
		{"ErrMessageTooBig", "fragments summing over MaxMessage", 10, fragments(OpBinary, stars(6), stars(5)), 1009, "message too big", false},
		{"ErrInvalidUTF8", "invalid byte", 0, text("ok\xff"), 1007, "invalid UTF-8 in text message", false},
		{"ErrInvalidUTF8", "surrogate across fragments", 0, fragments(OpText, "a\xed", "\xa0\x80"), 1007, "invalid UTF-8 in text message", false},
		{"ErrInvalidUTF8", "message ends inside a rune", 0, fragments(OpText, "a", "\xce"), 1007, "invalid UTF-8 in text message", false},
		{"ErrShortClose", "close payload of 1 byte", 0, mf(true, OpClose, "\x03"), 1002, "close payload of 1 byte", false},
		{"ErrBadCloseCode", "close code 1005", 0, closeFrame(1005, ""), 1002, "invalid close code", false},
		{"ErrBadCloseCode", "close code 999", 0, closeFrame(999, "bye"), 1002, "invalid close code", false},
		{"ErrInvalidCloseReason", "close reason not UTF-8", 0, closeFrame(1000, "\xff"), 1007, "invalid UTF-8 in close reason", false},
		{"ErrReservedBits", "RSV2 with permessage-deflate", 0, withB0(0x81|0x20, "x"), 1002, "reserved bits set", true},
		{"ErrReservedBits", "RSV1 and RSV3 with permessage-deflate", 0, withB0(0x82|0x50, "x"), 1002, "reserved bits set", true},
		{"ErrCompressedControl", "RSV1 on a ping", 0, withB0(0x89|0x40, "x"), 1002, "RSV1 set on a control frame", true},
		{"ErrCompressedControl", "RSV1 on a close", 0, withB0(0x88|0x40, "\x03\xe8"), 1002, "RSV1 set on a control frame", true},
		{"ErrCompressedContinuation", "RSV1 on the second fragment", 0, cat(zfirst(false, OpText, "a"), zfirst(true, OpContinuation, "b")), 1002, "RSV1 set on a continuation frame", true},
		{"ErrMessageTooBig", "compressed frame over DeflatedLimit", 10, withB0(0xC2, stars(DeflatedLimit(10)+1)), 1009, "message too big", true},
		{"ErrInflatedTooBig", "inflates to MaxMessage+1", 10, zmsg(OpBinary, stars(11), 1), 1009, "message too big once inflated", true},
		{"ErrInflatedTooBig", "fragmented, inflates past MaxMessage", 100, zmsg(OpText, stars(5000), 3), 1009, "message too big once inflated", true},
		{"ErrBadDeflate", "stored block length check fails", 0, withB0(0xC1, "\x01\x02\x00\x00\x00ab"), 1007, "invalid compressed data", true},
		{"ErrBadDeflate", "zero-length payload with RSV1 (an empty message compresses to one byte)", 0, zfirst(true, OpBinary, ""), 1007, "invalid compressed data", true},
		{"ErrBadDeflate", "reserved block type", 0, withB0(0xC2, "\x07"), 1007, "invalid compressed data", true},
		{"ErrBadDeflate", "stored block longer than the message", 0, withB0(0xC2, "\x00\x64\x00\x9b\xff0123456789"), 1007, "invalid compressed data", true},
		{"ErrInvalidUTF8", "invalid UTF-8 once inflated", 0, zmsg(OpText, "ok\xff", 2), 1007, "invalid UTF-8 in text message", true},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.sentinel] = true
		t.Run(tt.sentinel+"/"+tt.name, func(t *testing.T) {
			want := violations[tt.sentinel]
			if want == nil {
				t.Fatalf("unknown sentinel %s", tt.sentinel)
			}
			max := tt.max
			if max == 0 {
				max = 65536
			}
			every := make([]int, 0, len(tt.in))
			for i := 1; i < len(tt.in); i++ {
				every = append(every, i)
			}
			for _, run := range []struct {
				mode string
				cuts []int
			}{{"whole", nil}, {"byte by byte", every}} {
				_, err, _ := feedReader(t, &Reader{MaxMessage: max, Deflate: tt.deflate}, tt.in, run.cuts)
				if !errors.Is(err, want) {
					t.Fatalf("%s: err = %v, want %s", run.mode, err, tt.sentinel)
				}
				for name, other := range violations {
					if name != tt.sentinel && errors.Is(err, other) {
						t.Fatalf("%s: err %v also matches %s", run.mode, err, name)
					}
				}
				var ce *CloseError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: err %T is not a *CloseError", run.mode, err)
				}
				if ce.Code != tt.code || ce.Reason != tt.reason {
					t.Fatalf("%s: close %d %q, want %d %q", run.mode, ce.Code, ce.Reason, tt.code, tt.reason)
				}
				if !strings.HasPrefix(err.Error(), "frame: ") {
					t.Fatalf("%s: Error() = %q, want the frame: prefix", run.mode, err)
				}
			}
		})
	}
	for name := range violations {
		if !covered[name] {
			t.Errorf("no malformed input yields %s", name)
		}
	}
}

// TestReaderViolationWrapped checks that a caller that wraps the error with
// %w still finds the sentinel and the close code.
func TestReaderViolationWrapped(t *testing.T) {
	r := &Reader{MaxMessage: 100}
	err := fmt.Errorf("read from 127.0.0.1:1234: %w", r.Feed(unmasked(OpBinary, "x"), &recorder{}))
	if !errors.Is(err, ErrUnmaskedClientFrame) {
		t.Fatalf("errors.Is(%v, ErrUnmaskedClientFrame) = false", err)
	}
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CloseProtocolError {
		t.Fatalf("errors.As(%v) did not find close code 1002", err)
	}
}

func TestCloseError(t *testing.T) {
	var err error = &CloseError{Code: CloseTooBig, Reason: "message too big"}
	if got, want := err.Error(), "frame: websocket close 1009: message too big"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != 1009 {
		t.Errorf("errors.As did not find the code")
	}
	// Sentinels match by identity: an equal value built elsewhere is not
	// the Reader's verdict.
	if errors.Is(err, ErrMessageTooBig) {
		t.Errorf("a fresh CloseError matches ErrMessageTooBig")
	}
}
